"""PyTorch reference peer for trainlarge's C++ engine (native/models/transformer.cc).

The same RoBERTa-style encoder, written in plain PyTorch so that a checkpoint the engine writes can be
loaded here (state_dict keys == safetensors keys) and its logits reproduced, and so that the engine's
training speed can be compared with PyTorch's own.

Run it with Debian's Python (/usr/bin/python3, torch 1.13.1). It depends on torch only: safetensors
files are parsed by hand below (Debian does not ship the `safetensors` package).

The math follows transformer.cc line by line:
  x = tokens(ids) + positions(arange(T));  post-LN: x = embed_norm(x);  x = dropout(x)
  attention bias (B, 1, 1, T): 0 for real keys, -1e9 for padding (keys only; padded queries are computed)
  post-LN block: h = norm1(x + attn(x));      out = norm2(h + ffn(h))
  pre-LN block:  h = x + attn(norm1(x));      out = h + ffn(norm2(h));  pre-LN ends with final_norm
  attn: qkv fused [3 H hs, D] (q, k, v; heads split as view(B, T, 3, H, hs); H hs = D unless heads were pruned);
        q * 1/sqrt(hs) before q @ k^T;
        + bias; softmax; dropout; @ v; proj; dropout
  ffn:  dropout(fc2(gelu(fc1(x))))  (exact erf GELU)
  MLM head: linear(norm(gelu(dense(h))), tokens.weight, mlm_head.bias)  (decoder tied, not stored)
  classify head on h[:, 0]: out(dropout(tanh(dense(dropout(h0)))))
Under bf16 autocast every LayerNorm input is cast to float32 first (libtorch 1.13's CPU layer_norm
refuses bf16 input with fp32 weights, and autocast does not cast it), exactly as the engine does.

Linear layers: the engine's torch::nn::Linear goes through libtorch 1.13's C++ F::linear, which is NOT
aten::linear: for a 2-D input it is addmm(bias, x, W^T), otherwise matmul(x, W^T) followed by an in-place
`out += bias`. In fp32 both give bit-identical results here. Under bf16 autocast they do not: the C++ adds
the fp32 bias into the bf16 product (the bias is never rounded to bf16), where aten::linear rounds the bias
to bf16 first. Transformer(..., linear='libtorch') reproduces the engine's bf16 logits bit for bit;
the default linear='aten' is what a PyTorch user's nn.Linear does. (The tied MLM decoder calls
torch::linear, i.e. aten::linear, in the engine as here.)
"""

import json
import math
import os
import struct
import sys

import torch
import torch.nn as nn
import torch.nn.functional as F

# --------------------------------------------------------------------------------------------------
# safetensors

_DTYPES = {
    'F64': torch.float64,
    'F32': torch.float32,
    'F16': torch.float16,
    'BF16': torch.bfloat16,
    'I64': torch.int64,
    'I32': torch.int32,
    'I16': torch.int16,
    'I8': torch.int8,
    'U8': torch.uint8,
    'BOOL': torch.bool,
}
_DTYPE_NAMES = {v: k for k, v in _DTYPES.items()}


def _element_size(dtype):
    return torch.empty((), dtype=dtype).element_size()


def load_safetensors(path):
    """Reads a .safetensors file: 8-byte little-endian header length, a JSON header, raw little-endian data.

    Returns (tensors: dict name -> torch.Tensor (own, aligned, writable storage), metadata: dict)."""
    with open(path, 'rb') as f:
        raw = f.read()
    if len(raw) < 8:
        raise ValueError(f'{path}: not a safetensors file (too short)')
    (n,) = struct.unpack('<Q', raw[:8])
    if n > len(raw) - 8:
        raise ValueError(f'{path}: not a safetensors file (bad header length {n})')
    try:
        header = json.loads(raw[8:8 + n].decode('utf-8'))
    except (UnicodeDecodeError, json.JSONDecodeError) as e:
        raise ValueError(f'{path}: not a safetensors file (header is not JSON: {e})') from None
    if not isinstance(header, dict):
        raise ValueError(f'{path}: not a safetensors file (header is not a JSON object)')
    base = 8 + n
    data_size = len(raw) - base
    metadata = dict(header.get('__metadata__') or {})
    tensors = {}
    for name, info in header.items():
        if name == '__metadata__':
            continue
        try:
            dtype = _DTYPES[info['dtype']]
        except KeyError:
            raise ValueError(f"{path}: tensor '{name}' has an unsupported dtype {info.get('dtype')!r}") from None
        shape = [int(s) for s in info['shape']]
        start, end = (int(o) for o in info['data_offsets'])
        numel = math.prod(shape)
        nbytes = numel * _element_size(dtype)
        if end < start or end - start != nbytes or end > data_size:
            raise ValueError(f"{path}: tensor '{name}' has data_offsets that do not match its shape or the file")
        if numel == 0:
            t = torch.empty(shape, dtype=dtype)
        else:
            # A bytearray of its own per tensor: writable (no warning), and aligned whatever the offsets.
            t = torch.frombuffer(bytearray(raw[base + start:base + end]), dtype=dtype).reshape(shape)
            if sys.byteorder != 'little' and t.element_size() > 1:
                t = _byteswap(t)
        tensors[name] = t
    return tensors, metadata


