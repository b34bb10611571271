// The HTTP inference service (fastify) over saved models: `trainlarge serve`, examples/service/main.js, or
// createService from your own code. fastify loads only when a service is created, so `import 'trainlarge'`
// does not pay for it.
import type { ServiceConfig } from '../config/serve';
import type { Service } from './server';

export type { Service, ServiceConfig };
export type { ModelSpec } from './models';

/** Loads the models (each with the tokenizer in its directory) and builds the server; then call `listen()`. */
export async function createService(config: ServiceConfig): Promise<Service> {
  const server = await import('./server');
  return server.createService(config);
}
