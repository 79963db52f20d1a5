"""MAUVE (textgan.metrics.mauve), where `textgan[mauve]` is installed: 1 for a set against itself,
near 1 for two draws of one distribution and near 0 for well-separated clouds; the very figure of
the reference library called directly at its defaults, and the same at every call; FED and MAUVE on
one embedding of each set. Without the extra: the one-line error naming it (the CLI's is in
tests/test_fed.py, beside FED's)."""
from __future__ import annotations

import importlib.util

import numpy as np
import pytest

from textgan.errors import UserError
from textgan.metrics.mauve import MauveSettings, num_buckets

HAVE_MAUVE = all(importlib.util.find_spec(m) is not None for m in ("mauve", "faiss"))
needs_mauve = pytest.mark.skipif(not HAVE_MAUVE, reason="textgan[mauve] (mauve-text, faiss-cpu) is not installed")


def cloud(n: int, d: int, seed: int, shift: float = 0.0) -> np.ndarray:
    """n points of one correlated Gaussian in d dimensions (the mixing matrix fixed), moved by `shift`."""
    mix = np.random.default_rng(100).normal(size=(d, d)) / np.sqrt(d)
    return np.random.default_rng(seed).normal(size=(n, d)) @ mix + shift


def test_buckets_are_the_papers_n_over_10():
    assert [num_buckets(n) for n in (5000, 4999, 400, 40, 3)] == [500, 500, 40, 4, 2]


@needs_mauve
def test_a_set_against_itself_is_one_and_separated_clouds_near_zero():
    """Identical sets give identical histograms, so every point of the divergence curve is exp(0):
    1 up to rounding (tolerance 1e-9), whatever order the points come in."""
    from textgan.metrics.mauve import mauve_between

    a = cloud(300, 16, seed=0)
    assert mauve_between(a, a) == pytest.approx(1.0, abs=1e-9)
    assert mauve_between(a, a[::-1].copy()) == pytest.approx(1.0, abs=1e-9)
    same = mauve_between(a, cloud(300, 16, seed=1))  # another draw of the same distribution
    far = mauve_between(a, cloud(300, 16, seed=1, shift=3.0))  # 3 units on every axis: no overlap
    assert same > 0.9 and far < 0.05, (same, far)


@needs_mauve
def test_the_figure_is_the_reference_librarys_at_its_defaults_and_reproducible():
    """Our fixed settings are compute_mauve's defaults ('auto' buckets = n/10, c = 5, seed 25): the
    same figure to the last bit, and the same again at a second call."""
    import mauve

    from textgan.metrics.mauve import mauve_between

    p, q = cloud(300, 16, seed=2), cloud(300, 16, seed=3, shift=0.4)  # overlapping: a figure in between
    ours = mauve_between(p, q)
    assert ours == mauve.compute_mauve(p_features=p, q_features=q).mauve
    assert 0.05 < ours < 0.95 and mauve_between(p, q) == ours
    harsher = MauveSettings(scaling=10.0)  # a setting passed through: a larger c makes every KL cost more
    assert mauve_between(p, q, harsher) == mauve.compute_mauve(p_features=p, q_features=q,
                                                               mauve_scaling_factor=10).mauve < ours


class CountedEncoder:
    """A stand-in for the sentence encoder (a third-party model): letter counts of each sentence,
    and how many sentences it embedded."""

    def __init__(self):
        self.embedded = 0

    def encode(self, sentences, **_):
        self.embedded += len(sentences)
        return np.array([[s.count(c) for c in "abcdefghijklmnopqrstuvwxyz "] for s in sentences], dtype=np.float32)


@needs_mauve
def test_fed_and_mauve_of_an_eval_embed_each_set_once(data_root, tmp_path, monkeypatch):
    """`textgan eval --fed --mauve`'s per-sample-set metrics: 3 n sentences embedded for both (the
    samples and two test halves), then only the n samples once the halves are cached."""
    from textgan import config
    from textgan.corpus import prepare
    from textgan.extra_metrics import Extras, sample_set_metrics
    from textgan.metrics.fed import fed_scores

    from conftest import FAST, REPO

    monkeypatch.setenv("TEXTGAN_CACHE_DIR", str(tmp_path))
    cfg = config.load(REPO / "configs" / "coco_mle.yaml", FAST)
    corpus = prepare(cfg.data, cfg.run.seed)
    ids = corpus.train.tokens[:60]  # (60, T): training sentences stand in for samples
    enc = CountedEncoder()
    extras = Extras(fed=True, mauve=True, encoder=enc)
    got = sample_set_metrics(extras, corpus, ids, seed=0, device="cpu")
    n = int(got["mauve_num"])
    assert n == got["fed_num"] == min(60, len(corpus.test_sentences) // 2) and enc.embedded == 3 * n
    assert got["mauve_buckets"] == num_buckets(n) and got["mauve_scaling"] == 5 and got["mauve_seed"] == 25
    assert 0 < got["mauve"] <= 1 and 0 < got["mauve_real_ceiling"] <= 1
    assert sample_set_metrics(extras, corpus, ids, seed=0, device="cpu") == got and enc.embedded == 4 * n
    samples = [" ".join(corpus.vocab.decode(row)) for row in ids.tolist()]
    alone = fed_scores(samples, [" ".join(s) for s in corpus.test_sentences], CountedEncoder(), seed=0)
    assert (alone.fed, alone.floor) == (got["fed"], got["fed_real_floor"])  # FED unchanged beside MAUVE


@pytest.mark.skipif(HAVE_MAUVE, reason="needs mauve-text missing (the CLI's test blocks it on an installed one)")
def test_without_the_extra_the_error_names_it():
    from textgan.metrics.mauve import require_mauve

    with pytest.raises(UserError, match=r"pip install 'textgan\[mauve\]'"):
        require_mauve()
