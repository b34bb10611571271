// An HTTP inference service over saved trainlarge models (fastify).
//
//   GET  /health                       200 {status:'ok'} while serving, 503 {status:'draining'} while closing
//   GET  /metrics                      Prometheus text: requests, latency, batch sizes, queue depth, memory
//   GET  /v1/models                    the loaded models: task, labels, size, compression, int8
//   POST /v1/models/NAME/classify      {"text": "..." | [...], "pair"?: same shape, "truncate"?: bool}
//   POST /v1/models/NAME/fill-mask     {"text": "... <mask> ..." | [...], "topK"?: 1..50}
//   POST /v1/models/NAME/translate     {"text": "..." | [...], "beam"?: 1..16, "nbest"?: 1..beam, "lengthPenalty"?, "truncate"?}
//
// Concurrent requests for one model are micro-batched into one native call (batcher.ts); inference and
// tokenization run on libuv's worker threads, so the event loop only parses JSON and routes.
import Fastify, { FastifyError, FastifyInstance, FastifyReply } from 'fastify';
import { z } from 'zod';
import { defaultOf, parseConfig } from '../config/parse';
import { nbestProblem, TranslateOptionsSchema } from '../config/translate';
import { setThreads } from '../engine';
import { ClosedError, QueueFullError } from './batcher';
import { Metrics } from './metrics';
import { InputError, ServedModel } from './models';

export const ServiceConfigSchema = z
  .object({
    models: z
      .array(
        z
          .object({
            name: z.string().regex(/^[A-Za-z0-9_.-]+$/, 'letters, digits, _ . - only'),
            dir: z.string().min(1),
            tokenizer: z.string().min(1).optional(),
            labels: z.array(z.string()).optional(),
            int8: z.boolean().optional(),
            device: z.enum(['cpu', 'cuda']).optional(),
          })
          .strict(),
      )
      .min(1, 'list at least one model'),
    /** Most inputs in one native call. */
    maxBatch: z.number().int().min(1).max(1024).default(16),
    /** How long the first input of a batch waits for others (ms). */
    maxWaitMs: z.number().min(0).max(1000).default(2),
    /** Inputs waiting per model before requests are refused with 503. */
    maxQueue: z.number().int().min(1).default(256),
    /** Longest text accepted, in characters (longer: 400). Token limits come from each model's maxLen. */
    maxTextChars: z.number().int().min(1).default(10_000),
    /** Most texts in one request. */
    maxItems: z.number().int().min(1).default(64),
    /** libtorch intra-op and OpenBLAS threads (0: the engine's defaults). */
    threads: z.number().int().min(0).default(0),
    blasThreads: z.number().int().min(0).default(0),
    logger: z.boolean().default(false),
  })
  .strict()
  .refine((c) => new Set(c.models.map((m) => m.name)).size === c.models.length, {
    message: 'model names must be unique',
    path: ['models'],
  });
export type ServiceConfig = z.input<typeof ServiceConfigSchema>;

export interface Service {
  app: FastifyInstance;
  /** @internal The loaded models by name (the routes' and the tests'). */
  models: Map<string, ServedModel>;
  /** @internal The counters and histograms `GET /metrics` renders. */
  metrics: Metrics;
  /** Stops accepting, answers everything admitted, frees the models. Idempotent. */
  close(): Promise<void>;
}

function textsSchema(maxChars: number, maxItems: number): object {
  const one = { type: 'string', minLength: 1, maxLength: maxChars };
  return { anyOf: [one, { type: 'array', items: one, minItems: 1, maxItems }] };
}

const errorBody = {
  type: 'object',
  properties: { error: { type: 'string' }, statusCode: { type: 'integer' } },
};

