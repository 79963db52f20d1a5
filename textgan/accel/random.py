"""The Philox uniforms and dropout masks of textgan.philox through the threaded C kernel in
csrc/philox.c: the same bits, many times faster.

torch's CPU generator draws one number after another from one Mersenne-twister stream (about
9 ns per float), and the numpy definition in textgan.philox is slower still: the Gumbel noise of
one adversarial step (T x B x V, 11 M floats at the benchmark size) and the discriminator's
dropout masks took a sixth of the step. The kernel splits a draw over torch's threads; being
counter-based, every split gives the numbers textgan.philox defines (tests/test_accel_random.py).
"""
from __future__ import annotations

import ctypes

import torch

from textgan import philox
from textgan.accel import build

_P, _I64, _U64, _F = ctypes.c_void_p, ctypes.c_int64, ctypes.c_uint64, ctypes.c_float
_SIGNATURES = {"uniform_f32": [_U64, _I64, _P, _I64], "keep_mask_f32": [_U64, _I64, _F, _F, _P, _I64],
               "uniform_rows_f32": [_P, _I64, _I64, _I64, _P, _I64]}


def kernels() -> ctypes.CDLL | None:
    """The built library with its signatures declared, or None where it cannot be built."""
    return build.load("philox", _SIGNATURES)


def uniform_with(key: int, n: int, threads: int | None = None) -> torch.Tensor:
    """`philox.uniform_bits(key, n)` as a tensor, by the kernel on `threads` threads (torch's count)."""
    out = torch.empty(n, dtype=torch.float32)
    kernels().uniform_f32(key, n, out.data_ptr(), threads or torch.get_num_threads())
    return out


def key_uniforms(keys: torch.Tensor, start: int, n: int, threads: int | None = None) -> torch.Tensor:
    """`textgan.draws.numpy_key_uniforms(keys, start, n)` (N, n) by the kernel: elements start ..
    start + n - 1 of each key's stream, keys (N,) int64 holding the 64-bit keys."""
    keys = keys.contiguous()
    out = torch.empty(keys.shape[0], n, dtype=torch.float32)
    kernels().uniform_rows_f32(keys.data_ptr(), keys.shape[0], start, n, out.data_ptr(),
                               threads or torch.get_num_threads())
    return out


def keep_mask_with(key: int, n: int, p: float, threads: int | None = None) -> torch.Tensor:
    """The keep mask `philox.keep_mask` draws under `key`, (n,), by the kernel."""
    out = torch.empty(n, dtype=torch.float32)
    kernels().keep_mask_f32(key, n, p, 1.0 / (1.0 - p), out.data_ptr(), threads or torch.get_num_threads())
    return out


def uniform(shape: tuple[int, ...], generator: torch.Generator | None = None) -> torch.Tensor:
    """What `philox.uniform` returns, by the kernel."""
    n = 1
    for s in shape:
        n *= s
    return uniform_with(philox.new_key(generator), n).view(shape)


def keep_mask(shape: tuple[int, ...], p: float, generator: torch.Generator | None = None) -> torch.Tensor:
    """What `philox.keep_mask` returns, by the kernel."""
    n = 1
    for s in shape:
        n *= s
    return keep_mask_with(philox.new_key(generator), n, p).view(shape)
