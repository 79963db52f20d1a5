"""The CLI end to end in real subprocesses: train on the tiny corpus, TensorBoard events, sampling,
resuming and one-line errors for bad input."""
from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

from conftest import FAST, REPO, run_cli

pytestmark = pytest.mark.slow  # every test runs the CLI in subprocesses, most on a trained run


@pytest.fixture(scope="module")
def trained(data_root, tmp_path_factory) -> Path:
    """One adversarial run of a few dozen steps, shared by the tests below."""
    runs = tmp_path_factory.mktemp("runs")
    res = run_cli("train", str(REPO / "configs" / "coco_rsgan.yaml"), *FAST, f"log.dir={runs}",
                  "adversarial.steps=30", "eval.every=10", "eval.sample_every=10", "log.checkpoint_every=10")
    assert res.returncode == 0, res.stderr
    assert "samples (fixed z):" in res.stdout
    from textgan.accel import random
    accel_lines = [line for line in res.stderr.splitlines() if line.startswith("accel:")]
    assert len(accel_lines) == 1  # one line says what is accelerated, no per-kernel lines
    built = random.kernels() is not None  # auto takes every kernel where a compiler works
    expected = ("C kernels for cross-entropy, LSTM, MLE loss, noise, conv+max, highway gate" if built
                else "no C kernels")
    assert accel_lines[0].startswith(f"accel: auto (run.accel=auto): {expected}"), accel_lines
    assert "kernel" not in res.stderr.replace("C kernels", "").replace("no C kernels", "")
    return runs / "coco_rsgan"


def _events(run_dir: Path) -> tuple[dict[str, list[float]], set]:
    """Scalar values by tag and the tensor (text, hparams) tags of every event file of a run."""
    scalars: dict[str, list[float]] = {}
    tensors: set = set()
    for event_file in sorted(run_dir.rglob("events.out.tfevents.*")):
        acc = EventAccumulator(str(event_file), size_guidance={"scalars": 0})
        acc.Reload()
        for tag in acc.Tags()["scalars"]:
            scalars.setdefault(tag, []).extend(e.value for e in acc.Scalars(tag))
        tensors |= set(acc.Tags()["tensors"])
    return scalars, tensors


def test_train_writes_run_folder(trained):
    for name in ("config.yaml", "command.txt", "vocab.json", "samples.txt"):
        assert (trained / name).is_file(), name
    ckpts = sorted((trained / "checkpoints").glob("step_*.pt"))
    assert 1 <= len(ckpts) <= 3  # keep_last bounds the history
    vocab = json.loads((trained / "vocab.json").read_text())
    assert vocab[:4] == ["<pad>", "<bos>", "<eos>", "<unk>"]


def test_tensorboard_tags(trained):
    scalars, tensors = _events(trained)
    for tag in ("mle/loss", "mle/grad_norm", "mle/tokens_per_s", "adv/d_loss", "adv/g_loss", "adv/d_real",
                "adv/d_fake", "adv/tau", "adv/g_grad_norm", "adv/d_grad_norm", "adv/g_lr", "adv/d_lr",
                "adv/tokens_per_s", "eval/bleu2_exact", "eval/self_bleu2_loo", "eval/nll_gen_mc2_tok",
                "eval/nll_gen_zmean_tok", "eval/nll_gen_pos"):
        assert tag in scalars, (tag, sorted(scalars))
    assert "samples/fixed_z/text_summary" in tensors
    assert any(t.startswith("_hparams_") for t in tensors) or any("hparam/" in t for t in scalars)


def test_tensorboard_has_latent_usage_at_every_evaluation(trained):
    """latent/* (textgan/metrics/latent.py, FAST: K = 8, 2 paths of 4 points) beside every eval/*."""
    scalars, _ = _events(trained)
    evaluations = len(scalars["eval/bleu2_exact"])
    assert evaluations >= 4  # after MLE, steps 10, 20, 30
    for tag in ("latent/latent_mi_8", "latent/latent_mi_8_max", "latent/latent_sensitivity",
                "latent/latent_token_change", "latent/interp_distinct", "latent/interp_edit"):
        assert len(scalars[tag]) == evaluations, tag
    assert all(v == pytest.approx(np.log(8)) for v in scalars["latent/latent_mi_8_max"])
    assert all(v <= np.log(8) + 1e-9 for v in scalars["latent/latent_mi_8"])
    for tag in ("latent/latent_sensitivity", "latent/latent_token_change"):
        assert all(0.0 <= v <= 1.0 for v in scalars[tag]), tag
    assert all(1.0 <= v <= 4.0 for v in scalars["latent/interp_distinct"])
    assert not any(t.startswith("eval/latent") or t.startswith("eval/interp") for t in scalars)


def test_tau_is_annealed_in_events(trained):
    taus = _events(trained)[0]["adv/tau"]
    assert len(taus) == 30 and taus[0] == pytest.approx(1.0) and taus[-1] < taus[0]


def test_sample_prints_vocabulary_words(trained):
    res = run_cli("sample", str(trained), "--num", "20", "--seed", "7", "--temperature", "1.0")
    assert res.returncode == 0, res.stderr
    lines = res.stdout.splitlines()
    assert len(lines) == 20
    vocab = set(json.loads((trained / "vocab.json").read_text()))
    assert all(tok in vocab for line in lines for tok in line.split())
    again = run_cli("sample", str(trained), "--num", "20", "--seed", "7")
    assert again.stdout == res.stdout  # a seed fixes the latent and the sampling noise
    other = run_cli("sample", str(trained), "--num", "20", "--seed", "8")
    assert other.stdout != res.stdout


