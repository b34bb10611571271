// The progress of a pass over a corpus's inputs: bytes, documents and tokens read, their rate and the time
// left, as PrepareEvents for Corpus.prepare's onProgress.
import { Position } from './stream';
import { DocSource } from './corpus-sources';

export interface PrepareEvent {
  phase: 'read' | 'tokenizer' | 'shard' | 'done';
  message: string;
  /** shard phase: shards written (or skipped) so far; total when known. */
  done?: number;
  total?: number;
  skipped?: boolean;
  /** Progress of the pass: input bytes read (compressed bytes for .gz/.zst) of totalBytes, documents and tokens so far. */
  bytes?: number;
  totalBytes?: number;
  documents?: number;
  tokens?: number;
  tokensPerSecond?: number;
  etaSeconds?: number;
}

/** Progress of one pass over the inputs: bytes, documents, tokens, rate and ETA, reported about once a second. */
export class PassProgress {
  private readonly read: number[];
  private readonly started = Date.now();
  private last = 0;
  documents = 0;
  tokens = 0;
  constructor(
    private readonly src: DocSource,
    private readonly range: [number, number],
    private readonly report: (e: PrepareEvent) => void,
    private readonly phase: 'read' | 'tokenizer',
    private readonly label: string,
  ) {
    this.read = new Array<number>(src.units).fill(0);
  }
  get totalBytes(): number {
    let n = 0;
    for (let i = this.range[0]; i < this.range[1]; i++) n += this.src.unitBytes(i);
    return n;
  }
  get bytes(): number {
    let n = 0;
    for (let i = this.range[0]; i < this.range[1]; i++) n += Math.min(this.read[i], this.src.unitBytes(i));
    return n;
  }
  onRead = (unit: number, bytes: number): void => {
    this.read[unit] = bytes;
    this.tick();
  };
  /** From a resume position on, the files before it count as read. */
  skipTo(p: Position): void {
    for (let i = this.range[0]; i < Math.min(p.file, this.range[1]); i++) this.read[i] = this.src.unitBytes(i);
  }
  tick(force = false): void {
    const now = Date.now();
    if (!force && now - this.last < 1000) return;
    this.last = now;
    this.report(this.event());
  }
  event(message?: string): PrepareEvent {
    const seconds = (Date.now() - this.started) / 1000;
    const bytes = this.bytes;
    const total = this.totalBytes;
    const rate = bytes / Math.max(seconds, 1e-3);
    return {
      phase: this.phase,
      message: message ?? `${this.label}: ${(bytes / 1e6).toFixed(1)} of ${(total / 1e6).toFixed(1)} MB`,
      bytes,
      totalBytes: total,
      documents: this.documents,
      tokens: this.tokens,
      tokensPerSecond: seconds > 0 ? Math.round(this.tokens / seconds) : 0,
      etaSeconds: rate > 0 ? Math.max(0, Math.round((total - bytes) / rate)) : undefined,
    };
  }
}
