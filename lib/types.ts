// Value types of trainlarge's public API that the addon (lib/native.ts) returns as they are. They live
// here, below both, so the addon's surface and the public modules share one declaration; the public
// modules re-export them.
import type { PruneScope } from './config/compress';

/** A token stream as the engine reads it without copying (uint16 fits a vocabulary up to 65,536). */
export type TokenArray = Int32Array | Uint32Array | Uint16Array;

/** A dense float tensor: a flat Float32Array in row-major order with its dims. */
export interface Tensor {
  data: Float32Array;
  dims: number[];
}

/** Compression a model carries: per weight, its pruning and quantization, and a gradual-pruning schedule. */
export interface CompressionState {
  pruned: Record<string, { numel: number; kept: number; sparsity: number }>;
  quantized: Record<string, { bits: number; symmetric: boolean; granularity: 'channel' | 'tensor' }>;
  /** Set on a model made by toInt8: its attention and feed-forward Linear layers run on int8 kernels. */
  int8?: { engine: string; layers: number; exactLayers: number; weightBytes: number };
  schedule?: {
    initialSparsity: number;
    sparsity: number;
    startStep: number;
    endStep: number;
    every: number;
    scope: PruneScope;
    targets: string[];
  };
}

/** What the engine was built against and runs with. */
export interface EngineInfo {
  torchVersion: string;
  cudaBuilt: boolean;
  cudaAvailable: boolean;
  cudaDevices: number;
  /**
   * The process-group backends this build has for data-parallel training: 'gloo' when it can join a group
   * at all, 'nccl' too when it was built against a CUDA libtorch with NCCL's headers.
   */
  distributedBackends: ('gloo' | 'nccl')[];
  /** libtorch's intra-op threads, OpenBLAS's pool, and the hardware's. */
  threads: number;
  blasThreads: number;
  hardwareThreads: number;
  /** libtorch's quantized engines (toInt8's 'x86', 'onednn', 'fbgemm', 'qnnpack'). */
  quantizedEngines: string[];
  /** libtorch's at::get_parallel_info(). */
  parallelInfo: string;
}
