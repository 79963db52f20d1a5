"""LM and reverse-LM scores (textgan.metrics.lm_score): the LM score of the training data is the
LM's training NLL, an LM of the training data itself scores the test set as the real LM does,
the real-data LM cache is reused only for the same corpus and recipe, and `textgan eval --lm-score`."""
from __future__ import annotations

import dataclasses
import json
import math

import pytest
import torch

from conftest import FAST, run_cli, tiny_mle_run
from textgan.data import Encoded
from textgan.metrics.lm_score import LM_RECIPE, cache_key, lm_nll, lm_scores, real_lm, train_lm

QUICK = tuple(o for o in LM_RECIPE if not o.startswith("mle.epochs")) + ("mle.epochs=1",)  # one epoch: seconds


@pytest.fixture(scope="module")
def corpus(data_root):
    from textgan import config
    from textgan.corpus import prepare

    cfg = config.load(None, [o for o in FAST if not o.startswith("data.root")] + [f"data.root={data_root}"])
    return prepare(cfg.data, cfg.run.seed)


def test_lm_score_of_the_training_data_is_the_lms_training_nll(corpus):
    """Scored by nll_gen (the evaluation path) and by the MLE trainer's own loss: one number; and the
    LM has learnt something (below the uniform distribution's log V)."""
    lm = train_lm(corpus, QUICK)
    assert lm_nll(lm.generator, corpus.train) == pytest.approx(lm.train_nll, rel=1e-5)
    assert lm.train_nll < math.log(len(corpus.vocab)) - 0.3
    assert lm.num_train == corpus.train.tokens.shape[0]


def test_lm_scores_of_the_training_set_itself(corpus, tmp_path):
    """Samples that are the training set: the LM score is the real LM's training NLL, and the LM
    trained on them is the real LM (same recipe, seed and data), so the reverse score is the reference."""
    res = lm_scores(corpus, corpus.train.tokens, recipe=QUICK, cache=tmp_path)
    real = real_lm(corpus, QUICK, cache=tmp_path)
    assert not res.cached and real.cached  # the second call read what the first wrote
    assert res.lm_score == pytest.approx(real.train_nll, rel=1e-5)
    assert res.reverse_lm_score == pytest.approx(res.real_reference, rel=1e-6)
    assert res.real_reference > res.lm_score  # held-out sentences cost more than training ones


def test_real_lm_cache_is_keyed_by_corpus_and_recipe(corpus, tmp_path):
    first = real_lm(corpus, QUICK, cache=tmp_path)
    (path,) = tmp_path.glob("*.pt")
    assert not first.cached and path.stem == cache_key(corpus, QUICK)
    again = real_lm(corpus, QUICK, cache=tmp_path)
    assert again.cached and lm_nll(again.generator, corpus.test) == pytest.approx(lm_nll(first.generator, corpus.test))
    fewer = dataclasses.replace(corpus, train=Encoded(corpus.train.tokens[:-1], corpus.train.lengths[:-1], 0, 0))
    other_recipe = tuple(o.replace("mle.lr=0.01", "mle.lr=0.004") for o in QUICK)
    keys = {cache_key(corpus, QUICK), cache_key(fewer, QUICK), cache_key(corpus, other_recipe), cache_key(corpus)}
    assert len(keys) == 4
    path.write_bytes(b"not a checkpoint")
    redone = real_lm(corpus, QUICK, cache=tmp_path)  # a damaged cache file is trained again, with a warning
    assert not redone.cached and torch.load(path, weights_only=True)["num_train"] == corpus.train.tokens.shape[0]


def test_a_cache_that_cannot_be_written_is_said_and_the_lm_still_returned(corpus, tmp_path, capsys):
    blocked = tmp_path / "a_file"  # a file where the cache folder would be: nothing can be written under it
    blocked.write_text("keep me\n")
    lm = real_lm(corpus, QUICK, cache=blocked)
    assert not lm.cached and lm.train_nll > 0
    assert "could not cache the real-data LM" in capsys.readouterr().err
    assert blocked.read_text() == "keep me\n" and sorted(p.name for p in tmp_path.iterdir()) == ["a_file"]


@pytest.fixture(scope="module")
def text_run(data_root, tmp_path_factory):
    return tiny_mle_run(tmp_path_factory.mktemp("runs"))


def test_eval_lm_score_prints_saves_and_reuses_the_cached_lm(text_run, tmp_path):
    env = {"TEXTGAN_LM_CACHE": str(tmp_path / "cache")}
    res = run_cli("eval", str(text_run), "--lm-score", "--num", "40", "--out", str(tmp_path / "a"), env=env)
    assert res.returncode == 0, res.stderr
    printed = dict(line.split() for line in res.stdout.splitlines())
    saved = json.loads((tmp_path / "a" / "metrics.json").read_text())["metrics"]
    for name in ("lm_score", "reverse_lm_score", "lm_real_reference"):
        assert float(printed[name]) == pytest.approx(saved[name], rel=1e-5) and saved[name] > 0
    assert "trained and cached" in res.stderr and "warning: reverse_lm_score's LM saw 40 samples" in res.stderr
    assert len(list((tmp_path / "cache").glob("*.pt"))) == 1
    again = run_cli("eval", str(text_run), "--lm-score", "--num", "40", "--out", str(tmp_path / "b"), env=env)
    assert again.returncode == 0 and "from the cache" in again.stderr
    assert json.loads((tmp_path / "b" / "metrics.json").read_text())["metrics"]["lm_score"] == saved["lm_score"]


def test_sweep_with_lm_score_has_its_columns_and_curves_plot_them_against_temperature(text_run, tmp_path):
    """Each temperature's row scores its own samples; `textgan curves --x temperature --y lm_score`
    compares two sweeps at the same temperatures (lower is better)."""
    import csv

    env = {"TEXTGAN_LM_CACHE": str(tmp_path / "cache")}
    for name, seed in (("base", "0"), ("other", "3")):
        res = run_cli("eval", str(text_run), "--sweep-temperature", "0.7:1.3:2", "--lm-score", "--num", "40",
                      "--seed", seed, "--out", str(tmp_path / name), env=env)
        assert res.returncode == 0, res.stderr
    rows = list(csv.DictReader(open(tmp_path / "base" / "sweep.csv", newline="")))
    assert len(rows) == 2
    for col in ("lm_score", "reverse_lm_score", "lm_real_reference"):
        assert all(math.isfinite(float(r[col])) for r in rows)
    assert rows[0]["lm_score"] != rows[1]["lm_score"]  # colder samples score differently
    assert rows[0]["lm_real_reference"] == rows[1]["lm_real_reference"]  # one real LM, one test set
    res = run_cli("curves", str(tmp_path / "base" / "sweep.csv"), str(tmp_path / "other" / "sweep.csv"),
                  "--x", "temperature", "--y", "lm_score", "--out", str(tmp_path / "cmp"))
    assert res.returncode == 0, res.stderr
    assert "lower is better" in res.stdout
    other = list(csv.DictReader(open(tmp_path / "other" / "sweep.csv", newline="")))
    gaps = list(csv.DictReader(open(tmp_path / "cmp" / "curves.csv", newline="")))
    for gap, base, mine in zip(gaps, rows, other):
        assert float(gap["gap"]) == pytest.approx(float(mine["lm_score"]) - float(base["lm_score"]), abs=1e-9)
    assert (tmp_path / "cmp" / "curves.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
