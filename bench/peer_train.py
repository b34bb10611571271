"""Benchmark peer: trains trainlarge's MLM model in plain PyTorch (impl "torch", the default), as fast as PyTorch
reasonably allows, or as transformers' RobertaForMaskedLM of the same sizes (impl "hf").

Usage: .venv/bin/python bench/peer_train.py '<json>'
  json = {"model": {model config, camelCase as native/models/config.cc}, "batchSize": 16,
          "precision": "fp32" | "bf16", "threads": 1, "blasThreads": 2, "steps": 20, "warmup": 3,
          "seed": 1, "maskProb": 0.15,
          optional: "impl": "torch" | "hf" (default "torch": test/peer/trainlarge_peer.py's Transformer; "hf":
                            transformers.RobertaForMaskedLM, attn_implementation "sdpa", see below),
                    "foreach": true | false (AdamW's multi-tensor path; default true, see below),
                    "linear": "aten" | "libtorch" (impl "torch" only; default "aten", see below),
                    "hfLoss": "labels" | "masked" (impl "hf" only; default "labels", see below)}
Prints one JSON line: {"stepSecondsMedian", "tokensPerSecond", "losses", "threads", "torch", ...}.
Run it with the project environment's python (.venv: pip's torch, the engine's libtorch). OPENBLAS_NUM_THREADS is
put in the environment before torch is loaded, for a torch built on OpenBLAS (Debian's 1.13, measured below);
pip's torch uses MKL on the intra-op threads.

One step, timed as a whole with time.perf_counter() (after `warmup` untimed steps), as the engine's
Trainer::step times its own: make the batch (random ids in [5, vocabSize), column 0 = cls id 1, 15% of
the non-cls tokens selected: 80% -> mask id 4, 10% -> a random non-special id, 10% kept), forward + loss
(under torch.autocast('cpu', bfloat16) for bf16: forward and loss only), backward, global-norm clipping at
1.0, AdamW (lr 5e-4, betas (0.9, 0.98), eps 1e-6, weight decay 0.01 on >= 2-D parameters and 0 on biases
and LayerNorm: two groups), zero_grad(set_to_none=True), loss.item(). Dropout as configured (train mode).
The MLM head runs on the masked positions only, as the engine's.

impl "hf": transformers.RobertaForMaskedLM(RobertaConfig(...)) built from the same model config: vocab_size,
hidden_size = dModel, num_hidden_layers, num_attention_heads, intermediate_size = ffn, hidden_act "gelu" (erf),
hidden/attention dropout as configured, layer_norm_eps, max_position_embeddings = maxLen + padId + 1 (RoBERTa's
position ids start at padId + 1), type_vocab_size 1, pad/bos/eos ids 0/1/2, tie_word_embeddings, and
attn_implementation "sdpa" (torch's scaled_dot_product_attention). RoBERTa is post-LN, as the engine's default;
norm "pre" is refused. Against trainlarge's model it has one token-type row and padId + 1 position rows more
(d numbers each), and separate q/k/v Linears where the engine fuses them (same parameter count). The same batch
recipe, optimizer (the same two groups), clipping, autocast and timing as impl "torch". No attention mask is
passed (full-length rows, as on the other sides). hfLoss "labels" (the default) is how a transformers user
trains it: model(input_ids=..., labels=...) with -100 at the unmasked positions, so RobertaLMHead runs on every
position (B x T x vocab logits) and CrossEntropyLoss ignores the -100s. hfLoss "masked" runs model.roberta,
picks the masked positions and runs model.lm_head on those only, as the engine and impl "torch" do (a
diagnostic: how much of the difference is the head).

Settings tried (dModel 256, 4 layers, 4 heads, ffn 1024, vocab 8000, maxLen 128, batch 16, post-LN,
dropout 0.1, threads 1, blasThreads 2; 2-core AMD EPYC (AVX2, no AVX512/AMX), no GPU; torch 1.13.1 from
Debian with OpenBLAS 0.3.21; each row: median of 8 timed steps after 2 warm-up, two separate runs):

  precision  foreach  linear     median step s      tokens/s
  fp32       False    aten       0.535 / 0.523      3831 / 3915
  fp32       True     aten       0.535 / 0.541      3826 / 3784
  fp32       False    libtorch   0.547 / 0.532      3741 / 3848
  fp32       True     libtorch   0.538 / 0.535      3810 / 3828
  bf16       True     aten       15.66 (2 steps)     131

  * foreach: the whole-step differences are inside the run-to-run noise (~2%). AdamW alone (this model,
    5.3M parameters, one optimizer per process, 70 steps): foreach=True median 17.7-18.2 ms vs 22.6-24.5
    ms for the per-parameter loop (minimums equal, ~16.7 ms), i.e. ~1% of a step. torch 1.13 has no fused
    CPU _foreach kernels, so the gain is small, but it is a gain: foreach=True is the default. (Fused
    AdamW does not exist on CPU in torch 1.13.) clip_grad_norm_ costs ~3 ms.
  * linear: 'aten' (nn.Linear, one fused addmm) vs 'libtorch' (the engine's C++ F::linear: matmul, then
    `out += bias`) are equal within noise here, for a single layer (fc1 forward+backward ~26 ms both) as
    for the whole step. The peer uses 'aten', PyTorch's own nn.Linear.
  * bf16 is ~30x SLOWER than fp32 on this CPU: without AVX512-BF16 (or AVX512 at all) torch 1.13's bf16
    GEMM falls back to a generic kernel, ~5 GFLOP/s against ~89 GFLOP/s for OpenBLAS sgemm (measured on
    a 2048x256 @ 256x1024 product), and the fallback uses one thread whatever `threads` says. It is
    measured as asked, but fp32 is PyTorch's best on this machine, and the engine (same libtorch) is in
    the same position.
  * threads 1 + blasThreads 2 is what the benchmark specifies: fp32 GEMMs run in OpenBLAS's pool (the
    environment variable is set before torch loads OpenBLAS), element-wise ops in torch's intra-op pool.
"""

