"""Quick self-test of the PyTorch peer: /usr/bin/python3 test/peer/selfcheck.py

(a) load_safetensors round-trips every dtype written by a tiny independent writer below (and by the
    module's own save_safetensors); (b) Transformer.state_dict() keys are exactly the engine's
    safetensors keys, in the engine's order, for post/pre norm x mlm/classify.
"""

import json
import os
import struct
import sys
import tempfile

import torch

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from trainlarge_peer import Transformer, load_safetensors, save_safetensors  # noqa: E402

NAMES = {torch.float64: 'F64', torch.float32: 'F32', torch.float16: 'F16', torch.bfloat16: 'BF16', torch.int64: 'I64',
         torch.int32: 'I32', torch.int16: 'I16', torch.int8: 'I8', torch.uint8: 'U8', torch.bool: 'BOOL'}


def tiny_writer(path, tensors, metadata, pad=True):
    """Independent of the module's writer: bytes via struct/numpy, unpadded header optionally, and
    unaligned data offsets (a 1-byte tensor first) to exercise the reader."""
    header, blobs, off = {'__metadata__': metadata}, [], 0
    for name, t in tensors.items():
        b = t.contiguous().reshape(-1).view(torch.uint8).numpy().tobytes() if t.numel() else b''
        header[name] = {'dtype': NAMES[t.dtype], 'shape': list(t.shape), 'data_offsets': [off, off + len(b)]}
        off += len(b)
        blobs.append(b)
    text = json.dumps(header).encode()
    if pad:
        text += b' ' * ((8 - len(text) % 8) % 8)
    with open(path, 'wb') as f:
        f.write(struct.pack('<Q', len(text)) + text + b''.join(blobs))


def sample_tensors():
    g = torch.Generator().manual_seed(0)
    x = torch.randn(3, 5, generator=g)
    return {
        'u8': torch.tensor([7], dtype=torch.uint8),  # 1 byte first: every later offset is unaligned
        'f64': x.double(),
        'f32': x,
        'f16': x.half(),
        'bf16': x.bfloat16(),
        'i64': torch.randint(-2**40, 2**40, (4, 2), generator=g),
        'i32': torch.randint(-2**30, 2**30, (7,), generator=g, dtype=torch.int32),
        'i16': torch.randint(-2**15, 2**15, (2, 3), generator=g, dtype=torch.int16),
        'i8': torch.randint(-128, 128, (5,), generator=g, dtype=torch.int8),
        'u8b': torch.randint(0, 256, (2, 2, 2), generator=g, dtype=torch.uint8),
        'bool': torch.tensor([[True, False, True], [False, False, True]]),
        'scalar': torch.tensor(3.5),
        'empty': torch.empty(0, 4),
    }


def check_roundtrip():
    ts = sample_tensors()
    meta = {'format': 'pt', 'step': '12'}
    with tempfile.TemporaryDirectory() as d:
        for label, write in (('tiny writer, padded', lambda p: tiny_writer(p, ts, meta)),
                             ('tiny writer, unpadded', lambda p: tiny_writer(p, ts, meta, pad=False)),
                             ('module writer', lambda p: save_safetensors(p, ts, meta))):
            path = os.path.join(d, 'x.safetensors')
            write(path)
            got, got_meta = load_safetensors(path)
            assert got_meta == meta, (label, got_meta)
            assert list(got) == list(ts), (label, list(got))
            for k, t in ts.items():
                g = got[k]
                assert g.dtype == t.dtype and g.shape == t.shape, (label, k, g.dtype, g.shape)
                assert torch.equal(g, t), (label, k)
            got['f32'].add_(1)  # writable, own storage
            print(f'ok  safetensors round trip ({label}): {len(ts)} tensors, dtypes {sorted(set(NAMES[t.dtype] for t in ts.values()))}')


def expected_keys(c):
    keys = ['tokens.weight', 'positions.weight']
    if c['norm'] == 'post':
        keys += ['embed_norm.weight', 'embed_norm.bias']
    for i in range(c['layers']):
        p = f'layers.{i}.'
        keys += [p + 'attn.qkv.weight', p + 'attn.qkv.bias', p + 'attn.proj.weight', p + 'attn.proj.bias',
                 p + 'norm1.weight', p + 'norm1.bias', p + 'ffn.fc1.weight', p + 'ffn.fc1.bias', p + 'ffn.fc2.weight',
                 p + 'ffn.fc2.bias', p + 'norm2.weight', p + 'norm2.bias']
    if c['norm'] == 'pre':
        keys += ['final_norm.weight', 'final_norm.bias']
    if c['task'] == 'mlm':
        # A module's own parameters come before its children's, in PyTorch as in libtorch's named_parameters().
        # (The safetensors header itself is a JSON object the engine writes with sorted keys.)
        keys += ['mlm_head.bias', 'mlm_head.dense.weight', 'mlm_head.dense.bias', 'mlm_head.norm.weight', 'mlm_head.norm.bias']
    else:
        keys += ['cls_head.dense.weight', 'cls_head.dense.bias', 'cls_head.out.weight', 'cls_head.out.bias']
    return keys


def check_keys():
    base = dict(vocabSize=50, maxLen=16, dModel=32, layers=2, heads=4, ffn=64, dropout=0.1, attentionDropout=0.1,
                layerNormEps=1e-5, padId=0)
    D, V = base['dModel'], base['vocabSize']
    for norm in ('post', 'pre'):
        for task in ('mlm', 'classify'):
            c = dict(base, norm=norm, task=task)
            if task == 'classify':
                c['numLabels'] = 3
            m = Transformer(c)
            sd = m.state_dict()
            want = expected_keys(c)
            assert list(sd) == want, (norm, task, sorted(set(sd) ^ set(want)))
            assert len(list(m.parameters())) == len(want)  # no hidden parameters (decoder tied, not separate)
            assert sd['layers.0.attn.qkv.weight'].shape == (3 * D, D)
            assert sd['tokens.weight'].shape == (V, D)
            ids = torch.randint(5, V, (2, 7))
            m.eval()
            out = m(ids, torch.ones(2, 7, dtype=torch.bool))
            assert out.shape == ((2, 7, V) if task == 'mlm' else (2, 3)), out.shape
            print(f'ok  state_dict keys ({norm}, {task}): {len(want)} keys, output {tuple(out.shape)}')


if __name__ == '__main__':
    torch.set_num_threads(1)
    check_roundtrip()
    check_keys()
    print('selfcheck passed')
