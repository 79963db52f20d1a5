"""Shared fixtures: where the real corpora are, and running the CLI as a user does."""
from __future__ import annotations

import os
import shutil
import socket
import subprocess
import sys
from pathlib import Path

import pytest
import torch

# Under pytest-xdist each worker's torch runs on one thread, and so do the CLI subprocesses it starts
# (OMP_NUM_THREADS, inherited): with more threads than cores in all, every small op waits for a
# descheduled thread (tests/test_valid_split.py on 2 cores: 136 s with two 2-thread workers, 51 s
# with one-thread ones). Tests about threads set run.threads or torch.set_num_threads themselves.
if os.environ.get("PYTEST_XDIST_WORKER"):
    os.environ["OMP_NUM_THREADS"] = "1"
    torch.set_num_threads(1)

REPO = Path(__file__).resolve().parents[1]
DATA_ROOT = Path(os.environ.get("TEXTGAN_DATA_ROOT", REPO.parent / "shared" / "data")).resolve()

# A small model and evaluation so CLI runs on the tiny corpus take seconds.
FAST = ["data.root=" + str(DATA_ROOT), "data.train=tiny/train.txt", "data.test=tiny/test.txt",
        "generator.emb_dim=16", "generator.hidden_dim=32", "generator.latent_dim=8",
        "discriminator.emb_dim=16", "discriminator.num_rep=16", "discriminator.num_filters=[16, 16, 16, 16]",
        "mle.epochs=1", "eval.num_samples=40", "eval.bleu_n=[2, 3]", "eval.latent_draws=2",
        "eval.latent_samples=16", "eval.latent_mi_k=8", "eval.interp_pairs=2", "eval.interp_steps=4",
        "log.progress=false"]

# The final evaluation cut to BLEU, for tests that only need a run to finish: no NLL_gen, latent or
# interpolation figures.
QUICK_EVAL = ["eval.nll_gen=false", "eval.latent_samples=0", "eval.interp_pairs=0"]

@pytest.fixture(scope="session")
def data_root() -> Path:
    if not (DATA_ROOT / "tiny" / "train.txt").is_file():
        pytest.skip(f"shared corpora not found at {DATA_ROOT}; set TEXTGAN_DATA_ROOT")
    return DATA_ROOT


def run_cli(*args: str, cwd: Path | None = None, timeout: float = 300, env: dict | None = None,
            **kwargs) -> subprocess.CompletedProcess:
    """`python -m textgan ARGS` in a real subprocess, as a user would call it."""
    path = os.pathsep.join(p for p in (str(REPO), os.environ.get("PYTHONPATH", "")) if p)
    full_env = {**os.environ, "PYTHONPATH": path, **(env or {})}
    return subprocess.run([sys.executable, "-m", "textgan", *args], cwd=cwd or REPO, env=full_env,
                          capture_output=True, text=True, timeout=timeout, **kwargs)


def free_port() -> int:
    """A TCP port free on 127.0.0.1 now (torchrun's rendezvous)."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def torchrun(*args: str, timeout: float = 300) -> subprocess.CompletedProcess:
    """`textgan ARGS` under `python -m torch.distributed.run` on two local ranks (gloo over the
    loopback, one thread each), in real subprocesses."""
    path = os.pathsep.join(p for p in (str(REPO), os.environ.get("PYTHONPATH", "")) if p)
    env = {**os.environ, "PYTHONPATH": path, "MASTER_ADDR": "127.0.0.1", "GLOO_SOCKET_IFNAME": "lo",
           "OMP_NUM_THREADS": "1"}
    cmd = [sys.executable, "-m", "torch.distributed.run", "--nproc_per_node", "2", "--master_addr", "127.0.0.1",
           "--master_port", str(free_port()), "-m", "textgan", *args]
    return subprocess.run(cmd, cwd=REPO, env=env, capture_output=True, text=True, timeout=timeout)


def assert_same_training_state(a: dict, b: dict, parts: tuple[str, ...] = ("generator", "discriminator")) -> None:
    """Two checkpoints hold the same weights of `parts`, optimizer states, progress, metrics and
    random streams, bit for bit."""
    assert a["progress"] == b["progress"]
    for part in parts:
        for key, value in a[part].items():
            assert torch.equal(value, b[part][key]), (part, key)
    for part in ("opt_g", "opt_d"):
        for index, value in a[part]["state"].items():
            assert all(torch.equal(v, b[part]["state"][index][k]) for k, v in value.items()), (part, index)
    assert a["metrics"] == b["metrics"]
    for name in ("data", "noise", "torch"):
        assert torch.equal(a["rng"][name], b["rng"][name])


def run_scalars(run_dir: Path) -> dict[str, list[float]]:
    """Every TensorBoard scalar a run folder's event files hold (all of them, in file order), by tag."""
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    scalars: dict[str, list[float]] = {}
    for event_file in sorted(run_dir.rglob("events.out.tfevents.*")):
        acc = EventAccumulator(str(event_file), size_guidance={"scalars": 0})
        acc.Reload()
        for tag in acc.Tags()["scalars"]:
            scalars.setdefault(tag, []).extend(e.value for e in acc.Scalars(tag))
    return scalars


