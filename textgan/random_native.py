"""Fast uniform noise and dropout masks on CPU from the Philox kernel in textgan/csrc/philox.c.

torch's CPU generator draws one number after another from one Mersenne-twister stream (about
9 ns per float here): the Gumbel noise of one adversarial step (T x B x V, 11 M floats at the
benchmark size) and the discriminator's dropout masks took a sixth of the step. Philox is
counter-based, so the draw is split over threads and still the same for every split. Each draw
takes a fresh 63-bit key from the caller's torch generator, so a run stays reproducible and a
checkpoint's generator states still resume it exactly. Without a C compiler, or off the CPU, or
in another dtype, the torch draws are used.
"""
from __future__ import annotations

import ctypes

import torch

from textgan import native

_P, _I64, _U64, _F = ctypes.c_void_p, ctypes.c_int64, ctypes.c_uint64, ctypes.c_float


_SIGNATURES = {"uniform_f32": [_U64, _I64, _P, _I64], "keep_mask_f32": [_U64, _I64, _F, _F, _P, _I64]}


def _lib() -> ctypes.CDLL | None:
    return native.load("philox", _SIGNATURES)


def available(device: torch.device | str, dtype: torch.dtype = torch.float32) -> bool:
    return torch.device(device).type == "cpu" and dtype == torch.float32 and _lib() is not None


def _key(generator: torch.Generator | None) -> int:
    """A fresh key from the torch generator (the global one when None): one draw per call."""
    return int(torch.randint(0, 2 ** 63 - 1, (1,), generator=generator))


def uniform(shape: tuple[int, ...], generator: torch.Generator | None = None) -> torch.Tensor:
    """U(0, 1) float32 on CPU, in the open interval (23-bit resolution); `available` must hold."""
    out = torch.empty(shape, dtype=torch.float32)
    key, n = _key(generator), out.numel()
    _lib().uniform_f32(key, n, out.data_ptr(), torch.get_num_threads())
    return out


def keep_mask(shape: tuple[int, ...], p: float, generator: torch.Generator | None = None) -> torch.Tensor:
    """Inverted dropout's mask, float32 on CPU: 1 / (1 - p) with probability 1 - p, else 0."""
    out = torch.empty(shape, dtype=torch.float32)
    key, n = _key(generator), out.numel()
    _lib().keep_mask_f32(key, n, p, 1.0 / (1.0 - p), out.data_ptr(), torch.get_num_threads())
    return out
