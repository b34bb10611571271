"""transformers' side of test/hf.test.ts (no network: every checkpoint is made here).

  hf_roberta.py make OUT '{"task": "mlm"|"classify", "vocab": V, "hidden": D, "layers": L, "heads": H, "ffn": F,
                           "max_positions": P, "pad": PAD, "labels": [...], "seed": S}'
      a random-weight RobertaForMaskedLM / RobertaForSequenceClassification, saved with save_pretrained
  hf_roberta.py logits DIR IN.json OUT.json
      IN: {"ids": [[...]], "mask": [[0/1...]]}; OUT: {"logits": flat float list, "dims": [...], "arch": ...}
      from AutoModelForMaskedLM / AutoModelForSequenceClassification.from_pretrained(DIR), eval, fp32
  hf_roberta.py drop DIR NAME        rewrites DIR/model.safetensors without tensor NAME
  hf_roberta.py reshape DIR NAME     ... with tensor NAME's first dimension one shorter
"""
import json
import sys

import torch
from safetensors.torch import load_file, save_file
from transformers import (AutoConfig, AutoModelForMaskedLM, AutoModelForSequenceClassification, RobertaConfig,
                          RobertaForMaskedLM, RobertaForSequenceClassification)


def make(out, spec):
    torch.manual_seed(spec.get("seed", 0))
    labels = spec.get("labels")
    config = RobertaConfig(
        vocab_size=spec["vocab"], hidden_size=spec["hidden"], num_hidden_layers=spec["layers"],
        num_attention_heads=spec["heads"], intermediate_size=spec["ffn"], max_position_embeddings=spec["max_positions"],
        pad_token_id=spec["pad"], bos_token_id=0, eos_token_id=2, type_vocab_size=1, hidden_act="gelu",
        layer_norm_eps=1e-5,
        **({"id2label": {i: l for i, l in enumerate(labels)}, "label2id": {l: i for i, l in enumerate(labels)}} if labels else {}),
    )
    model = (RobertaForMaskedLM if spec["task"] == "mlm" else RobertaForSequenceClassification)(config)
    with torch.no_grad():  # LayerNorms and biases away from their (1, 0) init, so a mix-up shows
        for name, p in model.named_parameters():
            if "LayerNorm" in name or "layer_norm" in name or name.endswith("bias"):
                p.add_(torch.randn_like(p) * 0.1)
    model.save_pretrained(out, safe_serialization=True)
    print(json.dumps({"parameters": sum(p.numel() for p in model.parameters())}))


def logits(d, inp, out):
    config = AutoConfig.from_pretrained(d)
    arch = config.architectures[0]
    cls = AutoModelForMaskedLM if arch.endswith("MaskedLM") else AutoModelForSequenceClassification
    model = cls.from_pretrained(d, attn_implementation="eager").eval()
    x = json.load(open(inp))
    ids = torch.tensor(x["ids"], dtype=torch.long)
    mask = torch.tensor(x["mask"], dtype=torch.long)
    with torch.no_grad():
        y = model(input_ids=ids, attention_mask=mask).logits.float()
    json.dump({"logits": y.reshape(-1).tolist(), "dims": list(y.shape), "arch": arch}, open(out, "w"))


def rewrite(d, name, how):
    f = f"{d}/model.safetensors"
    tensors = load_file(f)
    if name not in tensors:
        raise SystemExit(f"no tensor {name}")
    if how == "drop":
        del tensors[name]
    else:
        tensors[name] = tensors[name][:-1].clone()
    save_file(tensors, f, metadata={"format": "pt"})


if __name__ == "__main__":
    cmd = sys.argv[1]
    if cmd == "make":
        make(sys.argv[2], json.loads(sys.argv[3]))
    elif cmd == "logits":
        logits(sys.argv[2], sys.argv[3], sys.argv[4])
    elif cmd in ("drop", "reshape"):
        rewrite(sys.argv[2], sys.argv[3], cmd)
    else:
        raise SystemExit(f"unknown command {cmd}")
