"""The Python side of test/spm-hf.test.ts: trainlarge's SentencePiece tokenizers exported as Hugging Face files.

  spm_hf.py encode HF_DIR SPM_MODEL TEXTS.json OUT.json [--special]
      Writes {"hf": ids, "spm": ids} into OUT.json: transformers' AutoTokenizer.from_pretrained(HF_DIR) on each
      text (add_special_tokens=False), and the sentencepiece package's own encoding with SPM_MODEL (the .model
      trainlarge saved). With --special, each item is a text or a [text, pair], "hf" holds tok(text, pair)'s
      input_ids with the special tokens, and "spm" is empty. Prints one JSON line: the tokenizer class and the
      decoded first text.
"""

import json
import sys


def encode(hf_dir, spm_model, texts_file, out_file, special):
    import sentencepiece
    from transformers import AutoTokenizer

    tok = AutoTokenizer.from_pretrained(hf_dir)
    with open(texts_file, encoding="utf-8") as f:
        items = json.load(f)
    if special:
        hf = [tok(*(item if isinstance(item, list) else [item]))["input_ids"] for item in items]
        spm = []
    else:
        hf = tok(items, add_special_tokens=False)["input_ids"]
        sp = sentencepiece.SentencePieceProcessor(model_file=spm_model)
        spm = sp.encode(items)
    with open(out_file, "w", encoding="utf-8") as f:
        json.dump({"hf": hf, "spm": spm}, f)
    decoded = tok.decode(hf[0]) if hf else ""
    print(json.dumps({"class": type(tok).__name__, "decoded": decoded, "mask": tok.mask_token_id, "pad": tok.pad_token_id}))


if __name__ == "__main__":
    cmd, *rest = sys.argv[1:]
    if cmd != "encode":
        raise SystemExit(f"unknown command {cmd}")
    flags = [a for a in rest if a.startswith("--")]
    args = [a for a in rest if not a.startswith("--")]
    encode(*args, special="--special" in flags)
