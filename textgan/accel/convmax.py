"""`conv_relu_max` (textgan.models.discriminator) through the C kernel in textgan/accel/csrc/convmax.c, on CPU in
float32 and float64.

Shapes: B batch, T time, R representations, D features per representation, F filters, K width.
The kernel walks each (b, r) row over time once, keeping every filter's running maximum and its
position in vector registers, so the (B, T', R, F) convolution output is never written, not even
block by block, and nothing is read back to find the argmax. Same function and gradients as the
torch versions (ties go to the last time step, as in the definition); a second-order gradient
(create_graph) takes the torch backward, which is differentiable.
"""
from __future__ import annotations

import ctypes

import torch

from textgan.accel import build
from textgan.accel.convmax_blocks import _backward_torch

_P, _I64 = ctypes.c_void_p, ctypes.c_int64
_LANES = {torch.float32: 16, torch.float64: 8}  # filters padded to 64 bytes, the widest vector
_SUFFIX = {torch.float32: "f32", torch.float64: "f64"}
_SIGNATURES = {name: args for suffix in _SUFFIX.values() for name, args in (
    (f"convmax_forward_{suffix}", [_P, _P, _I64, _I64, _I64, _I64, _I64, _P, _P, _I64]),
    (f"convmax_backward_{suffix}", [_P, _P, _P, _P, _I64, _I64, _I64, _I64, _I64, _P, _P, _I64]))}


def kernels() -> ctypes.CDLL | None:
    """The built library with its signatures declared, or None where no C compiler works."""
    return build.load("convmax", _SIGNATURES)


def supports(emb: torch.Tensor) -> bool:
    return emb.device.type == "cpu" and emb.dtype in _LANES and kernels() is not None


class _NativeConvMax(torch.autograd.Function):
    @staticmethod
    def forward(ctx, emb, weight, bias):
        b, t, r, d = emb.shape
        f, k, _ = weight.shape
        n, lanes = b * r, _LANES[emb.dtype]
        padded = -(-f // lanes) * lanes  # the kernel works a vector of filters at a time
        x = emb.detach().permute(0, 2, 1, 3).contiguous()  # (B, R, T, D): one row per (b, r)
        wt = weight.new_zeros(k * d, padded)  # (K*D, F padded); the padding filters are dropped
        wt[:, :f] = weight.detach().reshape(f, k * d).t()
        best = emb.new_empty(n, padded)  # (B*R, F padded)
        track = any(ctx.needs_input_grad)  # False under no_grad and inference_mode
        where = torch.empty(n, padded, dtype=torch.int32) if track else None
        forward = getattr(kernels(), f"convmax_forward_{_SUFFIX[emb.dtype]}")
        forward(x.data_ptr(), wt.data_ptr(), n, t, d, k, padded, best.data_ptr(), build.ptr(where),
                torch.get_num_threads())
        out = torch.relu(best.view(b, r, padded)[..., :f] + bias)  # (B, R, F)
        if track:
            ctx.save_for_backward(emb, weight, x, where[:, :f].contiguous(), out)
        return out

    @staticmethod
    def backward(ctx, grad):
        emb, weight, x, where, out = ctx.saved_tensors
        needs = ctx.needs_input_grad
        b, t, r, d = emb.shape
        f, k, _ = weight.shape
        if torch.is_grad_enabled():  # create_graph: a backward that autograd can differentiate
            return _backward_torch(emb, weight, where.view(b, r, f).long(), out, grad, needs)
        n = b * r
        g = (grad * (out > 0)).contiguous()  # (B, R, F) through the ReLU
        w = weight.detach().reshape(f, k * d).contiguous()  # (F, K*D)
        gx = torch.zeros_like(x) if needs[0] else None  # (B, R, T, D)
        threads = torch.get_num_threads()
        gw = weight.new_zeros(threads, f, k * d) if needs[1] else None  # one per thread's rows
        backward = getattr(kernels(), f"convmax_backward_{_SUFFIX[emb.dtype]}")
        backward(x.data_ptr(), w.data_ptr(), g.data_ptr(), where.data_ptr(), n, t, d, k, f,
                 build.ptr(gx), build.ptr(gw), threads)
        return (None if gx is None else gx.permute(0, 2, 1, 3),
                None if gw is None else gw.sum(0).view(f, k, d),
                g.sum(dim=(0, 1)) if needs[2] else None)


def conv_relu_max_native(emb: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor) -> torch.Tensor:
    """`conv_relu_max(emb, weight, bias)`, (B, R, F), by the C kernel; `supports(emb)` must hold."""
    return _NativeConvMax.apply(emb, weight, bias)
