"""What machine a benchmark ran on, in the words that explain its numbers.

"x86_64" says nothing: this project's runs have landed on an AVX-512/AMX Xeon and an AVX2 EPYC,
whose timings differ twofold, so records name the CPU model and the SIMD extensions it has.
"""
from __future__ import annotations

import os
import platform
from pathlib import Path

SIMD = ("avx2", "fma", "avx512f", "avx512_bf16", "amx_bf16", "amx_tile", "asimd", "sve")  # what the kernels use


def cpuinfo_field(*names: str) -> str | None:
    """The first /proc/cpuinfo line whose key is one of `names`, its value stripped; None off Linux."""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            key, _, value = line.partition(":")
            if key.strip() in names:
                return value.strip()
    except OSError:
        pass
    return None


def describe() -> dict:
    """CPU model, core count, OS and the SIMD extensions present, for a benchmark's record."""
    flags = set((cpuinfo_field("flags", "Features") or "").split())
    return {"processor": cpuinfo_field("model name") or platform.processor() or platform.machine(),
            "simd": [f for f in SIMD if f in flags], "cpus": os.cpu_count(), "platform": platform.platform()}
