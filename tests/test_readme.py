"""The README's "Using it" commands, run as written in a real subprocess (train made quick with
extra overrides appended, and `data get` pointed at a local mirror elsewhere in test_download)."""
from __future__ import annotations

import re
import shlex
import subprocess
import sys

import numpy as np
import pytest

from conftest import FAST, REPO, run_cli

pytestmark = pytest.mark.slow  # the README's commands, trainings included

QUICK = [o for o in FAST if not o.startswith("data.root")] + ["mle.epochs=1", "eval.every=0",
                                                                  "log.checkpoint_every=0"]


def readme_commands() -> list[list[str]]:
    text = (REPO / "README.md").read_text(encoding="utf-8")
    block = re.search(r"## Using it\n\n```\n(.*?)```", text, re.S).group(1)
    return [shlex.split(line.split("#")[0]) for line in block.splitlines() if line.strip()]


def test_readme_lists_the_main_commands():
    verbs = [cmd[:2] for cmd in readme_commands()]
    for verb in (["textgan", "train"], ["textgan", "sample"], ["textgan", "eval"], ["tensorboard", "--logdir"]):
        assert verb in verbs


def test_readme_commands_run_as_written(tmp_path, data_root):
    np.save(tmp_path / "my_latents.npy", np.random.default_rng(0).normal(size=(3, 8)).astype(np.float32))
    for cmd in readme_commands():
        args = [a.replace("../shared/data", str(data_root)).replace("configs/", f"{REPO}/configs/")
                for a in cmd[1:]]
        if cmd[0] == "tensorboard":  # read the run's events back instead of serving them
            res = subprocess.run([str(REPO / ".venv" / "bin" / "tensorboard")
                                  if (REPO / ".venv" / "bin" / "tensorboard").exists() else "tensorboard",
                                  "--inspect", "--logdir", str(tmp_path / "runs")],
                                 capture_output=True, text=True, timeout=120)
            assert res.returncode == 0 and "adv/d_loss" in res.stdout, res.stderr
            continue
        if args[:2] == ["data", "get"]:
            continue  # needs the network; test_download runs it against a local mirror
        if args[0] == "train":
            args += [*QUICK, "adversarial.steps=6"]
            if "coco_relgan" in args[1]:  # its 512-wide memory is most of the test's time
                args.append("generator.head_size=8")
        if args[0] == "eval" and "--num" in args:
            args[args.index("--num") + 1] = "50"
        if args[0] == "eval" and "--out" not in args:
            args += ["--out", str(tmp_path / f"eval{len(list(tmp_path.glob('eval*')))}")]
        if args[0] == "eval" and "--sweep-temperature" in args:
            args[args.index("--sweep-temperature") + 1] = "0.5:2.0:3"
            args += ["--num", "30"]
        res = run_cli(*args, cwd=tmp_path)
        assert res.returncode == 0, (cmd, res.stderr)
        if args[0] == "sample" and "--out" in args:
            assert len((tmp_path / "samples.txt").read_text().splitlines()) == 3
        elif args[0] == "sample":
            expected = 8 if "--interpolate" in args else 1 if "--z" in args else 20  # z.npy: one encoded sentence
            assert len(res.stdout.strip().splitlines()) == expected
        elif args[0] == "curves":  # three points of gan2, each against rsgan's curve or outside it
            assert len(res.stdout.strip().splitlines()) == 2 + 3
    assert (tmp_path / "runs" / "coco_rsgan" / "checkpoints").is_dir()


def test_python_dash_m_is_the_same_cli():
    res = subprocess.run([sys.executable, "-m", "textgan", "--help"], cwd=REPO, capture_output=True,
                         text=True)
    assert res.returncode == 0 and "train" in res.stdout and "sample" in res.stdout
