"""Exposure bias on text with a real-data LM as the reference (textgan.metrics.exposure_lm): the LM
against itself has zero KL and its own NLL, the KL at every prefix equals a step-by-step float64
computation, the per-position means count only the sentences that reach a position, and
`textgan eval --exposure-bias` on a text run writes the curves."""
from __future__ import annotations

import csv
import json

import torch

from conftest import FAST, QUICK_EVAL, REPO, run_cli
from test_exposure import SPECIAL, V, model_step_dists, tiny_generator
from textgan.data import Encoded
from textgan.metrics.exposure_lm import _masked_mean_se, prefix_scores
from textgan.metrics.lm_score import lm_nll

TOKENS = torch.tensor([[4, 5, 6, 5], [6, 6, 4, 4], [5, 4, 4, 6]])  # (N, T) ids past the specials
LENGTHS = torch.tensor([4, 2, 3])


def test_the_lm_against_itself_has_zero_kl_and_scores_its_own_nll():
    lm = tiny_generator(seed=1)
    scores = prefix_scores(lm, lm, TOKENS, LENGTHS, draws=1, temperature=1.0, rng=None)
    assert scores.kl.abs().max() < 1e-6
    assert scores.mask.tolist() == [[True] * 4, [True, True, False, False], [True, True, True, False]]
    per_token = float(scores.nll[scores.mask].mean())
    assert abs(per_token - lm_nll(lm, Encoded(TOKENS, LENGTHS, 0, 0))) < 1e-5


def test_kl_at_every_prefix_matches_a_step_by_step_float64_sum():
    lm, gen = tiny_generator(seed=1), tiny_generator(seed=2)
    scores = prefix_scores(lm, gen, TOKENS, LENGTHS, draws=1, temperature=0.7, rng=None)
    z = torch.zeros(2)
    for n in range(TOKENS.shape[0]):
        for t in range(int(LENGTHS[n])):  # past a sentence's end nothing is scored (0)
            prefix = tuple(int(v) - SPECIAL for v in TOKENS[n, :t])
            _, log_r = model_step_dists(lm, prefix, z)
            _, log_m = model_step_dists(gen, prefix, z, temperature=0.7)
            kl = float((log_r.exp() * (log_r - log_m)).sum())
            assert abs(float(scores.kl[n, t]) - kl) < 1e-5, (n, t)
            assert abs(float(scores.nll[n, t]) + float(log_r[TOKENS[n, t] - SPECIAL])) < 1e-5
    assert V == 3  # the tokens above stay inside the tiny vocabulary
    assert not scores.kl[~scores.mask].any() and not scores.nll[~scores.mask].any()


def test_scores_do_not_depend_on_how_the_sentences_are_chunked():
    """Sentences go through longest first, each chunk cut to its longest: one sentence a chunk
    gives the figures of one chunk for all."""
    lm, gen = tiny_generator(seed=1), tiny_generator(seed=2)
    whole = prefix_scores(lm, gen, TOKENS, LENGTHS, draws=1, temperature=1.0, rng=None)
    alone = prefix_scores(lm, gen, TOKENS, LENGTHS, draws=1, temperature=1.0, rng=None, budget=1)
    assert torch.equal(whole.mask, alone.mask)
    assert torch.allclose(whole.kl, alone.kl, atol=1e-6) and torch.allclose(whole.nll, alone.nll, atol=1e-6)
    assert whole.kl[whole.mask].min() > 0  # two different models: every scored prefix differs


def test_position_means_count_only_the_sentences_that_reach_the_position():
    x = torch.tensor([[1.0, 2.0, 3.0], [3.0, 4.0, 0.0], [5.0, 0.0, 0.0]], dtype=torch.float64)
    mask = torch.tensor([[True, True, True], [True, True, False], [True, False, False]])
    mean, se, count = _masked_mean_se(x, mask)
    assert count == [3, 2, 1]
    assert mean == [3.0, 3.0, 3.0]
    assert abs(se[0] - (4.0 / 3) ** 0.5) < 1e-12 and abs(se[1] - 1.0) < 1e-12 and se[2] == 0.0
    empty, _, none = _masked_mean_se(x, torch.zeros_like(mask))
    assert none == [0, 0, 0] and all(v != v for v in empty)  # nan where no sentence reaches t


def test_eval_exposure_bias_on_a_text_run_writes_the_lm_estimate(data_root, tmp_path):
    runs = tmp_path / "runs"
    res = run_cli("train", str(REPO / "configs" / "coco_mle.yaml"), *FAST, *QUICK_EVAL, f"log.dir={runs}",
                  "mle.epochs=1")
    assert res.returncode == 0, res.stderr
    env = {"TEXTGAN_LM_CACHE": str(tmp_path / "lm")}
    res = run_cli("eval", str(runs / "coco_mle"), "--exposure-bias", "--num", "30", "--out", str(tmp_path / "ev"),
                  env=env)
    assert res.returncode == 0, res.stderr
    assert "estimated with a real-data LM" in res.stderr
    metrics = json.loads((tmp_path / "ev" / "metrics.json").read_text())["metrics"]
    assert metrics["eb_lm_kl_data_prefix"] > 0 and metrics["eb_lm_kl_model_prefix"] > 0
    assert abs(metrics["eb_lm_ratio"] - metrics["eb_lm_kl_model_prefix"] / metrics["eb_lm_kl_data_prefix"]) < 1e-9
    assert 0 < metrics["eb_lm_reference_nll"] < 20
    rows = list(csv.DictReader(open(tmp_path / "ev" / "exposure_bias.csv", newline="")))
    assert int(rows[0]["count_data"]) == 30 and int(rows[0]["count_model"]) == 30
    counts = [int(r["count_data"]) for r in rows]
    assert counts == sorted(counts, reverse=True)  # sentences end, none start late
    assert (tmp_path / "ev" / "exposure_bias.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert list((tmp_path / "lm").glob("*.pt"))  # the reference LM is cached for the next evaluation
