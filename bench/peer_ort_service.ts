/**
 * The ONNX Runtime peer of `trainlarge serve` for bench/service-onnx.ts: a minimal fastify + onnxruntime-node
 * classification service over an `exportOnnx` directory, with the same route, request body and answer as
 * trainlarge's (POST /v1/models/m/classify {"text", "truncate"} -> {"model", "results": [{label, score, scores}]}),
 * the same tokenizer (the export's tokenizer.model through trainlarge's Tokenizer, `<s> text </s>` as
 * classificationLayout lays it out) and the batching window of lib/serve/batcher.ts (Triton's dynamic
 * batching: a batch starts when maxBatch inputs wait or the oldest has waited maxWaitMs, never while the
 * previous batch runs; what queued meanwhile goes next at once; past maxQueue a 503). A batch is padded to
 * its longest input with an attention mask, as trainlarge's predict pads one call. What trainlarge serve does
 * beyond this, a minimal service does not: it hands a full batch to its engine thread behind the running one
 * (here `session.run` computes on the JS thread, so there is nothing to hand it to) and runs a classify batch in
 * length-sorted parts (lib/serve/models.ts, lengthParts).
 *
 *   node dist/bench/peer_ort_service.js --dir EXPORT_DIR [--port 0] [--max-batch 16] [--max-wait-ms 2] [--max-queue 1024] [--threads 1]
 *
 * Prints {"event":"listening","address","pid"} on stdout as `trainlarge serve` does, and serves GET /metrics with
 * the batch counters under trainlarge's names (trainlarge_batch_size_sum/_count, trainlarge_batch_duration_seconds_sum,
 * trainlarge_inputs_admitted_total, label model="m"), so the load generator reads both servers alike. SIGTERM:
 * answers what was admitted, exits 0. No token, limits or request timeouts: a peer for throughput, not a service.
 */
import Fastify from 'fastify';
import * as fs from 'fs';
import * as ort from 'onnxruntime-node';
import * as path from 'path';
import { classificationLayout, OnnxConfigJson, Tokenizer } from '../lib';

function arg(name: string, fallback: string): string {
  const i = process.argv.indexOf(`--${name}`);
  return i >= 0 ? process.argv[i + 1] : fallback;
}

function intArg(name: string, fallback: number, min: number): number {
  const v = Number(arg(name, String(fallback)));
  if (!Number.isInteger(v) || v < min) throw new Error(`--${name}: expected an integer >= ${min}, got '${arg(name, '')}'`);
  return v;
}

interface Pending {
  ids: Int32Array;
  resolve: (r: Result) => void;
  reject: (e: unknown) => void;
}
interface Result {
  label: string;
  score: number;
  scores: Record<string, number>;
}

