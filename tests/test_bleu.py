"""Our fast BLEU and Self-BLEU against the trusted reference, nltk's sentence_bleu with
SmoothingFunction().method1, to 1e-9: random sentences over a tiny vocabulary (so n-grams
repeat and clipping matters), real COCO captions, and the edge cases where nltk has quirks
(hypotheses shorter than n, no unigram match, empty hypotheses)."""
from __future__ import annotations

import math
import random
import statistics

import pytest
from nltk.translate.bleu_score import SmoothingFunction, sentence_bleu

from textgan.data import read_lines, tokenize
from textgan.metrics.bleu import (TEXYGEN_SAMPLES, bleu, bleu_metrics, bleu_scores, self_bleu, self_bleu_scores,
                                  standard_error)

ORDERS = [2, 3, 4, 5]
SMOOTH = SmoothingFunction().method1


def nltk_bleu(hyps, refs, n: int) -> float:
    """Mean over hypotheses of nltk sentence BLEU-n against all references."""
    weights = (1 / n,) * n
    return math.fsum(sentence_bleu(refs, h, weights=weights, smoothing_function=SMOOTH)
                     for h in hyps) / len(hyps)


def nltk_self_bleu(samples, n: int) -> float:
    """Mean over i of nltk sentence BLEU-n of samples[i] against all other samples."""
    weights = (1 / n,) * n
    return math.fsum(sentence_bleu(samples[:i] + samples[i + 1:], s, weights=weights, smoothing_function=SMOOTH)
                     for i, s in enumerate(samples)) / len(samples)


def random_sentences(num: int, seed: int, vocab: int = 6, max_len: int = 12) -> list[list[str]]:
    rng = random.Random(seed)
    words = [chr(ord("a") + i) for i in range(vocab)]
    return [[rng.choice(words) for _ in range(rng.randint(0, max_len))] for _ in range(num)]


@pytest.fixture(scope="module")
def coco(data_root):
    """First 150 COCO test captions (hypotheses) and first 300 train captions (references)."""
    read = lambda name, k: [tokenize(s, "nltk") for s in read_lines(data_root / "coco" / name)[:k]]  # noqa: E731
    return read("test.txt", 150), read("train.txt", 300)


@pytest.mark.parametrize("n", ORDERS)
def test_bleu_random_matches_nltk(n):
    hyps, refs = random_sentences(60, seed=n), random_sentences(40, seed=100 + n)
    assert bleu(hyps, refs, max_n=n) == pytest.approx(nltk_bleu(hyps, refs, n), abs=1e-9)


@pytest.mark.parametrize("n", ORDERS)
def test_self_bleu_random_matches_nltk(n):
    samples = random_sentences(50, seed=200 + n)
    assert self_bleu(samples, max_n=n) == pytest.approx(nltk_self_bleu(samples, n), abs=1e-9)


@pytest.mark.parametrize("n", ORDERS)
def test_per_sentence_scores_match_nltk(n):
    """Not only the means: every hypothesis's score, so errors cannot cancel out."""
    hyps, refs = random_sentences(30, seed=300 + n), random_sentences(20, seed=400 + n)
    w = (1 / n,) * n
    expected = [sentence_bleu(refs, h, weights=w, smoothing_function=SMOOTH) for h in hyps]
    assert bleu_scores(hyps, refs, max_n=n) == pytest.approx(expected, abs=1e-9)
    expected = [sentence_bleu(hyps[:i] + hyps[i + 1:], h, weights=w, smoothing_function=SMOOTH)
                for i, h in enumerate(hyps)]
    assert self_bleu_scores(hyps, max_n=n) == pytest.approx(expected, abs=1e-9)


@pytest.mark.parametrize("n", ORDERS)
def test_bleu_coco_matches_nltk(coco, n):
    hyps, refs = coco
    ours = bleu(hyps, refs, max_n=n)
    assert 0.0 < ours < 1.0
    assert ours == pytest.approx(nltk_bleu(hyps, refs, n), abs=1e-9)


@pytest.mark.parametrize("n", ORDERS)
def test_self_bleu_coco_matches_nltk(coco, n):
    samples = coco[0][:100]
    assert self_bleu(samples, max_n=n) == pytest.approx(nltk_self_bleu(samples, n), abs=1e-9)


@pytest.mark.parametrize("n", ORDERS)
@pytest.mark.parametrize("hyp", [[], ["a"], ["a", "b"], ["b", "a", "c"], ["z", "y"], ["a", "a", "a", "a", "a", "a"]],
                         ids=["empty", "len1", "len2", "len3", "no_unigram_match", "repeats"])
def test_edge_hypotheses_match_nltk(hyp, n):
    """Shorter than n: nltk counts one (smoothed) n-gram; no unigram match or empty: exactly 0."""
    refs = [["a", "b", "c", "d"], ["a", "a", "b"], ["c", "a", "b", "a", "b", "c", "d"]]
    expected = sentence_bleu(refs, hyp, weights=(1 / n,) * n, smoothing_function=SMOOTH)
    assert bleu([hyp], refs, max_n=n) == pytest.approx(expected, abs=1e-9)
    if not hyp or hyp[0] == "z":
        assert bleu([hyp], refs, max_n=n) == 0.0


