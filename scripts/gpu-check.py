"""The GPU check's Python side (scripts/gpu-check), run by the machine's own Python torch, the one the addon
is built against there. Prints one JSON object.

  python3 scripts/gpu-check.py probe   the torch, its CUDA, the GPUs (name, memory, free memory) and the TF32
                                       settings an fp32 matmul gets in this environment (the preflight's facts)
  python3 scripts/gpu-check.py peak    GEMM throughput: on a GPU, 100 multiplies of 8192 x 8192 per dtype timed
                                       with CUDA events (fp32 with TF32 off, fp32 with TF32 on, bf16, fp16),
                                       beside the datasheet's dense figure for that GPU; without one (the dry
                                       run), 100 fp32 multiplies of 512 x 512 on the CPU, timed with perf_counter
"""

import json
import os
import sys
import time
import warnings

# What the environment asks of cuBLAS: TORCH_ALLOW_TF32_CUBLAS_OVERRIDE=1 (NGC's images set it) makes libtorch
# run fp32 matmuls in TF32 whatever the program says; NVIDIA_TF32_OVERRIDE=0 makes cuBLAS and cuDNN refuse TF32.
ENV_KEYS = ("TORCH_ALLOW_TF32_CUBLAS_OVERRIDE", "NVIDIA_TF32_OVERRIDE")
ENV = {k: os.environ.get(k) for k in ENV_KEYS}

# Dense (no sparsity) tensor/vector throughput in TFLOP/s from NVIDIA's datasheets: fp32 (CUDA cores), tf32,
# bf16 and fp16 (tensor cores). First match on the device name wins.
DATASHEETS = [
    ("H200 NVL", {"fp32": 60.0, "tf32": 417.5, "bf16": 835.5, "fp16": 835.5}),
    ("H200", {"fp32": 66.9, "tf32": 494.7, "bf16": 989.4, "fp16": 989.4}),
    ("H100 NVL", {"fp32": 60.0, "tf32": 417.5, "bf16": 835.5, "fp16": 835.5}),
    ("H100 PCIe", {"fp32": 51.2, "tf32": 378.0, "bf16": 756.0, "fp16": 756.0}),
    ("H100", {"fp32": 66.9, "tf32": 494.7, "bf16": 989.4, "fp16": 989.4}),  # SXM5 ("H100 80GB HBM3")
    ("A100", {"fp32": 19.5, "tf32": 156.0, "bf16": 312.0, "fp16": 312.0}),
    ("L40S", {"fp32": 91.6, "tf32": 183.0, "bf16": 362.0, "fp16": 362.0}),
]


def datasheet(name):
    for key, figures in DATASHEETS:
        if key in name:
            return {"matched": key, **figures}
    return None


def probe():
    out = {"python": sys.executable, "env": ENV}
    try:
        import torch
    except Exception as e:  # no torch in this Python
        out["error"] = f"{type(e).__name__}: {e}"
        return out
    out.update(
        torch=torch.__version__,
        torchDir=os.path.dirname(torch.__file__),
        cuda=torch.version.cuda,
        cudaAvailable=torch.cuda.is_available(),
    )
    gpus = []
    if torch.cuda.is_available():
        out["cudnn"] = torch.backends.cudnn.version()
        for i in range(torch.cuda.device_count()):
            p = torch.cuda.get_device_properties(i)
            free, total = torch.cuda.mem_get_info(i)
            gpus.append(
                {
                    "name": p.name,
                    "capability": f"{p.major}.{p.minor}",
                    "totalBytes": total,
                    "freeBytes": free,
                    "sms": p.multi_processor_count,
                }
            )
    out["gpus"] = gpus
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # 2.9+ warns about the legacy allow_tf32 flags
        try:
            out["tf32"] = {
                "matmulPrecision": torch.get_float32_matmul_precision(),
                "cublas": bool(torch.backends.cuda.matmul.allow_tf32),
                "cudnn": bool(torch.backends.cudnn.allow_tf32),
            }
        except Exception as e:  # a torch that refuses the legacy flags: say so, the rest still counts
            out["tf32Error"] = f"{type(e).__name__}: {e}"
    return out


def peak():
    # The fp32 figures say which math they measured: drop the override so "TF32 off" is off.
    os.environ.pop("TORCH_ALLOW_TF32_CUBLAS_OVERRIDE", None)
    import torch

    reps = 100
    out = {"env": ENV, "reps": reps}
    if torch.cuda.is_available():
        n = 8192
        name = torch.cuda.get_device_name(0)
        out.update(device=name, n=n, method="CUDA events", datasheet=datasheet(name))
        measured = {}
        errors = {}
        for key, dtype, precision in (
            ("fp32", torch.float32, "highest"),
            ("tf32", torch.float32, "high"),
            ("bf16", torch.bfloat16, "highest"),
            ("fp16", torch.float16, "highest"),
        ):
            try:  # one dtype failing leaves the others measured
                with warnings.catch_warnings():
                    warnings.simplefilter("ignore")
                    torch.set_float32_matmul_precision(precision)
                a = torch.randn(n, n, device="cuda", dtype=dtype)
                b = torch.randn(n, n, device="cuda", dtype=dtype)
                c = torch.empty(n, n, device="cuda", dtype=dtype)
                for _ in range(5):
                    torch.matmul(a, b, out=c)
                torch.cuda.synchronize()
                start = torch.cuda.Event(enable_timing=True)
                end = torch.cuda.Event(enable_timing=True)
                start.record()
                for _ in range(reps):
                    torch.matmul(a, b, out=c)
                end.record()
                end.synchronize()
                measured[key] = 2 * n**3 * reps / (start.elapsed_time(end) / 1e3) / 1e12
                del a, b, c
            except Exception as e:
                errors[key] = f"{type(e).__name__}: {e}"
        out["measured"] = measured
        if errors:
            out["errors"] = errors
        # NVIDIA_TF32_OVERRIDE=0: the "tf32" figure is fp32 math.
        out["tf32Effective"] = ENV["NVIDIA_TF32_OVERRIDE"] != "0"
    else:
        n = 512
        a = torch.randn(n, n)
        b = torch.randn(n, n)
        for _ in range(5):
            a @ b
        t = time.perf_counter()
        for _ in range(reps):
            a @ b
        out.update(
            device="cpu",
            n=n,
            method="perf_counter (CPU)",
            datasheet=None,
            measured={"fp32": 2 * n**3 * reps / (time.perf_counter() - t) / 1e12},
        )
    return out


if __name__ == "__main__":
    what = sys.argv[1] if len(sys.argv) > 1 else ""
    if what not in ("probe", "peak"):
        sys.exit("usage: gpu-check.py probe|peak")
    print(json.dumps(probe() if what == "probe" else peak()))
