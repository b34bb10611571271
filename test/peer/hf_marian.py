"""transformers' side of test/marian.test.ts (no network: every checkpoint is made here).

  hf_marian.py make OUT '{"vocab": V, "d": D, "enc": L, "dec": L, "heads": H, "ffn": F, "max_positions": P,
                          "pad": PAD, "eos": EOS, "activation": "swish", "scale": true, "std": S, "eos_bias": B,
                          "seed": S}'
      a random-weight MarianMTModel (weights N(0, std); LayerNorms, biases and final_logits_bias moved away
      from their init so a mix-up shows; eos_bias added to EOS's final_logits_bias so sentences end), saved
      with save_pretrained (model.safetensors)
  hf_marian.py logits DIR IN.json OUT.json
      IN: {"src": [[...]], "src_mask": [[0/1...]], "tgt": [[...]]}: tgt = labels (pad after eos); the decoder reads
      them shifted right after decoder_start_token_id. OUT: {"logits": flat, "dims": [B, T, V]}
  hf_marian.py generate DIR IN.json OUT.json
      IN: {"src", "src_mask", "beams": K, "max_new_tokens": N}: MarianMTModel.generate with the conventions of
      trainlarge's search set explicitly (early_stopping=True, length_penalty=1.0, pad never generated,
      no sampling); OUT: {"tokens": [[...]] without the start token and EOS, "ended": [EOS reached?]}
  hf_marian.py tokenize DIR IN.json OUT.json
      IN: {"texts": [...]}: MarianTokenizer.from_pretrained(DIR)'s input_ids (with its </s>)
"""
import json
import sys

import torch
from transformers import MarianConfig, MarianMTModel


def random_model(config, eos, eos_bias):
    """A MarianMTModel of random weights, LayerNorms, biases and final_logits_bias moved away from their init so
    that a mix-up shows, and eos_bias added to EOS's final_logits_bias so that sentences end."""
    model = MarianMTModel(config)
    with torch.no_grad():
        for name, p in model.named_parameters():
            if "layer_norm" in name or name.endswith("bias"):
                p.add_(torch.randn_like(p) * 0.1)
        model.final_logits_bias.copy_(torch.randn_like(model.final_logits_bias) * 0.1)
        model.final_logits_bias[0, eos] += eos_bias
    return model


def make(out, spec):
    torch.manual_seed(spec.get("seed", 0))
    config = MarianConfig(
        vocab_size=spec["vocab"], d_model=spec["d"], encoder_layers=spec["enc"], decoder_layers=spec["dec"],
        encoder_attention_heads=spec["heads"], decoder_attention_heads=spec["heads"], encoder_ffn_dim=spec["ffn"],
        decoder_ffn_dim=spec["ffn"], max_position_embeddings=spec["max_positions"], pad_token_id=spec["pad"],
        eos_token_id=spec["eos"], decoder_start_token_id=spec["pad"], forced_eos_token_id=spec["eos"],
        activation_function=spec.get("activation", "swish"), scale_embedding=spec.get("scale", True),
        dropout=0.1, attention_dropout=0.0, activation_dropout=0.0, init_std=spec.get("std", 0.02),
    )
    model = random_model(config, spec["eos"], spec.get("eos_bias", 0.0))
    model.save_pretrained(out, safe_serialization=True)
    print(json.dumps({"parameters": sum(p.numel() for p in model.parameters())}))


def load(d):
    return MarianMTModel.from_pretrained(d, attn_implementation="eager").eval()


def logits(d, inp, out):
    model = load(d)
    x = json.load(open(inp))
    src = torch.tensor(x["src"], dtype=torch.long)
    mask = torch.tensor(x["src_mask"], dtype=torch.long)
    labels = torch.tensor(x["tgt"], dtype=torch.long)
    start = torch.full((labels.shape[0], 1), model.config.decoder_start_token_id, dtype=torch.long)
    prev = torch.cat([start, labels[:, :-1]], 1)
    with torch.no_grad():
        y = model(input_ids=src, attention_mask=mask, decoder_input_ids=prev).logits.float()
    json.dump({"logits": y.reshape(-1).tolist(), "dims": list(y.shape)}, open(out, "w"))


def generate(d, inp, out):
    model = load(d)
    x = json.load(open(inp))
    src = torch.tensor(x["src"], dtype=torch.long)
    mask = torch.tensor(x["src_mask"], dtype=torch.long)
    c = model.config
    with torch.no_grad():
        seqs = model.generate(
            input_ids=src, attention_mask=mask, num_beams=x["beams"], do_sample=False, early_stopping=True,
            length_penalty=1.0, max_new_tokens=x["max_new_tokens"], bad_words_ids=[[c.pad_token_id]],
            decoder_start_token_id=c.decoder_start_token_id, eos_token_id=c.eos_token_id, pad_token_id=c.pad_token_id,
            forced_eos_token_id=c.eos_token_id, num_return_sequences=1,
        )
    tokens, ended = [], []
    for row in seqs.tolist():
        row = row[1:]  # the start token
        end = row.index(c.eos_token_id) if c.eos_token_id in row else len(row)
        tokens.append(row[:end])
        ended.append(end < len(row))
    json.dump({"tokens": tokens, "ended": ended}, open(out, "w"))


def tokenize(d, inp, out):
    from transformers import MarianTokenizer
    tok = MarianTokenizer.from_pretrained(d)
    x = json.load(open(inp))
    json.dump({"ids": [tok(t)["input_ids"] for t in x["texts"]]}, open(out, "w"))


if __name__ == "__main__":
    cmd, *args = sys.argv[1:]
    if cmd == "make":
        make(args[0], json.loads(args[1]))
    elif cmd == "logits":
        logits(*args)
    elif cmd == "generate":
        generate(*args)
    elif cmd == "tokenize":
        tokenize(*args)
    else:
        raise SystemExit(f"unknown command {cmd}")
