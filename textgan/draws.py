"""Per-sample randomness of `textgan sample`: the latent z and the per-step Gumbel noise of sample i
are pure functions of (seed, i), so `--num 3` prints the first three lines of `--num 6` whatever
the batch or chunk size, and `--z` of saved latents meets the noise the sentences had.

Shapes: N samples, T time (steps), V vocabulary, Z latent.
Built from textgan.philox, the project's one definition of noise, used as a keyed counter-based
function: block i of the Philox stream keyed by the seed gives sample i two 64-bit keys, one for
its noise, one for its latent. Element t * V + v of the noise key's stream is the uniform behind
step t's Gumbel noise at token v (so step t's noise does not depend on max_len either), and
elements 0 .. 2Z - 1 of the latent key's stream give z (Box-Muller for a normal prior).
`step_gumbel` makes one step's noise alone and `gumbel_argmax` samples one step's tokens from it:
what `Generator.sample` runs with per-sample keys, never holding more than a step's noise
(textgan.accel fuses the step into one kernel that holds none).
"""
from __future__ import annotations

import math
from collections.abc import Callable, Sequence

import numpy as np
import torch

from textgan import philox

Uniforms = Callable[[int, int], torch.Tensor]  # (key, n) -> the n float32 uniforms (n,) of that key's stream
KeyedUniforms = Callable[[torch.Tensor, int, int], torch.Tensor]  # (keys (N,), start, n) -> (N, n) float32


def numpy_uniforms(key: int, n: int) -> torch.Tensor:
    return torch.from_numpy(philox.uniform_bits(key, n))


def uniform_source(generator) -> KeyedUniforms:
    """Many keys' uniforms at once by the C kernel where the generator's noise already takes it
    (run.accel), else by the numpy definition: the same bits either way."""
    from textgan.accel import random as accel_random

    return accel_random.key_uniforms if generator.ops.uniform is accel_random.uniform else numpy_key_uniforms


def sample_keys(seed: int, first: int, count: int) -> tuple[list[int], list[int]]:
    """The (noise, latent) keys of samples first .. first + count - 1 under `seed`."""
    words = philox.blocks(seed, first, count)  # (count, 4): four 32-bit words per sample
    s32 = np.uint64(32)
    noise = (words[:, 1] << s32) | words[:, 0]
    latent = (words[:, 3] << s32) | words[:, 2]
    return [int(k) for k in noise], [int(k) for k in latent]


def latents(prior: str, latent_dim: int, keys: Sequence[int], uniforms: KeyedUniforms | None = None) -> torch.Tensor:
    """z (N, Z) float32 on CPU, one row per latent key: N(0, I) by Box-Muller, U(-1, 1), or zeros
    for prior none. The uniforms lie in the open interval, so the logarithm is finite."""
    if prior == "none":
        return torch.zeros(len(keys), latent_dim)
    u = (uniforms or numpy_key_uniforms)(key_tensor(keys), 0, 2 * latent_dim).double()  # (N, 2Z)
    if prior == "uniform":
        z = 2.0 * u[:, :latent_dim] - 1.0
    else:
        z = (-2.0 * u[:, :latent_dim].log()).sqrt() * torch.cos(2.0 * math.pi * u[:, latent_dim:])
    return z.float()


def gumbel(keys: Sequence[int], steps: int, vocab_size: int, uniforms: Uniforms = numpy_uniforms) -> torch.Tensor:
    """-log(-log U) (T, N, V) float32 on CPU, column n from the n-th noise key, as textgan.gumbel
    makes it from its uniforms."""
    u = torch.stack([uniforms(key, steps * vocab_size).view(steps, vocab_size) for key in keys], dim=1)
    return u.log_().neg_().log_().neg_()


def key_tensor(keys: Sequence[int]) -> torch.Tensor:
    """Noise keys as the int64 tensor (N,) holding their 64 bits, the form the samplers take."""
    return torch.from_numpy(np.array(keys, dtype=np.uint64).view(np.int64))


def numpy_key_uniforms(keys: torch.Tensor, start: int, n: int) -> torch.Tensor:
    """Elements start .. start + n - 1 of each key's stream, (N, n), by the numpy definition."""
    return torch.from_numpy(philox.uniform_rows(keys.numpy().view(np.uint64), start, n))


def step_gumbel(keys: torch.Tensor, step: int, vocab_size: int,
                uniforms: KeyedUniforms = numpy_key_uniforms) -> torch.Tensor:
    """Step `step`'s Gumbel noise (N, V) float32 on CPU of noise keys (N,): `gumbel(keys, T, V)[step]`
    for any T > step, made alone, so a sampler holds one step's noise at a time."""
    return uniforms(keys, step * vocab_size, vocab_size).log_().neg_().log_().neg_()


def gumbel_argmax(logits: torch.Tensor, keys: torch.Tensor, step: int,
                  uniforms: KeyedUniforms = numpy_key_uniforms) -> torch.Tensor:
    """One sampling step's tokens (N,): argmax of logits (N, V) plus step `step`'s noise of keys (N,)
    (on CPU), the first index on ties. The definition textgan.accel's fused kernel computes."""
    noise = step_gumbel(keys, step, logits.shape[-1], uniforms).to(logits.device)  # (N, V)
    return (logits + noise).argmax(dim=-1)


def gumbel_argmax_at(logits: torch.Tensor, keys: torch.Tensor, starts: torch.Tensor,
                     uniforms: KeyedUniforms = numpy_key_uniforms) -> torch.Tensor:
    """Tokens (N,): argmax of logits (N, V) plus the Gumbel noise of elements starts[n] ..
    starts[n] + V - 1 of key keys[n]'s stream (keys, starts (N,) int64; on CPU), the first index on
    ties: the rows of one (m, V) draw under one key (row r at r * V), as the rollouts draw them.
    Each key's span is made once. The definition textgan.accel's fused kernel computes."""
    v = logits.shape[-1]
    noise = torch.empty(logits.shape, dtype=torch.float32)
    for key in torch.unique(keys).tolist():
        rows = torch.nonzero(keys == key, as_tuple=True)[0]  # (n,)
        lo = int(starts[rows].min())
        u = uniforms(keys[rows[:1]], lo, int(starts[rows].max()) - lo + v)[0]  # the key's span
        idx = (starts[rows] - lo).unsqueeze(1) + torch.arange(v)  # (n, V)
        noise[rows] = u[idx].log_().neg_().log_().neg_()
    return (logits + noise.to(logits.device)).argmax(dim=-1)


def chunk_size(steps: int, vocab_size: int, floats: int = 1 << 24) -> int:
    """Samples per chunk so one chunk's noise holds about `floats` floats (64 MB), at most 512."""
    return max(1, min(512, floats // max(steps * vocab_size, 1)))