import json
import os
import statistics
import sys
import time


def _args():
    if len(sys.argv) != 2:
        sys.stderr.write("usage: peer_train.py '<json>'\n")
        sys.exit(2)
    a = json.loads(sys.argv[1])
    a.setdefault('batchSize', 16)
    a.setdefault('precision', 'fp32')
    a.setdefault('threads', 1)
    a.setdefault('blasThreads', 2)
    a.setdefault('steps', 20)
    a.setdefault('warmup', 3)
    a.setdefault('seed', 1)
    a.setdefault('maskProb', 0.15)
    a.setdefault('foreach', True)
    a.setdefault('linear', 'aten')
    a.setdefault('impl', 'torch')
    a.setdefault('hfLoss', 'labels')
    if a['impl'] not in ('torch', 'hf'):
        raise SystemExit("peer_train: impl must be 'torch' or 'hf'")
    if a['hfLoss'] not in ('labels', 'masked'):
        raise SystemExit("peer_train: hfLoss must be 'labels' or 'masked'")
    if 'model' not in a:
        raise SystemExit("peer_train: missing 'model'")
    if a['model'].get('task', 'mlm') != 'mlm':
        raise SystemExit('peer_train: only the MLM task is benchmarked')
    if a['precision'] not in ('fp32', 'bf16'):
        raise SystemExit("peer_train: precision must be 'fp32' or 'bf16' (CPU)")
    if int(a['steps']) < 1:
        raise SystemExit('peer_train: steps must be >= 1')
    return a


ARGS = _args()
if int(ARGS['blasThreads']) > 0:
    os.environ['OPENBLAS_NUM_THREADS'] = str(int(ARGS['blasThreads']))  # read by OpenBLAS when torch loads it

if ARGS['impl'] == 'hf':
    os.environ.setdefault('HF_HUB_OFFLINE', '1')  # the model is built from a config: nothing to download
    os.environ.setdefault('TRANSFORMERS_VERBOSITY', 'error')

import torch  # noqa: E402

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), '..', 'test', 'peer'))
from trainlarge_peer import Transformer  # noqa: E402

PAD, CLS, EOS, UNK, MASK = 0, 1, 2, 3, 4
FIRST_NORMAL = 5
MASK_TOKEN_PROB, RANDOM_TOKEN_PROB = 0.8, 0.1


def openblas_threads():
    try:
        import ctypes
        lib = ctypes.CDLL('libopenblas.so.0')
        return int(lib.openblas_get_num_threads())
    except (OSError, AttributeError):
        return -1


def make_batch(gen, B, T, vocab, mask_prob):
    """An MLM batch as the engine's MlmBlocks::mask makes it (random text instead of a corpus)."""
    ids = torch.randint(FIRST_NORMAL, vocab, (B, T), generator=gen)
    ids[:, 0] = CLS
    u = torch.rand(B, 2, T, generator=gen)
    selected = u[:, 0].lt(mask_prob)
    selected[:, 0] = False  # cls is special: never a target
    if not bool(selected.any()):
        selected[0, 1] = True  # a batch must have a target
    r = u[:, 1]
    to_mask = selected & r.lt(MASK_TOKEN_PROB)
    to_random = selected & r.ge(MASK_TOKEN_PROB) & r.lt(MASK_TOKEN_PROB + RANDOM_TOKEN_PROB)
    positions = selected.flatten().nonzero().squeeze(1)
    targets = ids.flatten().index_select(0, positions)
    inputs = ids.masked_fill(to_mask, MASK)
    inputs = torch.where(to_random, torch.randint(FIRST_NORMAL, vocab, (B, T), generator=gen), inputs)
    return inputs, positions, targets


