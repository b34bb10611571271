"""transformers' side of test/opus-mt.test.ts: an opus-mt directory laid out as Helsinki-NLP's are, made here (no
network) from real sentences.

  hf_opusmt.py make OUT '{"source": FILE, "target": FILE, "source_vocab": N, "target_vocab": N, "drop": K,
                          "codes": [">>es<<", ...], "d": D, "enc": L, "dec": L, "heads": H, "ffn": F,
                          "max_positions": P, "seed": S, "bin": OUT2}'
      two SentencePiece unigram models (source.spm on FILE's lines, target.spm on the target's; SentencePiece's
      own special ids, unk 0, <s> 1, </s> 2, as Marian's spm_train makes them), one vocab.json over the pieces of
      both as opus-mt's conversion writes it (</s> 0, <unk> 1, the language codes, every other piece of both
      models in an order of its own, <pad> last; K source pieces left out so a piece of the text can be missing
      from it), tokenizer_config.json and special_tokens_map.json as on the Hub, and a random-weight
      MarianMTModel (LayerNorms, biases and final_logits_bias moved away from their init) saved with
      save_pretrained (model.safetensors); with "bin", the same directory again in OUT2 with the weights as
      transformers before 4.18 saved them: torch.save(model.state_dict(), "pytorch_model.bin") (an OrderedDict,
      zip format), no safetensors.
  hf_opusmt.py tokenize DIR IN.json OUT.json
      IN: {"sources": [...], "targets": [...], "decode": [[ids...]]}: MarianTokenizer.from_pretrained(DIR)'s
      input_ids of each source, of each target (text_target), and decode(ids, skip_special_tokens=True) of each
      id list. OUT: {"sources": [[...]], "targets": [[...]], "decoded": [...]}
"""
import json
import os
import random
import shutil
import sys

import sentencepiece as spm
import torch
from transformers import MarianConfig, MarianTokenizer

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from hf_marian import random_model  # noqa: E402


def train_spm(text_file, prefix, vocab_size, seed):
    spm.set_random_generator_seed(seed)
    spm.SentencePieceTrainer.train(
        input=text_file, model_prefix=prefix, vocab_size=vocab_size, model_type="unigram",
        character_coverage=0.9995, num_threads=1, minloglevel=2,
    )
    return spm.SentencePieceProcessor(model_file=prefix + ".model")


def make(out, spec):
    os.makedirs(out, exist_ok=True)
    work = out + ".spm"
    os.makedirs(work, exist_ok=True)
    src = train_spm(spec["source"], os.path.join(work, "source"), spec["source_vocab"], spec.get("seed", 0))
    tgt = train_spm(spec["target"], os.path.join(work, "target"), spec["target_vocab"], spec.get("seed", 0))
    shutil.copyfile(os.path.join(work, "source.model"), os.path.join(out, "source.spm"))
    shutil.copyfile(os.path.join(work, "target.model"), os.path.join(out, "target.spm"))
    shutil.rmtree(work)
    rng = random.Random(spec.get("seed", 0))
    special = {"<unk>", "<s>", "</s>"}
    src_pieces = [src.id_to_piece(i) for i in range(src.get_piece_size()) if src.id_to_piece(i) not in special]
    tgt_pieces = [tgt.id_to_piece(i) for i in range(tgt.get_piece_size()) if tgt.id_to_piece(i) not in special]
    dropped = set(rng.sample(src_pieces[50:], spec.get("drop", 0)))
    pieces = []
    seen = set()
    for p in src_pieces + tgt_pieces:
        if p not in seen and p not in dropped:
            seen.add(p)
            pieces.append(p)
    rng.shuffle(pieces)  # an order of its own: neither model's ids
    vocab = {"</s>": 0, "<unk>": 1}
    for p in spec.get("codes", []) + pieces:
        vocab.setdefault(p, len(vocab))
    vocab["<pad>"] = len(vocab)
    with open(os.path.join(out, "vocab.json"), "w", encoding="utf-8") as f:
        json.dump(vocab, f, ensure_ascii=False, indent=2)
    with open(os.path.join(out, "tokenizer_config.json"), "w") as f:
        json.dump({"source_lang": "en", "target_lang": "es"}, f)
    with open(os.path.join(out, "special_tokens_map.json"), "w") as f:
        json.dump({"eos_token": "</s>", "unk_token": "<unk>", "pad_token": "<pad>"}, f)

    torch.manual_seed(spec.get("seed", 0))
    pad = vocab["<pad>"]
    config = MarianConfig(
        vocab_size=len(vocab), d_model=spec["d"], encoder_layers=spec["enc"], decoder_layers=spec["dec"],
        encoder_attention_heads=spec["heads"], decoder_attention_heads=spec["heads"], encoder_ffn_dim=spec["ffn"],
        decoder_ffn_dim=spec["ffn"], max_position_embeddings=spec["max_positions"], pad_token_id=pad,
        eos_token_id=0, decoder_start_token_id=pad, forced_eos_token_id=0, activation_function="swish",
        scale_embedding=True, dropout=0.1, attention_dropout=0.0, activation_dropout=0.0, init_std=0.02,
        bad_words_ids=[[pad]], num_beams=4, max_length=spec["max_positions"],
    )
    model = random_model(config, 0, spec.get("eos_bias", 0.0))
    model.save_pretrained(out)
    if spec.get("bin"):
        other = spec["bin"]
        os.makedirs(other, exist_ok=True)
        for f in os.listdir(out):
            if f != "model.safetensors":
                shutil.copyfile(os.path.join(out, f), os.path.join(other, f))
        torch.save(model.state_dict(), os.path.join(other, "pytorch_model.bin"))
    print(json.dumps({"vocab": len(vocab), "dropped": sorted(dropped), "parameters": sum(p.numel() for p in model.parameters())}))


def tokenize(d, inp, out):
    tok = MarianTokenizer.from_pretrained(d)
    x = json.load(open(inp, encoding="utf-8"))
    json.dump(
        {
            "sources": [tok(t)["input_ids"] for t in x.get("sources", [])],
            "targets": [tok(text_target=t)["input_ids"] for t in x.get("targets", [])],
            "decoded": [tok.decode(ids, skip_special_tokens=True) for ids in x.get("decode", [])],
        },
        open(out, "w", encoding="utf-8"),
        ensure_ascii=False,
    )


if __name__ == "__main__":
    cmd, *args = sys.argv[1:]
    if cmd == "make":
        make(args[0], json.loads(args[1]))
    elif cmd == "tokenize":
        tokenize(*args)
    else:
        raise SystemExit(f"unknown command {cmd}")
