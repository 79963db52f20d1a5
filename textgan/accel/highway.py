"""A highway layer's gate, y = x + sigmoid(g) * (relu(h) - x) with [h, g] = x W^T + b, and its
backward, by the C kernel in textgan/accel/csrc/highway.c on CPU in float32 (torch's product x W^T,
then the kernel adds the bias as it goes).

Shapes: N rows (RelGAN's discriminator: batch times representations), D features. The product p
has 2D columns [h, g] (separate transform and gate weights, "gated") or D columns that serve as
both, g = h ("shared", TextGAN-PyTorch's RelGAN discriminator): its width says which. A dropout
mask that follows the layer can be passed in: the kernel multiplies y by it as it writes y, and dy
as it reads it, where a separate dropout makes two more passes over the (N, D) arrays.
Why: at RelGAN's size (8,192 rows of 1,200 features a discriminator call) torch runs the gate as
five elementwise ops forward and about eight backward, each a pass over a 39 MB array, and its
addmm first broadcasts the bias into a 78 MB output; the kernel makes one pass each way. A
second-order gradient (create_graph, as a gradient penalty takes) runs `backward_torch`, which
autograd can differentiate.
"""
from __future__ import annotations

import ctypes

import torch
from torch import Tensor

from textgan.accel import build

_P, _I64 = ctypes.c_void_p, ctypes.c_int64
_SIGNATURES = {"highway_forward_f32": [_P, _P, _P, _P, _I64, _I64, _P, _I64, _I64],
               "highway_backward_f32": [_P, _P, _P, _P, _P, _I64, _I64, _P, _P, _I64, _I64]}


def kernels() -> ctypes.CDLL | None:
    """The built library with its signatures declared, or None where no C compiler works."""
    return build.load("highway", _SIGNATURES)


def supports(x: Tensor) -> bool:
    return x.device.type == "cpu" and x.dtype == torch.float32 and kernels() is not None


def is_shared(p: Tensor, x: Tensor) -> bool:
    """Whether p (..., D) is both transform and gate, rather than (..., 2D) = [h, g]."""
    return p.shape[-1] == x.shape[-1]


def _split(p: Tensor, x: Tensor) -> tuple[Tensor, Tensor]:
    return (p, p) if is_shared(p, x) else p.chunk(2, dim=-1)


def gate_torch(p: Tensor, x: Tensor) -> Tensor:
    """y (..., D) from p (..., 2D) = [h, g] (or (..., D), g = h) and x (..., D), in torch ops."""
    h, g = _split(p, x)
    return x + torch.sigmoid(g) * (torch.relu(h) - x)


def backward_torch(dy: Tensor, p: Tensor, x: Tensor) -> tuple[Tensor, Tensor]:
    """d/dp (p's shape) and the direct d/dx (..., D) of `gate_torch`, in differentiable torch ops."""
    h, g = _split(p, x)
    s = torch.sigmoid(g)
    gs = dy * s
    dh = torch.where(h > 0, gs, torch.zeros_like(gs))
    dg = gs * (1 - s) * (torch.relu(h) - x)
    return (dh + dg if is_shared(p, x) else torch.cat([dh, dg], dim=-1)), dy - gs


def _ptr(t: Tensor | None):
    return None if t is None else t.data_ptr()


class _Gate(torch.autograd.Function):
    @staticmethod
    def forward(ctx, p, bias, x, mask):
        p, bias, x = p.contiguous(), bias.contiguous(), x.contiguous()
        mask = None if mask is None else mask.contiguous()
        n, d = x.numel() // x.shape[-1], x.shape[-1]
        y = torch.empty_like(x)
        kernels().highway_forward_f32(p.data_ptr(), bias.data_ptr(), x.data_ptr(), _ptr(mask), n, d, y.data_ptr(),
                                      int(is_shared(p, x)), torch.get_num_threads())
        ctx.save_for_backward(p, bias, x, mask)
        return y

    @staticmethod
    def backward(ctx, dy):
        p, bias, x, mask = ctx.saved_tensors
        if torch.is_grad_enabled():  # create_graph: a backward that autograd can differentiate
            dp, dx = backward_torch(dy if mask is None else dy * mask, p + bias, x)
        else:
            dy = dy.contiguous()
            n, d = x.numel() // x.shape[-1], x.shape[-1]
            dp, dx = torch.empty_like(p), torch.empty_like(x)
            kernels().highway_backward_f32(dy.data_ptr(), p.data_ptr(), bias.data_ptr(), x.data_ptr(), _ptr(mask),
                                           n, d, dp.data_ptr(), dx.data_ptr(), int(is_shared(p, x)),
                                           torch.get_num_threads())
        return dp, dp.reshape(-1, dp.shape[-1]).sum(0), dx, None


def gate(p: Tensor, bias: Tensor, x: Tensor, mask: Tensor | None = None) -> Tensor:
    """`gate_torch(p + bias, x)` (times `mask`, a constant, where given) by the kernel, p = x W^T
    without the bias (p's width,); `supports(x)` must hold."""
    return _Gate.apply(p, bias, x, mask)
