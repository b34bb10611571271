"""The Hugging Face side of test/hf-tokenizer.test.ts (and of the library choice in lib/data/hf.ts).

  hf_bpe.py train TEXTS.json OUT_DIR VOCAB_SIZE [LEGACY_DIR]
      Trains a RoBERTa-style byte-level BPE (tokenizers' ByteLevelBPETokenizer, RoBERTa's special tokens
      <s> <pad> </s> <unk> <mask> in RoBERTa's order) on the texts and saves it with transformers'
      save_pretrained into OUT_DIR (tokenizer.json + tokenizer_config.json). LEGACY_DIR, when given, gets
      the same tokenizer as an older RoBERTa checkpoint has it: vocab.json + merges.txt + tokenizer_config.json.
      Prints one JSON line: the files written, the special ids and the vocabulary size.
  hf_bpe.py encode DIR TEXTS.json OUT.json [--special]
      AutoTokenizer.from_pretrained(DIR)(texts, add_special_tokens=False)['input_ids'] into OUT.json; with
      --special, each item is a text or a [text, pair] and the ids are tok(text, pair)['input_ids'] (RoBERTa's
      <s> a </s> and <s> a </s></s> b </s>). Prints one JSON line: the tokenizer class and seconds spent.
"""

import json
import os
import shutil
import sys
import time

SPECIAL = ["<s>", "<pad>", "</s>", "<unk>", "<mask>"]


def train(texts_file, out_dir, vocab_size, legacy_dir):
    from tokenizers import ByteLevelBPETokenizer
    from transformers import AutoTokenizer

    with open(texts_file, encoding="utf-8") as f:
        texts = json.load(f)
    bpe = ByteLevelBPETokenizer()
    bpe.train_from_iterator(texts, vocab_size=vocab_size, min_frequency=2, special_tokens=SPECIAL, show_progress=False)
    raw = os.path.join(out_dir, "raw")
    os.makedirs(raw, exist_ok=True)
    bpe.save_model(raw)  # vocab.json + merges.txt
    if legacy_dir:
        os.makedirs(legacy_dir, exist_ok=True)
        bpe.save_model(legacy_dir)
    with open(os.path.join(raw, "config.json"), "w") as f:
        json.dump({"model_type": "roberta"}, f)
    # transformers reads vocab.json + merges.txt as RoBERTa's tokenizer (the way an old checkpoint loads).
    tok = AutoTokenizer.from_pretrained(raw, model_max_length=512)
    tok.save_pretrained(out_dir)
    for name in os.listdir(raw):
        os.remove(os.path.join(raw, name))
    os.rmdir(raw)
    if legacy_dir:
        shutil.copy(os.path.join(out_dir, "tokenizer_config.json"), legacy_dir)
    ids = {t: tok.convert_tokens_to_ids(t) for t in SPECIAL}
    print(json.dumps({"files": sorted(os.listdir(out_dir)), "special": ids, "vocabSize": len(tok)}))


def encode(tok_dir, texts_file, out_file, special):
    from transformers import AutoTokenizer

    tok = AutoTokenizer.from_pretrained(tok_dir)
    with open(texts_file, encoding="utf-8") as f:
        texts = json.load(f)
    t0 = time.perf_counter()
    if special:
        ids = [tok(*(t if isinstance(t, list) else [t]))["input_ids"] for t in texts]
    else:
        ids = tok(texts, add_special_tokens=False)["input_ids"]
    seconds = time.perf_counter() - t0
    with open(out_file, "w", encoding="utf-8") as f:
        json.dump(ids, f)
    print(json.dumps({"class": type(tok).__name__, "seconds": seconds, "texts": len(texts)}))


if __name__ == "__main__":
    cmd = sys.argv[1]
    if cmd == "train":
        train(sys.argv[2], sys.argv[3], int(sys.argv[4]), sys.argv[5] if len(sys.argv) > 5 else None)
    elif cmd == "encode":
        encode(sys.argv[2], sys.argv[3], sys.argv[4], "--special" in sys.argv[5:])
    else:
        sys.exit(f"unknown command {cmd}")
