// Starts the inference service.
//   node dist/examples/service/main.js --config service.json [--host 127.0.0.1] [--port 8080]
//   node dist/examples/service/main.js --model NAME=DIR[:int8] [--model ...] [--max-batch 16] [--max-wait-ms 2] [--max-queue 256]
// SIGINT/SIGTERM: stop accepting, answer every admitted request, free the models, exit 0.
import * as fs from 'fs';
import { ConfigError, createService, ServiceConfig } from '../../lib';

function usage(msg: string): never {
  console.error(`trainlarge service: ${msg}`);
  console.error(
    'usage: main.js (--config FILE.json | --model NAME=DIR[:int8] ...) [--host H] [--port P] [--max-batch N] [--max-wait-ms MS] [--max-queue N] [--threads N] [--blas-threads N] [--log]',
  );
  process.exit(2);
}

function parseArgs(argv: string[]): { config: ServiceConfig; host: string; port: number } {
  let config: Record<string, unknown> = {};
  const models: ServiceConfig['models'] = [];
  let host = '127.0.0.1';
  let port = 8080;
  const numbers: Record<string, string> = {
    '--max-batch': 'maxBatch',
    '--max-wait-ms': 'maxWaitMs',
    '--max-queue': 'maxQueue',
    '--threads': 'threads',
    '--blas-threads': 'blasThreads',
  };
  const overrides: Record<string, unknown> = {};
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i];
    const value = (): string => {
      const v = argv[++i];
      if (v === undefined) usage(`${a} needs a value`);
      return v;
    };
    if (a === '--config') {
      const file = value();
      try {
        config = JSON.parse(fs.readFileSync(file, 'utf8')) as Record<string, unknown>;
      } catch (e) {
        usage(`--config ${file}: ${(e as Error).message}`);
      }
    } else if (a === '--model') {
      const m = /^([^=]+)=(.+?)(:int8)?$/.exec(value());
      if (!m) usage('--model: expected NAME=DIR or NAME=DIR:int8');
      models.push({ name: m[1], dir: m[2], ...(m[3] ? { int8: true } : {}) });
    } else if (a === '--host') host = value();
    else if (a === '--port') port = Number(value());
    else if (a === '--log') overrides.logger = true;
    else if (a in numbers) {
      const v = Number(value());
      if (!Number.isFinite(v)) usage(`${a}: expected a number`);
      overrides[numbers[a]] = v;
    } else usage(`unknown argument '${a}'`);
  }
  if (!Number.isInteger(port) || port < 0 || port > 65535) usage(`--port: expected 0..65535, got ${port}`);
  const merged = { ...config, ...overrides, ...(models.length ? { models } : {}) } as ServiceConfig;
  if (!merged.models) usage('give --config or at least one --model');
  return { config: merged, host, port };
}

async function main(): Promise<void> {
  const { config, host, port } = parseArgs(process.argv.slice(2));
  const service = await createService(config);
  const address = await service.app.listen({ host, port });
  console.log(JSON.stringify({ event: 'listening', address, models: [...service.models.keys()], pid: process.pid }));
  let signals = 0;
  const shutdown = (signal: string): void => {
    if (++signals > 1) {
      console.error(`trainlarge service: second ${signal}, exiting now`);
      process.exit(1);
    }
    console.log(JSON.stringify({ event: 'shutdown', signal }));
    service
      .close()
      .then(() => {
        console.log(JSON.stringify({ event: 'closed' }));
        process.exit(0);
      })
      .catch((e: unknown) => {
        console.error(`trainlarge service: shutdown failed: ${(e as Error).message}`);
        process.exit(1);
      });
  };
  process.on('SIGINT', () => shutdown('SIGINT'));
  process.on('SIGTERM', () => shutdown('SIGTERM'));
}

main().catch((e: unknown) => {
  console.error(`trainlarge service: ${e instanceof ConfigError ? e.message : (e as Error).message}`);
  process.exit(1);
});
