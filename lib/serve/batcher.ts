// Micro-batching: concurrent requests for one model are gathered into one native call.
//
// The policy is Triton's dynamic batching: a batch starts when `maxBatch` items are waiting or when the
// oldest has waited `maxWaitMs`, and never while the model is still running the previous batch (items
// that arrive meanwhile form the next one). At most `maxQueue` items wait; past that, `submit` refuses
// at once with QueueFullError (the server answers 503 with Retry-After) instead of letting latency grow
// without bound.

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
  /** Items in the batch and how long the native call took. */
  size: number;
  seconds: number;
}

interface Pending<In, Out> {
  item: In;
  resolve: (out: Out) => void;
  reject: (err: unknown) => void;
}

export class MicroBatcher<In, Out> {
  private queue: Pending<In, Out>[] = [];
  private running = false;
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

  /** Items waiting for a batch. */
  get depth(): number {
    return this.queue.length;
  }

  /**
   * Queues all items or none (a request's texts are admitted together), resolving each with its output.
   * When `signal` aborts (the request timed out), its items still waiting leave the queue, rejected with the
   * signal's reason, so no batch spends time on an answer nobody reads; items already in a running batch finish.
   */
  submit(items: In[], signal?: AbortSignal): Promise<Out>[] {
    if (this.closed) throw new ClosedError();
    signal?.throwIfAborted();
    if (this.queue.length + items.length > this.opts.maxQueue) throw new QueueFullError(this.queue.length, this.opts.maxQueue);
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
        if (!this.running && this.queue.length === 0) this.settled();
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
    if (!this.running && this.queue.length === 0) return;
    await new Promise<void>((resolve) => this.idle.push(resolve));
  }

  private schedule(): void {
    if (this.running) return; // the batch in flight picks the queue up when it ends
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
    if (this.running || this.queue.length === 0) return;
    this.running = true;
    const batch = this.queue.splice(0, this.opts.maxBatch);
    const start = process.hrtime.bigint();
    try {
      const outs = await this.runBatch(batch.map((p) => p.item));
      if (outs.length !== batch.length) throw new Error(`runBatch returned ${outs.length} outputs for ${batch.length} inputs`);
      batch.forEach((p, i) => p.resolve(outs[i]));
    } catch (err) {
      for (const p of batch) p.reject(err);
    } finally {
      this.onBatch({ size: batch.length, seconds: Number(process.hrtime.bigint() - start) / 1e9 });
      this.running = false;
    }
    if (this.queue.length > 0) {
      // Whatever queued during the call goes next without waiting: it has waited already.
      void this.flush();
    } else {
      this.settled();
    }
  }

  private settled(): void {
    if (this.timer) clearTimeout(this.timer);
    this.timer = null;
    for (const resolve of this.idle.splice(0)) resolve();
  }
}
