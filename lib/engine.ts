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
export function setThreads(opts: { threads?: number; blasThreads?: number }): void {
  native().setThreads(opts.threads ?? 0, opts.blasThreads ?? 0);
}
