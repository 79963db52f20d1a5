"""Every fenced shell command of README.md is run here, in a real subprocess, adapted to tiny sizes
by the explicit table below; the few that cannot run in a test are listed in NOT_RUN with the
reason. A command the README gains that is neither run nor listed fails
`test_every_fenced_command_is_run_or_listed`. Each fenced block runs in a fresh folder of its own,
in order, as a user would type it."""
from __future__ import annotations

import os
import re
import shlex
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from conftest import FAST, REPO, run_cli

README = REPO / "README.md"
SHELL = ("", "sh", "bash", "shell", "console")  # fence languages that hold commands

# Commands that are not run here, with the reason (the README's exact text, comment dropped).
NOT_RUN = {
    "make demo": "creates .venv and installs torch, then trains the quickstart for minutes; test_packaging "
                 "installs textgan and trains configs/quickstart.yaml, and the `textgan train` commands run here",
    "make test": "runs this very test suite",
    "textgan data get coco --dest data": "downloads from the network; test_download runs `data get` against a "
                                         "local mirror",
    "torchrun --nnodes 2 --node_rank 0 --nproc_per_node 4 --rdzv-backend c10d --rdzv-endpoint HOST:29500 "
    "--rdzv-id coco1 -m textgan train configs/coco_rsgan.yaml data.root=../shared/data":
        "needs two machines and 8 processes; the one-machine torchrun commands above it are run",
}

# How a command is adapted to a test: (the command's first words it applies to, text replaced,
# replacement, why). {data}, {repo} and {python} are filled in; replacements apply in order.
SUBSTITUTIONS = [
    ("textgan train configs/quickstart_source.yaml", ".yaml", ".yaml data.num_train=2000 data.num_test=200",
     "a tenth of its grammar pairs (making 42,000 sentences is most of its time here)"),
    ("", "../shared/data", "{data}", "the corpora's folder on this machine"),
    ("", "configs/", "{repo}/configs/", "the commands run in a temporary folder, not the checkout"),
    ("textgan eval", "--num 10000", "--num 50", "tiny sizes"),
    ("textgan eval", "--sweep-temperature 0.5:2.0:8", "--sweep-temperature 0.5:2.0:3 --num 30",
     "three temperatures of few samples"),
    ("tensorboard", "tensorboard --logdir", "tensorboard --inspect --logdir",
     "read the run's events back instead of serving them until killed"),
    ("torchrun", "torchrun ", "{python} -m torch.distributed.run ", "the test's interpreter runs torchrun"),
]
QUICK = [o for o in FAST if not o.startswith("data.root")] + ["mle.epochs=1", "eval.every=0",
                                                                  "log.checkpoint_every=0"]
# Overrides appended to every training (tiny data and model, few steps), and to a resume (two more steps).
APPENDED_TRAIN = [*QUICK, "adversarial.steps=6"]
APPENDED_RESUME = ["adversarial.steps=8"]
FAST_EMB_DIM = next(o.split("=")[1] for o in FAST if o.startswith("generator.emb_dim="))
TORCHRUN_ENV = {"GLOO_SOCKET_IFNAME": "lo", "OMP_NUM_THREADS": "1"}  # loopback only, one thread per rank


def fenced_blocks() -> list[list[str]]:
    """The commands of each fenced shell block, in README order (comments and blank lines dropped)."""
    text = README.read_text(encoding="utf-8")
    blocks = []
    for lang, body in re.findall(r"^```(\w*)\n(.*?)^```", text, re.S | re.M):
        if lang in SHELL:
            lines = [shlex.join(shlex.split(line, comments=True)) for line in body.splitlines()]
            blocks.append([line for line in lines if line])
    return blocks


def runner(cmd: str) -> str | None:
    """Which runner executes `cmd`: textgan, tensorboard or torchrun (one machine), or None."""
    words = cmd.split()
    if words[0] in ("textgan", "tensorboard"):
        return words[0]
    if words[0] == "torchrun" and "--standalone" in words:
        return "torchrun"
    return None


def test_every_fenced_command_is_run_or_listed():
    commands = [cmd for block in fenced_blocks() for cmd in block]
    unhandled = [cmd for cmd in commands if cmd not in NOT_RUN and runner(cmd) is None]
    assert not unhandled, f"README commands neither run by test_readme nor listed in NOT_RUN: {unhandled}"
    stale = [cmd for cmd in NOT_RUN if cmd not in commands]
    assert not stale, f"NOT_RUN lists commands the README no longer has: {stale}"
    assert len(commands) > 20 and all(reason for reason in NOT_RUN.values())


