"""accel changes speed, never results: one seed gives the same short training (MLE batches, then
adversarial steps with Gumbel noise and discriminator dropout) with run.accel=auto and off, with
and without a C compiler, on 1 or 2 threads.

Bitwise where the arithmetic is the same: every run.accel=off run, compiler or not (plain torch
ops, and the noise and dropout masks from textgan.philox's numpy definition, which the C kernel
reproduces bit for bit: tests/test_accel.py), and the noise itself in every run. Within TOL where
the arithmetic differs (the C kernels and accel's chunked and blockwise torch ops sum in another
order than torch's plain ops, and some kernels split sums over threads): float32 rounding, ~1e-7
relative per op, grown over a few Adam steps.
"""
from __future__ import annotations

import os
import subprocess
import sys

import pytest
import torch

from conftest import REPO

# |a - b| <= ATOL + RTOL * |b| for losses, every weight of G and D, and the Gumbel noise's samples
TOL = {"rtol": 1e-4, "atol": 3e-5}

SCRIPT = r"""
import sys, torch
sys.path.insert(0, sys.argv[1])
from test_accel_rule import short_run
torch.save(short_run(sys.argv[3:], sys.argv[2]), sys.argv[2])
"""


def short_run(overrides: list[str], out: str) -> dict:
    """Four MLE batches and three adversarial steps (two D updates each); the losses, the weights,
    and a free-running sample's tokens and relaxed one-hots."""
    from pathlib import Path

    from textgan import config
    from textgan.accel import fpenv
    from textgan.corpus import prepare
    from textgan.monitor import Monitor
    from textgan.train import Trainer

    cfg = config.load(None, overrides)
    corpus = prepare(cfg.data, cfg.run.seed)
    with fpenv.preserved():  # this test process's own settings back afterwards
        torch.set_num_threads(cfg.run.threads or torch.get_num_threads())
        fpenv.apply(cfg.run)
        tr = Trainer(cfg, corpus, Path(out).parent, Monitor(Path(out).parent, progress=False, enabled=False))
        mle = [tr.mle_batch(torch.arange(16 * i, 16 * (i + 1)))["mle/loss"] for i in range(4)]
        adv = [tr.adversarial_step() for _ in range(3)]
        adv = [{k: v for k, v in step.items() if not k.endswith("per_s") and k != "adv/step_s"} for step in adv]
        out_ = tr.G.sample(tr.fixed_z, 6, generator=torch.Generator().manual_seed(5))
    return {"line": tr.accel, "mle": mle, "adv": adv, "G": tr.G.state_dict(), "D": tr.D.state_dict(),
            "tokens": out_.tokens, "dists": out_.dists.detach()}


def _overrides(data_root, mode: str, threads: int) -> list[str]:
    return [f"data.root={data_root}", "data.train=tiny/train.txt", "data.test=tiny/test.txt",
            "generator.emb_dim=16", "generator.hidden_dim=32", "generator.latent_dim=8",
            "discriminator.emb_dim=16", "discriminator.num_rep=16", "discriminator.num_filters=[16, 16, 16, 16]",
            "adversarial.batch_size=16", "adversarial.d_steps=2", "eval.num_fixed=8", "run.seed=3",
            f"run.accel={mode}", f"run.threads={threads}"]


def _train(tmp_path, name: str, mode: str, threads: int, compiler: bool, data_root) -> dict:
    """The short run in a fresh process; without a compiler: CC names no program, PATH has no cc,
    gcc or clang, and the kernel cache is an empty folder."""
    out = tmp_path / name / "result.pt"
    out.parent.mkdir()
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    if not compiler:
        env.update(CC=str(tmp_path / "no-such-cc"), PATH=os.path.dirname(sys.executable),
                   TEXTGAN_CACHE_DIR=str(tmp_path / name / "cache"))
    res = subprocess.run([sys.executable, "-c", SCRIPT, str(REPO / "tests"), str(out),
                          *_overrides(data_root, mode, threads)], env=env, capture_output=True, text=True, timeout=600)
    assert res.returncode == 0, res.stderr[-3000:]
    return torch.load(out, weights_only=True)


def _same(a: dict, b: dict, exact: bool) -> None:
    """Losses, weights, the samples' tokens and relaxed one-hots: equal, or within TOL."""
    tol = {"rtol": 0.0, "atol": 0.0} if exact else TOL
    torch.testing.assert_close(torch.tensor(a["mle"]), torch.tensor(b["mle"]), **tol)
    for step_a, step_b in zip(a["adv"], b["adv"], strict=True):
        assert step_a.keys() == step_b.keys()
        for key in step_a:
            torch.testing.assert_close(torch.tensor(step_a[key]), torch.tensor(step_b[key]), **tol, msg=key)
    for part in ("G", "D"):
        for key in a[part]:
            torch.testing.assert_close(a[part][key], b[part][key], **tol, msg=f"{part}.{key}")
    assert torch.equal(a["tokens"], b["tokens"])  # the same draws pick the same tokens
    torch.testing.assert_close(a["dists"], b["dists"], **tol)


def test_auto_and_off_give_the_same_run(tmp_path, data_root):
    """The quick check, in this process: run.accel=auto against off."""
    fast = short_run(_overrides(data_root, "auto", 0), str(tmp_path / "auto"))
    plain = short_run(_overrides(data_root, "off", 0), str(tmp_path / "off"))
    assert plain["line"] == "accel: off (run.accel=off): plain torch ops"
    _same(fast, plain, exact=False)


@pytest.mark.slow
def test_accel_changes_speed_never_results(tmp_path, data_root):
    """Every pairing, each run in a fresh process."""
    cc = _train(tmp_path, "auto", "auto", 2, True, data_root)
    runs = {"auto, no compiler": _train(tmp_path, "auto_nocc", "auto", 2, False, data_root),
            "auto, 1 thread": _train(tmp_path, "auto_1", "auto", 1, True, data_root),
            "off": _train(tmp_path, "off", "off", 2, True, data_root),
            "off, no compiler": _train(tmp_path, "off_nocc", "off", 2, False, data_root)}
    assert "C kernels for" in cc["line"] or pytest.skip("no C compiler here: nothing to compare")
    assert runs["auto, no compiler"]["line"].startswith("accel: auto (run.accel=auto): no C kernels")
    assert runs["off"]["line"] == runs["off, no compiler"]["line"] == "accel: off (run.accel=off): plain torch ops"
    _same(runs["off"], runs["off, no compiler"], exact=True)  # plain torch, the same noise: bit for bit
    for name, run in runs.items():
        _same(cc, run, exact=False)
