"""The paths a user walks, in real subprocesses: progress lines off a terminal, a closed pipe that
must not end a run, the final metrics table, outputs never overwritten without --force, a data
line too long for memory reported before training, and vocabulary mismatches reported."""
from __future__ import annotations

import json
import os
import re
import subprocess
import sys

import pytest
import torch

from conftest import FAST, REPO, run_cli

CONFIG = str(REPO / "configs" / "coco_rsgan.yaml")


@pytest.fixture(scope="module")
def piped(data_root, tmp_path_factory):
    """`textgan train ... 2>&1 | head -n 1` in a real shell pipeline: head exits after one line and
    closes the pipe while the run still writes progress lines to it."""
    runs = tmp_path_factory.mktemp("piped")
    args = " ".join(f"'{a}'" for a in ["train", CONFIG, *FAST, f"log.dir={runs}", "adversarial.steps=3",
                                        "eval.every=0", "log.checkpoint_every=0", "log.interval_s=0.000001"])
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    # a tiny interval writes a progress line at every step: the pipe is certainly closed while training
    res = subprocess.run(["bash", "-c", f"set -o pipefail; '{sys.executable}' -m textgan {args} 2>&1 | head -n 1"],
                         capture_output=True, text=True, timeout=900, env=env, cwd=REPO)
    return res, runs / "coco_rsgan"


def test_closed_pipe_does_not_end_the_run(piped):
    res, run = piped
    assert res.returncode == 0, res.stderr  # pipefail: textgan's own exit status
    assert len(res.stdout.splitlines()) == 1
    assert sorted(p.name for p in (run / "checkpoints").glob("step_*.pt"))  # the run went on to the end
    assert (run / "samples.txt").is_file()
    log = (run / "train.log").read_text()
    assert "progress: adversarial 3/3" in log and "final metrics (test split):" in log


def test_progress_lines_and_metrics_table_off_a_terminal(data_root, tmp_path):
    """stderr is a pipe here (not a terminal): the run prints progress lines at log.interval_s."""
    res = run_cli("train", CONFIG, *FAST, f"log.dir={tmp_path}", "adversarial.steps=4", "eval.every=0",
                  "log.checkpoint_every=0", "log.interval_s=0.001")
    assert res.returncode == 0, res.stderr
    lines = res.stderr.splitlines()
    mle = [line for line in lines if line.startswith("progress: mle epoch 1/1 ")]
    adv = [line for line in lines if line.startswith("progress: adversarial ")]
    assert mle and len(adv) == 4, res.stderr
    assert re.fullmatch(r"progress: adversarial 4/4 \| d \S+ g \S+ tau \S+ tok/s \S+ \| \S+ it/s, ETA 0s", adv[-1])
    assert re.search(r"\| loss \S+ tok/s \S+ \| \S+ it/s, ETA \S+$", mle[0])
    start = lines.index("final metrics (test split):")
    rows = [line for line in lines[start + 1:] if line.startswith("  ")]
    names = [row.split()[0] for row in rows]
    assert "bleu2_exact" in names and "mean_length" in names and names == sorted(names)
    assert all(re.fullmatch(r"  \S+ +\S+", row) for row in rows)
    assert len({row.index(row.split()[1]) for row in rows}) == 1  # values in one column
    assert "final metrics (test split):" in (tmp_path / "coco_rsgan" / "train.log").read_text()


def test_no_lines_when_interval_is_zero_in_config(data_root, tmp_path):
    res = run_cli("train", CONFIG, *FAST, f"log.dir={tmp_path}", "adversarial.steps=0", "log.interval_s=0")
    assert res.returncode == 0, res.stderr
    assert "progress:" not in res.stderr


def test_eval_never_overwrites(piped, tmp_path):
    _, run = piped
    first = run_cli("eval", str(run), "--num", "8")
    assert first.returncode == 0, first.stderr
    second = run_cli("eval", str(run), "--num", "9")
    assert second.returncode == 0, second.stderr
    assert f"{run / 'eval'} holds an earlier result; writing to {run / 'eval-2'}" in second.stderr
    assert json.loads((run / "eval" / "metrics.json").read_text())["settings"]["num"] == 8
    assert json.loads((run / "eval-2" / "metrics.json").read_text())["settings"]["num"] == 9
    out = tmp_path / "e"
    assert run_cli("eval", str(run), "--num", "8", "--out", str(out)).returncode == 0
    again = run_cli("eval", str(run), "--num", "10", "--out", str(out))
    assert again.returncode == 2 and "already exists with metrics.json" in again.stderr
    assert json.loads((out / "metrics.json").read_text())["settings"]["num"] == 8
    forced = run_cli("eval", str(run), "--num", "10", "--out", str(out), "--force")
    assert forced.returncode == 0, forced.stderr
    assert json.loads((out / "metrics.json").read_text())["settings"]["num"] == 10


def test_sweep_and_curves_never_overwrite(piped, tmp_path):
    _, run = piped
    out = tmp_path / "sw"
    sweep = ["eval", str(run), "--sweep-temperature", "0.5:1.5:3", "--num", "8", "--out", str(out)]
    assert run_cli(*sweep).returncode == 0
    csv_before = (out / "sweep.csv").read_bytes()
    again = run_cli(*sweep)
    assert again.returncode == 2 and "already exists with sweep.csv, sweep.png, events.out.tfevents" in again.stderr
    assert (out / "sweep.csv").read_bytes() == csv_before and len(list(out.glob("events.out.tfevents.*"))) == 1
    forced = run_cli(*sweep, "--force")
    assert forced.returncode == 0, forced.stderr
    assert len(list(out.glob("events.out.tfevents.*"))) == 1  # one sweep in TensorBoard, not two
    curves = ["curves", str(out / "sweep.csv"), str(out / "sweep.csv"), "--x", "entropy_tok", "--out", str(tmp_path / "c")]
    assert run_cli(*curves).returncode == 0
    again = run_cli(*curves)
    assert again.returncode == 2 and "already exists with curves.csv, curves.png" in again.stderr
    assert run_cli(*curves, "--force").returncode == 0


