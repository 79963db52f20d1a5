"""Progress of `textgan eval` and `score`: off a terminal a line at a steady interval, from a timer
thread, through phases with and without a count; in real subprocesses with a short interval."""
from __future__ import annotations

import re
import time

import pytest

from conftest import run_cli, untrained_run
from textgan.progress import NoProgress, Progress


def test_lines_at_an_interval_through_phases(capsys):
    with Progress("eval", 0.02, terminal=False) as progress:
        progress.phase("sampling", 100)
        progress.advance(40)
        time.sleep(0.2)
        progress.phase("BLEU and Self-BLEU")  # one long call, no count: the timer still reports
        time.sleep(0.2)
    err = capsys.readouterr().err.splitlines()
    sampling = [line for line in err if line.startswith("progress: eval sampling 40/100 | ")]
    bleu = [line for line in err if line.startswith("progress: eval BLEU and Self-BLEU | ")]
    assert len(sampling) >= 3 and len(bleu) >= 3, err
    assert re.fullmatch(r"progress: eval sampling 40/100 \| \S+ it/s, ETA \S+ \| \S+ elapsed", sampling[-1])
    assert re.fullmatch(r"progress: eval BLEU and Self-BLEU \| \S+ in this phase, \S+ elapsed", bleu[-1])
    assert err == sampling + bleu  # nothing else, and no line after close
    time.sleep(0.1)
    assert capsys.readouterr().err == ""


def test_no_lines_with_interval_zero_or_no_progress(capsys):
    for progress in (Progress("score", 0.0, terminal=False), NoProgress()):
        with progress:
            progress.phase("sampling", 10)
            progress.advance(10)
            time.sleep(0.05)
        assert progress._timer is None
    assert capsys.readouterr().err == ""


def test_a_terminal_gets_a_bar_not_lines(capsys):
    with Progress("eval", 0.01, terminal=True) as progress:
        progress.phase("sampling", 10)
        progress.advance(5)
        assert progress.bar is not None and progress.bar.n == 5
        time.sleep(0.05)
    assert "progress: " not in capsys.readouterr().err


@pytest.mark.slow
def test_score_prints_progress_lines_off_a_terminal(data_root):
    test = str(data_root / "coco" / "test.txt")
    res = run_cli("score", test, "--refs", test, "--num", "3000", "--interval-s", "0.01")
    assert res.returncode == 0, res.stderr
    lines = [line for line in res.stderr.splitlines() if line.startswith("progress: score ")]
    assert any(line.startswith("progress: score BLEU and Self-BLEU of 3000 sentences against ") for line in lines)
    assert "bleu2_exact" in res.stdout


@pytest.mark.slow
@pytest.mark.parametrize("sweep", [False, True])
def test_eval_prints_progress_lines_off_a_terminal(data_root, tmp_path, sweep):
    run = untrained_run(tmp_path / "run")
    extra = ["--sweep-temperature", "0.5:1.5:2"] if sweep else []
    # 1,000 samples: a phase line appears only when the interval passes inside the phase, and the
    # BLEU of 200 ran under 0.01 s on a quiet machine
    res = run_cli("eval", str(run), "--num", "1000", "--interval-s", "0.01", *extra)
    assert res.returncode == 0, res.stderr
    lines = [line for line in res.stderr.splitlines() if line.startswith("progress: eval ")]
    at = r"T=[\d.]+: " if sweep else ""
    assert any(re.match(rf"progress: eval {at}sampling \d+/1000 \| ", line) for line in lines), res.stderr
    assert any(re.match(rf"progress: eval {at}BLEU and Self-BLEU \| ", line) for line in lines), res.stderr
    quiet = run_cli("eval", str(run), "--num", "50", "--interval-s", "0", *extra)
    assert quiet.returncode == 0 and "progress:" not in quiet.stderr


@pytest.mark.slow
def test_score_on_a_terminal_draws_a_bar(data_root):
    """stderr a pseudo-terminal (100 columns): tqdm's bar (carriage returns), no progress lines."""
    import fcntl
    import os
    import pty
    import struct
    import subprocess
    import sys
    import termios

    from conftest import REPO

    test = str(data_root / "coco" / "test.txt")
    master, slave = pty.openpty()
    fcntl.ioctl(slave, termios.TIOCSWINSZ, struct.pack("HHHH", 24, 100, 0, 0))  # a new pty has 0 columns
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    proc = subprocess.Popen([sys.executable, "-m", "textgan", "score", test, "--refs", test, "--num", "3000",
                             "--interval-s", "0.01"], stdout=subprocess.PIPE, stderr=slave, env=env, cwd=REPO)
    os.close(slave)
    chunks = []
    while True:
        try:
            data = os.read(master, 4096)
        except OSError:  # the child closed its end
            break
        if not data:
            break
        chunks.append(data)
    out = proc.communicate(timeout=300)[0].decode()
    os.close(master)
    err = b"".join(chunks).decode(errors="replace")
    assert proc.returncode == 0, err[-2000:]
    assert "score: BLEU and Self-BLEU of 3000 sentences" in err and "\r" in err
    assert "progress: " not in err and "bleu2_exact" in out


def test_wall_profile_rows_sum_to_the_process_wall_time():
    """eval --profile's rows: the start-up before the clock started, the timed phases, and the rest,
    summing to the process's age; none of the timed phases is changed."""
    from textgan.progress import process_age, wall_profile

    entered, startup = time.monotonic(), process_age()
    assert startup is not None and startup > 0  # Linux: /proc/self/stat
    time.sleep(0.05)
    rows = wall_profile({"a": 0.01, "b": 0.02}, entered, startup)
    age = process_age()
    assert list(rows) == ["start-up: Python, imports, arguments", "a", "b", "other: between phases, output files"]
    assert rows["a"] == 0.01 and rows["b"] == 0.02 and rows["other: between phases, output files"] >= 0.02
    assert startup + 0.05 <= sum(rows.values()) <= age + 0.02  # the sleep counted; the age to a 0.01 s tick
    assert list(wall_profile({}, entered, None)) == ["other: between phases, output files"]
