"""One step of keyed sampling without gradients, fused in C (csrc/gumbel_max.c): the tokens
argmax(logits + Gumbel noise) of textgan.draws.gumbel_argmax, with the noise made inside the kernel
from each sample's Philox key and only where it can change the answer, so neither the (B, T, V)
noise nor one step's (B, V) of it is ever written. Sampling for `textgan sample`, evaluation and
sweeps was bound by making, writing and reading that noise (two logarithms per vocabulary entry).

The same tokens as the definition wherever the C library's logf and torch's log round alike (they
may differ in the last bit, which matters only where a row's two best perturbed logits are that
close): tests/test_accel_sampling.py checks the kernel against the definition and the older
whole-noise path of textgan.draws.gumbel.
"""
from __future__ import annotations

import ctypes

import torch

from textgan import draws
from textgan.accel import build, random

_P, _I64 = ctypes.c_void_p, ctypes.c_int64
_SIGNATURES = {"gumbel_argmax_f32": [_P, _I64, _I64, _I64, _P, _I64, _P, _I64],
               "gumbel_argmax_at_f32": [_P, _I64, _I64, _I64, _P, _P, _P, _I64]}


def kernels() -> ctypes.CDLL | None:
    """The built library with its signature declared, or None where it cannot be built."""
    return build.load("gumbel_max", _SIGNATURES)


def supports(logits: torch.Tensor) -> bool:
    """Where the kernel runs: CPU float32 logits (B, V) with unit stride along V, kernel built."""
    return (logits.device.type == "cpu" and logits.dtype == torch.float32 and logits.dim() == 2
            and logits.stride(1) == 1 and kernels() is not None)


def gumbel_argmax(logits: torch.Tensor, keys: torch.Tensor, step: int, threads: int | None = None) -> torch.Tensor:
    """`textgan.draws.gumbel_argmax(logits (B, V), keys (B,), step)`: the tokens (B,), by the kernel
    where it runs, else by the definition with the C kernel's uniforms (or numpy's)."""
    if not supports(logits):
        uniforms = random.key_uniforms if random.kernels() is not None else draws.numpy_key_uniforms
        return draws.gumbel_argmax(logits, keys, step, uniforms=uniforms)
    keys = keys.contiguous()
    out = torch.empty(logits.shape[0], dtype=torch.int64)
    kernels().gumbel_argmax_f32(logits.data_ptr(), logits.shape[0], logits.shape[1], logits.stride(0),
                                keys.data_ptr(), step, out.data_ptr(), threads or torch.get_num_threads())
    return out


def gumbel_argmax_at(logits: torch.Tensor, keys: torch.Tensor, starts: torch.Tensor,
                     threads: int | None = None) -> torch.Tensor:
    """`textgan.draws.gumbel_argmax_at(logits (N, V), keys (N,), starts (N,))`: the tokens (N,), by
    the kernel where it runs (no noise written: the rollouts' (R, V) draws were most of their
    time), else by the definition with the C kernel's uniforms (or numpy's)."""
    if not supports(logits):
        uniforms = random.key_uniforms if random.kernels() is not None else draws.numpy_key_uniforms
        return draws.gumbel_argmax_at(logits, keys, starts, uniforms=uniforms)
    keys, starts = keys.contiguous(), starts.contiguous()
    out = torch.empty(logits.shape[0], dtype=torch.int64)
    kernels().gumbel_argmax_at_f32(logits.data_ptr(), logits.shape[0], logits.shape[1], logits.stride(0),
                                   keys.data_ptr(), starts.data_ptr(), out.data_ptr(),
                                   threads or torch.get_num_threads())
    return out