export async function createService(input: ServiceConfig): Promise<Service> {
  const config = parseConfig(ServiceConfigSchema, input, 'service config');
  if (config.threads || config.blasThreads) setThreads({ threads: config.threads, blasThreads: config.blasThreads });
  const models = new Map<string, ServedModel>();
  const metrics = new Metrics(() => [
    {
      name: 'trainlarge_queue_depth',
      help: 'Inputs waiting for a batch, by model.',
      values: [...models.values()].map((m) => [{ model: m.spec.name }, m.batcher.depth]),
    },
  ]);
  const batching = { maxBatch: config.maxBatch, maxWaitMs: config.maxWaitMs, maxQueue: config.maxQueue };
  try {
    for (const spec of config.models) models.set(spec.name, await ServedModel.load(spec, batching, metrics));
  } catch (e) {
    for (const m of models.values()) await m.close();
    metrics.close();
    throw e;
  }

  const app = Fastify({
    logger: config.logger,
    // Wrong types are errors, not coerced ("text": 5 must not become "5"); unknown fields are refused.
    ajv: { customOptions: { coerceTypes: false, removeAdditional: false, allErrors: false } },
    return503OnClosing: true,
  });
  let draining = false;

  app.setErrorHandler((err: FastifyError, req, reply) => {
    if (err instanceof QueueFullError || err instanceof ClosedError) {
      metrics.rejected.inc({ model: modelLabel(req.params) });
      if (err instanceof QueueFullError) reply.header('retry-after', '1');
      return reply.code(503).send({ error: err.message, statusCode: 503 });
    }
    if (err instanceof InputError) return reply.code(400).send({ error: err.message, statusCode: 400 });
    if (err.validation) {
      const allowed = Object.keys(((req.routeOptions.schema?.body ?? {}) as { properties?: object }).properties ?? {});
      return reply.code(400).send({ error: validationMessage(err, allowed, config), statusCode: 400 });
    }
    const status = err.statusCode && err.statusCode >= 400 && err.statusCode < 500 ? err.statusCode : 500;
    if (status === 500) req.log.error(err);
    return reply.code(status).send({ error: err.message, statusCode: status });
  });

  // While draining, every answer closes its connection, so keep-alive clients do not hold close() open
  // until their idle timeout (fastify's keepAliveTimeout is 72 s).
  app.addHook('onSend', async (_req, reply, payload) => {
    if (draining) reply.header('connection', 'close');
    return payload;
  });

  app.addHook('onResponse', async (req, reply) => {
    const route = req.routeOptions.url ?? 'unknown';
    const model = modelLabel(req.params);
    metrics.requests.inc({ model, route, status: String(reply.statusCode) });
    if (route.startsWith('/v1/models/:name/')) metrics.requestSeconds.observe({ model, route }, reply.elapsedTime / 1000);
  });

  function served(name: string, reply: FastifyReply): ServedModel | undefined {
    const m = models.get(name);
    if (!m)
      void reply.code(404).send({ error: `model '${name}' is not loaded (loaded: ${[...models.keys()].join(', ')})`, statusCode: 404 });
    return m;
  }

  app.get('/health', async (_req, reply) => {
    const body = { status: draining ? 'draining' : 'ok', models: [...models.keys()], uptimeSeconds: process.uptime() };
    return reply.code(draining ? 503 : 200).send(body);
  });

  app.get('/metrics', async (_req, reply) => reply.type('text/plain; version=0.0.4').send(metrics.render()));

  app.get('/v1/models', async () => ({ models: [...models.values()].map((m) => m.info()) }));

  app.get<{ Params: { name: string } }>('/v1/models/:name', async (req, reply) => {
    const m = served(req.params.name, reply);
    return m ? m.info() : reply;
  });

  app.post<{ Params: { name: string }; Body: { text: string | string[]; pair?: string | string[]; truncate?: boolean } }>(
    '/v1/models/:name/classify',
    {
      schema: {
        body: {
          type: 'object',
          required: ['text'],
          additionalProperties: false,
          properties: {
            text: textsSchema(config.maxTextChars, config.maxItems),
            pair: textsSchema(config.maxTextChars, config.maxItems),
            truncate: { type: 'boolean' },
          },
        },
        response: { 400: errorBody },
      },
    },
    async (req, reply) => {
      const m = served(req.params.name, reply);
      if (!m) return reply;
      const { text, pair, truncate } = req.body;
      const texts = Array.isArray(text) ? text : [text];
      let pairs: (string | undefined)[] = texts.map(() => undefined);
      if (pair !== undefined) {
        pairs = Array.isArray(pair) ? pair : [pair];
        if (Array.isArray(text) !== Array.isArray(pair) || pairs.length !== texts.length) {
          throw new InputError(
            `body/pair: must have the same shape as text (${Array.isArray(text) ? `${texts.length} strings` : 'one string'})`,
          );
        }
      }
      const results = await m.classify(
        texts.map((t, i) => ({ text: t, pair: pairs[i] })),
        truncate ?? false,
        'body/text',
      );
      return { model: m.spec.name, results };
    },
  );

  app.post<{ Params: { name: string }; Body: { text: string | string[]; topK?: number } }>(
    '/v1/models/:name/fill-mask',
    {
      schema: {
        body: {
          type: 'object',
          required: ['text'],
          additionalProperties: false,
          properties: { text: textsSchema(config.maxTextChars, config.maxItems), topK: { type: 'integer', minimum: 1, maximum: 50 } },
        },
        response: { 400: errorBody },
      },
    },
    async (req, reply) => {
      const m = served(req.params.name, reply);
      if (!m) return reply;
      const texts = Array.isArray(req.body.text) ? req.body.text : [req.body.text];
      const results = await m.fillMask(texts, req.body.topK ?? 5, 'body/text');
      return { model: m.spec.name, results };
    },
  );

  app.post<{
    Params: { name: string };
    Body: { text: string | string[]; beam?: number; nbest?: number; lengthPenalty?: number; truncate?: boolean };
  }>(
    '/v1/models/:name/translate',
    {
      schema: {
        body: {
          type: 'object',
          required: ['text'],
          additionalProperties: false,
          properties: {
            text: textsSchema(config.maxTextChars, config.maxItems),
            beam: { type: 'integer', minimum: 1, maximum: 16 },
            nbest: { type: 'integer', minimum: 1, maximum: 16 },
            lengthPenalty: { type: 'number', minimum: 0, maximum: 5 },
            truncate: { type: 'boolean' },
          },
        },
        response: { 400: errorBody },
      },
    },
    async (req, reply) => {
      const m = served(req.params.name, reply);
      if (!m) return reply;
      const search = (key: 'beam' | 'nbest' | 'lengthPenalty') => req.body[key] ?? (defaultOf(TranslateOptionsSchema, key) as number);
      const [beam, nbest, lengthPenalty] = [search('beam'), search('nbest'), search('lengthPenalty')];
      const { text, truncate = false } = req.body;
      const problem = nbestProblem(beam, nbest);
      if (problem) throw new InputError(`body/nbest: ${problem}`);
      const texts = Array.isArray(text) ? text : [text];
      const results = await m.translate(texts, { beam, nbest, lengthPenalty }, truncate, 'body/text');
      return { model: m.spec.name, results };
    },
  );

  let closing: Promise<void> | null = null;
  const close = (): Promise<void> =>
    (closing ??= (async () => {
      draining = true;
      await app.close(); // stops accepting; waits for the requests in flight (their batches included)
      for (const m of models.values()) await m.close();
      metrics.close();
    })());

  return { app, models, metrics, close };
}

