// trainlarge serve (and examples/service/main.js): the HTTP inference service (lib/serve) over saved model directories.
import * as fs from 'fs';
import * as path from 'path';
import { createService, ServiceConfig } from '../serve';
import { Command, UsageError } from './args';

const NUMBERS = {
  'max-batch': 'maxBatch',
  'max-wait-ms': 'maxWaitMs',
  'max-queue': 'maxQueue',
  threads: 'threads',
  'blas-threads': 'blasThreads',
} as const;

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
    { name: 'host', kind: 'string', value: 'H', help: 'address to listen on (default 127.0.0.1)' },
    { name: 'port', kind: 'int', value: 'P', help: 'port (default 8080; 0 picks a free one)' },
    { name: 'max-batch', kind: 'int', help: 'most inputs in one native call (default 16)', field: 'maxBatch' },
    { name: 'max-wait-ms', kind: 'number', value: 'MS', help: 'how long a batch waits for company (default 2)', field: 'maxWaitMs' },
    { name: 'max-queue', kind: 'int', help: 'inputs waiting per model before 503 (default 256)', field: 'maxQueue' },
    { name: 'threads', kind: 'int', help: "libtorch's intra-op threads (default the engine's)", field: 'threads' },
    { name: 'blas-threads', kind: 'int', help: "OpenBLAS's threads (default the engine's)", field: 'blasThreads' },
    { name: 'log', kind: 'bool', help: "fastify's request log on stdout" },
  ],
  notes:
    'A DIR alone is served under its directory name. It prints one JSON line when listening: {"event":"listening","address",...}.\n\n' +
    'Examples:\n' +
    '  trainlarge serve runs/sentiment\n' +
    '  trainlarge serve --model sentiment=runs/sentiment-p50-q4 --model mlm=runs/mlm:int8 --port 8080\n' +
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
    const port = args.int('port') ?? 8080;
    if (port < 0 || port > 65535) throw new UsageError(`--port: expected 0..65535, got ${port}`, 'serve');
    const merged = { ...config, ...overrides, ...(models.length ? { models } : {}) } as ServiceConfig;
    if (!merged.models) throw new UsageError('serve: give model directories, --model NAME=DIR or --config FILE.json', 'serve');

    const service = await createService(merged);
    const address = await service.app.listen({ host: args.string('host') ?? '127.0.0.1', port });
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