def _byteswap(t):
    import numpy as np  # only on big-endian hosts
    if t.dtype == torch.bfloat16:
        return _byteswap(t.view(torch.int16)).view(torch.bfloat16)
    return torch.from_numpy(t.numpy().byteswap().copy())


def save_safetensors(path, tensors, metadata=None):
    """A small writer (tests and tools): the engine's layout, header padded with spaces to 8 bytes."""
    header = {}
    if metadata:
        header['__metadata__'] = {str(k): str(v) for k, v in metadata.items()}
    blobs = []
    offset = 0
    for name, t in tensors.items():
        c = t.detach().cpu().contiguous()
        if sys.byteorder != 'little' and c.element_size() > 1:
            c = _byteswap(c)
        b = c.reshape(-1).view(torch.uint8).numpy().tobytes() if c.numel() else b''
        header[name] = {'dtype': _DTYPE_NAMES[c.dtype], 'shape': list(c.shape), 'data_offsets': [offset, offset + len(b)]}
        offset += len(b)
        blobs.append(b)
    text = json.dumps(header, separators=(',', ':')).encode('utf-8')
    text += b' ' * ((8 - len(text) % 8) % 8)
    with open(path, 'wb') as f:
        f.write(struct.pack('<Q', len(text)))
        f.write(text)
        for b in blobs:
            f.write(b)


# --------------------------------------------------------------------------------------------------
# model


class Linear(nn.Linear):
    """nn.Linear whose forward is either aten::linear (PyTorch's) or libtorch 1.13's C++ F::linear."""

    libtorch_frontend = False  # set per instance by Transformer(linear='libtorch')

    def forward(self, x):
        if not self.libtorch_frontend:
            return F.linear(x, self.weight, self.bias)
        if x.dim() == 2:
            return torch.addmm(self.bias, x, self.weight.t())
        out = x.matmul(self.weight.t())
        out += self.bias
        return out


def _norm_fp32(norm, x):
    """LayerNorm in the weights' precision (a no-op cast in fp32), as the engine's norm_fp32."""
    return norm(x.to(norm.weight.dtype))


