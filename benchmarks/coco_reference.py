"""Reference rows for the COCO BLEU table (part of `make bench-quality`): what real captions score.

Why: BLEU against the benchmark's test captions can only be read beside what the data itself
scores. The test captions leave out whole scenes that the training captions describe (no test
caption says "toilet"), so a caption mentioning one loses BLEU whatever its quality, and a
generator that stops mentioning such scenes gains BLEU without modelling the data better.
Rows: all training captions; the training captions that use only tokens some test caption uses;
any sample files given (`--samples NAME=FILE`, e.g. from `textgan sample --out`). Each is scored
with `textgan score`'s metrics under both protocols, with `ref_unseen_frac`, the share of its
sentences holding a token no test caption holds. Also lists the most frequent such tokens.

Also how close a validation split of the training file (`data.valid_frac` 0.1, `valid_seed` 0) is
to the training captions it leaves, beside the test captions: BLEU-n of each against that
remainder. The training file holds several captions per image, so held-out training captions
resemble the remainder far more than test captions (other images) do.

Writes benchmarks/results/coco_reference.json; `--smoke` scores the tiny corpus instead.
"""
from __future__ import annotations

import argparse
import json
import sys
import time
from collections import Counter
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from textgan import hostinfo  # noqa: E402
from textgan.corpus import split_off  # noqa: E402
from textgan.data import read_sentences  # noqa: E402
from textgan.metrics import bleu  # noqa: E402
from textgan.score_cli import score_text  # noqa: E402

ORDERS = (2, 3, 4, 5)


def split_bleu(sents: list[list[str]], test: list[list[str]], known: set[str]) -> dict:
    """BLEU-n of the sentences with and without a token no test caption holds, apart: whether a
    BLEU change comes from better sentences or from fewer of the scenes the test set lacks."""
    out = {}
    for part, keep in (("seen", True), ("unseen", False)):
        group = [s for s in sents if all(tok in known for tok in s) == keep]
        out[part] = {"sentences": len(group), **({f"bleu{n}_exact": bleu(group, test, max_n=n) for n in ORDERS}
                                                  if group else {})}
    return out


def validation_overlap(train: list[list[str]], test: list[list[str]], frac: float = 0.1, seed: int = 0) -> dict:
    """BLEU-n against the rest of the training file of its `data.valid_frac` split and of the test
    captions: how much easier a validation split of the training file is than the test set."""
    kept, held = split_off(train, frac, seed)
    return {"valid_frac": frac, "valid_seed": seed, "remainder_sentences": len(kept),
            **{name: {"sentences": len(sents), **{f"bleu{n}_exact": bleu(sents, kept, max_n=n) for n in ORDERS}}
               for name, sents in (("held_out", held), ("test", test))}}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--data-root", default=str(REPO.parent / "shared" / "data"))
    ap.add_argument("--samples", nargs="*", default=[], metavar="NAME=FILE", help="sample files to score too")
    ap.add_argument("--out", default=str(REPO / "benchmarks" / "results" / "coco_reference.json"))
    ap.add_argument("--smoke", action="store_true", help="the tiny corpus: seconds, for CI")
    args = ap.parse_args()
    corpus = Path(args.data_root) / ("tiny" if args.smoke else "coco")
    train = read_sentences(str(corpus / "train.txt"), "nltk", True)  # as configs/coco_*.yaml tokenize
    test = read_sentences(str(corpus / "test.txt"), "nltk", True)
    known = {tok for sent in test for tok in sent}
    rows = {"train": train, "train_seen_only": [s for s in train if all(tok in known for tok in s)]}
    for spec in args.samples:
        name, _, path = spec.partition("=")
        if not path:
            ap.error(f"--samples takes NAME=FILE, got {spec!r}")
        rows[name] = read_sentences(path, "nltk", True)
    result = {"machine": hostinfo.describe(), "corpus": str(corpus), "tokenizer": "nltk, lowercased",
              "test_sentences": len(test), "rows": {}}
    for name, sents in rows.items():
        t0 = time.perf_counter()
        metrics = score_text(sents, test, ORDERS, protocol="both", train=None if name.startswith("train") else train)
        split = split_bleu(sents, test, known)
        result["rows"][name] = {"sentences": len(sents), "seconds": round(time.perf_counter() - t0, 1), **metrics,
                                "split": split}
        print(name, len(sents), " ".join(f"{k}={v:.4f}" for k, v in metrics.items()), flush=True)
        for part, values in split.items():
            print(f"  {part}:", " ".join(f"{k}={v:.4f}" for k, v in values.items()), flush=True)
    result["validation_split"] = overlap = validation_overlap(train, test)
    for name in ("held_out", "test"):
        print(f"{name} vs the training remainder:", " ".join(f"{k}={v:.4f}" for k, v in overlap[name].items()))
    unseen = Counter(tok for sent in train for tok in sent if tok not in known)
    result["train_tokens_never_in_test"] = {"types": len(unseen), "most_frequent": dict(unseen.most_common(20))}
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps(result, indent=2) + "\n", encoding="utf-8")
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
