"""PyTorch's own pruning and fake quantization on tensors given as JSON (stdin), for test/compress.test.ts.

Input:  {"tensors": [{"data": [...], "dims": [...]}, ...], "sparsity": s,
         "quant": [{"bits": k, "symmetric": bool, "perChannel": bool}, ...]}
Output: {"layer": [[0/1 ...] per tensor], "global": [[0/1 ...] per tensor],
         "quant": [[{"values": [...], "scale": [...], "zeroPoint": [...]} per tensor] per quant config]}

Masks come from torch.nn.utils.prune.l1_unstructured and global_unstructured on nn.Linear weights;
quantization parameters from torch.ao.quantization's MinMaxObserver / PerChannelMinMaxObserver with
quant_min/quant_max for k bits, values from torch.fake_quantize_per_channel_affine / _per_tensor_affine.
Run with Debian's /usr/bin/python3 (torch 1.13).
"""
import json
import sys

import torch
import torch.nn as nn
from torch.ao.quantization.observer import MinMaxObserver, PerChannelMinMaxObserver
from torch.nn.utils import prune


def linear_with(weight):
    out_f, in_f = weight.shape
    m = nn.Linear(in_f, out_f, bias=False)
    with torch.no_grad():
        m.weight.copy_(weight)
    return m


def main():
    spec = json.load(sys.stdin)
    weights = [torch.tensor(t['data'], dtype=torch.float32).view(*t['dims']) for t in spec['tensors']]
    s = spec['sparsity']

    layer = []
    for w in weights:
        m = linear_with(w)
        prune.l1_unstructured(m, 'weight', amount=s)
        layer.append(m.weight_mask.view(-1).to(torch.int).tolist())

    modules = [linear_with(w) for w in weights]
    prune.global_unstructured([(m, 'weight') for m in modules], pruning_method=prune.L1Unstructured, amount=s)
    global_masks = [m.weight_mask.view(-1).to(torch.int).tolist() for m in modules]

    quant = []
    for q in spec['quant']:
        bits, symmetric, per_channel = q['bits'], q['symmetric'], q['perChannel']
        qmin, qmax = (-(1 << (bits - 1)), (1 << (bits - 1)) - 1) if symmetric else (0, (1 << bits) - 1)
        dtype = torch.qint8 if symmetric else torch.quint8
        scheme = (torch.per_channel_symmetric if per_channel else torch.per_tensor_symmetric) if symmetric else \
                 (torch.per_channel_affine if per_channel else torch.per_tensor_affine)
        out = []
        for w in weights:
            if per_channel:
                obs = PerChannelMinMaxObserver(ch_axis=0, dtype=dtype, qscheme=scheme, quant_min=qmin, quant_max=qmax)
            else:
                obs = MinMaxObserver(dtype=dtype, qscheme=scheme, quant_min=qmin, quant_max=qmax)
            obs(w)
            scale, zp = obs.calculate_qparams()
            if per_channel:
                values = torch.fake_quantize_per_channel_affine(w, scale.float(), zp.to(torch.int32), 0, qmin, qmax)
            else:
                values = torch.fake_quantize_per_tensor_affine(w, float(scale), int(zp), qmin, qmax)
            out.append({'values': values.view(-1).tolist(), 'scale': scale.view(-1).tolist(), 'zeroPoint': zp.view(-1).tolist()})
        quant.append(out)
    json.dump({'layer': layer, 'global': global_masks, 'quant': quant}, sys.stdout)


if __name__ == '__main__':
    main()
