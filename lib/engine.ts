import { native } from './native';

/** What the engine was built against and runs with. */
export interface EngineInfo {
  torchVersion: string;
  cudaBuilt: boolean;
  cudaAvailable: boolean;
  cudaDevices: number;
  /** libtorch's intra-op threads, OpenBLAS's pool, and the hardware's. */
  threads: number;
  blasThreads: number;
  hardwareThreads: number;
  /** libtorch's quantized engines (toInt8's 'onednn', 'qnnpack', 'fbgemm'). */
  quantizedEngines: string[];
  /** libtorch's at::get_parallel_info(). */
  parallelInfo: string;
}

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
