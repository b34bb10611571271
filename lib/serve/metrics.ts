// Prometheus text exposition (format 0.0.4) for the service: counters, gauges and histograms with
// labels, written by hand (a few dozen lines) rather than pulling in a client library.
import { monitorEventLoopDelay } from 'perf_hooks';

type Labels = Record<string, string>;

function key(labels: Labels): string {
  return Object.keys(labels)
    .sort()
    .map((k) => `${k}="${escapeLabel(labels[k])}"`)
    .join(',');
}

/** A label value in the exposition format (every request's labels pass here: most need no escape). */
function escapeLabel(v: string): string {
  return /[\\"\n]/.test(v) ? v.replace(/\\/g, '\\\\').replace(/"/g, '\\"').replace(/\n/g, '\\n') : v;
}

function line(name: string, labelText: string, value: number): string {
  return `${name}${labelText ? `{${labelText}}` : ''} ${Number.isFinite(value) ? value : value > 0 ? '+Inf' : 'NaN'}`;
}

class Counter {
  readonly values = new Map<string, number>();
  constructor(
    readonly name: string,
    readonly help: string,
  ) {}
  inc(labels: Labels = {}, by = 1): void {
    const k = key(labels);
    this.values.set(k, (this.values.get(k) ?? 0) + by);
  }
  get(labels: Labels = {}): number {
    return this.values.get(key(labels)) ?? 0;
  }
  render(): string[] {
    return [`# HELP ${this.name} ${this.help}`, `# TYPE ${this.name} counter`, ...[...this.values].map(([k, v]) => line(this.name, k, v))];
  }
}

class Histogram {
  private readonly series = new Map<string, { counts: number[]; sum: number; count: number }>();
  constructor(
    readonly name: string,
    readonly help: string,
    readonly buckets: number[],
  ) {}
  observe(labels: Labels, value: number): void {
    const k = key(labels);
    let s = this.series.get(k);
    if (!s) this.series.set(k, (s = { counts: this.buckets.map(() => 0), sum: 0, count: 0 }));
    this.buckets.forEach((b, i) => {
      if (value <= b) s.counts[i]++;
    });
    s.sum += value;
    s.count++;
  }
  count(labels: Labels): number {
    return this.series.get(key(labels))?.count ?? 0;
  }
  sum(labels: Labels): number {
    return this.series.get(key(labels))?.sum ?? 0;
  }
  render(): string[] {
    const out = [`# HELP ${this.name} ${this.help}`, `# TYPE ${this.name} histogram`];
    for (const [k, s] of this.series) {
      const sep = k ? ',' : '';
      this.buckets.forEach((b, i) => out.push(line(`${this.name}_bucket`, `${k}${sep}le="${b}"`, s.counts[i])));
      out.push(line(`${this.name}_bucket`, `${k}${sep}le="+Inf"`, s.count));
      out.push(line(`${this.name}_sum`, k, s.sum));
      out.push(line(`${this.name}_count`, k, s.count));
    }
    return out;
  }
}

const SECONDS = [0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10];

/** Everything /metrics reports. Gauges (queue depth, memory, event-loop delay) are read when rendered. */
export class Metrics {
  readonly requests = new Counter('trainlarge_requests_total', 'HTTP requests answered, by model, route and status code.');
  readonly admitted = new Counter('trainlarge_inputs_admitted_total', 'Inputs (texts) admitted to a model queue.');
  readonly rejected = new Counter(
    'trainlarge_rejected_total',
    'Requests refused with 503 because a model queue was full or the service was closing.',
  );
  readonly refused = new Counter(
    'trainlarge_refused_total',
    'Requests refused by a guard, by reason: unauthorized (401), not_loopback (403), body_limit, max_items, max_text_chars (413), timeout (503).',
  );
  readonly requestSeconds = new Histogram(
    'trainlarge_request_duration_seconds',
    'Time from request to answer, by model and route.',
    SECONDS,
  );
  readonly batchSize = new Histogram(
    'trainlarge_batch_size',
    'Inputs per batch (a classify batch runs as one native call per part of similar lengths), by model.',
    [1, 2, 4, 8, 16, 32, 64, 128],
  );
  readonly batchSeconds = new Histogram(
    'trainlarge_batch_duration_seconds',
    "Time of one batch's inference (for a batch queued behind another, from that one's end), by model.",
    SECONDS,
  );
  private readonly loopDelay = monitorEventLoopDelay({ resolution: 10 });

  constructor(private readonly gauges: () => { name: string; help: string; values: [Labels, number][] }[]) {
    this.loopDelay.enable();
  }

  /** Event-loop delay in seconds since the last reset (max and p99): stays small because inference runs off the loop. */
  eventLoopDelay(): { max: number; p99: number } {
    return { max: this.loopDelay.max / 1e9, p99: this.loopDelay.percentile(99) / 1e9 };
  }

  render(): string {
    const mem = process.memoryUsage();
    const loop = this.eventLoopDelay();
    const gauges = [
      ...this.gauges(),
      { name: 'process_resident_memory_bytes', help: 'Resident set size of the process.', values: [[{}, mem.rss]] as [Labels, number][] },
      { name: 'nodejs_heap_used_bytes', help: 'V8 heap in use.', values: [[{}, mem.heapUsed]] as [Labels, number][] },
      {
        name: 'nodejs_external_memory_bytes',
        help: 'Memory V8 was told native objects hold (model weights).',
        values: [[{}, mem.external]] as [Labels, number][],
      },
      {
        name: 'nodejs_eventloop_delay_max_seconds',
        help: 'Largest event-loop delay seen.',
        values: [[{}, loop.max]] as [Labels, number][],
      },
      {
        name: 'nodejs_eventloop_delay_p99_seconds',
        help: '99th percentile event-loop delay.',
        values: [[{}, loop.p99]] as [Labels, number][],
      },
    ];
    const lines: string[] = [];
    for (const c of [this.requests, this.admitted, this.rejected, this.refused]) lines.push(...c.render());
    for (const h of [this.requestSeconds, this.batchSize, this.batchSeconds]) lines.push(...h.render());
    for (const g of gauges) {
      lines.push(`# HELP ${g.name} ${g.help}`, `# TYPE ${g.name} gauge`, ...g.values.map(([l, v]) => line(g.name, key(l), v)));
    }
    return lines.join('\n') + '\n';
  }

  close(): void {
    this.loopDelay.disable();
  }
}