@pytest.mark.parametrize("n", ORDERS)
def test_self_bleu_with_duplicates_and_empty(n):
    """A duplicate at another position still counts as a reference (leave-one-out by position)."""
    samples = [["a", "b", "c", "d"], ["a", "b", "c", "d"], ["a", "b", "c", "d"], ["d", "c"], [], ["a", "b"]]
    assert self_bleu(samples, max_n=n) == pytest.approx(nltk_self_bleu(samples, n), abs=1e-9)


@pytest.mark.parametrize("n", ORDERS)
def test_self_bleu_two_sentences(n):
    samples = [["a", "b", "c", "a", "b"], ["a", "b", "c"]]
    assert self_bleu(samples, max_n=n) == pytest.approx(nltk_self_bleu(samples, n), abs=1e-9)


@pytest.mark.parametrize("n", [2, 4])
def test_standard_error_is_the_spread_of_nltk_scores(n):
    """bleuN_exact_se is stdev / sqrt(N) of the nltk per-sentence scores; under the texygen
    protocol, of the first 200 only, so it is larger than the exact protocol's on the same set."""
    hyps, refs = random_sentences(260, seed=500 + n), random_sentences(30, seed=600 + n)
    w = (1 / n,) * n
    scores = [sentence_bleu(refs, h, weights=w, smoothing_function=SMOOTH) for h in hyps]
    m = bleu_metrics(hyps, refs, [n]) | bleu_metrics(hyps, refs, [n], protocol="texygen")
    assert m[f"bleu{n}_exact_se"] == pytest.approx(statistics.stdev(scores) / math.sqrt(260), abs=1e-9)
    first = scores[:TEXYGEN_SAMPLES]
    assert m[f"bleu{n}_texygen_se"] == pytest.approx(statistics.stdev(first) / math.sqrt(200), abs=1e-9)
    assert m[f"bleu{n}_texygen_se"] > m[f"bleu{n}_exact_se"] > 0
    assert math.isnan(standard_error([0.5])) and standard_error([0.3, 0.3]) == 0.0


def test_identical_set_scores_one():
    samples = [["x", "y", "z", "w", "v"]] * 3
    assert self_bleu(samples, max_n=4) == pytest.approx(1.0, abs=1e-12)


@pytest.mark.parametrize("n", ORDERS)
def test_texygen_protocol_uses_first_200(n):
    hyps, refs, second = random_sentences(260, seed=7), random_sentences(30, seed=8), random_sentences(40, seed=9)
    first = hyps[:TEXYGEN_SAMPLES]
    assert TEXYGEN_SAMPLES == 200
    assert bleu(hyps, refs, max_n=n, protocol="texygen") == pytest.approx(nltk_bleu(first, refs, n), abs=1e-9)
    assert self_bleu(hyps, max_n=n, protocol="texygen", second=second) == pytest.approx(
        nltk_bleu(first, second, n), abs=1e-9)


def test_bad_inputs_raise():
    with pytest.raises(ValueError, match="at least 2"):
        self_bleu([["a", "b"]], max_n=2)
    with pytest.raises(ValueError, match="references is empty"):
        bleu([["a"]], [], max_n=2)
    with pytest.raises(ValueError, match="hypotheses is empty"):
        bleu([], [["a"]], max_n=2)
    with pytest.raises(ValueError, match="second"):
        self_bleu([["a"], ["b"]], max_n=2, protocol="texygen")
    with pytest.raises(ValueError, match="only used"):
        self_bleu([["a"], ["b"]], max_n=2, second=[["a"]])
    with pytest.raises(ValueError, match="unknown BLEU protocol"):
        bleu([["a"]], [["a"]], protocol="corpus")
    with pytest.raises(ValueError, match="max_n"):
        bleu([["a"]], [["a"]], max_n=0)


def _counter_grams(sent, top_n: int):
    from collections import Counter

    return Counter(tuple(sent[i:i + n]) for n in range(1, top_n + 1) for i in range(len(sent) - n + 1))


@pytest.mark.parametrize("seed", [0, 1])
def test_vectorised_clipped_matches_are_the_counter_ones(seed):
    """textgan.metrics.ngrams' integer matches, against each hypothesis's Counter clipped by the
    largest count in one reference (or, leave-one-out, in one other sample), exactly: duplicates,
    empty sentences and words no reference holds included."""
    from textgan.metrics.ngrams import RefCounts, leave_one_out_numerators

    refs = random_sentences(40, seed, vocab=4) + [[]]
    hyps = random_sentences(60, seed + 7, vocab=5) + [[], ["z", "a"]]
    hyps += hyps[:5]  # duplicates
    top_n = 5
    best: dict = {}
    for ref in refs:
        for gram, c in _counter_grams(ref, top_n).items():
            best[gram] = max(best.get(gram, 0), c)
    counts = [_counter_grams(h, top_n) for h in hyps]
    expected = [[sum(min(c, best.get(g, 0)) for g, c in cnt.items() if len(g) == n) for n in range(1, top_n + 1)]
                for cnt in counts]
    assert RefCounts(refs, top_n).numerators(hyps, top_n).tolist() == expected
    loo = []
    for i, cnt in enumerate(counts):
        others = [other for j, other in enumerate(counts) if j != i]
        loo.append([sum(min(c, max((o.get(g, 0) for o in others), default=0)) for g, c in cnt.items() if len(g) == n)
                    for n in range(1, top_n + 1)])
    assert leave_one_out_numerators(hyps, top_n).tolist() == loo
