"""The floating-point environment a run computes in: denormal floats flushed to zero on CPU, on
every thread torch computes on (`run.flush_denormals`), and the float32 matmul precision
(`run.matmul_precision`).

Why: a trained generator's activations can hold values below 1.2e-38 (denormals), and on x86
every multiply-add that touches one takes a microcode assist of ~100 cycles. Measured on the
relational-memory generator of `configs/oracle20_relgan.yaml` after 4 MLE epochs: one batch took
2.9 s, against 0.25 s with denormals flushed (and 0.25 s for the untrained model): training had
slowed down 8x over those epochs. Flushing changes only values below 1.2e-38, which float32 cannot
hold to full precision anyway.
"""
from __future__ import annotations

import ctypes
from contextlib import contextmanager
from typing import Iterator

import torch

from textgan.accel import build


def flush_denormals(on: bool) -> bool:
    """Flush (on) or keep (off) denormals on this thread and on torch's OpenMP threads; False where
    the CPU has no such mode (then nothing changed). Without a C compiler only this thread and the
    threads created after it are reached."""
    supported = torch.set_flush_denormal(on)  # this thread, and the threads it creates later
    lib = build.load("fpenv", {"set_flush_denormals": [ctypes.c_int64, ctypes.c_int64]})
    if supported and lib is not None:
        lib.set_flush_denormals(int(on), torch.get_num_threads())
    return supported


def apply(run) -> None:
    """Set both for a run (a RunConfig): training, and evaluating or sampling as the run trained."""
    flush_denormals(run.flush_denormals)
    torch.set_float32_matmul_precision(run.matmul_precision)


def flushing() -> bool:
    """Whether this thread flushes denormals now (a float32 denormal reads back as zero)."""
    return bool(torch.tensor([1e-39], dtype=torch.float32).mul(1.0).item() == 0.0)


@contextmanager
def preserved() -> Iterator[None]:
    """Run the block, then put back this process's denormal mode, matmul precision and torch
    thread count as they were: a run started from the Python API sets them for itself, not for
    the rest of the caller's session (a notebook, a test process)."""
    flushed, precision, threads = flushing(), torch.get_float32_matmul_precision(), torch.get_num_threads()
    try:
        yield
    finally:
        torch.set_num_threads(threads)
        flush_denormals(flushed)
        torch.set_float32_matmul_precision(precision)
