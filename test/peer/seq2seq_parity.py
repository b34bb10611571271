"""Teacher-forced logits of trainlarge's translation model (native/models/seq2seq.h) rebuilt in plain PyTorch.

Usage: .venv/bin/python test/peer/seq2seq_parity.py DIR NAME [NAME ...]

For each NAME, DIR holds what `trainlarge_engine_test seq2seq` wrote: NAME.json (the model config),
NAME.safetensors (the weights, the engine's names) and NAME.io.safetensors (src and tgt, right-padded with
padId, and the engine's logits). The model is assembled here from PyTorch's own modules, not from a copy
of the engine's math: nn.TransformerEncoderLayer / nn.TransformerDecoderLayer (batch_first, exact GELU,
norm_first for pre-LN) with their weights copied in by name, key padding masks on the source and the
causal mask on the target. Prints one JSON line {"NAME": max |logit difference| over the non-pad target
positions, ...}. Every tensor of the file must be used.
"""

import json
import os
import sys

import torch
import torch.nn as nn

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from trainlarge_peer import load_safetensors  # noqa: E402


class Weights:
    """The file's tensors, each taken once; unused() lists those never taken."""

    def __init__(self, tensors):
        self.tensors = tensors
        self.taken = set()

    def __call__(self, name):
        self.taken.add(name)
        return self.tensors[name]

    def has(self, name):
        return name in self.tensors

    def unused(self):
        return sorted(set(self.tensors) - self.taken)


def _set(param, value):
    with torch.no_grad():
        param.copy_(value)


def encoder_layer(c, w, at):
    layer = nn.TransformerEncoderLayer(c['dModel'], c['heads'], c['ffn'], dropout=0.0, activation='gelu',
                                       layer_norm_eps=c['layerNormEps'], batch_first=True, norm_first=c['norm'] == 'pre')
    _set(layer.self_attn.in_proj_weight, w(at + 'attn.qkv.weight'))  # rows: q, k, v (heads major), as PyTorch's
    _set(layer.self_attn.in_proj_bias, w(at + 'attn.qkv.bias'))
    _set(layer.self_attn.out_proj.weight, w(at + 'attn.proj.weight'))
    _set(layer.self_attn.out_proj.bias, w(at + 'attn.proj.bias'))
    for ours, theirs in (('ffn.fc1', 'linear1'), ('ffn.fc2', 'linear2'), ('norm1', 'norm1'), ('norm2', 'norm2')):
        _set(getattr(layer, theirs).weight, w(at + ours + '.weight'))
        _set(getattr(layer, theirs).bias, w(at + ours + '.bias'))
    return layer.eval()


def decoder_layer(c, w, at):
    layer = nn.TransformerDecoderLayer(c['dModel'], c['heads'], c['ffn'], dropout=0.0, activation='gelu',
                                       layer_norm_eps=c['layerNormEps'], batch_first=True, norm_first=c['norm'] == 'pre')
    _set(layer.self_attn.in_proj_weight, w(at + 'self_attn.qkv.weight'))
    _set(layer.self_attn.in_proj_bias, w(at + 'self_attn.qkv.bias'))
    _set(layer.self_attn.out_proj.weight, w(at + 'self_attn.proj.weight'))
    _set(layer.self_attn.out_proj.bias, w(at + 'self_attn.proj.bias'))
    # cross_attn.kv's rows are k then v: q ++ kv is PyTorch's packed in-projection.
    _set(layer.multihead_attn.in_proj_weight, torch.cat([w(at + 'cross_attn.q.weight'), w(at + 'cross_attn.kv.weight')]))
    _set(layer.multihead_attn.in_proj_bias, torch.cat([w(at + 'cross_attn.q.bias'), w(at + 'cross_attn.kv.bias')]))
    _set(layer.multihead_attn.out_proj.weight, w(at + 'cross_attn.proj.weight'))
    _set(layer.multihead_attn.out_proj.bias, w(at + 'cross_attn.proj.bias'))
    for ours, theirs in (('ffn.fc1', 'linear1'), ('ffn.fc2', 'linear2'), ('norm1', 'norm1'), ('norm2', 'norm2'), ('norm3', 'norm3')):
        _set(getattr(layer, theirs).weight, w(at + ours + '.weight'))
        _set(getattr(layer, theirs).bias, w(at + ours + '.bias'))
    return layer.eval()


def layer_norm(c, w, at):
    norm = nn.LayerNorm(c['dModel'], eps=c['layerNormEps'])
    _set(norm.weight, w(at + '.weight'))
    _set(norm.bias, w(at + '.bias'))
    return norm.eval()


@torch.no_grad()
def logits(c, w, src, tgt):
    pre = c['norm'] == 'pre'
    enc_emb = w('tokens.weight')
    dec_emb = enc_emb if c['tie'] == 'all' else w('decoder.tokens.weight')
    out_proj = w('output.weight') if c['tie'] == 'none' else dec_emb

    src_pad = src.eq(c['padId'])  # True = padding, PyTorch's key_padding_mask convention
    S = src.shape[1]
    x = enc_emb[src] + w('positions.weight')[:S]
    if not pre:
        x = layer_norm(c, w, 'embed_norm')(x)
    for i in range(c['encoderLayers']):
        x = encoder_layer(c, w, f'layers.{i}.')(x, src_key_padding_mask=src_pad)
    if pre:
        x = layer_norm(c, w, 'final_norm')(x)
    memory = x

    # Teacher forcing: the decoder reads [BOS, y1 .. y_{T-1}].
    prev = torch.cat([torch.full_like(tgt[:, :1], c['bosId']), tgt[:, :-1]], 1)
    T = prev.shape[1]
    y = dec_emb[prev] + w('decoder.positions.weight')[:T]
    if not pre:
        y = layer_norm(c, w, 'decoder.embed_norm')(y)
    causal = nn.Transformer.generate_square_subsequent_mask(T)
    for i in range(c['decoderLayers']):
        y = decoder_layer(c, w, f'decoder.layers.{i}.')(y, memory, tgt_mask=causal, tgt_is_causal=True,
                                                          memory_key_padding_mask=src_pad)
    if pre:
        y = layer_norm(c, w, 'decoder.final_norm')(y)
    return y @ out_proj.t()


def main(argv):
    if len(argv) < 3:
        sys.stderr.write('usage: seq2seq_parity.py DIR NAME [NAME ...]\n')
        return 2
    torch.set_num_threads(1)
    if hasattr(torch.backends, 'mha'):
        torch.backends.mha.set_fastpath_enabled(False)  # the plain math path, not the nested-tensor fast path
    d = argv[1]
    result = {}
    for name in argv[2:]:
        with open(os.path.join(d, name + '.json')) as f:
            c = json.load(f)
        weights, _ = load_safetensors(os.path.join(d, name + '.safetensors'))
        io, _ = load_safetensors(os.path.join(d, name + '.io.safetensors'))
        w = Weights(weights)
        theirs = logits(c, w, io['src'], io['tgt'])
        if w.unused():
            raise ValueError(f'{name}: tensors the model did not use: {w.unused()}')
        real = io['tgt'].ne(c['padId'])
        if not io['src'].eq(c['padId']).any() or not (~real).any():
            raise ValueError(f'{name}: the case must pad both the source and the target')
        diff = (theirs - io['logits']).abs()[real]
        result[name] = diff.max().item()
    print(json.dumps(result))
    return 0


if __name__ == '__main__':
    sys.exit(main(sys.argv))
