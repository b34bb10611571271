// The records the data layer reads and splits: documents (pretraining) and labelled examples (tasks).

/** A whole text (speech, Brown file, e-mail...): the unit that splits keep together. */
export interface Document {
  id: string;
  text: string;
}

/** A labelled text. `doc` names the document it comes from: splits are made by `doc`, never by example. */
export interface Example {
  id: string;
  doc: string;
  text: string;
  /** A second segment for sentence-pair tasks (MNLI's hypothesis after the premise in `text`). */
  pair?: string;
  label: number;
}

export type Split = 'train' | 'valid' | 'test';
