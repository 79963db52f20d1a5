"""`textgan score SAMPLES --refs TEST | --oracle PARAMS`: the metrics of sentences in a file,
against a test file with the tokenizer and BLEU protocols `textgan eval` uses, or, for files of
oracle token ids (the synthetic benchmark's format), NLL_oracle under the SeqGAN oracle.

Why: published rows come from several toolkits (and the training data itself is the row every
BLEU should be read against); scoring their files with one exact implementation is what makes
such rows comparable. A model is not needed, so model metrics (NLL_gen) are not computed.
"""
from __future__ import annotations

import json
import sys
from collections.abc import Sequence
from pathlib import Path

from textgan.data import DataError, read_lines, read_sentences
from textgan.errors import UserError
from textgan.extra_metrics import Extras, load_encoder_for, text_embedding_metrics
from textgan.metrics import bleu_metrics, copy_fraction_rows, unseen_fraction
from textgan.progress import Progress


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


def read_ids(path: str) -> list[list[int]]:
    """Rows of whitespace-separated token ids, all of one length (the oracle's sequences)."""
    rows = []
    for i, line in enumerate(read_lines(path), 1):
        try:
            rows.append([int(tok) for tok in line.split()])
        except ValueError:
            raise DataError(f"{path}: sentence {i} is not token ids ({line[:40]!r}); with --oracle the "
                            "file holds whitespace-separated integers, one sequence per line") from None
        if len(rows[-1]) != len(rows[0]):
            raise DataError(f"{path}: sentence {i} has {len(rows[-1])} ids, the first has {len(rows[0])}; "
                            "oracle sequences all have one length")
    return rows


def score_oracle(samples: list[list[int]], params: str, train: list[list[int]] | None = None) -> dict[str, float]:
    """NLL_oracle (mean per-token NLL under the oracle, as `textgan eval` computes it) of id rows."""
    import torch

    from textgan.oracle import OracleLSTM

    oracle = OracleLSTM.from_npz(params, seq_len=len(samples[0]))
    low, high = min(map(min, samples)), max(map(max, samples))
    if low < 0 or high >= oracle.vocab_size:
        raise DataError(f"token ids must lie in 0..{oracle.vocab_size - 1} for this oracle, got {low}..{high}")
    metrics = {"nll_oracle": oracle.nll(torch.tensor(samples, dtype=torch.long))}
    if train is not None:
        metrics["train_copy_frac"] = copy_fraction_rows(samples, train)
    return metrics


def check_oov(samples: list[list[str]], references: list[list[str]], path: str, max_oov: float) -> None:
    """Report the share of the samples' tokens that no reference holds; above `max_oov` an error."""
    known = {t for s in references for t in s}
    total = sum(map(len, samples))
    share = sum(t not in known for s in samples for t in s) / total if total else 0.0
    print(f"vocabulary: {share:.1%} of the tokens of {path} appear in no reference", file=sys.stderr)
    if share > max_oov:
        raise UserError(f"{share:.1%} of the tokens of {path} appear in no reference (limit --max-oov {max_oov:g}): "
                        "were they written with another tokenizer or corpus? Pass --max-oov 1 to score them anyway")


def score_command(samples: str, refs: str | None = None, train: str | None = None, second: str | None = None,
                  tokenizer: str = "whitespace", lowercase: bool = True, protocol: str = "exact",
                  orders: str | None = None, num: int | None = None, out: str | None = None,
                  oracle: str | None = None, force: bool = False, max_oov: float = 1.0,
                  interval_s: float = 30.0, fed: bool = False, mauve: bool = False, seed: int = 0) -> int:
    """Print "name value" lines and, with `out`, write them to a new JSON file (or replace it with
    `force`). The share of the samples' tokens no reference holds is reported; above `max_oov` it is
    an error (another tokenizer or corpus than the references'). `fed` / `mauve`: FED and MAUVE of
    the samples against the references as `textgan eval` computes them (halves split by `seed`).
    Progress on stderr: a bar on a terminal, else a line every `interval_s` seconds (0: none)."""
    if (refs is None) == (oracle is None):
        raise UserError("give --refs TEST (text: BLEU) or --oracle PARAMS.npz (token ids: NLL_oracle), one of the two")
    if oracle and (second or orders or protocol != "exact" or tokenizer != "whitespace" or not lowercase):
        raise UserError("--second, --orders, --protocol, --tokenizer and --keep-case apply to text; "
                        "leave them out with --oracle")
    order_list = parse_orders(orders or "2,3,4,5")
    if second and protocol == "exact":
        raise UserError("--second serves the texygen Self-BLEU; add --protocol texygen or both, or drop --second")
    if out and Path(out).exists() and not force:
        raise UserError(f"--out {out} already exists; choose a new file name, or add --force to replace it")
    extras = Extras(fed=fed, mauve=mauve)
    if oracle and extras.embeds:
        raise UserError("--fed and --mauve embed English sentences; --oracle files hold token ids: drop them")
    with Progress("score", interval_s) as progress:
        progress.phase("reading the files")
        if oracle:
            ids = read_ids(samples)[:num]
            train_ids = read_ids(train) if train else None
            progress.phase(f"NLL_oracle of {len(ids)} sequences")
            metrics = score_oracle(ids, oracle, train=train_ids)
        else:
            hyps = read_sentences(samples, tokenizer, lowercase)[:num]
            if protocol != "texygen" and len(hyps) < 2:
                raise UserError(f"{samples} has {len(hyps)} sentence; leave-one-out Self-BLEU needs at least 2")
            if protocol != "exact" and second is None:
                print("note: self_bleuN_texygen needs --second FILE (an independent sample set); left out",
                      file=sys.stderr)
            references = read_sentences(refs, tokenizer, lowercase)
            check_oov(hyps, references, samples, max_oov)
            load_encoder_for(extras, len(hyps), len(references), "cpu")  # a missing extra fails before BLEU
            train_sents = read_sentences(train, tokenizer, lowercase) if train else None
            second_sents = read_sentences(second, tokenizer, lowercase) if second else None
            progress.phase(f"BLEU and Self-BLEU of {len(hyps)} sentences against {len(references)}")
            metrics = score_text(hyps, references, order_list, protocol, train=train_sents, second=second_sents)
            num = len(hyps)
            if extras.embeds:
                progress.phase("FED / MAUVE: sentence embeddings")
                metrics.update(text_embedding_metrics(extras, [" ".join(h) for h in hyps],
                                                      [" ".join(r) for r in references], seed))
    for name, value in metrics.items():
        print(f"{name} {value:.6g}")
    if out:
        paths = {"samples": samples, "refs": refs, "oracle": oracle, "train": train, "second": second}
        settings = {**{k: v and str(Path(v).resolve()) for k, v in paths.items()}, "num": num,
                    **({} if oracle else {"tokenizer": tokenizer, "lowercase": lowercase, "protocol": protocol}),
                    **({"embedding_split_seed": seed} if extras.embeds else {})}
        try:
            with open(out, "w" if force else "x", encoding="utf-8") as f:  # "x": never replace a file made meanwhile
                f.write(json.dumps({"settings": settings, "metrics": metrics}, indent=2) + "\n")
        except OSError as err:
            raise UserError(f"cannot write --out {out} ({err.strerror or err}); give a path in an existing folder") from None
        print(f"wrote {out}", file=sys.stderr)
    return 0
