"""BLEU speed benchmark (make bench-bleu): our exact BLEU-2..5 and leave-one-out Self-BLEU-2..5
on the full COCO benchmark (10k test captions as hypotheses / samples, 10k train captions as
references, nltk-tokenised) against nltk's sentence_bleu with SmoothingFunction().method1.

nltk rescans every reference for every hypothesis, so timing it on all 10k would take hours:
it is timed on the first `--nltk-subset` hypotheses and its 10k time is an *extrapolation*
(subset time x N / subset). Parity is checked on that subset, sentence by sentence, with the
same references (all N-1 others for Self-BLEU), and reported as the largest absolute difference.

Writes benchmarks/results/bleu_speed.json. `--smoke` runs a seconds-long version (200 sentences).
"""
from __future__ import annotations

import argparse
import json
import platform
import sys
import time
from pathlib import Path

import nltk
import torch
from nltk.translate.bleu_score import SmoothingFunction, sentence_bleu

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from textgan import hostinfo  # noqa: E402
from textgan.data import read_lines, tokenize  # noqa: E402
from textgan.metrics.bleu import bleu_scores, self_bleu_scores  # noqa: E402

ORDERS = (2, 3, 4, 5)


def timed(fn):
    t0 = time.perf_counter()
    out = fn()
    return out, time.perf_counter() - t0


def load(path: Path, limit: int) -> list[list[str]]:
    return [tokenize(s, "nltk") for s in read_lines(path)[: limit or None]]


def nltk_scores(hyps, refs_of, n: int) -> list[float]:
    """nltk sentence BLEU-n of each hypothesis i against refs_of(i)."""
    smooth, weights = SmoothingFunction().method1, (1 / n,) * n
    return [sentence_bleu(refs_of(i), h, weights=weights, smoothing_function=smooth) for i, h in enumerate(hyps)]


def bench_order(hyps, refs, n: int, subset: int) -> dict:
    """One n: our BLEU and Self-BLEU on everything, nltk on `subset` hypotheses, parity on those."""
    ours_b, ours_b_s = timed(lambda: bleu_scores(hyps, refs, max_n=n))
    ours_s, ours_s_s = timed(lambda: self_bleu_scores(hyps, max_n=n))
    k, total = min(subset, len(hyps)), len(hyps)
    ref_b, nltk_b_s = timed(lambda: nltk_scores(hyps[:k], lambda i: refs, n))
    ref_s, nltk_s_s = timed(lambda: nltk_scores(hyps[:k], lambda i: hyps[:i] + hyps[i + 1:], n))
    out = {}
    for name, ours, ours_t, ref, ref_t in (("bleu", ours_b, ours_b_s, ref_b, nltk_b_s),
                                           ("self_bleu", ours_s, ours_s_s, ref_s, nltk_s_s)):
        extrapolated = ref_t * total / k
        out[f"{name}{n}"] = {
            "value": sum(ours) / len(ours), "seconds": ours_t,
            "nltk_seconds_subset": ref_t, "nltk_seconds_extrapolated": extrapolated,
            "speedup_vs_nltk_extrapolated": extrapolated / ours_t,
            "parity_max_abs_diff": max(abs(a - b) for a, b in zip(ours[:k], ref)),
        }
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--data-root", default=str(REPO.parent / "shared" / "data"))
    ap.add_argument("--smoke", action="store_true", help="200 sentences and a 5-sentence nltk subset")
    ap.add_argument("--nltk-subset", type=int, default=20, help="hypotheses nltk is timed on")
    ap.add_argument("--out", default=str(REPO / "benchmarks" / "results" / "bleu_speed.json"))
    args = ap.parse_args()
    limit, subset = (200, 5) if args.smoke else (0, args.nltk_subset)
    root = Path(args.data_root)
    (hyps, refs), tok_s = timed(lambda: (load(root / "coco" / "test.txt", limit),
                                         load(root / "coco" / "train.txt", limit)))
    metrics = {}
    for n in ORDERS:
        metrics.update(bench_order(hyps, refs, n=n, subset=subset))
        for name in (f"bleu{n}", f"self_bleu{n}"):
            m = metrics[name]
            print(f"{name:12s} {m['value']:.6f}  ours {m['seconds']:7.3f} s  "
                  f"nltk ~{m['nltk_seconds_extrapolated']:9.1f} s (extrapolated)  "
                  f"x{m['speedup_vs_nltk_extrapolated']:8.0f}  max|diff| {m['parity_max_abs_diff']:.1e}", flush=True)
    result = {
        "what": "our exact BLEU-n (hypotheses vs all references) and leave-one-out Self-BLEU-n vs nltk "
                "sentence_bleu with SmoothingFunction().method1; nltk times are extrapolated from a subset",
        "hypotheses": len(hyps), "references": len(refs), "nltk_subset": min(subset, len(hyps)),
        "data": {"hypotheses": "coco/test.txt", "references": "coco/train.txt", "tokenizer": "nltk"},
        "tokenize_seconds": tok_s,
        "total_seconds_ours": sum(m["seconds"] for m in metrics.values()),
        "total_seconds_nltk_extrapolated": sum(m["nltk_seconds_extrapolated"] for m in metrics.values()),
        "parity_max_abs_diff": max(m["parity_max_abs_diff"] for m in metrics.values()),
        "metrics": metrics, "smoke": args.smoke,
        "machine": hostinfo.describe(),
        "python": platform.python_version(), "torch": torch.__version__, "nltk": nltk.__version__,
        "command": " ".join(["python"] + sys.argv),
    }
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(result, indent=2) + "\n")
    print(f"total ours {result['total_seconds_ours']:.2f} s, nltk ~{result['total_seconds_nltk_extrapolated']:.0f} s "
          f"(extrapolated), parity max|diff| {result['parity_max_abs_diff']:.1e}; wrote {out}")


if __name__ == "__main__":
    main()
