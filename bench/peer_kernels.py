"""The GEMMs under trainlarge's predict (fp32) and toInt8 (int8) against ONNX Runtime's, one Linear layer at a
time (issue 31's "what ONNX Runtime does that libtorch cannot, and by how much").

    .venv/bin/python -m pip install --target build/ortpy onnxruntime onnx    # once: not in the peer pins
    .venv/bin/python bench/peer_kernels.py [--threads 1] [--rows 16,128,1024,4096]

fp32: per Linear layer, ONNX Runtime's Gemm (transB, the export's form; MLAS) against the two kernels predict
runs: oneDNN on weights reordered once (mkldnn::_linear_pointwise, layers of 2^17 weights and more) and
aten::linear (MKL, the smaller ones).

int8: per Linear layer of the medium (d 256) and large (d 512) models (qkv, proj, fc1, fc2), the same int8 weights
(per output channel, symmetric) and the same float32 input: ONNX Runtime's DynamicQuantizeMatMul (its fusion of
the export's quantize_dynamic pattern, MLAS kernels) in a one-node session, against libtorch's
quantized::linear_dynamic on fbgemm and on oneDNN (the kernels toInt8 packs; libtorch from .venv, the one the
addon links). Then aten::gelu against ONNX Runtime's Gelu. Medians of 5 rounds, the sides taking turns; both
sides are called from Python, so each figure carries a few microseconds of call overhead (ONNX Runtime's
session.run a little more than a torch op). Prints a markdown table.
"""
import argparse
import os
import sys
import time
import warnings

sys.path.insert(0, os.path.join(os.path.dirname(__file__), '..', 'build', 'ortpy'))
warnings.filterwarnings('ignore')
import numpy as np  # noqa: E402
import torch  # noqa: E402

try:
    import onnxruntime as ort  # noqa: E402
    from onnx import TensorProto, helper, numpy_helper  # noqa: E402
except ImportError:
    sys.exit('peer_kernels: needs onnxruntime and onnx beside torch: '
             '.venv/bin/python -m pip install --target build/ortpy onnxruntime onnx')


def timed(f, n):
    for _ in range(3):
        f()
    t = time.perf_counter()
    for _ in range(n):
        f()
    return (time.perf_counter() - t) / n * 1e6