class SelfAttention(nn.Module):
    def __init__(self, c):
        super().__init__()
        d = c['dModel']
        self.heads = c['heads']
        self.head_dim = c.get('headDim', d // self.heads)  # heads x head_dim < d after head pruning
        self.attention_dropout = float(c['attentionDropout'])
        self.dropout = float(c['dropout'])
        self.qkv = Linear(d, 3 * self.heads * self.head_dim)  # fused q, k, v
        self.proj = Linear(self.heads * self.head_dim, d)

    def forward(self, x, bias):
        B, T, _ = x.shape
        qkv = self.qkv(x).view(B, T, 3, self.heads, self.head_dim).permute(2, 0, 3, 1, 4)  # (3, B, nh, T, hs)
        q, k, v = qkv[0], qkv[1], qkv[2]
        scores = torch.matmul(q * (1.0 / math.sqrt(self.head_dim)), k.transpose(-2, -1))  # (B, nh, T, T)
        if bias is not None:
            scores = scores + bias
        probs = F.dropout(torch.softmax(scores, -1), self.attention_dropout, self.training)
        y = torch.matmul(probs.to(v.dtype), v)  # (B, nh, T, hs)
        y = y.transpose(1, 2).reshape(B, T, self.heads * self.head_dim)
        return F.dropout(self.proj(y), self.dropout, self.training)


class FeedForward(nn.Module):
    def __init__(self, c):
        super().__init__()
        self.dropout = float(c['dropout'])
        self.fc1 = Linear(c['dModel'], c['ffn'])
        self.fc2 = Linear(c['ffn'], c['dModel'])

    def forward(self, x):
        return F.dropout(self.fc2(F.gelu(self.fc1(x))), self.dropout, self.training)


class Block(nn.Module):
    def __init__(self, c):
        super().__init__()
        self.pre_norm = c['norm'] == 'pre'
        eps = float(c['layerNormEps'])
        # Registration order == the engine's (and so the state_dict / safetensors order).
        self.attn = SelfAttention(c)
        self.norm1 = nn.LayerNorm(c['dModel'], eps=eps)
        self.ffn = FeedForward(c)
        self.norm2 = nn.LayerNorm(c['dModel'], eps=eps)

    def forward(self, x, bias):
        if self.pre_norm:
            h = x + self.attn(_norm_fp32(self.norm1, x), bias)
            return h + self.ffn(_norm_fp32(self.norm2, h))
        h = _norm_fp32(self.norm1, x + self.attn(x, bias))
        return _norm_fp32(self.norm2, h + self.ffn(h))


class MlmHead(nn.Module):
    """RoBERTa's LM head: dense -> GELU -> LayerNorm -> decoder tied to the token embedding, + bias."""

    def __init__(self, c):
        super().__init__()
        d = c['dModel']
        self.dense = Linear(d, d)
        self.norm = nn.LayerNorm(d, eps=float(c['layerNormEps']))
        self.bias = nn.Parameter(torch.zeros(c['vocabSize']))

    def forward(self, h, token_embedding):
        return F.linear(_norm_fp32(self.norm, F.gelu(self.dense(h))), token_embedding, self.bias)


class ClassifierHead(nn.Module):
    """RoBERTa's classification head on the first token: dropout -> dense -> tanh -> dropout -> out."""

    def __init__(self, c):
        super().__init__()
        self.dropout = float(c['dropout'])
        self.dense = Linear(c['dModel'], c['dModel'])
        self.out = Linear(c['dModel'], c['numLabels'])

    def forward(self, first_token):
        h = torch.tanh(self.dense(F.dropout(first_token, self.dropout, self.training)))
        return self.out(F.dropout(h, self.dropout, self.training))


def check_config(c):
    c = dict(c)
    for k in ('task', 'vocabSize', 'maxLen', 'dModel', 'layers', 'heads', 'ffn', 'dropout', 'attentionDropout', 'norm',
              'layerNormEps', 'padId'):
        if k not in c:
            raise ValueError(f"model config: missing field '{k}'")
    if c['task'] not in ('mlm', 'classify'):
        raise ValueError(f"model config: task must be 'mlm' or 'classify', got {c['task']!r}")
    if c['norm'] not in ('post', 'pre'):
        raise ValueError(f"model config: norm must be 'post' or 'pre', got {c['norm']!r}")
    if c['task'] == 'classify' and 'numLabels' not in c:
        raise ValueError("model config: missing field 'numLabels'")
    if 'headDim' not in c and c['dModel'] % c['heads'] != 0:
        raise ValueError(f"model config: heads ({c['heads']}) must divide dModel ({c['dModel']})")
    return c


class Transformer(nn.Module):
    def __init__(self, config, seed=None, linear='aten'):
        """config: the engine's model config (camelCase keys). seed: init seed (None: torch's global RNG).
        linear: 'aten' (PyTorch's nn.Linear math) or 'libtorch' (the engine's C++ F::linear, see above)."""
        super().__init__()
        if linear not in ('aten', 'libtorch'):
            raise ValueError(f"linear must be 'aten' or 'libtorch', got {linear!r}")
        c = self.config = check_config(config)
        d, eps = c['dModel'], float(c['layerNormEps'])
        self.dropout = float(c['dropout'])
        self.tokens = nn.Embedding(c['vocabSize'], d)
        self.positions = nn.Embedding(c['maxLen'], d)
        self.embed_norm = nn.LayerNorm(d, eps=eps) if c['norm'] == 'post' else None  # post-LN only
        self.layers = nn.ModuleList([Block(c) for _ in range(c['layers'])])
        self.final_norm = nn.LayerNorm(d, eps=eps) if c['norm'] == 'pre' else None  # pre-LN only
        self.mlm_head = MlmHead(c) if c['task'] == 'mlm' else None
        self.cls_head = ClassifierHead(c) if c['task'] == 'classify' else None
        self.reset_parameters(seed)
        self.set_linear(linear)

    def set_linear(self, linear):
        for m in self.modules():
            if isinstance(m, Linear):
                m.libtorch_frontend = linear == 'libtorch'

    @torch.no_grad()
    def reset_parameters(self, seed=None):
        """BERT/RoBERTa init as the engine's: N(0, 0.02) Linear and Embedding weights, zero biases,
        LayerNorm (1, 0), zero MLM bias. (Same distribution, not the engine's exact random numbers.)"""
        gen = None
        if seed is not None:
            gen = torch.Generator().manual_seed(int(seed))
        for m in self.modules():
            if isinstance(m, nn.Linear):
                m.weight.normal_(0.0, 0.02, generator=gen)
                m.bias.zero_()
            elif isinstance(m, nn.Embedding):
                m.weight.normal_(0.0, 0.02, generator=gen)

    def attention_bias(self, attention_mask, batch, length):
        """(B, T) bool/0-1 mask (true = real token) -> (B, 1, 1, T) float32 additive key bias, or None."""
        if attention_mask is None:
            return None
        m = torch.as_tensor(attention_mask)
        if tuple(m.shape) != (batch, length):
            raise ValueError('attentionMask: must have the same shape as tokens')
        m = m.to(torch.bool).view(batch, 1, 1, length)
        return torch.zeros(batch, 1, 1, length, dtype=torch.float32).masked_fill_(m.logical_not(), -1e9)

    def encode(self, ids, attention_mask=None):
        B, T = ids.shape
        x = self.tokens(ids) + self.positions(torch.arange(T, dtype=ids.dtype, device=ids.device))
        if self.embed_norm is not None:
            x = _norm_fp32(self.embed_norm, x)
        x = F.dropout(x, self.dropout, self.training)
        bias = self.attention_bias(attention_mask, B, T)
        for layer in self.layers:
            x = layer(x, bias)
        if self.final_norm is not None:
            x = _norm_fp32(self.final_norm, x)
        return x

    def forward(self, ids, attention_mask=None):
        """The task head on all positions: MLM (B, T, V) or classify (B, C)."""
        h = self.encode(ids, attention_mask)
        if self.mlm_head is not None:
            return self.mlm_head(h, self.tokens.weight)
        return self.cls_head(h[:, 0])

    def mlm_loss(self, ids, positions, targets, attention_mask=None):
        """MLM objective with the head only on the masked positions (flat indices into B*T), as fairseq
        and the engine do. Cross-entropy in float32, mean over the targets."""
        h = self.encode(ids, attention_mask)
        picked = h.reshape(-1, h.shape[-1]).index_select(0, positions)  # (N, D)
        logits = self.mlm_head(picked, self.tokens.weight)  # (N, V)
        return F.cross_entropy(logits.float(), targets)

    def classify_loss(self, ids, labels, attention_mask=None):
        logits = self.forward(ids, attention_mask)
        return F.cross_entropy(logits.float(), labels)

    def param_groups(self, weight_decay):
        """AdamW's groups as the engine's: decay on >= 2-D parameters (linear and embedding weights), none
        on biases and LayerNorm parameters."""
        decay = [p for p in self.parameters() if p.dim() >= 2]
        no_decay = [p for p in self.parameters() if p.dim() < 2]
        return [{'params': decay, 'weight_decay': weight_decay}, {'params': no_decay, 'weight_decay': 0.0}]


def load_run(run_dir, linear='aten'):
    """A trainlarge run directory (config.json + model.safetensors) -> Transformer in eval mode."""
    with open(os.path.join(run_dir, 'config.json')) as f:
        run = json.load(f)
    if 'model' not in run:
        raise ValueError(f"{run_dir}/config.json: no 'model' key")
    model = Transformer(run['model'], linear=linear)
    tensors, _ = load_safetensors(os.path.join(run_dir, 'model.safetensors'))
    # The decoder is tied to tokens.weight (the same Parameter), so nothing else to load or tie.
    model.load_state_dict({k: v.float() if v.is_floating_point() else v for k, v in tensors.items()}, strict=True)
    model.eval()
    return model
