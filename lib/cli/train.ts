// trainlarge train: masked-LM pretraining on a prepared corpus, a built-in one, or your own files.
import * as fs from 'fs';
import * as path from 'path';
import { DEFAULT_LAYERS, DEFAULT_MAX_LEN, ModelConfigInput, ModelConfigSchema, parseModelConfig } from '../config/model';
import { TokenizerOptionsSchema } from '../config/tokenizer';
import { Corpus, CORPUS_SOURCES, CorpusSourceName } from '../data/corpus';
import { Transformer } from '../model';
import { Tokenizer } from '../data/tokenizer';
import { Trainer } from '../train/trainer';
import { Args, Command, UsageError } from './args';
import { device, DEVICE_FLAG, fitWithProgress, JSON_FLAG, trainConfig, trainFlags } from './common';

const STEPS = 1000;

async function corpusFor(args: Args): Promise<{ corpus: Corpus; name: string }> {
  const given = args.string('corpus');
  const files = args.list('files');
  if ((given === undefined) === (files === undefined)) {
    throw new UsageError(
      `train: give --corpus DIR|NAME (a prepared corpus, or one of ${Object.keys(CORPUS_SOURCES).join(', ')}) or --files A,B,...`,
      'train',
    );
  }
  const report = (e: { phase: string; message: string }) =>
    e.phase !== 'done' && process.stderr.write(`[prepare ${e.phase}] ${e.message}\n`);
  if (given !== undefined && fs.existsSync(path.join(given, 'manifest.json'))) {
    return { corpus: await Corpus.open(given), name: path.basename(path.resolve(given)) };
  }
  if (given !== undefined) {
    if (!(given in CORPUS_SOURCES))
      throw new UsageError(
        `--corpus: '${given}' is neither a prepared corpus directory (no manifest.json) nor a built-in corpus (${Object.keys(CORPUS_SOURCES).join(', ')})`,
        'train',
      );
    // Prepared once into data/NAME, as `trainlarge data prepare NAME` does; later runs reuse it.
    const corpus = await Corpus.prepare({
      source: given as CorpusSourceName,
      dir: path.join('data', given),
      tokenizerOptions: { vocabSize: args.int('vocab-size') },
      onProgress: report,
    });
    return { corpus, name: given };
  }
  const name = args.string('name') ?? 'corpus';
  const corpus = await Corpus.prepare({
    source: {
      name,
      train: {
        files: files!,
        format: args.string('format') as 'text' | 'jsonl' | 'tsv' | 'parquet' | undefined,
        textField: args.string('text-field'),
        split: args.string('split') as 'file' | 'blank-line' | 'line' | undefined,
      },
    },
    // Beside the run, so a rerun reuses (or resumes) it.
    dir: path.join(args.string('dir') ?? path.join('runs', name), 'corpus'),
    tokenizerOptions: { vocabSize: args.int('vocab-size') },
    onProgress: report,
  });
  return { corpus, name };
}

