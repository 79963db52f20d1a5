"""BLEU and Self-BLEU equal to nltk's `sentence_bleu` with `SmoothingFunction().method1`.

nltk rescans every reference for every hypothesis, so 10k x 10k COCO captions take over an
hour. Clipping only needs, per n-gram, the largest count in any reference, so we count the
references once; for leave-one-out Self-BLEU we also keep who holds that largest count and the
runner-up count; the counting is numpy sorts of integer n-gram codes (textgan.metrics.ngrams).
The closest-reference length comes from sorted distinct lengths (bisect).
The final arithmetic repeats nltk's float operations in nltk's order, so scores agree to the bit.

protocol="exact": every hypothesis against all references; Self-BLEU leave-one-out.
protocol="texygen": the incumbent's protocol, kept for comparing with published tables:
the first 200 hypotheses only, and Self-BLEU of the first 200 samples against a second set.
"""
from __future__ import annotations

import math
from bisect import bisect_left
from collections import Counter
from collections.abc import Hashable, Sequence

from textgan.metrics.ngrams import RefCounts, leave_one_out_numerators

PROTOCOLS = ("exact", "texygen")
TEXYGEN_SAMPLES = 200  # hypotheses the texygen protocol scores
EPSILON = 0.1  # nltk SmoothingFunction().method1: numerator given to a zero precision

Sentence = Sequence[Hashable]


def _check(protocol: str, max_n: int) -> None:
    if protocol not in PROTOCOLS:
        raise ValueError(f"unknown BLEU protocol {protocol!r}; choose one of {PROTOCOLS}")
    if not isinstance(max_n, int) or max_n < 1:
        raise ValueError(f"max_n must be an integer >= 1, got {max_n!r}")


class _Lengths:
    """Multiset of reference lengths answering nltk's closest-length query, optionally with
    one occurrence of a length left out (the hypothesis's own, for leave-one-out)."""

    def __init__(self, lengths: list[int]):
        self.count = Counter(lengths)
        self.values = sorted(self.count)

    def closest(self, hyp_len: int, exclude: int | None = None) -> int:
        """Length nearest to hyp_len, ties toward the shorter one, as nltk's closest_ref_length."""
        values, count = self.values, self.count

        def available(i: int) -> bool:
            return count[values[i]] - (values[i] == exclude) > 0

        start = bisect_left(values, hyp_len)
        up, down = start, start - 1
        while up < len(values) and not available(up):
            up += 1
        while down >= 0 and not available(down):
            down -= 1
        candidates = [values[i] for i in (down, up) if 0 <= i < len(values)]
        if not candidates:
            raise ValueError("no reference sentences to compare with")
        return min(candidates, key=lambda length: (abs(length - hyp_len), length))


def _score(numerators: list[int], hyp_len: int, ref_len: int, max_n: int) -> float:
    """nltk's corpus_bleu for one hypothesis with method1 from its clipped matches of orders
    1..max_n (numerators may hold higher orders, unused here), same float operations in the
    same order."""
    if numerators[0] == 0:  # nltk returns 0 before smoothing when no unigram matches
        return 0.0
    weight = 1 / max_n
    logs = []
    for n in range(1, max_n + 1):
        denominator = max(1, hyp_len - n + 1)  # a hypothesis shorter than n counts as 1 n-gram
        num = numerators[n - 1]
        logs.append(weight * math.log(num / denominator if num else EPSILON / denominator))
    if hyp_len > ref_len:
        bp = 1.0
    else:  # hyp_len == 0 cannot reach here: no unigram would match
        bp = math.exp(1 - ref_len / hyp_len)
    return bp * math.exp(math.fsum(logs))


def _mean(scores: list[float]) -> float:
    return math.fsum(scores) / len(scores)


def standard_error(scores: Sequence[float]) -> float:
    """Standard error of the mean of per-hypothesis scores (sample standard deviation / sqrt(n));
    NaN for fewer than two. Why: samples are i.i.d. draws, so two models' BLEU differ beyond
    sampling noise only by a few of these; Self-BLEU's leave-one-out scores are not independent,
    so it gets none."""
    if len(scores) < 2:
        return math.nan
    mean = _mean(list(scores))
    return math.sqrt(math.fsum((s - mean) ** 2 for s in scores) / (len(scores) - 1) / len(scores))


def _as_tuples(sentences, what: str) -> list[tuple]:
    out = [tuple(s) for s in sentences]
    if not out:
        raise ValueError(f"{what} is empty")
    return out


def bleu_scores(hypotheses: Sequence[Sentence], references: Sequence[Sentence], max_n: int = 4,
                protocol: str = "exact") -> list[float]:
    """nltk sentence BLEU-max_n (uniform weights, method1) of each hypothesis against all
    references; per sentence, so callers can check parity or spread, not only the mean."""
    return bleu_scores_by_order(hypotheses, references, [max_n], protocol)[max_n]


