"""The one definition of textgan's noise on CPU: counter-based Philox4x32-10 uniforms (Salmon et
al. 2011, "Parallel random numbers: as easy as 1, 2, 3"; the generator of cuRAND and JAX), here in
numpy, bit for bit what the C kernel textgan/accel/csrc/philox.c computes.

Element i of a draw is word i % 4 of Philox block i // 4 under a 64-bit key, so it is a pure
function of (key, i): the same numbers whatever computes them and however the work is split.
Each draw takes a fresh 63-bit key from the caller's torch generator, so `set_seed` and a
checkpoint's generator states reproduce and resume a run exactly. The Gumbel noise of
`textgan.gumbel` and the dropout masks of `textgan.models.dropout` come from here on CPU in
float32; textgan.accel swaps in the C kernel, which is faster and gives the same bits.
"""
from __future__ import annotations

import numpy as np
import torch

_M0, _M1 = np.uint64(0xD2511F53), np.uint64(0xCD9E8D57)  # the round multipliers
_W0, _W1 = 0x9E3779B9, 0xBB67AE85  # the key schedule's increments (Weyl sequence)
_LO = np.uint64(0xFFFFFFFF)
_S32, _S9 = np.uint64(32), np.uint64(9)
_BLOCKS = 1 << 16  # blocks per numpy pass: a few MB of uint64 temporaries, in cache


def blocks(key: int, first: int, count: int) -> np.ndarray:
    """The four 32-bit words (count, 4) of blocks first .. first + count - 1 under `key`. Each word
    is held in a uint64, so the 32 x 32 -> 64-bit products of a round are exact."""
    return _rounds(np.arange(first, first + count, dtype=np.uint64), np.uint64(key & 0xFFFFFFFF),
                   np.uint64((key >> 32) & 0xFFFFFFFF))


def _rounds(b: np.ndarray, k0: np.ndarray, k1: np.ndarray) -> np.ndarray:
    """The words (..., 4) of blocks `b` under key halves k0, k1 (uint64 arrays broadcasting with b)."""
    c0, c1 = b & _LO, b >> _S32
    c2 = c3 = np.zeros_like(b)
    w0, w1 = np.uint64(_W0), np.uint64(_W1)
    for _ in range(10):
        p0, p1 = c0 * _M0, c2 * _M1
        n0 = (p1 >> _S32) ^ c1 ^ k0
        n2 = (p0 >> _S32) ^ c3 ^ k1
        c1, c3, c0, c2 = p1 & _LO, p0 & _LO, n0, n2
        k0, k1 = (k0 + w0) & _LO, (k1 + w1) & _LO
    return np.stack([c0, c1, c2, c3], axis=-1)


def uniform_rows(keys: np.ndarray, start: int, n: int) -> np.ndarray:
    """Elements start .. start + n - 1 of each key's draw, (K, n) float32 for keys (K,) uint64: row
    k is `uniform_bits(keys[k], start + n)[start:]` (the per-sample noise of textgan.draws at one step)."""
    keys = np.asarray(keys, dtype=np.uint64).reshape(-1, 1)  # (K, 1)
    first, last = start // 4, (start + n + 3) // 4  # the blocks holding the elements
    out = np.empty((keys.shape[0], n), dtype=np.float32)
    per = max(1, _BLOCKS // max(last - first, 1))  # keys per numpy pass
    b = np.arange(first, last, dtype=np.uint64)[None]  # (1, blocks)
    for r in range(0, keys.shape[0], per):
        k = keys[r:r + per]
        words = _rounds(b, k & _LO, k >> _S32).reshape(k.shape[0], -1)  # (k, 4 * blocks)
        out[r:r + per] = open_unit(words[:, start - 4 * first:start - 4 * first + n])
    return out


def open_unit(words: np.ndarray) -> np.ndarray:
    """Words -> float32 in the open interval (0, 1): (k + 1/2) / 2^23, k a word's top 23 bits. The
    largest is 1 - 2^-24, so log(u) and log(1 - u) are finite (Gumbel noise needs both)."""
    return ((words >> _S9).astype(np.float32) + np.float32(0.5)) * np.float32(1.0 / 8388608.0)


def uniform_bits(key: int, n: int) -> np.ndarray:
    """The n float32 uniforms (n,) of the draw keyed `key`: element i from word i % 4 of block i // 4."""
    out = np.empty(n, dtype=np.float32)
    per = 4 * _BLOCKS
    for start in range(0, n, per):
        stop = min(start + per, n)
        words = blocks(key, start // 4, -(-(stop - start) // 4)).reshape(-1)  # (4 * blocks,)
        out[start:stop] = open_unit(words[: stop - start])
    return out


def new_key(generator: torch.Generator | None = None) -> int:
    """A fresh key from the torch generator (the global one when None): one draw per call."""
    return int(torch.randint(0, 2 ** 63 - 1, (1,), generator=generator))


def applies(device: torch.device | str, dtype: torch.dtype) -> bool:
    """Where the Philox stream defines the noise: CPU float32 (elsewhere torch's own generator)."""
    return torch.device(device).type == "cpu" and dtype == torch.float32


def uniform(shape: tuple[int, ...], generator: torch.Generator | None = None) -> torch.Tensor:
    """U(0, 1) float32 on CPU, in the open interval (23-bit resolution)."""
    n = int(np.prod(shape, dtype=np.int64))
    return torch.from_numpy(uniform_bits(new_key(generator), n)).view(shape)


def keep_mask(shape: tuple[int, ...], p: float, generator: torch.Generator | None = None) -> torch.Tensor:
    """Inverted dropout's mask, float32 on CPU: 1 / (1 - p) where the uniform is >= p, else 0."""
    n = int(np.prod(shape, dtype=np.int64))
    u = uniform_bits(new_key(generator), n)
    scale = np.float32(1.0 / (1.0 - p))
    return torch.from_numpy(np.where(u >= np.float32(p), scale, np.float32(0.0))).view(shape)