def test_sample_from_z_file_and_out(trained, tmp_path):
    z = np.random.default_rng(0).standard_normal((3, 8)).astype(np.float32)
    np.save(tmp_path / "z.npy", z)
    out = tmp_path / "out.txt"
    res = run_cli("sample", str(trained), "--z", str(tmp_path / "z.npy"), "--out", str(out))
    assert res.returncode == 0, res.stderr
    assert len(res.stdout.splitlines()) == 3
    assert out.read_text().splitlines() == res.stdout.splitlines()
    again = run_cli("sample", str(trained), "--z", str(tmp_path / "z.npy"), "--out", str(out))
    assert again.returncode == 2 and "already exists" in again.stderr


def test_sample_interpolation(trained):
    res = run_cli("sample", str(trained), "--interpolate", "8", "--seed", "1", "--seed-to", "2")
    assert res.returncode == 0, res.stderr
    assert len(res.stdout.splitlines()) == 8


def test_sample_bad_latent_file(trained, tmp_path):
    np.save(tmp_path / "z.npy", np.zeros((2, 5), dtype=np.float32))  # latent_dim is 8
    res = run_cli("sample", str(trained), "--z", str(tmp_path / "z.npy"))
    assert res.returncode == 2
    assert len(res.stderr.strip().splitlines()) == 1 and "(N, 8)" in res.stderr


def test_resume_continues(trained, tmp_path):
    import shutil

    copy = tmp_path / "run"
    shutil.copytree(trained, copy)
    res = run_cli("train", "--resume", str(copy), "adversarial.steps=35", "log.checkpoint_every=5")
    assert res.returncode == 0, res.stderr
    assert "resuming" in res.stderr


@pytest.mark.parametrize("override, needle", [
    ("adversarial.stepz=3", "adversarial.stepz: unknown key (did you mean steps?); valid keys: steps, loss"),
    ("adversarial.steps=abc", "adversarial.steps: expected int"),
    ("gumbel.tau_start=0", "gumbel.tau_start: must be > 0"),
    ("generator.hidden_dim=-4", "generator.hidden_dim: must be >= 1"),
    ("adversarial.loss=wgan", "one of standard, rsgan, hinge, lsgan, wgan_gp"),
])
def test_bad_config_is_one_line_exit_2(override, needle, tmp_path, data_root):
    res = run_cli("train", str(REPO / "configs" / "coco_rsgan.yaml"), *FAST, f"log.dir={tmp_path}", override)
    assert res.returncode == 2
    assert needle in res.stderr
    assert len(res.stderr.strip().splitlines()) == 1
    assert not any(tmp_path.iterdir())  # nothing written


def test_existing_run_folder_is_not_overwritten(trained, data_root):
    before = {p: p.stat().st_mtime_ns for p in trained.rglob("*")}
    res = run_cli("train", str(REPO / "configs" / "coco_rsgan.yaml"), *FAST, f"log.dir={trained.parent}")
    assert res.returncode == 2 and "--resume" in res.stderr and "--force" in res.stderr
    assert {p: p.stat().st_mtime_ns for p in trained.rglob("*")} == before


def test_bad_cli_arguments(tmp_path):
    res = run_cli("sample", str(tmp_path), "--num", "0")
    assert res.returncode == 2 and len(res.stderr.strip().splitlines()) == 1
    res = run_cli("sample", str(tmp_path / "nothing"))
    assert res.returncode == 2 and "not found" in res.stderr
    res = run_cli("frobnicate")
    assert res.returncode == 2 and len(res.stderr.strip().splitlines()) == 1


def test_eval_mle_every_spaces_out_mle_evaluations(data_root, tmp_path):
    """eval.mle_every=2 over 4 MLE epochs evaluates after epochs 2 and 4 only; the default 1
    after each epoch."""
    steps = {}
    for every in (1, 2):
        runs = tmp_path / f"every{every}"
        res = run_cli("train", str(REPO / "configs" / "coco_mle.yaml"), *FAST, f"log.dir={runs}",
                      "mle.epochs=4", f"eval.mle_every={every}")
        assert res.returncode == 0, res.stderr
        found = set()
        for event_file in (runs / "coco_mle").rglob("events.out.tfevents.*"):
            acc = EventAccumulator(str(event_file))
            acc.Reload()
            if "eval/nll_gen_pos" in acc.Tags()["scalars"]:
                found |= {e.step for e in acc.Scalars("eval/nll_gen_pos")}
        steps[every] = sorted(found)
    assert len(steps[1]) == 4
    assert steps[2] == [steps[1][1], steps[1][3]]


def test_bad_new_run_config_is_reported_before_torch_loads(tmp_path):
    """Loading torch takes seconds; a mistake in a new run's config must not wait for it."""
    script = ("import sys; from textgan.cli import main; "
              f"code = main(['train', {str(REPO / 'configs' / 'quickstart.yaml')!r}, 'log.dir={tmp_path}', "
              "'mle.epochz=1']); print(code, 'torch' in sys.modules)")
    res = subprocess.run([sys.executable, "-c", script], cwd=REPO, capture_output=True, text=True, timeout=120,
                         env={**os.environ, "PYTHONPATH": str(REPO)})
    assert res.stdout.split() == ["2", "False"], res.stdout + res.stderr
    assert "mle.epochz: unknown key (did you mean epochs?)" in res.stderr and len(res.stderr.strip().splitlines()) == 1
    assert not any(tmp_path.iterdir())
