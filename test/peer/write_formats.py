"""Writes a JSONL corpus in the other forms users bring, with the libraries they come from:
   python write_formats.py IN.jsonl OUT_PREFIX
-> OUT_PREFIX.jsonl.zst (zstandard, streamed, one frame), OUT_PREFIX.parquet (pyarrow, as Hugging Face
   datasets stores a split: a 'text' column, zstd pages, several row groups)."""
import json
import sys

import pyarrow as pa
import pyarrow.parquet as pq
import zstandard

src, prefix = sys.argv[1], sys.argv[2]
with open(src, 'rb') as f, open(prefix + '.jsonl.zst', 'wb') as out:
    with zstandard.ZstdCompressor(level=3).stream_writer(out) as w:
        for chunk in iter(lambda: f.read(1 << 20), b''):
            w.write(chunk)

writer = None
batch = {'id': [], 'text': []}
def flush():
    global writer
    table = pa.table({'id': pa.array(batch['id'], pa.int64()), 'text': pa.array(batch['text'], pa.string())})
    if writer is None:
        writer = pq.ParquetWriter(prefix + '.parquet', table.schema, compression='zstd')
    writer.write_table(table, row_group_size=5000)
    batch['id'].clear()
    batch['text'].clear()
with open(src, encoding='utf-8') as f:
    for line in f:
        if not line.strip():
            continue
        r = json.loads(line)
        batch['id'].append(r['id'])
        batch['text'].append(r['text'])
        if len(batch['text']) >= 20000:
            flush()
if batch['text']:
    flush()
writer.close()
print('ok')