def hf_model(cfg):
    """transformers' RobertaForMaskedLM with trainlarge's sizes (see the module doc)."""
    from transformers import RobertaConfig, RobertaForMaskedLM
    if cfg.get('norm', 'post') != 'post':
        raise SystemExit("peer_train: impl 'hf' (RoBERTa) is post-LN only")
    pad = int(cfg.get('padId', PAD))
    config = RobertaConfig(
        vocab_size=int(cfg['vocabSize']),
        hidden_size=int(cfg['dModel']),
        num_hidden_layers=int(cfg['layers']),
        num_attention_heads=int(cfg['heads']),
        intermediate_size=int(cfg['ffn']),
        hidden_act='gelu',
        hidden_dropout_prob=float(cfg['dropout']),
        attention_probs_dropout_prob=float(cfg['attentionDropout']),
        max_position_embeddings=int(cfg['maxLen']) + pad + 1,
        type_vocab_size=1,
        initializer_range=0.02,
        layer_norm_eps=float(cfg['layerNormEps']),
        pad_token_id=pad,
        bos_token_id=CLS,
        eos_token_id=EOS,
        tie_word_embeddings=True,
    )
    model = RobertaForMaskedLM._from_config(config, attn_implementation='sdpa')
    if model.config._attn_implementation != 'sdpa':
        raise SystemExit(f"peer_train: transformers chose attention '{model.config._attn_implementation}', not sdpa")
    if model.lm_head.decoder.weight is not model.roberta.embeddings.word_embeddings.weight:
        raise SystemExit('peer_train: the MLM decoder is not tied to the word embeddings')
    return model


def param_groups(model, weight_decay):
    """The engine's AdamW groups: decay on >= 2-D parameters, none on biases and LayerNorm parameters."""
    params = list(model.parameters())  # tied parameters once
    return [{'params': [p for p in params if p.dim() >= 2], 'weight_decay': weight_decay},
            {'params': [p for p in params if p.dim() < 2], 'weight_decay': 0.0}]


def main():
    a = ARGS
    torch.set_num_threads(int(a['threads']))
    torch.manual_seed(int(a['seed']))
    cfg = dict(a['model'])
    B, T, V = int(a['batchSize']), int(cfg['maxLen']), int(cfg['vocabSize'])
    hf = a['impl'] == 'hf'
    model = hf_model(cfg) if hf else Transformer(cfg, seed=int(a['seed']), linear=a['linear'])
    model.train()
    params = [p for p in model.parameters()]
    opt = torch.optim.AdamW(param_groups(model, 0.01), lr=5e-4, betas=(0.9, 0.98), eps=1e-6,
                            foreach=bool(a['foreach']))
    gen = torch.Generator().manual_seed(int(a['seed']))
    bf16 = a['precision'] == 'bf16'
    masked_head = a['hfLoss'] == 'masked'

    def mlm_loss(ids, positions, targets):
        if not hf:
            return model.mlm_loss(ids, positions, targets)
        if masked_head:
            h = model.roberta(input_ids=ids).last_hidden_state
            logits = model.lm_head(h.reshape(-1, h.shape[-1]).index_select(0, positions))
            return torch.nn.functional.cross_entropy(logits.float(), targets)
        labels = torch.full((B * T,), -100, dtype=torch.long).index_copy_(0, positions, targets).view(B, T)
        return model(input_ids=ids, labels=labels).loss

    def step():
        ids, positions, targets = make_batch(gen, B, T, V, float(a['maskProb']))
        with torch.autocast('cpu', dtype=torch.bfloat16, enabled=bf16):
            loss = mlm_loss(ids, positions, targets)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(params, 1.0)
        opt.step()
        opt.zero_grad(set_to_none=True)
        return loss.item()

    losses, times = [], []
    for i in range(int(a['warmup']) + int(a['steps'])):
        t0 = time.perf_counter()
        loss = step()
        dt = time.perf_counter() - t0
        losses.append(loss)
        if i >= int(a['warmup']):
            times.append(dt)
    median = statistics.median(times)
    shown = losses if len(losses) <= 6 else losses[:3] + losses[-3:]
    print(json.dumps({
        'stepSecondsMedian': median,
        'tokensPerSecond': B * T / median,
        'losses': [round(x, 5) for x in shown],
        'stepSecondsMin': min(times),
        'stepSecondsMean': statistics.fmean(times),
        'stepTimes': [round(x, 6) for x in times],
        'steps': len(times),
        'warmup': int(a['warmup']),
        'batchSize': B,
        'length': T,
        'precision': a['precision'],
        'foreach': bool(a['foreach']),
        'impl': a['impl'],
        'linear': a['linear'] if not hf else None,
        'hfLoss': a['hfLoss'] if hf else None,
        'attention': model.config._attn_implementation if hf else None,
        'transformers': __import__('transformers').__version__ if hf else None,
        'threads': torch.get_num_threads(),
        'blasThreads': openblas_threads(),
        'parameters': sum(p.numel() for p in params),
        'torch': torch.__version__,
    }))


if __name__ == '__main__':
    main()
