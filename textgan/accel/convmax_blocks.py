"""`textgan.models.discriminator.conv_relu_max` (convolution over time, ReLU, max over time) in
torch ops without materialising the full convolution output: accel's conv + max wherever the C
kernel (textgan.accel.convmax) does not run, and the one that `run.accel=compile` compiles.

Shapes: B batch, T time, R representations, D features per representation,
F filters, K filter width, T' = T - K + 1.
RelGAN's discriminator convolves every narrow representation with many filters and
keeps only the maximum over time: the (B, F, T', R) output is huge (hundreds of MB at
the benchmark size) and memory-bound. Here the forward pass works a few batch rows at a
time (a block that stays in cache) and keeps only the (B, R, F) maxima and their positions;
the backward pass touches only the argmax windows. Same function and gradients: where several
time steps tie for the maximum the gradient goes to the last of them, as in the definition.
"""
from __future__ import annotations

import torch


def _windows(emb: torch.Tensor, width: int) -> torch.Tensor:
    """(b, T, R, D) -> (b, T', R, K*D) sliding windows, k-major to match the weight layout."""
    win = emb.unfold(1, width, 1)  # (b, T', R, D, K)
    return win.transpose(-1, -2).flatten(-2)  # (b, T', R, K*D)


def block_max(emb: torch.Tensor, w2: torch.Tensor, width: int, track: bool):
    """Max over time of one block's convolution (b, R, F) and, if `track`, the last time step
    reaching it (as a float), else None. Pure, so `torch.compile` can fuse it into one pass."""
    conv = _windows(emb, width) @ w2  # (b, T', R, F)
    top = torch.amax(conv, dim=1, keepdim=True)  # (b, 1, R, F)
    if not track:
        return top[:, 0], None
    times = torch.arange(conv.shape[1], device=emb.device, dtype=emb.dtype).view(1, -1, 1, 1)
    return top[:, 0], torch.amax(torch.where(conv == top, times, -1.0), dim=1)


class _ConvMax(torch.autograd.Function):
    """Per cache-sized block: one matmul for the convolution, amax for the maximum and, when a
    gradient will be needed, the position of the maximum (found with `where` + amax: torch's
    max-with-indices is ~20x slower on CPU). Backward then reads only the argmax windows."""

    @staticmethod
    def forward(ctx, emb, weight, bias, rows, block):
        b_all = emb.shape[0]
        f, k, d = weight.shape
        # Detached, so a compiled `block` sees one requires_grad state (no extra recompiles).
        w2, x = weight.detach().reshape(f, k * d).t(), emb.detach()  # (K*D, F), (B, T, R, D)
        track = any(ctx.needs_input_grad[:3])  # False under no_grad and inference_mode
        tops, wheres = [], []
        for start in range(0, b_all, rows):
            top, where = block(x[start:start + rows], w2, k, track)
            tops.append(top)
            wheres.append(where)
        best = torch.cat(tops) if len(tops) > 1 else tops[0]  # (B, R, F)
        out = torch.relu(best + bias)  # relu(max(x)) = max(relu(x)): relu is monotone
        if track:
            ctx.save_for_backward(emb, weight, torch.cat(wheres).long(), out)
        return out

    @staticmethod
    def backward(ctx, grad):
        emb, weight, where, out = ctx.saved_tensors
        return (*_backward_torch(emb, weight, where, out, grad, ctx.needs_input_grad), None, None)


def _backward_torch(emb, weight, where, out, grad, needs):
    """Gradients of conv_relu_max for emb, weight, bias from the maxima's positions `where`
    (B, R, F), in differentiable torch ops (so second-order gradients work)."""
    b, t, r, d = emb.shape
    f, k, _ = weight.shape
    g = grad * (out > 0)  # (B, R, F) through the ReLU
    pos = (where.unsqueeze(-1) + torch.arange(k, device=emb.device)).reshape(b, r, f * k, 1)
    idx = pos.expand(b, r, f * k, d)  # time index of every tap of every argmax window
    grad_emb = grad_w = grad_b = None
    if needs[1]:
        win = emb.transpose(1, 2).gather(2, idx).view(b, r, f, k, d)  # (B, R, F, K, D)
        grad_w = torch.einsum("brf,brfkd->fkd", g, win)
    if needs[2]:
        grad_b = g.sum(dim=(0, 1))
    if needs[0]:
        src = (g.unsqueeze(-1).unsqueeze(-1) * weight).view(b, r, f * k, d)  # (B, R, F*K, D)
        grad_emb = emb.new_zeros(b, r, t, d).scatter_add(2, idx, src).transpose(1, 2)
    return grad_emb, grad_w, grad_b


def conv_relu_max(emb: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor, rows: int = 1,
                  block=block_max) -> torch.Tensor:
    """max over t of relu(sum_k,d weight[f,k,d] * emb[b,t+k,r,d] + bias[f]), (B, R, F).

    emb is (B, T, R, D) with T >= K; weight is (F, K, D); `rows` batch rows per block; `block`
    is `block_max` or a `torch.compile`d version of it.
    """
    return _ConvMax.apply(emb, weight, bias, rows, block)