async function main(): Promise<void> {
  const dir = arg('dir', '');
  if (!dir) throw new Error('--dir: the exportOnnx directory is required');
  const maxBatch = intArg('max-batch', 16, 1);
  const maxWaitMs = intArg('max-wait-ms', 2, 0);
  const maxQueue = intArg('max-queue', 1024, 1);
  const threads = intArg('threads', 1, 1);
  const config = JSON.parse(fs.readFileSync(path.join(dir, 'config.json'), 'utf8')) as OnnxConfigJson;
  if (config.task !== 'classify' || !config.labels) throw new Error(`${dir}: not a classifier export`);
  const labels = config.labels;
  const tokenizer = Tokenizer.load(path.join(dir, 'tokenizer.model'));
  const session = await ort.InferenceSession.create(path.join(dir, 'model.onnx'), {
    intraOpNumThreads: threads,
    interOpNumThreads: 1,
    executionMode: 'sequential',
    graphOptimizationLevel: 'all',
  });

  // Counters for /metrics (trainlarge's names, see the header).
  let batchSizeSum = 0,
    batchCount = 0,
    batchSeconds = 0,
    admitted = 0;

  // The batching policy of lib/serve/batcher.ts, for one model.
  let queue: Pending[] = [];
  let running = false;
  let timer: NodeJS.Timeout | null = null;
  const schedule = (): void => {
    if (running) return;
    if (queue.length >= maxBatch || maxWaitMs === 0) {
      if (timer) clearTimeout(timer);
      timer = null;
      void flush();
    } else if (!timer) {
      timer = setTimeout(() => {
        timer = null;
        void flush();
      }, maxWaitMs);
    }
  };
  const flush = async (): Promise<void> => {
    if (running || queue.length === 0) return;
    running = true;
    const batch = queue.slice(0, maxBatch);
    queue = queue.slice(batch.length);
    const start = process.hrtime.bigint();
    try {
      const T = Math.max(...batch.map((p) => p.ids.length));
      const ids = new BigInt64Array(batch.length * T).fill(BigInt(config.padId));
      const mask = new BigInt64Array(batch.length * T);
      batch.forEach((p, b) => {
        for (let t = 0; t < p.ids.length; t++) {
          ids[b * T + t] = BigInt(p.ids[t]);
          mask[b * T + t] = 1n;
        }
      });
      const out = await session.run({
        input_ids: new ort.Tensor('int64', ids, [batch.length, T]),
        attention_mask: new ort.Tensor('int64', mask, [batch.length, T]),
      });
      const data = out.logits.data as Float32Array;
      const C = labels.length;
      batch.forEach((p, b) => {
        const row = data.subarray(b * C, (b + 1) * C);
        const max = Math.max(...row);
        const exp = Array.from(row, (v) => Math.exp(v - max));
        const z = exp.reduce((a, v) => a + v, 0);
        const probs = exp.map((v) => v / z);
        const best = probs.indexOf(Math.max(...probs));
        p.resolve({ label: labels[best], score: probs[best], scores: Object.fromEntries(labels.map((l, c) => [l, probs[c]])) });
      });
    } catch (e) {
      for (const p of batch) p.reject(e);
    } finally {
      batchSizeSum += batch.length;
      batchCount++;
      batchSeconds += Number(process.hrtime.bigint() - start) / 1e9;
      running = false;
    }
    if (queue.length > 0) void flush();
  };

  const app = Fastify({ logger: false, ajv: { customOptions: { coerceTypes: false, removeAdditional: false } } });
  app.post<{ Body: { text: string | string[]; truncate?: boolean } }>(
    '/v1/models/m/classify',
    {
      schema: {
        body: {
          type: 'object',
          required: ['text'],
          additionalProperties: false,
          properties: {
            text: { anyOf: [{ type: 'string' }, { type: 'array', items: { type: 'string' }, minItems: 1 }] },
            truncate: { type: 'boolean' },
          },
        },
      },
    },
    async (req, reply) => {
      const texts = Array.isArray(req.body.text) ? req.body.text : [req.body.text];
      const encoded = await tokenizer.encodeBatch(texts, 1);
      if (!req.body.truncate && encoded.some((a) => a.length + 2 > config.maxLen)) {
        return reply.code(400).send({ error: `a text is longer than maxLen (${config.maxLen}) with the special tokens`, statusCode: 400 });
      }
      if (queue.length + texts.length > maxQueue) {
        reply.header('retry-after', '1');
        return reply.code(503).send({ error: 'the queue is full', statusCode: 503 });
      }
      admitted += texts.length;
      const results = await Promise.all(
        encoded.map(
          (a) =>
            new Promise<Result>((resolve, reject) => {
              queue.push({ ids: classificationLayout(tokenizer, a, undefined, config.maxLen), resolve, reject });
              schedule();
            }),
        ),
      );
      return { model: 'm', results };
    },
  );
  app.get('/metrics', async (_req, reply) =>
    reply
      .type('text/plain; version=0.0.4')
      .send(
        [
          `trainlarge_batch_size_sum{model="m"} ${batchSizeSum}`,
          `trainlarge_batch_size_count{model="m"} ${batchCount}`,
          `trainlarge_batch_duration_seconds_sum{model="m"} ${batchSeconds}`,
          `trainlarge_inputs_admitted_total{model="m"} ${admitted}`,
          '',
        ].join('\n'),
      ),
  );
  const address = await app.listen({ host: '127.0.0.1', port: intArg('port', 0, 0) });
  console.log(JSON.stringify({ event: 'listening', address, pid: process.pid }));
  const stop = (): void => {
    void app
      .close()
      .then(() => session.release())
      .then(() => process.exit(0));
  };
  process.once('SIGTERM', stop);
  process.once('SIGINT', stop);
}

main().catch((e: unknown) => {
  console.error(e instanceof Error ? e.message : e);
  process.exit(1);
});
