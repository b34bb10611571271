"""sacreBLEU's own results for the cases test/bleu.test.ts sends as JSON on stdin.

Input:  {"cases": [{"kind": ..., ...}, ...]} where kind is
        "tokenize"      {"tokenizer": "13a" | "none" | "char", "lines": [...]}
        "corpus_bleu"   {"hyps": [...], "refs": [[...] per reference set], "options": {BLEU() keyword arguments}}
        "sentence_bleu" {"hyp": "...", "refs": [...], "options": {...}}   (sacrebleu.sentence_bleu)
        "corpus_chrf"   {"hyps": [...], "refs": [[...], ...], "options": {CHRF() keyword arguments}}
        "sentence_chrf" {"hyp": "...", "refs": [...], "options": {...}}
Output: {"version": sacrebleu.__version__, "results": [one per case]}: the tokenized lines; or the score's
        fields and str(metric.get_signature()); or {"error": "ExceptionType: message"} where sacreBLEU raised.
Run with the project environment's .venv/bin/python (sacrebleu 2.6.0).
"""
import json
import sys

import sacrebleu
from sacrebleu.metrics import BLEU, CHRF
from sacrebleu.metrics.bleu import _get_tokenizer


def bleu_fields(score, metric):
    return {
        'score': score.score,
        'counts': list(score.counts),
        'totals': list(score.totals),
        'precisions': list(score.precisions),
        'bp': score.bp,
        'sys_len': score.sys_len,
        'ref_len': score.ref_len,
        'signature': str(metric.get_signature()),
    }


def chrf_fields(score, metric):
    return {'score': score.score, 'name': score.name, 'signature': str(metric.get_signature())}


def run(case):
    kind = case['kind']
    if kind == 'tokenize':
        tok = _get_tokenizer(case['tokenizer'])()
        return {'lines': [tok(line) for line in case['lines']]}
    options = case.get('options', {})
    if kind == 'corpus_bleu':
        metric = BLEU(**options)
        return bleu_fields(metric.corpus_score(case['hyps'], case['refs']), metric)
    if kind == 'sentence_bleu':
        # sacrebleu.sentence_bleu's defaults: effective order on.
        metric = BLEU(**{'effective_order': True, **options})
        return bleu_fields(metric.sentence_score(case['hyp'], case['refs']), metric)
    if kind == 'corpus_chrf':
        metric = CHRF(**options)
        return chrf_fields(metric.corpus_score(case['hyps'], case['refs']), metric)
    if kind == 'sentence_chrf':
        metric = CHRF(**options)
        return chrf_fields(metric.sentence_score(case['hyp'], case['refs']), metric)
    raise ValueError(f'unknown case kind {kind!r}')


def main():
    spec = json.load(sys.stdin)
    results = []
    for case in spec['cases']:
        try:
            results.append(run(case))
        except Exception as e:  # the test asserts on sacreBLEU's failures too (an empty corpus)
            results.append({'error': f'{type(e).__name__}: {e}'})
    json.dump({'version': sacrebleu.__version__, 'results': results}, sys.stdout, ensure_ascii=False)


if __name__ == '__main__':
    main()
