// An HTTP inference service over saved trainlarge models (fastify).
//
//   GET  /health                       200 {status:'ok'} while serving, 503 {status:'draining'} while closing (no token needed)
//   GET  /metrics                      Prometheus text: requests, latency, batch sizes, queue depth, memory
//   GET  /v1/models                    the loaded models: task, labels, size, compression, int8
//   POST /v1/models/NAME/classify      {"text": "..." | [...], "pair"?: same shape, "truncate"?: bool}
//   POST /v1/models/NAME/fill-mask     {"text": "... <mask> ..." | [...], "topK"?: 1..50}
//   POST /v1/models/NAME/translate     {"text": "..." | [...], "beam"?: 1..16, "nbest"?: 1..beam, "lengthPenalty"?, "truncate"?}
//
// Concurrent requests for one model are micro-batched (batcher.ts); inference runs on the engine's thread,
// so the event loop parses JSON, routes and tokenizes short texts (long requests are tokenized on a worker
// thread, models.ts's SYNC_ENCODE_CHARS).
//
// Off loopback: with a `token`, every route but /health needs `authorization: Bearer TOKEN` (401 without);
// without one, a request that reached a non-loopback address gets 403 unless `insecure` (the config refuses
// a non-loopback `host` without either, so this covers an `app.listen` of your own). Limits: `bodyLimit`
// (413), `maxItems` texts and `maxTextChars` characters (413), `requestTimeoutMs` (503). Each refusal is
// counted in trainlarge_refused_total{reason}. No route reads a file: a URL names a model loaded at start.
import { createHash, timingSafeEqual } from 'crypto';
import Fastify, { FastifyError, FastifyInstance, FastifyReply } from 'fastify';
import { defaultOf, parseConfig } from '../config/parse';
import { isLoopback, ServiceConfig, ServiceConfigSchema } from '../config/serve';
import { nbestProblem, TranslateOptionsSchema } from '../config/translate';
import { setThreads } from '../engine';
import { ClosedError, QueueFullError } from './batcher';
import { Metrics } from './metrics';
import { InputError, ServedModel } from './models';

export type { ServiceConfig };

export interface Service {
  app: FastifyInstance;
  /** @internal The loaded models by name (the routes' and the tests'). */
  models: Map<string, ServedModel>;
  /** @internal The counters and histograms `GET /metrics` renders. */
  metrics: Metrics;
  /** Listens on the config's `host` and `port`; resolves to the address (`http://HOST:PORT`). */
  listen(): Promise<string>;
  /** Stops accepting, answers everything admitted, frees the models. Idempotent. */
  close(): Promise<void>;
}

/** A request that outlived `requestTimeoutMs`: answered 503. */
export class RequestTimeoutError extends Error {
  readonly code = 'REQUEST_TIMEOUT';
  constructor(readonly ms: number) {
    super(`the request took longer than requestTimeoutMs (${ms} ms); its waiting inputs were dropped. Retry later or send fewer texts`);
  }
}