def test_score_and_sample_never_overwrite(piped, data_root, tmp_path):
    _, run = piped
    out = tmp_path / "s.txt"
    assert run_cli("sample", str(run), "--num", "4", "--out", str(out)).returncode == 0
    again = run_cli("sample", str(run), "--num", "5", "--out", str(out))
    assert again.returncode == 2 and "already exists" in again.stderr and len(out.read_text().splitlines()) == 4
    assert run_cli("sample", str(run), "--num", "5", "--out", str(out), "--force").returncode == 0
    assert len(out.read_text().splitlines()) == 5
    test = str(data_root / "tiny" / "test.txt")
    score = ["score", test, "--refs", test, "--num", "5", "--out", str(tmp_path / "m.json")]
    first = run_cli(*score)
    assert first.returncode == 0 and "vocabulary: 0.0% of the tokens" in first.stderr
    again = run_cli(*score[:-4], "--num", "6", *score[-2:])
    assert again.returncode == 2 and "already exists" in again.stderr
    assert json.loads((tmp_path / "m.json").read_text())["settings"]["num"] == 5
    assert run_cli(*score[:-4], "--num", "6", *score[-2:], "--force").returncode == 0
    assert json.loads((tmp_path / "m.json").read_text())["settings"]["num"] == 6


def test_streamed_sampling_is_the_same_sentences(piped):
    """Sampling streamed in chunks (bounded memory, written as it goes) gives sample_text's lines."""
    from textgan import sample

    loaded = sample.load_generator(piped[1], warn=lambda m: None)
    whole = sample.sample_text(loaded, 600, seed=3)
    streamed = [line for chunk in sample.stream_text(loaded, 600, seed=3) for line in chunk]
    assert streamed == whole
    z = torch.randn(5, loaded.generator.latent_dim)
    assert [s for c in sample.stream_text(loaded, 5, 1, z=z) for s in c] == sample.sample_text(loaded, 5, 1, z=z)
    assert len([s for c in sample.stream_text(loaded, 5, 1, z=z, chunk=2) for s in c]) == 5


def test_over_long_line_reported_before_training(data_root, tmp_path):
    lines = (data_root / "tiny" / "train.txt").read_text().splitlines()[:50]
    lines[17] = " ".join(["word"] * 3000)  # one malformed line: no newlines in a pasted document
    (tmp_path / "train.txt").write_text("\n".join(lines) + "\n")
    common = [CONFIG, *FAST, f"log.dir={tmp_path / 'runs'}", f"data.train={tmp_path / 'train.txt'}"]
    res = run_cli("train", *common)
    assert res.returncode == 2 and len(res.stderr.strip().splitlines()) == 1, res.stderr
    assert "1 sentence(s) longer than data.max_len_ceiling=512 tokens, the longest sentence 18 with 3000" in res.stderr
    assert not (tmp_path / "runs").exists()  # nothing made before the check
    res = run_cli("train", *common, "data.max_len=20", "adversarial.steps=0", "mle.epochs=0")
    assert res.returncode == 0, res.stderr  # an explicit max_len truncates it instead


def test_init_from_another_corpus_is_an_error_unless_allowed(piped, tmp_path):
    _, run = piped
    (tmp_path / "other.txt").write_text("".join(f"zq{i} xv{i} wy{i} kk{i}\n" for i in range(40)))
    common = [CONFIG, *FAST, f"log.dir={tmp_path / 'runs'}", f"data.train={tmp_path / 'other.txt'}",
              f"generator.init_from={run}", "mle.epochs=0", "adversarial.steps=0"]
    res = run_cli("train", *common)
    assert res.returncode == 2 and "100.0% of this run's training tokens are outside the vocabulary" in res.stderr
    assert not (tmp_path / "runs").exists()
    res = run_cli("train", *common, "data.max_oov=1")
    assert res.returncode == 0, res.stderr
    assert "vocabulary: 100.0% of the training tokens are outside" in res.stderr


def test_eval_data_reports_its_vocabulary_share(piped, data_root, tmp_path):
    _, run = piped
    foreign = tmp_path / "foreign.txt"
    foreign.write_text("zzq qqx wwv\nxxv yyq zzv\n")
    res = run_cli("eval", str(run), "--data", str(foreign), "--num", "4", "--out", str(tmp_path / "e"))
    assert res.returncode == 2 and "100.0% of the tokens" in res.stderr and not (tmp_path / "e").exists()
    res = run_cli("eval", str(run), "--data", str(foreign), "--num", "4", "--out", str(tmp_path / "e"),
                  "--max-oov", "1")
    assert res.returncode == 0, res.stderr
    res = run_cli("eval", str(run), "--data", str(data_root / "tiny" / "test.txt"), "--num", "4",
                  "--out", str(tmp_path / "f"))
    share = float(re.search(r"vocabulary: ([\d.]+)% of the tokens", res.stderr).group(1))
    assert res.returncode == 0 and share < 25
