// trainlarge serve (and examples/service/main.js): the HTTP inference service (lib/serve) over saved model directories.
import * as fs from 'fs';
import * as path from 'path';
import { defaultOf } from '../config/parse';
import { isLoopback, ServiceConfig, ServiceConfigSchema } from '../config/serve';
import { createService } from '../serve';
import { Command, UsageError } from './args';

const NUMBERS = {
  port: 'port',
  'body-limit': 'bodyLimit',
  'max-items': 'maxItems',
  'max-text-chars': 'maxTextChars',
  'request-timeout-ms': 'requestTimeoutMs',
  'max-batch': 'maxBatch',
  'max-wait-ms': 'maxWaitMs',
  'max-queue': 'maxQueue',
  threads: 'threads',
  'blas-threads': 'blasThreads',
} as const;

/** The token in FILE, read once: its text less a trailing newline; an empty file is refused. */
function readToken(file: string): string {
  let text: string;
  try {
    text = fs.readFileSync(file, 'utf8');
  } catch (e) {
    throw new UsageError(`--token-file ${file}: ${(e as Error).message}`, 'serve');
  }
  const token = text.replace(/\r?\n$/, '');
  if (!token) throw new UsageError(`--token-file ${file}: the file is empty; write the token in it`, 'serve');
  if (/\s/.test(token)) throw new UsageError(`--token-file ${file}: the token holds whitespace; give one line, no spaces`, 'serve');
  return token;
}

const defaults = ServiceConfigSchema;