const digest = (s: string): Buffer => createHash('sha256').update(s).digest();

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
    bodyLimit: config.bodyLimit,
    // Wrong types are errors, not coerced ("text": 5 must not become "5"); unknown fields are refused.
    ajv: { customOptions: { coerceTypes: false, removeAdditional: false, allErrors: false } },
    return503OnClosing: true,
  });
  let draining = false;

  // The token's digest, compared in constant time with the digest of what a request sends (equal lengths,
  // so neither the token's length nor its matching prefix shows in the timing).
  const tokenDigest = config.token === undefined ? null : digest(config.token);
  const authorized = (header: string | undefined): boolean => {
    if (!tokenDigest) return true;
    const m = /^Bearer +(\S+) *$/i.exec(header ?? '');
    return m !== null && timingSafeEqual(digest(m[1]), tokenDigest);
  };
  const refuse = (reply: FastifyReply, status: number, reason: string, error: string): FastifyReply => {
    metrics.refused.inc({ reason });
    return reply.code(status).send({ error, statusCode: status });
  };

  app.addHook('onRequest', async (req, reply) => {
    if (req.method === 'GET' && req.routeOptions.url === '/health') return;
    if (tokenDigest) {
      if (authorized(req.headers.authorization)) return;
      reply.header('www-authenticate', 'Bearer realm="trainlarge"');
      const error = req.headers.authorization ? 'the bearer token is wrong' : "this service needs 'authorization: Bearer TOKEN'";
      return refuse(reply, 401, 'unauthorized', error);
    }
    const local = req.socket.localAddress;
    if (!config.insecure && local !== undefined && !isLoopback(local)) {
      const error = 'this service has no token, so it answers on loopback only (give it a token, or insecure: true)';
      return refuse(reply, 403, 'not_loopback', error);
    }
  });

  app.setErrorHandler((err: FastifyError, req, reply) => {
    if (err instanceof RequestTimeoutError) {
      reply.header('retry-after', '1');
      return refuse(reply, 503, 'timeout', err.message);
    }
    if (err.code === 'FST_ERR_CTP_BODY_TOO_LARGE') {
      return refuse(reply, 413, 'body_limit', `body: larger than bodyLimit (${config.bodyLimit} bytes)`);
    }
    if (err instanceof QueueFullError || err instanceof ClosedError) {
      metrics.rejected.inc({ model: modelLabel(req.params) });
      if (err instanceof QueueFullError) reply.header('retry-after', '1');
      return reply.code(503).send({ error: err.message, statusCode: 503 });
    }
    if (err instanceof InputError) return reply.code(400).send({ error: err.message, statusCode: 400 });
    if (err.validation) {
      const limit = overLimit(err, config);
      if (limit) return refuse(reply, 413, limit.reason, limit.message);
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

  /** A model route's options: its JSON body holds `text` (one string or a list) and `fields`, nothing else; a 400 is errorBody. */
  const textRoute = (fields: Record<string, object>) => ({
    schema: {
      body: {
        type: 'object',
        required: ['text'],
        additionalProperties: false,
        properties: { text: textsSchema(config.maxTextChars, config.maxItems), ...fields },
      },
      response: { 400: errorBody },
    },
  });

  /** Runs a request's work under its deadline: past requestTimeoutMs it rejects with RequestTimeoutError at once. */
  async function withDeadline<T>(reply: FastifyReply, work: (signal: AbortSignal) => Promise<T>): Promise<T> {
    const abort = new AbortController();
    let expire: (e: RequestTimeoutError) => void = () => undefined;
    const expired = new Promise<never>((_resolve, reject) => (expire = reject));
    const timer = setTimeout(
      () => {
        const e = new RequestTimeoutError(config.requestTimeoutMs);
        abort.abort(e); // the batcher drops this request's inputs still waiting
        expire(e); // and the request is answered now, even while its batch runs
      },
      Math.max(0, config.requestTimeoutMs - reply.elapsedTime),
    );
    const done = work(abort.signal);
    done.catch(() => undefined); // answered by the deadline instead
    expired.catch(() => undefined);
    try {
      return await Promise.race([done, expired]);
    } finally {
      clearTimeout(timer);
    }
  }

  app.get('/health', async (req, reply) => {
    // Without the token, only whether it serves: the model names are the token holders'.
    const names = authorized(req.headers.authorization) ? { models: [...models.keys()] } : {};
    const body = { status: draining ? 'draining' : 'ok', ...names, uptimeSeconds: process.uptime() };
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
    textRoute({ pair: textsSchema(config.maxTextChars, config.maxItems), truncate: { type: 'boolean' } }),
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
      const inputs = texts.map((t, i) => ({ text: t, pair: pairs[i] }));
      const results = await withDeadline(reply, (signal) => m.classify(inputs, truncate ?? false, 'body/text', signal));
      return { model: m.spec.name, results };
    },
  );

  app.post<{ Params: { name: string }; Body: { text: string | string[]; topK?: number } }>(
    '/v1/models/:name/fill-mask',
    textRoute({ topK: { type: 'integer', minimum: 1, maximum: 50 } }),
    async (req, reply) => {
      const m = served(req.params.name, reply);
      if (!m) return reply;
      const texts = Array.isArray(req.body.text) ? req.body.text : [req.body.text];
      const results = await withDeadline(reply, (signal) => m.fillMask(texts, req.body.topK ?? 5, 'body/text', signal));
      return { model: m.spec.name, results };
    },
  );

  app.post<{
    Params: { name: string };
    Body: { text: string | string[]; beam?: number; nbest?: number; lengthPenalty?: number; truncate?: boolean };
  }>(
    '/v1/models/:name/translate',
    textRoute({
      beam: { type: 'integer', minimum: 1, maximum: 16 },
      nbest: { type: 'integer', minimum: 1, maximum: 16 },
      lengthPenalty: { type: 'number', minimum: 0, maximum: 5 },
      truncate: { type: 'boolean' },
    }),
    async (req, reply) => {
      const m = served(req.params.name, reply);
      if (!m) return reply;
      const search = (key: 'beam' | 'nbest' | 'lengthPenalty') => req.body[key] ?? (defaultOf(TranslateOptionsSchema, key) as number);
      const [beam, nbest, lengthPenalty] = [search('beam'), search('nbest'), search('lengthPenalty')];
      const { text, truncate = false } = req.body;
      const problem = nbestProblem(beam, nbest);
      if (problem) throw new InputError(`body/nbest: ${problem}`);
      const texts = Array.isArray(text) ? text : [text];
      const options = { beam, nbest, lengthPenalty };
      const results = await withDeadline(reply, (signal) => m.translate(texts, options, truncate, 'body/text', signal));
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

  const listen = (): Promise<string> => app.listen({ host: config.host, port: config.port });

  return { app, models, metrics, listen, close };
}

/** A schema failure that is a limit (too many texts, too long a text): 413 naming the limit. */
function overLimit(err: FastifyError, config: { maxTextChars: number; maxItems: number }): { reason: string; message: string } | undefined {
  for (const e of err.validation ?? []) {
    const field = e.instancePath.replace(/^\/(text|pair)\/(\d+)$/, '$1[$2]').replace(/^\//, '');
    if (!/^(text|pair)(\[\d+\])?$/.test(field)) continue;
    if (e.keyword === 'maxItems')
      return {
        reason: 'max_items',
        message: `body/${field}: more than maxItems (${config.maxItems}) texts; send them in several requests`,
      };
    if (e.keyword === 'maxLength')
      return { reason: 'max_text_chars', message: `body/${field}: longer than maxTextChars (${config.maxTextChars} characters)` };
  }
  return undefined;
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
