"""The benchmark scripts in their smoke modes (what CI runs of them): they run end to end and write
results with the keys BENCHMARKS.md and the issues ask for. No speed or quality is asserted here."""
from __future__ import annotations

import json
import os
import subprocess
import sys

from conftest import REPO


def _bench(script: str, *args: str, timeout: float = 600) -> None:
    """One thread: smoke runs measure nothing, and two busy multi-threaded processes on two cores
    make OpenMP's spinning threads wait on each other (seconds per tiny step)."""
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    res = subprocess.run([sys.executable, str(REPO / "benchmarks" / script), *args], cwd=REPO, env=env,
                         capture_output=True, text=True, timeout=timeout)
    assert res.returncode == 0, res.stdout[-2000:] + res.stderr[-2000:]


def test_speed_smoke(tmp_path, data_root):
    out = tmp_path / "speed.json"
    _bench("speed.py", "--smoke", "--data-root", str(data_root), "--out", str(out))
    result = json.loads(out.read_text())
    for key in ("matmul_peak_gflops", "adv_iter_s", "adv_gflop", "adv_frac_peak", "mle_epoch_s",
                "mle_frac_peak", "sample_sents_per_s", "machine", "torch", "threads"):
        assert key in result
    assert result["smoke"] is True and result["adv_gflop"] > 0 and result["adv_iter_s"] > 0


def test_bleu_speed_smoke(tmp_path, data_root):
    out = tmp_path / "bleu.json"
    _bench("bleu_speed.py", "--smoke", "--data-root", str(data_root), "--out", str(out))
    result = json.loads(out.read_text())
    assert result["parity_max_abs_diff"] <= 1e-9


def test_quality_smoke(tmp_path, data_root):
    out = tmp_path / "quality.json"
    _bench("quality.py", "--smoke", "--data-root", str(data_root), "--only", "oracle20_rsgan,coco_rsgan",
           "--runs", str(tmp_path / "runs"), "--out", str(out), "--jobs", "2")
    result = json.loads(out.read_text())
    coco = result["experiments"]["coco_rsgan"]["metrics"]
    assert {"bleu2_exact", "bleu2_texygen", "self_bleu2_loo", "self_bleu2_texygen"} <= set(coco)
    assert "nll_oracle" in result["experiments"]["oracle20_rsgan"]["metrics"]
    assert result["published"]["coco"]["RelGAN(100)"]["bleu2"] == 0.849