export const serve: Command = {
  name: 'serve',
  operands: 'DIR...',
  brief: 'Serves saved models over HTTP (classify, fill-mask, translate).',
  summary:
    'Serves saved models over HTTP (fastify): POST /v1/models/NAME/classify, /fill-mask and /translate, GET /v1/models, /health, /metrics. ' +
    "Each model's tokenizer and label names are read from its directory. SIGINT/SIGTERM answer every admitted request, then exit 0.",
  synopsis: '(DIR... | --model NAME=DIR[:int8]... | --config FILE.json) [--host H] [--port P] [options]',
  flags: [
    {
      name: 'model',
      kind: 'string',
      value: 'NAME=DIR[:int8]',
      repeat: true,
      help: 'a model to serve as NAME (:int8 runs it on int8 kernels)',
    },
    {
      name: 'config',
      kind: 'string',
      value: 'FILE.json',
      help: '{ "models": [{ "name", "dir", "tokenizer"?, "labels"?, "int8"?, "device"? }], "maxBatch", ... }',
    },
    {
      name: 'host',
      kind: 'string',
      value: 'H',
      help: 'address to listen on; off loopback needs --token-file or --insecure',
      field: 'host',
      defaults,
    },
    { name: 'port', kind: 'int', value: 'P', help: 'port (0 picks a free one)', field: 'port', defaults },
    {
      name: 'token-file',
      kind: 'string',
      value: 'FILE',
      help: "a bearer token (read once at start): every route but /health then needs 'authorization: Bearer TOKEN', else 401",
      field: 'token',
    },
    {
      name: 'insecure',
      kind: 'bool',
      help: 'listen off loopback without a token (anyone who reaches the port may use it)',
      field: 'insecure',
    },
    { name: 'body-limit', kind: 'int', value: 'BYTES', help: 'largest request body (larger: 413)', field: 'bodyLimit', defaults },
    { name: 'max-items', kind: 'int', help: 'most texts in one request (more: 413)', field: 'maxItems', defaults },
    { name: 'max-text-chars', kind: 'int', help: 'longest text in characters (longer: 413)', field: 'maxTextChars', defaults },
    {
      name: 'request-timeout-ms',
      kind: 'int',
      value: 'MS',
      help: 'longest a request may take (longer: 503, its waiting inputs dropped)',
      field: 'requestTimeoutMs',
      defaults,
    },
    { name: 'max-batch', kind: 'int', help: 'most inputs in one batch', field: 'maxBatch', defaults },
    { name: 'max-wait-ms', kind: 'number', value: 'MS', help: 'how long a batch waits for company', field: 'maxWaitMs', defaults },
    { name: 'max-queue', kind: 'int', help: 'inputs waiting per model before 503', field: 'maxQueue', defaults },
    { name: 'threads', kind: 'int', help: "libtorch's intra-op threads (0: the engine's)", field: 'threads', defaults },
    { name: 'blas-threads', kind: 'int', help: "OpenBLAS's threads (0: the engine's)", field: 'blasThreads', defaults },
    { name: 'log', kind: 'bool', help: "fastify's request log on stdout" },
  ],
  notes:
    'A DIR alone is served under its directory name. It prints one JSON line when listening: {"event":"listening","address",...}.\n\n' +
    'Examples:\n' +
    '  trainlarge serve runs/sentiment\n' +
    '  trainlarge serve --model sentiment=runs/sentiment-p50-q4 --model mlm=runs/mlm:int8 --port 8080\n' +
    '  trainlarge serve runs/sentiment --host 0.0.0.0 --token-file secret.txt     # bearer token required off loopback\n' +
    '  curl -s localhost:8080/v1/models/sentiment/classify -H \'content-type: application/json\' -d \'{"text": "a gripping film"}\'',
  async run(args) {
    let config: Record<string, unknown> = {};
    const file = args.string('config');
    if (file !== undefined) {
      try {
        config = JSON.parse(fs.readFileSync(file, 'utf8')) as Record<string, unknown>;
      } catch (e) {
        throw new UsageError(`--config ${file}: ${(e as Error).message}`, 'serve');
      }
    }
    const models: ServiceConfig['models'] = args.positional.map((dir) => ({ name: path.basename(path.resolve(dir)), dir }));
    for (const v of args.all('model')) {
      const m = /^([^=]+)=(.+?)(:int8)?$/.exec(v);
      if (!m) throw new UsageError(`--model: expected NAME=DIR or NAME=DIR:int8, got '${v}'`, 'serve');
      models.push({ name: m[1], dir: m[2], ...(m[3] ? { int8: true } : {}) });
    }
    const overrides: Record<string, unknown> = args.bool('log') ? { logger: true } : {};
    for (const [flag, key] of Object.entries(NUMBERS)) if (args.has(flag)) overrides[key] = args.number(flag);
    if (args.has('host')) overrides.host = args.string('host');
    if (args.bool('insecure')) overrides.insecure = true;
    const tokenFile = args.string('token-file');
    if (tokenFile !== undefined) overrides.token = readToken(tokenFile);
    const merged = { ...config, ...overrides, ...(models.length ? { models } : {}) } as ServiceConfig;
    if (!merged.models) throw new UsageError('serve: give model directories, --model NAME=DIR or --config FILE.json', 'serve');

    const service = await createService(merged);
    const address = await service.listen();
    const host = merged.host ?? (defaultOf(ServiceConfigSchema, 'host') as string);
    if (merged.insecure && merged.token === undefined && !isLoopback(host)) {
      console.error(
        `trainlarge serve: WARNING: listening on ${host} without a token (--insecure): anyone who reaches ${address} can use these models`,
      );
    }
    console.log(JSON.stringify({ event: 'listening', address, models: [...service.models.keys()], pid: process.pid }));
    await new Promise<void>((resolve, reject) => {
      let signals = 0;
      const shutdown = (signal: string): void => {
        if (++signals > 1) {
          console.error(`trainlarge serve: second ${signal}, exiting now`);
          process.exit(1);
        }
        console.log(JSON.stringify({ event: 'shutdown', signal }));
        service.close().then(() => {
          console.log(JSON.stringify({ event: 'closed' }));
          resolve();
        }, reject);
      };
      process.on('SIGINT', () => shutdown('SIGINT'));
      process.on('SIGTERM', () => shutdown('SIGTERM'));
    });
  },
};
