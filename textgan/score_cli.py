"""`textgan score SAMPLES --refs TEST`: the metrics of sentences in a text file, against a test
file, with the tokenizer and the BLEU protocols `textgan eval` uses.

Why: published rows come from several toolkits (and the training data itself is the row every
BLEU should be read against); scoring their files with one exact implementation is what makes
such rows comparable. A model is not needed, so model metrics (NLL_gen) are not computed.
"""
from __future__ import annotations

import json
import sys
from collections.abc import Sequence
from pathlib import Path

from textgan.data import read_lines, tokenize
from textgan.errors import UserError
from textgan.metrics import bleu_metrics, copy_fraction_rows, unseen_fraction


def score_text(samples: list[list[str]], references: list[list[str]], orders: Sequence[int],
               protocol: str = "exact", train: list[list[str]] | None = None,
               second: list[list[str]] | None = None) -> dict[str, float]:
    """Metrics of tokenized samples, named as `textgan eval` names them (protocol exact,
    texygen or both; self_bleuN_texygen only with the second sample set it needs)."""
    metrics: dict[str, float] = {}
    for proto in (("exact", "texygen") if protocol == "both" else (protocol,)):
        metrics.update(bleu_metrics(samples, references, orders, protocol=proto, second=second))
    if train is not None:
        metrics["train_copy_frac"] = copy_fraction_rows(samples, train)
    metrics["ref_unseen_frac"] = unseen_fraction(samples, references)
    metrics["mean_length"] = sum(map(len, samples)) / len(samples)
    return metrics


def parse_orders(text: str) -> list[int]:
    """'2,3,4,5' -> [2, 3, 4, 5]; every order a whole number >= 1."""
    try:
        orders = [int(part) for part in text.split(",")]
    except ValueError:
        raise UserError(f"--orders takes whole numbers separated by commas (e.g. 2,3,4,5), got {text!r}") from None
    if not orders or min(orders) < 1:
        raise UserError(f"--orders must all be >= 1, got {text!r}")
    return orders


def read_sentences(path: str, tokenizer: str, lowercase: bool) -> list[list[str]]:
    return [tokenize(line, tokenizer, lowercase) for line in read_lines(path)]


def score_command(samples: str, refs: str, train: str | None = None, second: str | None = None,
                  tokenizer: str = "whitespace", lowercase: bool = True, protocol: str = "exact",
                  orders: str = "2,3,4,5", num: int | None = None, out: str | None = None) -> int:
    """Print "name value" lines and, with `out`, write them to a new JSON file."""
    order_list = parse_orders(orders)
    if out and Path(out).exists():
        raise UserError(f"--out {out} already exists; choose a new file name")
    hyps = read_sentences(samples, tokenizer, lowercase)[:num]
    if protocol != "texygen" and len(hyps) < 2:
        raise UserError(f"{samples} has {len(hyps)} sentence; leave-one-out Self-BLEU needs at least 2")
    if protocol != "exact" and second is None:
        print("note: self_bleuN_texygen needs --second FILE (an independent sample set); left out", file=sys.stderr)
    metrics = score_text(hyps, read_sentences(refs, tokenizer, lowercase), order_list, protocol,
                         train=read_sentences(train, tokenizer, lowercase) if train else None,
                         second=read_sentences(second, tokenizer, lowercase) if second else None)
    for name, value in metrics.items():
        print(f"{name} {value:.6g}")
    if out:
        settings = {"samples": str(Path(samples).resolve()), "refs": str(Path(refs).resolve()),
                    "train": train and str(Path(train).resolve()), "second": second and str(Path(second).resolve()),
                    "num": len(hyps), "tokenizer": tokenizer, "lowercase": lowercase, "protocol": protocol}
        try:
            with open(out, "x", encoding="utf-8") as f:  # "x": never replace a file made meanwhile
                f.write(json.dumps({"settings": settings, "metrics": metrics}, indent=2) + "\n")
        except OSError as err:
            raise UserError(f"cannot write --out {out} ({err.strerror or err}); give a path in an existing folder") from None
        print(f"wrote {out}", file=sys.stderr)
    return 0
