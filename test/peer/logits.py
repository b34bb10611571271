"""Logits of a trainlarge run with the PyTorch peer, for parity tests against the engine.

Usage: /usr/bin/python3 test/peer/logits.py RUN_DIR INPUT_JSON OUTPUT_BIN [--precision fp32|bf16]

INPUT_JSON holds {"ids": [[...], ...], "mask": [[1, 1, 0, ...], ...] or null}. The float32 logits are
written to OUTPUT_BIN as raw little-endian bytes in C order, and one JSON line {"dims": [...]} is printed.
Eval mode, no grad, one thread. fp32 by default; `--precision bf16` runs under bf16 CPU autocast with the
engine's libtorch C++ Linear math (see trainlarge_peer.py), which reproduces the engine's
predict(..., 'bf16') bit for bit.
"""

import json
import os
import sys

import torch

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from trainlarge_peer import load_run  # noqa: E402

USAGE = 'usage: logits.py RUN_DIR INPUT_JSON OUTPUT_BIN [--precision fp32|bf16]\n'


def main(argv):
    args = argv[1:]
    precision = 'fp32'
    if len(args) == 5 and args[3] == '--precision' and args[4] in ('fp32', 'bf16'):
        precision = args[4]
        args = args[:3]
    if len(args) != 3:
        sys.stderr.write(USAGE)
        return 2
    run_dir, input_json, output_bin = args
    torch.set_num_threads(1)
    with open(input_json) as f:
        inp = json.load(f)
    ids = torch.tensor(inp['ids'], dtype=torch.int64)
    if ids.dim() != 2:
        raise ValueError('ids: expected [batch, length]')
    mask = inp.get('mask')
    mask = None if mask is None else torch.tensor(mask).to(torch.bool)
    model = load_run(run_dir, linear='libtorch' if precision == 'bf16' else 'aten')
    with torch.no_grad(), torch.autocast('cpu', dtype=torch.bfloat16, enabled=precision == 'bf16'):
        logits = model(ids, mask)
    arr = logits.float().contiguous().numpy()
    if sys.byteorder != 'little':
        arr = arr.byteswap()
    with open(output_bin, 'wb') as f:
        f.write(arr.tobytes(order='C'))
    print(json.dumps({'dims': list(logits.shape)}))
    return 0


if __name__ == '__main__':
    sys.exit(main(sys.argv))