def test_readme_lists_the_main_commands():
    verbs = [cmd.split()[:2] for block in fenced_blocks() for cmd in block]
    for verb in (["textgan", "train"], ["textgan", "sample"], ["textgan", "eval"], ["textgan", "score"],
                 ["tensorboard", "--logdir"], ["make", "demo"]):
        assert verb in verbs


def adapted(cmd: str, data_root: Path, out_index: int, folder: Path) -> list[str]:
    """`cmd` as the test runs it: the substitution table, then the appended overrides."""
    for applies, old, new, _why in SUBSTITUTIONS:
        if cmd.startswith(applies):
            cmd = cmd.replace(old, new.format(data=data_root, repo=REPO, python=sys.executable))
    args = shlex.split(cmd)
    if "train" in args:
        args += APPENDED_RESUME if "--resume" in args else APPENDED_TRAIN
        if any("coco_relgan" in a for a in args):  # its 512-wide memory would be most of the test's time
            args.append("generator.head_size=8")
        configs = [Path(a) for a in args if a.endswith(".yaml") and Path(a).is_file()]
        if any("tie_embeddings: true" in c.read_text() for c in configs):  # tied: the output is the embedding
            args.append(f"generator.hidden_dim={FAST_EMB_DIM}")
    if args[:2] == ["textgan", "eval"] and "--out" not in args:  # keep every result: a folder each
        args += ["--out", str(folder / f"eval{out_index}")]
    return args


def _check_output(args: list[str], res: subprocess.CompletedProcess, folder: Path, printed: dict) -> None:
    """What the command printed or wrote, where the README says what it does (`printed`: the lines
    of each `textgan sample RUN --seed S` so far)."""
    if args[:2] == ["textgan", "sample"] and "--out" in args:
        assert len((folder / "samples.txt").read_text().splitlines()) == 3
    elif args[:2] == ["textgan", "sample"]:
        num = int(args[args.index("--num") + 1]) if "--num" in args else 10
        expected = 8 if "--interpolate" in args else 1 if "--z" in args else num  # z.npy: one encoded sentence
        lines = res.stdout.strip().splitlines()
        assert len(lines) == expected
        if "--save-z" in args:  # the README says: the first lines of the larger --num with that seed
            assert np.load(folder / args[args.index("--save-z") + 1]).shape == (num, 8)
            assert lines == printed[" ".join(args[:3] + ["--seed", args[args.index("--seed") + 1]])][:num]
        elif "--seed" in args and "--interpolate" not in args:
            printed[" ".join(args[:3] + ["--seed", args[args.index("--seed") + 1]])] = lines
    elif args[:2] == ["textgan", "curves"]:  # three points of gan2, each against rsgan's curve or outside it
        assert len(res.stdout.strip().splitlines()) == 2 + 3
    elif args[0] == "tensorboard" or "tensorboard" in args[0]:
        assert "adv/d_loss" in res.stdout, res.stdout[-2000:]


def run_command(args: list[str], folder: Path) -> subprocess.CompletedProcess:
    if args[0] == "textgan":
        return run_cli(*args[1:], cwd=folder, timeout=900)
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    if args[0] == "tensorboard":
        tb = REPO / ".venv" / "bin" / "tensorboard"
        local = Path(sys.executable).with_name("tensorboard")
        args = [str(tb if tb.exists() else local if local.exists() else "tensorboard"), *args[1:]]
    else:
        env.update(TORCHRUN_ENV)
    return subprocess.run(args, cwd=folder, env=env, capture_output=True, text=True, timeout=900)


@pytest.mark.slow  # the README's commands, trainings included
def test_readme_commands_run_as_written(tmp_path, data_root):
    printed: dict[str, list[str]] = {}
    for number, block in enumerate(fenced_blocks()):
        folder = tmp_path / f"block{number}"
        folder.mkdir()
        # the explicit z file of `sample --z my_latents.npy`, shape (N, Z) of the trained runs
        np.save(folder / "my_latents.npy", np.random.default_rng(0).normal(size=(3, 8)).astype(np.float32))
        for index, cmd in enumerate(block):
            if cmd in NOT_RUN:
                continue
            args = adapted(cmd, data_root, index, folder)
            res = run_command(args, folder)
            assert res.returncode == 0, (cmd, args, res.stderr[-3000:])
            _check_output(args, res, folder, printed)
        if any(cmd.startswith("textgan train configs/coco_rsgan.yaml") for cmd in block):
            assert (folder / "runs" / "coco_rsgan" / "checkpoints").is_dir()


def test_python_dash_m_is_the_same_cli():
    res = subprocess.run([sys.executable, "-m", "textgan", "--help"], cwd=REPO, capture_output=True,
                         text=True)
    assert res.returncode == 0 and "train" in res.stdout and "sample" in res.stdout
