// Micro-batching: concurrent requests for one model are gathered into one native call.
//
// The policy is Triton's dynamic batching: a batch starts when `maxBatch` items are waiting or when the
// oldest has waited `maxWaitMs`; while the model runs a batch, items that arrive meanwhile form the next
// one. That next batch is handed to the model as soon as it is full (it cannot grow any more), so it
// waits behind the running one in the engine's queue and the model goes from one to the other without
// waiting for the JS thread to hear back; a batch that is not full waits for the running one to end, so
// it can fill up. So at most two batches are in flight: one running, one full one behind it. At most
// `maxQueue` items wait; past that, `submit` refuses at once with QueueFullError (the server answers 503
// with Retry-After) instead of letting latency grow without bound.

export class QueueFullError extends Error {
  readonly code = 'QUEUE_FULL';
  constructor(
    readonly waiting: number,
    readonly maxQueue: number,
  ) {
    super(`the queue is full (${waiting} waiting, maxQueue ${maxQueue}); retry later`);
  }
}

export class ClosedError extends Error {
  readonly code = 'CLOSED';
  constructor() {
    super('the service is shutting down');
  }
}

export interface BatcherOptions {
  /** Most items in one native call. */
  maxBatch: number;
  /** How long the first item of a batch waits for company, in ms (0: only what is already queued). */
  maxWaitMs: number;
  /** Most items waiting (not counting the batch being run). */
  maxQueue: number;
}

export interface BatchStats {
  /**
   * Items in the batch and how long the native call took: from its start, or, for a batch that waited
   * behind the one before it, from that one's end.
   */
  size: number;
  seconds: number;
}

/** Batches in flight at most: the running one and one full batch queued behind it. */
const MAX_IN_FLIGHT = 2;

interface Pending<In, Out> {
  item: In;
  resolve: (out: Out) => void;
  reject: (err: unknown) => void;
}

export class MicroBatcher<In, Out> {
  private queue: Pending<In, Out>[] = [];
  /** Batches handed to runBatch and not yet answered (at most MAX_IN_FLIGHT). */
  private inFlight = 0;
  /** Items of the full batch handed over while another runs: they wait behind it, so they count as waiting. */
  private behind = 0;
  /** When the last batch in flight ended (hrtime ns): where the time of the batch queued behind it starts. */
  private lastEnd = 0n;
  private timer: NodeJS.Timeout | null = null;
  private closed = false;
  private idle: (() => void)[] = [];

  constructor(
    readonly opts: BatcherOptions,
    /** Runs one batch; must return one output per input, in order. */
    private readonly runBatch: (items: In[]) => Promise<Out[]>,
    private readonly onBatch: (stats: BatchStats) => void = () => undefined,
  ) {
    for (const k of ['maxBatch', 'maxQueue'] as const) {
      if (!Number.isInteger(opts[k]) || opts[k] < 1) throw new RangeError(`${k}: must be an integer >= 1, got ${opts[k]}`);
    }
    if (!(opts.maxWaitMs >= 0)) throw new RangeError(`maxWaitMs: must be >= 0, got ${opts.maxWaitMs}`);
  }

  /** Items waiting: for a batch, or in the full batch waiting behind the running one. */
  get depth(): number {
    return this.queue.length + this.behind;
  }

  /**
   * Queues all items or none (a request's texts are admitted together), resolving each with its output.
   * When `signal` aborts (the request timed out), its items still waiting leave the queue, rejected with the
   * signal's reason, so no batch spends time on an answer nobody reads; items already handed to the model (a
   * running batch, or the full one behind it) finish.
   */
  submit(items: In[], signal?: AbortSignal): Promise<Out>[] {
    if (this.closed) throw new ClosedError();
    signal?.throwIfAborted();
    if (this.depth + items.length > this.opts.maxQueue) throw new QueueFullError(this.depth, this.opts.maxQueue);
    const mine: Pending<In, Out>[] = [];
    const promises = items.map(
      (item) =>
        new Promise<Out>((resolve, reject) => {
          const p = { item, resolve, reject };
          mine.push(p);
          this.queue.push(p);
        }),
    );
    if (signal) {
      const drop = (): void => {
        const waiting = new Set(mine);
        this.queue = this.queue.filter((p) => !waiting.has(p));
        for (const p of mine) p.reject(signal.reason); // a no-op for those already answered
        if (this.inFlight === 0 && this.queue.length === 0) this.settled();
      };
      signal.addEventListener('abort', drop, { once: true });
      void Promise.allSettled(promises).then(() => signal.removeEventListener('abort', drop));
    }
    this.schedule();
    return promises;
  }

  /** Refuses new items and resolves once every admitted item has been answered. */
  async close(): Promise<void> {
    this.closed = true;
    this.schedule(); // closed: what waits for the window runs now
    if (this.inFlight === 0 && this.queue.length === 0) return;
    await new Promise<void>((resolve) => this.idle.push(resolve));
  }

  private schedule(): void {
    if (this.queue.length === 0) return;
    if (this.inFlight > 0) {
      // The batch in flight picks the queue up when it ends; a full batch goes behind it now.
      if (this.inFlight < MAX_IN_FLIGHT && this.queue.length >= this.opts.maxBatch) void this.flush();
      return;
    }
    if (this.queue.length >= this.opts.maxBatch || this.opts.maxWaitMs === 0 || this.closed) {
      if (this.timer) clearTimeout(this.timer);
      this.timer = null;
      void this.flush();
    } else if (!this.timer) {
      this.timer = setTimeout(() => {
        this.timer = null;
        void this.flush();
      }, this.opts.maxWaitMs);
    }
  }

  private async flush(): Promise<void> {
    if (this.inFlight >= MAX_IN_FLIGHT || this.queue.length === 0) return;
    if (this.timer) clearTimeout(this.timer);
    this.timer = null;
    const batch = this.queue.splice(0, this.opts.maxBatch);
    if (this.inFlight++ > 0) this.behind = batch.length;
    const start = process.hrtime.bigint();
    try {
      const outs = await this.runBatch(batch.map((p) => p.item));
      if (outs.length !== batch.length) throw new Error(`runBatch returned ${outs.length} outputs for ${batch.length} inputs`);
      batch.forEach((p, i) => p.resolve(outs[i]));
    } catch (err) {
      for (const p of batch) p.reject(err);
    } finally {
      const end = process.hrtime.bigint();
      const from = this.lastEnd > start ? this.lastEnd : start; // it waited behind the batch before it until then
      this.lastEnd = end;
      this.onBatch({ size: batch.length, seconds: Number(end - from) / 1e9 });
      this.inFlight--;
      this.behind = 0; // the batch still in flight, if any, is the one running now
    }
    if (this.queue.length > 0) {
      // Whatever queued during the call goes next without waiting: it has waited already (when the batch
      // behind this one is still in flight, only a full batch joins it; the rest goes when it ends).
      if (this.inFlight === 0) void this.flush();
      else this.schedule();
    } else if (this.inFlight === 0) {
      this.settled();
    }
  }

  private settled(): void {
    if (this.timer) clearTimeout(this.timer);
    this.timer = null;
    for (const resolve of this.idle.splice(0)) resolve();
  }
}