def row(label, rows, sides):
    """One table row: each side's median over 5 rounds (the sides taking turns), ONNX Runtime's (the first) plain,
    the others with their time over ONNX Runtime's."""
    n = max(3, 4000 // rows)
    t = {k: [] for k in sides}
    for _ in range(5):
        for k, f in sides.items():
            t[k].append(timed(f, n))
    m = [sorted(v)[2] for v in t.values()]
    cells = [f'{m[0]:.0f}'] + [f'{v:.0f} ({v / m[0]:.2f}x)' for v in m[1:]]
    print(f'| {label} | {rows} | ' + ' | '.join(cells) + ' |', flush=True)


def session(nodes, inputs, outputs, inits, threads):
    so = ort.SessionOptions()
    so.intra_op_num_threads = threads
    so.inter_op_num_threads = 1
    so.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
    g = helper.make_graph(nodes, 'g', inputs, outputs, inits)
    m = helper.make_model(g, opset_imports=[helper.make_opsetid('', 17), helper.make_opsetid('com.microsoft', 1)], ir_version=9)
    return ort.InferenceSession(m.SerializeToString(), so)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument('--threads', type=int, default=1)
    ap.add_argument('--rows', default='16,128,1024,4096')
    a = ap.parse_args()
    torch.set_num_threads(a.threads)
    rows_list = [int(r) for r in a.rows.split(',')]
    rng = np.random.default_rng(1)
    print(f'libtorch {torch.__version__}, onnxruntime {ort.__version__}, {a.threads} thread(s); microseconds per call, '
          'median of 5 rounds; "x" = libtorch time / ONNX Runtime time')
    print()
    layers = [(size, d, name, o, i) for size, d in (('medium', 256), ('large', 512))
              for name, (o, i) in (('qkv', (3 * d, d)), ('proj', (d, d)), ('fc1', (4 * d, d)), ('fc2', (d, 4 * d)))]
    print('| fp32 layer (out x in) | rows | ORT Gemm | libtorch oneDNN prepacked | libtorch aten::linear (MKL) |')
    print('|---|---|---|---|---|')
    with torch.inference_mode():
        for size, d, name, o, i in layers:
            w = (rng.standard_normal((o, i)) * 0.02).astype(np.float32)
            bias = (rng.standard_normal(o) * 0.01).astype(np.float32)
            sess = session([helper.make_node('Gemm', ['A', 'W', 'bias'], ['Y'], transB=1)],
                           [helper.make_tensor_value_info('A', TensorProto.FLOAT, ['r', i])],
                           [helper.make_tensor_value_info('Y', TensorProto.FLOAT, ['r', o])],
                           [numpy_helper.from_array(w, 'W'), numpy_helper.from_array(bias, 'bias')], a.threads)
            wt, bt = torch.from_numpy(w), torch.from_numpy(bias)
            packed = torch.ops.mkldnn._reorder_linear_weight(wt, None)
            for rows in rows_list:
                x = rng.standard_normal((rows, i)).astype(np.float32)
                xt = torch.from_numpy(x)
                ref = sess.run(None, {'A': x})[0]
                assert np.abs(torch.ops.mkldnn._linear_pointwise(xt, packed, bt, 'none', [], '').numpy() - ref).max() < 1e-3
                row(f'{size} {name} ({o} x {i})', rows, {
                    'ort': lambda: sess.run(None, {'A': x}),
                    'onednn': lambda: torch.ops.mkldnn._linear_pointwise(xt, packed, bt, 'none', [], ''),
                    'aten': lambda: torch.nn.functional.linear(xt, wt, bt)})
    print()
    print('| int8 layer (out x in) | rows | ORT DynamicQuantizeMatMul | libtorch fbgemm | libtorch onednn |')
    print('|---|---|---|---|---|')
    gelu_sizes = []
    with torch.inference_mode():
        for size, d in (('medium', 256), ('large', 512)):
            gelu_sizes.append(4 * d)
            for name, (o, i) in (('qkv', (3 * d, d)), ('proj', (d, d)), ('fc1', (4 * d, d)), ('fc2', (d, 4 * d))):
                w = (rng.standard_normal((o, i)) * 0.02).astype(np.float32)
                s = (np.abs(w).max(1) / 127.5).astype(np.float32)
                q = np.clip(np.round(w / s[:, None]), -127, 127).astype(np.int8)
                bias = (rng.standard_normal(o) * 0.01).astype(np.float32)
                sess = session(
                    [helper.make_node('DynamicQuantizeMatMul', ['A', 'B', 'bs', 'bz', 'bias'], ['Y'], domain='com.microsoft')],
                    [helper.make_tensor_value_info('A', TensorProto.FLOAT, ['r', i])],
                    [helper.make_tensor_value_info('Y', TensorProto.FLOAT, ['r', o])],
                    [numpy_helper.from_array(q.T.copy(), 'B'), numpy_helper.from_array(s, 'bs'),
                     numpy_helper.from_array(np.zeros(o, np.int8), 'bz'), numpy_helper.from_array(bias, 'bias')],
                    a.threads)
                qw = torch.quantize_per_channel(torch.from_numpy(q.astype(np.float32) * s[:, None]), torch.from_numpy(s).double(),
                                                torch.zeros(o, dtype=torch.long), 0, torch.qint8)
                packs = {}
                for e in ('fbgemm', 'onednn'):
                    torch.backends.quantized.engine = e
                    packs[e] = torch.ops.quantized.linear_prepack(qw, torch.from_numpy(bias))
                for rows in rows_list:
                    x = rng.standard_normal((rows, i)).astype(np.float32)
                    xt = torch.from_numpy(x)
                    ref = sess.run(None, {'A': x})[0]
                    for e in packs:  # the same arithmetic up to the activations' rounding
                        diff = np.abs(torch.ops.quantized.linear_dynamic(xt, packs[e], False).numpy() - ref).max()
                        assert diff < 0.05, f'{e} differs from ONNX Runtime by {diff}'
                    row(f'{size} {name} ({o} x {i})', rows, {
                        'ort': lambda: sess.run(None, {'A': x}),
                        'fbgemm': lambda: torch.ops.quantized.linear_dynamic(xt, packs['fbgemm'], False),
                        'onednn': lambda: torch.ops.quantized.linear_dynamic(xt, packs['onednn'], False)})
        print()
        print('| GELU | rows | ORT Gelu | aten::gelu |')
        print('|---|---|---|---|')
        for n_out in gelu_sizes:
            sess = session([helper.make_node('Gelu', ['X'], ['Y'], domain='com.microsoft')],
                           [helper.make_tensor_value_info('X', TensorProto.FLOAT, ['r', n_out])],
                           [helper.make_tensor_value_info('Y', TensorProto.FLOAT, ['r', n_out])], [], a.threads)
            for rows in rows_list:
                x = rng.standard_normal((rows, n_out)).astype(np.float32)
                xt = torch.from_numpy(x)
                row(f'{rows} x {n_out}', rows, {'ort': lambda: sess.run(None, {'X': x}), 'aten': lambda: torch.nn.functional.gelu(xt)})

if __name__ == '__main__':
    main()