export const train: Command = {
  name: 'train',
  brief: 'Masked-LM pretraining on a corpus into a run directory (resumable).',
  summary:
    'Masked-LM pretraining (RoBERTa) into a run directory: checkpoints, metrics.jsonl, model.safetensors, config.json and the ' +
    "corpus's tokenizer.model. Running the same command again resumes from the newest checkpoint.",
  synopsis: '(--corpus DIR|NAME | --files A,B,...) [--dir RUN] [options]',
  flags: [
    {
      name: 'corpus',
      kind: 'string',
      value: 'DIR|NAME',
      help: `a prepared corpus, or a built-in one (${Object.keys(CORPUS_SOURCES).join(', ')}; prepared into data/NAME once)`,
    },
    { name: 'files', kind: 'list', value: 'A,B,...', help: 'or your own text files (prepared into RUN/corpus)' },
    {
      name: 'format',
      kind: ['text', 'jsonl', 'tsv', 'parquet'],
      help: 'of --files (default: by extension: .jsonl, .tsv, .parquet, else text; .gz/.zst decompressed)',
    },
    { name: 'text-field', kind: 'string', value: 'F', help: 'the text field of JSONL/TSV/Parquet --files' },
    { name: 'split', kind: ['file', 'blank-line', 'line'], help: 'a text file is one document, one per blank-line block, or one per line' },
    {
      name: 'vocab-size',
      kind: 'int',
      help: 'tokenizer vocabulary when the corpus is prepared here',
      field: 'vocabSize',
      defaults: TokenizerOptionsSchema,
    },
    { name: 'name', kind: 'string', value: 'NAME', help: 'the corpus name for --files (default corpus)' },
    { name: 'dir', kind: 'string', value: 'RUN', help: 'the run directory (default runs/NAME)' },
    { name: 'd-model', kind: 'int', help: 'hidden size', field: 'dModel', defaults: ModelConfigSchema },
    { name: 'layers', kind: 'int', help: `encoder layers (default ${DEFAULT_LAYERS})`, field: 'layers' },
    { name: 'heads', kind: 'int', help: 'attention heads, dividing --d-model', field: 'heads', defaults: ModelConfigSchema },
    { name: 'ffn', kind: 'int', help: 'feed-forward width (default 4 x --d-model)', field: 'ffn' },
    { name: 'max-len', kind: 'int', help: 'tokens per sequence', field: 'maxLen', defaults: ModelConfigSchema },
    { name: 'dropout', kind: 'number', help: 'dropout probability', field: 'dropout', defaults: ModelConfigSchema },
    {
      name: 'norm',
      kind: 'string',
      value: 'post|pre',
      help: "LayerNorm placement (post is RoBERTa's)",
      field: 'norm',
      defaults: ModelConfigSchema,
    },
    ...trainFlags(STEPS),
    { name: 'seconds', kind: 'number', help: 'stop after this many training seconds (across resumes)' },
    DEVICE_FLAG,
    JSON_FLAG,
  ],
  notes:
    'Examples:\n' +
    '  trainlarge train --corpus english-prose --dir runs/mlm --steps 2000\n' +
    '  trainlarge train --files a.txt,b.txt --split blank-line --dir runs/mine --d-model 128 --layers 2 --seconds 300',
  async run(args) {
    // Every flag is checked before any data is read or directory written.
    const config = trainConfig(args, STEPS);
    const maxLen = args.int('max-len') ?? DEFAULT_MAX_LEN;
    const shape = Object.fromEntries(
      Object.entries({
        dModel: args.int('d-model'),
        layers: args.int('layers'),
        heads: args.int('heads'),
        ffn: args.int('ffn'),
        dropout: args.number('dropout'),
        norm: args.string('norm'),
      }).filter(([, v]) => v !== undefined),
    );
    parseModelConfig({ task: 'mlm', vocabSize: 2 ** 20, maxLen, ...shape }); // the real vocabSize comes with the corpus
    const seconds = args.number('seconds');
    const { corpus, name } = await corpusFor(args);
    const dir = args.string('dir') ?? path.join('runs', name);
    const tok = corpus.tokenizer;
    // A run directory holds one tokenizer: resuming with another corpus's would train on other ids.
    if (tok.files.some((f) => fs.existsSync(path.join(dir, f))) && (await Tokenizer.fromDir(dir)).sha256 !== tok.sha256) {
      throw new Error(`${dir} holds a run trained with another tokenizer than ${corpus.dir}'s; use a new --dir`);
    }
    const model: ModelConfigInput = { task: 'mlm', vocabSize: tok.vocabSize, maxLen, ...shape };
    const m = await Transformer.create(model, { seed: config.seed, device: device(args) });
    // Under `trainlarge launch` (torchrun's variables set) the ranks train together; alone, as one process.
    const trainer = new Trainer(m, { ...config, distributed: 'auto' });
    try {
      const r = await fitWithProgress(`train ${name}`, trainer, corpus.train({ maxLen }), {
        args,
        validData: corpus.valid({ maxLen }),
        dir,
        maxSeconds: seconds,
      });
      const result = {
        dir,
        parameters: m.parameterCount,
        steps: r.steps,
        resumedFrom: r.resumedFrom,
        stoppedBy: r.stoppedBy,
        trainSeconds: r.trainSeconds,
        validLoss: r.lastEval?.loss,
        validPerplexity: r.lastEval?.perplexity,
      };
      if (args.bool('json')) console.log(JSON.stringify(result));
      else {
        console.log(
          `trained ${(m.parameterCount / 1e6).toFixed(2)} M parameters to step ${r.steps}` +
            `${r.resumedFrom ? ` (resumed from ${r.resumedFrom})` : ''} in ${r.trainSeconds.toFixed(1)} s` +
            `${r.lastEval ? `: validation loss ${r.lastEval.loss.toFixed(3)}, perplexity ${r.lastEval.perplexity.toFixed(2)}` : ''}`,
        );
        console.log(
          `saved ${dir}: model.safetensors, config.json, tokenizer.model, checkpoints (run the same command to resume or extend with --steps)`,
        );
      }
    } finally {
      trainer.dispose();
      m.dispose();
    }
  },
};
