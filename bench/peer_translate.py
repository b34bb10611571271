"""Benchmark peer: trains trainlarge's translation model (native/models/seq2seq.h) in plain PyTorch, on the
engine's own batches, for the translation section of `npm run bench` (bench/translate.ts).

Usage: .venv/bin/python bench/peer_translate.py FILE.json
  FILE.json = {"model": {the engine's model config, camelCase: dModel, heads, ffn, encoderLayers, decoderLayers,
                         vocabSize, maxLen, padId, bosId, dropout, attentionDropout, layerNormEps, norm, tie},
               "threads": 2, "warmup": 2, "labelSmoothing": 0.1, "lr": 7e-4,
               "batches": [{"src": [[ids]], "tgt": [[ids]]}, ...]}   (right-padded with padId; tgt ends in eos)
Prints one JSON line: {"stepSeconds": [...], "tokens": [...], "stepSecondsMedian", "tokensPerSecond", "losses",
"torch", "threads"}.

The model is the one test/peer/seq2seq_parity.py assembles from PyTorch's own modules (and checks equal to the
engine's logits): token + learned position embeddings (shared by encoder, decoder and output with tie 'all'),
nn.TransformerEncoderLayer / nn.TransformerDecoderLayer (batch_first, exact GELU, post-LN with an embedding
LayerNorm, or norm_first with final LayerNorms for pre-LN), key padding masks on the source, the causal mask
on the target; here in train mode with the configured dropout. One step, timed as a whole with
time.perf_counter(), over the batches in order, the first `warmup` untimed, as the engine's Trainer::step times its own: the decoder
input [bos, y1 .. y_{T-1}], forward, label-smoothed cross-entropy over the non-pad targets (F.cross_entropy
with ignore_index and label_smoothing, fairseq's and the engine's loss), backward, global-norm clipping at 1.0,
AdamW (fused; betas (0.9, 0.98), eps 1e-6, weight decay 0.01 on >= 2-D parameters, two groups),
zero_grad(set_to_none=True), loss.item(). Tokens of a step: the real source and target tokens (eos included),
as the engine counts them.
"""

import json
import math
import sys
import time

import torch
import torch.nn as nn
import torch.nn.functional as F


class Translator(nn.Module):
    def __init__(self, c):
        super().__init__()
        d, pre = c['dModel'], c['norm'] == 'pre'
        self.c, self.pre = c, pre
        self.tokens = nn.Embedding(c['vocabSize'], d)
        self.positions = nn.Embedding(c['maxLen'], d)
        self.dec_tokens = self.tokens if c['tie'] == 'all' else nn.Embedding(c['vocabSize'], d)
        self.dec_positions = nn.Embedding(c['maxLen'], d)
        self.output = None if c['tie'] != 'none' else nn.Linear(d, c['vocabSize'], bias=False)
        self.drop = nn.Dropout(c['dropout'])
        eps = c['layerNormEps']

        def enc():
            return nn.TransformerEncoderLayer(d, c['heads'], c['ffn'], dropout=c['dropout'], activation='gelu',
                                              layer_norm_eps=eps, batch_first=True, norm_first=pre)

        def dec():
            return nn.TransformerDecoderLayer(d, c['heads'], c['ffn'], dropout=c['dropout'], activation='gelu',
                                              layer_norm_eps=eps, batch_first=True, norm_first=pre)

        self.enc_layers = nn.ModuleList([enc() for _ in range(c['encoderLayers'])])
        self.dec_layers = nn.ModuleList([dec() for _ in range(c['decoderLayers'])])
        self.enc_norm = nn.LayerNorm(d, eps=eps)  # post-LN: on the embeddings; pre-LN: after the last layer
        self.dec_norm = nn.LayerNorm(d, eps=eps)

    def forward(self, src, prev):
        src_pad = src.eq(self.c['padId'])
        x = self.tokens(src) + self.positions.weight[: src.shape[1]]
        if not self.pre:
            x = self.enc_norm(x)
        x = self.drop(x)
        for layer in self.enc_layers:
            x = layer(x, src_key_padding_mask=src_pad)
        if self.pre:
            x = self.enc_norm(x)
        T = prev.shape[1]
        y = self.dec_tokens(prev) + self.dec_positions.weight[:T]
        if not self.pre:
            y = self.dec_norm(y)
        y = self.drop(y)
        causal = nn.Transformer.generate_square_subsequent_mask(T)
        for layer in self.dec_layers:
            y = layer(y, x, tgt_mask=causal, tgt_is_causal=True, memory_key_padding_mask=src_pad)
        if self.pre:
            y = self.dec_norm(y)
        return self.output(y) if self.output is not None else y @ self.dec_tokens.weight.t()


def main(argv):
    with open(argv[1]) as f:
        spec = json.load(f)
    c = spec['model']
    torch.set_num_threads(spec.get('threads', 2))
    torch.manual_seed(1)
    model = Translator(c).train()
    decay = [p for n, p in model.named_parameters() if p.dim() >= 2]
    rest = [p for n, p in model.named_parameters() if p.dim() < 2]
    opt = torch.optim.AdamW([{'params': decay, 'weight_decay': 0.01}, {'params': rest, 'weight_decay': 0.0}],
                            lr=spec.get('lr', 7e-4), betas=(0.9, 0.98), eps=1e-6, fused=True)
    pad, bos = c['padId'], c['bosId']
    batches = [(torch.tensor(b['src'], dtype=torch.long), torch.tensor(b['tgt'], dtype=torch.long)) for b in spec['batches']]
    warmup = spec.get('warmup', 2)
    seconds, tokens, losses = [], [], []
    for i in range(len(batches)):  # the first `warmup` untimed, as the engine's
        src, tgt = batches[i]
        start = time.perf_counter()
        prev = torch.cat([torch.full_like(tgt[:, :1], bos), tgt[:, :-1]], 1)
        logits = model(src, prev)
        loss = F.cross_entropy(logits.reshape(-1, logits.shape[-1]), tgt.reshape(-1), ignore_index=pad,
                               label_smoothing=spec.get('labelSmoothing', 0.0))
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        opt.step()
        opt.zero_grad(set_to_none=True)
        value = loss.item()
        elapsed = time.perf_counter() - start
        if i >= warmup:
            seconds.append(elapsed)
            tokens.append(int(src.ne(pad).sum().item() + tgt.ne(pad).sum().item()))
            losses.append(value)
    if not all(math.isfinite(x) for x in losses):
        raise ValueError(f'the peer diverged: losses {losses}')
    s = sorted(seconds)
    print(json.dumps({
        'stepSeconds': seconds,
        'tokens': tokens,
        'stepSecondsMedian': s[len(s) // 2] if len(s) % 2 else (s[len(s) // 2 - 1] + s[len(s) // 2]) / 2,
        'tokensPerSecond': sum(tokens) / sum(seconds),
        'losses': losses,
        'torch': torch.__version__,
        'threads': torch.get_num_threads(),
    }))
    return 0


if __name__ == '__main__':
    sys.exit(main(sys.argv))
