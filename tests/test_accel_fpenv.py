"""Denormals flushed to zero on every thread torch computes on (textgan/accel/fpenv.py), run in fresh
processes because the setting is process-wide. A product whose result is denormal (1e-30 * 1e-10)
must come out 0 in every chunk of a parallel op, also on OpenMP threads that existed before the
call; and nonzero again after flushing is turned off."""
from __future__ import annotations

import os
import platform
import subprocess
import sys

import pytest

from conftest import REPO

needs_ftz = pytest.mark.skipif(platform.machine() not in ("x86_64", "AMD64", "i386", "i686"),
                               reason="FTZ/DAZ are x86 modes")

SCRIPT = """
import torch
from textgan.accel import build as native
from textgan.accel import fpenv
torch.set_num_threads(2)
x = torch.full((1 << 22,), 1e-30)
def denormal_chunks():
    y = x * 1e-10  # parallel over both threads; each element 1e-40 unless flushed
    return int((y != 0).view(2, -1).any(1).sum())  # halves holding a nonzero value
before = denormal_chunks()  # the OpenMP team exists from here on
assert fpenv.flush_denormals(True)
flushed = denormal_chunks()
main_thread = float(torch.tensor([1e-30]) * 1e-10)
fpenv.flush_denormals(False)
kept = denormal_chunks()
print(before, flushed, main_thread, kept, native.load("fpenv") is not None)
"""


def _run(env_extra=None):
    env = {**os.environ, "PYTHONPATH": str(REPO), **(env_extra or {})}
    res = subprocess.run([sys.executable, "-c", SCRIPT], env=env, capture_output=True, text=True, timeout=120)
    assert res.returncode == 0, res.stderr[-2000:]
    return res.stdout.split()


@needs_ftz
def test_flush_reaches_every_thread_and_can_be_undone():
    before, flushed, main_thread, kept, built = _run()
    assert built == "True"
    assert before == "2" and kept == "2"  # both halves denormal without flushing
    assert flushed == "0" and float(main_thread) == 0.0


@needs_ftz
def test_without_a_compiler_only_the_calling_thread_flushes(tmp_path):
    before, flushed, main_thread, kept, built = _run({"CC": str(tmp_path / "no-such-cc"),
                                                      "TEXTGAN_CACHE_DIR": str(tmp_path / "cache")})
    assert built == "False" and float(main_thread) == 0.0 and kept == "2"
    assert flushed == "1"  # the worker thread made before the call keeps its denormals: why the kernel


MATMUL = """
import torch
from textgan.accel import fpenv
from textgan.config import RunConfig
torch.manual_seed(0)
a, b = torch.randn(512, 512), torch.randn(512, 512)
exact = a.double() @ b.double()
def err():
    return float(((a @ b).double() - exact).norm() / exact.norm())
for precision in ("highest", "medium", "highest"):
    fpenv.apply(RunConfig(matmul_precision=precision))
    print(torch.get_float32_matmul_precision(), err())
torch.set_float32_matmul_precision("medium")  # torch's own switch: what "medium" does on this CPU
print("direct", err())
"""


def _has_amx() -> bool:
    try:
        flags = open("/proc/cpuinfo", encoding="utf-8").read()
    except OSError:
        return False
    return " amx_bf16" in flags


def test_matmul_precision_is_set_and_undone():
    """run.matmul_precision reaches torch: "medium" computes what torch's own switch computes (on
    CPUs where torch then takes bfloat16 products, an error ~1e-3 instead of ~1e-7: the Xeon with
    AMX; not this AMD EPYC with AVX512-BF16, where torch keeps float32), and "highest" restores float32."""
    out = subprocess.run([sys.executable, "-c", MATMUL], cwd=REPO, capture_output=True, text=True,
                         timeout=120, check=True).stdout.split("\n")
    rows = [line.split() for line in out if line]
    assert [r[0] for r in rows] == ["highest", "medium", "highest", "direct"]
    errs = [float(r[1]) for r in rows]
    assert errs[0] < 1e-5 and errs[2] < 1e-5, errs
    assert errs[1] == errs[3] and errs[1] < 1e-2, errs  # the same products as torch's switch
    if _has_amx():
        assert errs[1] > 1e-4, errs
