import { parseConfig } from './config/parse';
import { ThreadsOptions, ThreadsOptionsSchema } from './config/train';
import { native } from './native';
import { EngineInfo } from './types';

export { EngineInfo };

/** What the engine was built against and runs with: libtorch version, CUDA, threads, quantized engines. */
export function engineInfo(): EngineInfo {
  return native().engineInfo();
}

/**
 * Thread counts for jobs that do not set their own (a Trainer sets its own from its config):
 * libtorch's intra-op threads and OpenBLAS's pool. 0 keeps a setting.
 */
export function setThreads(options: ThreadsOptions): void {
  const o = parseConfig(ThreadsOptionsSchema, options, 'setThreads options');
  native().setThreads(o.threads, o.blasThreads);
}