def bleu_scores_by_order(hypotheses: Sequence[Sentence], references: Sequence[Sentence], orders: Sequence[int],
                         protocol: str = "exact", counted: References | None = None) -> dict[int, list[float]]:
    """bleu_scores for each max_n in `orders`, the references and hypotheses counted once (for
    the highest order) instead of once per order; `counted`: `references` already counted (to
    at least the highest order), so they are not counted again."""
    top_n = max(orders, default=0)
    _check(protocol, top_n)
    hyps = _as_tuples(hypotheses, "hypotheses")
    if protocol == "texygen":
        hyps = hyps[:TEXYGEN_SAMPLES]
    refs = counted if counted is not None and counted.max_n >= top_n else References(references, top_n)
    return refs.scores(hyps, orders)


class References:
    """References counted once (each n-gram's largest count in any one of them, and their
    lengths), so hypotheses can be scored against them a block at a time: a streamed evaluation
    counts the test set once, not once per block."""

    def __init__(self, references: Sequence[Sentence], max_n: int):
        _check("exact", max_n)
        refs = _as_tuples(references, "references")
        self.max_n = max_n
        self.counts = RefCounts(refs, max_n)
        self.lengths = _Lengths([len(r) for r in refs])

    def scores(self, hypotheses: Sequence[Sentence], orders: Sequence[int]) -> dict[int, list[float]]:
        """nltk sentence BLEU-n of each hypothesis for each n in `orders` (each <= max_n)."""
        top_n = max(orders, default=0)
        if top_n > self.max_n:
            raise ValueError(f"references counted up to order {self.max_n}, asked for {top_n}")
        hyps = [tuple(h) for h in hypotheses]
        scores: dict[int, list[float]] = {n: [] for n in orders}
        for h, numerators in zip(hyps, self.counts.numerators(hyps, top_n).tolist()):
            ref_len = self.lengths.closest(len(h))
            for n in orders:
                scores[n].append(_score(numerators, len(h), ref_len, n))
        return scores


def bleu(hypotheses: Sequence[Sentence], references: Sequence[Sentence], max_n: int = 4,
         protocol: str = "exact") -> float:
    """Mean over hypotheses of nltk sentence BLEU-max_n (uniform weights, method1), each
    hypothesis scored against all references."""
    return _mean(bleu_scores(hypotheses, references, max_n=max_n, protocol=protocol))


def self_bleu(samples: Sequence[Sentence], max_n: int = 4, protocol: str = "exact",
              second: Sequence[Sentence] | None = None) -> float:
    """Diversity: mean BLEU of each sample against the others (lower is more diverse).

    exact: leave-one-out by position, so a duplicate at another position still counts.
    texygen: the first 200 samples against all of `second`, an independent sample set.
    """
    _check(protocol, max_n)
    if protocol == "texygen":
        if second is None:
            raise ValueError("self_bleu with protocol='texygen' needs a second sample set `second`")
        return bleu(samples, second, max_n=max_n, protocol="texygen")
    if second is not None:
        raise ValueError("`second` is only used by protocol='texygen'")
    return _mean(self_bleu_scores(samples, max_n=max_n))


def self_bleu_scores(samples: Sequence[Sentence], max_n: int = 4) -> list[float]:
    """Leave-one-out sentence BLEU of each sample against all the others (by position)."""
    return self_bleu_scores_by_order(samples, [max_n])[max_n]


def self_bleu_scores_by_order(samples: Sequence[Sentence], orders: Sequence[int]) -> dict[int, list[float]]:
    """self_bleu_scores for each max_n in `orders`, the samples counted once."""
    top_n = max(orders, default=0)
    _check("exact", top_n)
    sents = _as_tuples(samples, "samples")
    if len(sents) < 2:
        raise ValueError("self_bleu needs at least 2 samples: with one there are no references")
    lengths = _Lengths([len(s) for s in sents])
    scores: dict[int, list[float]] = {n: [] for n in orders}
    for s, numerators in zip(sents, leave_one_out_numerators(sents, top_n).tolist()):
        ref_len = lengths.closest(len(s), exclude=len(s))
        for n in orders:
            scores[n].append(_score(numerators, len(s), ref_len, n))
    return scores


def bleu_metrics(samples: Sequence[Sentence], references: Sequence[Sentence], orders: Sequence[int],
                 protocol: str = "exact", second: Sequence[Sentence] | None = None,
                 counted: References | None = None) -> dict[str, float]:
    """BLEU-n and Self-BLEU-n for each n in `orders`, named with their protocol as every report
    and TensorBoard tag names them: bleuN_exact (with its standard error bleuN_exact_se) and
    self_bleuN_loo, or bleuN_texygen (and bleuN_texygen_se) and (given the second sample set it
    needs) self_bleuN_texygen. `counted`: `references` already counted (bleu_scores_by_order)."""
    _check(protocol, max(orders, default=1))
    if not orders:
        return {}
    scores = bleu_scores_by_order(samples, references, orders, protocol, counted=counted)
    if protocol == "exact":
        own = {n: _mean(s) for n, s in self_bleu_scores_by_order(samples, orders).items()}
    elif second is not None:
        own = {n: _mean(s) for n, s in bleu_scores_by_order(samples, second, orders, protocol).items()}
    else:
        own = {}
    self_name = "loo" if protocol == "exact" else "texygen"
    out: dict[str, float] = {}
    for n in orders:
        out[f"bleu{n}_{protocol}"] = _mean(scores[n])
        out[f"bleu{n}_{protocol}_se"] = standard_error(scores[n])
        if n in own:
            out[f"self_bleu{n}_{self_name}"] = own[n]
    return out
