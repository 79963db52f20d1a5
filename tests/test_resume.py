"""Exact resume: a training subprocess killed (SIGKILL) at random moments and resumed ends
bitwise identical to an uninterrupted run; SIGINT and SIGTERM checkpoint and exit 130 / 143."""
from __future__ import annotations

import os
import random
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch

from conftest import FAST, REPO
from textgan import checkpoint

pytestmark = pytest.mark.slow  # whole training runs killed and resumed

CONFIG = str(REPO / "configs" / "coco_rsgan.yaml")
SCHEDULE = ["mle.epochs=2", "adversarial.steps=16", "adversarial.d_steps=2", "log.checkpoint_every=2",
            "eval.every=6", "eval.sample_every=6", "log.keep_last=2", "run.threads=1",
            "discriminator.dropout=0.25", "generator.num_layers=2", "generator.dropout=0.1",
            "discriminator.spectral_norm=true", "adversarial.mle_weight=0.5"]  # their state resumes too


def _start(*args: str) -> subprocess.Popen:
    path = os.pathsep.join(p for p in (str(REPO), os.environ.get("PYTHONPATH", "")) if p)
    env = {**os.environ, "PYTHONPATH": path}
    return subprocess.Popen([sys.executable, "-m", "textgan", *args], cwd=REPO, env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def _final_state(run_dir: Path) -> dict:
    return checkpoint.load(checkpoint.newest(run_dir / "checkpoints"))


def _assert_same(a: dict, b: dict) -> None:
    assert a["progress"] == b["progress"]
    for part in ("generator", "discriminator"):
        for key, value in a[part].items():
            assert torch.equal(value, b[part][key]), (part, key)
    assert a["metrics"] == b["metrics"]
    for name in ("data", "noise", "torch"):
        assert torch.equal(a["rng"][name], b["rng"][name])


@pytest.fixture(scope="module")
def reference(data_root, tmp_path_factory) -> dict:
    runs = tmp_path_factory.mktemp("ref")
    proc = _start("train", CONFIG, *FAST, *SCHEDULE, f"log.dir={runs}")
    out, err = proc.communicate(timeout=600)
    assert proc.returncode == 0, err
    return _final_state(runs / "coco_rsgan")


def _wait_for_checkpoint(run_dir: Path, proc: subprocess.Popen, timeout: float = 120) -> None:
    deadline = time.time() + timeout
    while time.time() < deadline and proc.poll() is None:
        if checkpoint.history(run_dir / "checkpoints"):
            return
        time.sleep(0.05)


def test_sigkill_at_random_steps_then_resume_is_bitwise_identical(reference, tmp_path):
    rng = random.Random(1234)
    run_dir = tmp_path / "coco_rsgan"
    proc = _start("train", CONFIG, *FAST, *SCHEDULE, f"log.dir={tmp_path}")
    kills = 0
    while kills < 3:
        _wait_for_checkpoint(run_dir, proc)
        time.sleep(rng.uniform(0.0, 2.0))
        if proc.poll() is not None:
            break
        proc.send_signal(signal.SIGKILL)
        proc.wait()
        kills += 1
        proc = _start("train", "--resume", str(run_dir))
    out, err = proc.communicate(timeout=600)
    assert proc.returncode == 0, err
    assert kills >= 2, "the run ended before it could be killed twice; make it longer"
    _assert_same(_final_state(run_dir), reference)


@pytest.mark.parametrize("sig, code", [(signal.SIGINT, 130), (signal.SIGTERM, 143)])
def test_signal_saves_and_exits_cleanly(reference, tmp_path, sig, code):
    run_dir = tmp_path / "coco_rsgan"
    proc = _start("train", CONFIG, *FAST, *SCHEDULE, f"log.dir={tmp_path}")
    _wait_for_checkpoint(run_dir, proc)
    time.sleep(0.5)
    proc.send_signal(sig)
    out, err = proc.communicate(timeout=120)
    if proc.returncode == 0:
        pytest.skip("run finished before the signal arrived")
    assert proc.returncode == code, err
    assert "--resume" in err and len(err.strip().splitlines()[-1]) > 0
    proc = _start("train", "--resume", str(run_dir))
    out, err = proc.communicate(timeout=600)
    assert proc.returncode == 0, err
    _assert_same(_final_state(run_dir), reference)


def test_sigterm_stops_a_run_that_checkpoints_every_step(tmp_path):
    """The stop request is honoured on steps that write a checkpoint anyway: with
    log.checkpoint_every=1 every step is one, and the run used to go on to its last step."""
    run_dir = tmp_path / "coco_rsgan"
    proc = _start("train", CONFIG, *FAST, "mle.epochs=1", "adversarial.steps=100000", "adversarial.d_steps=1",
                  "log.checkpoint_every=1", "log.keep_last=2", "eval.every=0", "run.threads=1", f"log.dir={tmp_path}")
    deadline = time.time() + 300
    # two checkpoints: the end of MLE and at least one adversarial step
    while len(checkpoint.history(run_dir / "checkpoints")) < 2 and time.time() < deadline and proc.poll() is None:
        time.sleep(0.05)
    proc.send_signal(signal.SIGTERM)
    try:
        out, err = proc.communicate(timeout=120)
    finally:
        proc.kill()  # never leave a run training on after a failure
    assert proc.returncode == 143, err[-2000:]
    step = _final_state(run_dir)["progress"]["step"]
    assert 1 <= step < 100000


def test_resume_with_a_changed_model_setting_is_a_one_line_error(tmp_path):
    """A resume whose overrides change a network's shape (here the highway's, one product instead
    of two) is refused with one line naming the network and the weight, exit 2, checkpoint intact."""
    proc = _start("train", CONFIG, *FAST, "mle.epochs=1", "adversarial.steps=1", "adversarial.d_steps=1",
                  "eval.every=0", "run.threads=1", f"log.dir={tmp_path}")
    _, err = proc.communicate(timeout=300)
    assert proc.returncode == 0, err[-2000:]
    newest = checkpoint.newest(tmp_path / "coco_rsgan" / "checkpoints")
    before = newest.read_bytes()
    proc = _start("train", "--resume", str(tmp_path / "coco_rsgan"), "discriminator.highway=shared",
                  "adversarial.steps=2")
    _, err = proc.communicate(timeout=300)
    assert proc.returncode == 2
    line = err.strip().splitlines()[-1]
    assert line.startswith("textgan: error: the checkpoint's discriminator does not fit this config")
    assert "highway.proj.weight" in line and "Traceback" not in err
    assert checkpoint.newest(tmp_path / "coco_rsgan" / "checkpoints") == newest and newest.read_bytes() == before