/** One readable sentence for a schema failure, naming the field and what it accepts. */
function validationMessage(err: FastifyError, allowed: string[], config: { maxTextChars: number; maxItems: number }): string {
  const errors = err.validation ?? [];
  const extra = errors.find((e) => e.keyword === 'additionalProperties');
  if (extra) return `body: unknown field '${String(extra.params.additionalProperty)}' (allowed: ${allowed.join(', ')})`;
  const texts = errors
    .filter((e) => /^\/(text|pair)(\/|$)/.test(e.instancePath))
    .sort((a, b) => b.instancePath.length - a.instancePath.length)[0];
  if (texts) {
    const field = texts.instancePath.replace(/^\/(text|pair)\/(\d+).*/, '$1[$2]').replace(/^\//, '');
    const one = `a string of 1..${config.maxTextChars} characters`;
    return `body/${field}: must be ${field.includes('[') ? one : `${one}, or an array of 1..${config.maxItems} such strings`}`;
  }
  const first = errors[0];
  if (first) return `${err.validationContext ?? 'body'}${first.instancePath}: ${first.message ?? 'is invalid'}`;
  return err.message;
}

function modelLabel(params: unknown): string {
  const name = (params as { name?: unknown } | undefined)?.name;
  return typeof name === 'string' ? name : '';
}
