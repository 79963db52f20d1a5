"""The fused linear cross-entropy (textgan.accel.fused_ce) on CPU in float32, by the C kernel in
textgan/accel/csrc/linear_ce.c.

Shapes: n rows (no ignored ones), H hidden, V vocabulary. The kernel takes two vectors of rows at
a time (32 with AVX-512, 16 with AVX2) and keeps their logits transposed, so the softmax is
vertical vector work and the (rows, V) block never leaves L2; the torch path's chunks are ~225 rows
of separate matmul, softmax and sum kernels that each stream the chunk through memory. It runs on
torch's OpenMP threads, each taking a range of the vocabulary for every row: it reads only its
part of the weight and writes only its part of the weight gradient. The split depends only on V
and the thread count, so the result does not depend on timing.
"""
from __future__ import annotations

import ctypes
from dataclasses import dataclass

import torch

from textgan.accel import build

_P, _I64 = ctypes.c_void_p, ctypes.c_int64
_SIGNATURES = {"linear_ce_f32": [_P, _P, _P, _P, _I64, _I64, _I64, ctypes.c_float, _P, _P, _P, _P, _P, _I64],
               "linear_ce_scratch": [_I64, _I64, _I64]}
ROWS = 16  # gw's rows and gb are padded to whole 64-byte lines (the kernel's PAD)


def kernels() -> ctypes.CDLL | None:
    """The built library with its signatures declared, or None where no C compiler works."""
    lib = build.load("linear_ce", _SIGNATURES)
    if lib is not None:
        lib.linear_ce_scratch.restype = ctypes.c_int64
    return lib


def supports(hidden: torch.Tensor) -> bool:
    return hidden.device.type == "cpu" and hidden.dtype == torch.float32 and kernels() is not None


def scratch_size(hidden_dim: int, vocab_size: int) -> int:
    """Floats of work space `loss_and_grads` needs at torch's current thread count."""
    return kernels().linear_ce_scratch(hidden_dim, vocab_size, torch.get_num_threads())


def _round16(x: int) -> int:
    return -(-x // ROWS) * ROWS


@dataclass
class Result:
    """log p(target) per row (n,); with gradients asked for, those of -scale * sum(log p) with
    respect to hidden (n, H), weight (V, H) and bias (V,; None without a bias)."""
    logp: torch.Tensor
    grad_hidden: torch.Tensor | None = None
    grad_weight: torch.Tensor | None = None
    grad_bias: torch.Tensor | None = None


def loss_and_grads(hidden: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor | None,
                   targets: torch.Tensor, *, scale: float, grads: bool, scratch: torch.Tensor) -> Result:
    """The kernel on n rows (no ignored ones); gradients only with `grads`. `scratch`: a contiguous
    float32 CPU tensor of at least `scratch_size(H, V)` elements (the caller keeps one across
    calls: a fresh multi-MB tensor per batch is page-faulted in at a cost like the work's)."""
    n, h_dim = hidden.shape
    v = weight.shape[0]
    lib, parts = kernels(), torch.get_num_threads()
    need = lib.linear_ce_scratch(h_dim, v, parts)
    if scratch.dtype != torch.float32 or not scratch.is_contiguous() or scratch.numel() < need:
        raise ValueError(f"scratch must be a contiguous float32 tensor of at least {need} elements")
    h = hidden.detach().contiguous()
    w = weight.detach().contiguous()
    b = None if bias is None else bias.detach().contiguous()
    t = targets.to(torch.int64).contiguous()
    if n and not (0 <= int(t.min()) and int(t.max()) < v):  # the kernel would index out of bounds
        raise IndexError(f"target out of range: got values in [{int(t.min())}, {int(t.max())}], "
                         f"the vocabulary has {v} entries (ignored rows must use ignore_index)")
    logp = h.new_empty(n)
    hp, vp = _round16(h_dim), _round16(v)  # the kernel writes whole vectors of gw and gb rows
    gh = h.new_empty(n, h_dim) if grads else None
    gw = w.new_empty(v, hp) if grads else None
    gb = w.new_empty(vp) if grads else None
    lib.linear_ce_f32(h.data_ptr(), w.data_ptr(), build.ptr(b), t.data_ptr(), n, h_dim, v, scale,
                      logp.data_ptr(), build.ptr(gh), build.ptr(gw), build.ptr(gb), scratch.data_ptr(), parts)
    if not grads:
        return Result(logp)
    return Result(logp, gh, gw if hp == h_dim else gw[:, :h_dim].contiguous(), None if b is None else gb[:v])
