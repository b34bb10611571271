"""The usual Python recipe for preparing a pretraining corpus (Megatron-LM's preprocess_data.py and fairseq's
preprocess follow it): read the text, hand paragraphs to a multiprocessing pool whose workers encode them with
the sentencepiece package, and write the ids as numpy uint16 shards (documents joined by eos).

   python bench/peer_prepare.py TEXT TOKENIZER.model OUT_DIR WORKERS

Paragraphs are blank-line separated, as `trainlarge data prepare --split blank-line` reads them. Prints one JSON
line: seconds, documents, tokens, and the peak resident memory of the main process and of the largest worker."""
import json
import os
import resource
import sys
import time
from multiprocessing import Pool

import numpy as np
import sentencepiece as spm

SHARD_TOKENS = 16_000_000
sp = None


def init(model):
    global sp
    sp = spm.SentencePieceProcessor(model_file=model)


def encode(paragraphs):
    return sp.encode(paragraphs)


def paragraph_chunks(path, per_chunk=2000):
    block, chunk = [], []
    with open(path, encoding='utf-8') as f:
        for line in f:
            if line.strip():
                block.append(line.rstrip())
            elif block:
                chunk.append('\n'.join(block))
                block = []
                if len(chunk) == per_chunk:
                    yield chunk
                    chunk = []
    if block:
        chunk.append('\n'.join(block))
    if chunk:
        yield chunk


def main():
    text, model, out, workers = sys.argv[1], sys.argv[2], sys.argv[3], int(sys.argv[4])
    os.makedirs(out, exist_ok=True)
    eos = 2
    start = time.time()
    docs = tokens = shard = 0
    buf = []
    buffered = 0

    def flush():
        nonlocal shard, buf, buffered
        np.concatenate(buf).astype(np.uint16).tofile(os.path.join(out, f'shard-{shard:05d}.npy'))
        shard += 1
        buf, buffered = [], 0

    with Pool(workers, initializer=init, initargs=(model,)) as pool:
        for ids in pool.imap(encode, paragraph_chunks(text), chunksize=1):
            for d in ids:
                a = np.empty(len(d) + 1, dtype=np.uint16)
                a[:-1] = d
                a[-1] = eos
                buf.append(a)
                buffered += len(a)
                docs += 1
                tokens += len(a)
            if buffered >= SHARD_TOKENS:
                flush()
    if buf:
        flush()
    print(json.dumps({
        'seconds': time.time() - start,
        'documents': docs,
        'tokens': tokens,
        'mainPeakMB': resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
        'workerPeakMB': resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024,
    }))


if __name__ == '__main__':
    main()