def trained_and_cut(tmp_path: Path, config: str, schedule: list[str], keep_step: int = 2) -> tuple[Path, Path]:
    """`config` trained with `schedule` into tmp_path/a/run, and a copy of that run folder (tmp_path/b)
    without its checkpoints after step `keep_step`: the reference and the run to resume."""
    res = run_cli("train", config, *schedule, f"log.dir={tmp_path / 'a'}", "log.name=run")
    assert res.returncode == 0, res.stderr[-3000:]
    reference, resumed = tmp_path / "a" / "run", tmp_path / "b"
    shutil.copytree(reference, resumed)
    from textgan import checkpoint

    for path in checkpoint.history(resumed / "checkpoints"):
        if checkpoint.load(path)["progress"]["step"] > keep_step:
            path.unlink()
    return reference, resumed


def assert_resume_ends_as_reference(reference: Path, resumed: Path, step: int,
                                    parts: tuple[str, ...] = ("generator", "discriminator")) -> dict:
    """`textgan train --resume` of the cut copy ends where the uninterrupted run did, at `step`:
    `parts` and every other training state bit for bit. Returns the reference's last checkpoint."""
    res = run_cli("train", "--resume", str(resumed))
    assert res.returncode == 0, res.stderr[-3000:]
    from textgan import checkpoint

    a = checkpoint.load(checkpoint.newest(reference / "checkpoints"))
    b = checkpoint.load(checkpoint.newest(resumed / "checkpoints"))
    assert a["progress"]["step"] == step
    assert_same_training_state(a, b, parts)
    return a


def trained_run(runs: Path, config: str, *overrides: str) -> Path:
    """`config` trained by the CLI into `runs` with `overrides`: its run folder (named after the config)."""
    res = run_cli("train", config, *overrides, f"log.dir={runs}")
    assert res.returncode == 0, res.stderr[-3000:]
    return runs / Path(config).stem


def assert_samples_are_prefixes(run: Path, *condition: str) -> list[str]:
    """`textgan sample RUN CONDITION --num 4 --seed 2`'s lines, checked to begin with --num 2's:
    (seed, i) decides sentence i, whatever the condition (--class NAME, --source TEXT)."""
    res = run_cli("sample", str(run), *condition, "--num", "4", "--seed", "2")
    assert res.returncode == 0, res.stderr
    lines = res.stdout.splitlines()
    assert len(lines) == 4
    prefix = run_cli("sample", str(run), *condition, "--num", "2", "--seed", "2")
    assert prefix.stdout.splitlines() == lines[:2]
    return lines


def tiny_mle_run(runs: Path) -> Path:
    """One epoch of MLE on the tiny corpus (configs/coco_mle.yaml at FAST sizes), trained by the
    CLI into `runs`: a real run folder to evaluate."""
    res = run_cli("train", str(REPO / "configs" / "coco_mle.yaml"), *FAST, f"log.dir={runs}", "mle.epochs=1")
    assert res.returncode == 0, res.stderr
    return runs / "coco_mle"


def untrained_run(folder: Path, *overrides: str) -> Path:
    """A run folder holding the checkpoint of an untrained small generator (FAST sizes plus
    `overrides`): enough for `textgan sample` and `eval`, in a second, without training."""
    from textgan import config
    from textgan.corpus import prepare
    from textgan.monitor import Monitor
    from textgan.train import Trainer

    cfg = config.load(None, [*FAST, *overrides])
    corpus = prepare(cfg.data, cfg.run.seed)
    trainer = Trainer(cfg, corpus, folder, Monitor(folder, progress=False, enabled=False))
    trainer.save(folder / "checkpoints" / "step_00000000.pt")
    return folder


def run_without_avx512(script: str, cache: Path, library: str) -> None:
    """`script` in a fresh process whose C kernels are built into `cache` without AVX-512
    (TEXTGAN_CFLAGS=-mno-avx512f: the AVX2 machines' code paths); it must print OK and
    `library` must have been built there."""
    env = {**os.environ, "TEXTGAN_CFLAGS": "-mno-avx512f", "TEXTGAN_CACHE_DIR": str(cache), "PYTHONPATH": str(REPO)}
    res = subprocess.run([sys.executable, "-c", script], env=env, capture_output=True, text=True, timeout=300)
    assert res.returncode == 0 and "OK" in res.stdout, res.stderr[-2000:]
    assert any(p.name.startswith(f"{library}-") for p in cache.iterdir())  # built here, with the flag


@pytest.fixture(autouse=True, scope="module")
def _process_settings_kept_by_module():
    """The same around each test module, so a module-scoped fixture that trains or evaluates in
    process (and sets the run's settings) cannot leave them to the next module on its worker."""
    from textgan.accel import fpenv

    with fpenv.preserved():
        yield


@pytest.fixture(autouse=True)
def _process_settings_kept():
    """Each test leaves the process's denormal mode, matmul precision and thread count as it found
    them: the CLI's handlers called in-process (eval, train) set them as the run trained, and a
    later test (hypothesis's subnormal floats in test_fuzz) must not inherit that."""
    from textgan.accel import fpenv

    with fpenv.preserved():
        yield
