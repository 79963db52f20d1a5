"""Convolution over time followed by ReLU and max over time, without materialising the
full convolution output.

Shapes: B batch, T time, R representations, D features per representation,
F filters, K filter width, T' = T - K + 1.
RelGAN's discriminator convolves every narrow representation with many filters and
keeps only the maximum over time: the (B, F, T', R) output is huge (hundreds of MB at
the benchmark size) and memory-bound. Here the forward pass computes it a few batch
rows at a time (a cache-sized block), keeps only the max and its position, and the
backward pass touches only the argmax windows. Same function, same gradients.
"""
from __future__ import annotations

import torch


def _windows(emb: torch.Tensor, width: int) -> torch.Tensor:
    """(b, T, R, D) -> (b, T', R, K*D) sliding windows, k-major to match the weight layout."""
    win = emb.unfold(1, width, 1)  # (b, T', R, D, K)
    return win.transpose(-1, -2).flatten(-2)  # (b, T', R, K*D)


class _ConvMax(torch.autograd.Function):
    @staticmethod
    def forward(ctx, emb, weight, bias, rows):
        b_all, _, r, _ = emb.shape
        f, k, d = weight.shape
        w2 = weight.reshape(f, k * d).t()  # (K*D, F)
        best = emb.new_empty(b_all, r, f)
        where = torch.empty(b_all, r, f, dtype=torch.long, device=emb.device)
        for start in range(0, b_all, rows):
            win = _windows(emb[start:start + rows], k)  # (b, T', R, K*D)
            conv = win @ w2  # (b, T', R, F)
            torch.max(conv, dim=1, out=(best[start:start + rows], where[start:start + rows]))
        out = torch.relu(best + bias)  # relu(max(x)) = max(relu(x)): relu is monotone
        ctx.save_for_backward(emb, weight, where, out)
        return out

    @staticmethod
    def backward(ctx, grad):
        emb, weight, where, out = ctx.saved_tensors
        b, t, r, d = emb.shape
        f, k, _ = weight.shape
        g = grad * (out > 0)  # (B, R, F) through the ReLU
        pos = where.unsqueeze(-1) + torch.arange(k, device=emb.device)  # (B, R, F, K) argmax window
        grad_emb = grad_w = grad_b = None
        if ctx.needs_input_grad[1]:
            per_rep = emb.transpose(1, 2)  # (B, R, T, D)
            idx = pos.reshape(b, r, f * k, 1).expand(b, r, f * k, d)
            win = per_rep.gather(2, idx).view(b, r, f, k, d)  # (B, R, F, K, D)
            grad_w = torch.einsum("brf,brfkd->fkd", g, win)
        if ctx.needs_input_grad[2]:
            grad_b = g.sum(dim=(0, 1))
        if ctx.needs_input_grad[0]:
            src = (g.unsqueeze(-1).unsqueeze(-1) * weight).view(b, r, f * k, d)  # (B, R, F*K, D)
            idx = pos.reshape(b, r, f * k, 1).expand(b, r, f * k, d)
            grad_emb = emb.new_zeros(b, r, t, d).scatter_add_(2, idx, src).transpose(1, 2)
        return grad_emb, grad_w, grad_b, None


def conv_relu_max(emb: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor, rows: int = 4) -> torch.Tensor:
    """max over t of relu(sum_k,d weight[f,k,d] * emb[b,t+k,r,d] + bias[f]), (B, R, F).

    emb is (B, T, R, D) with T >= K; weight is (F, K, D); `rows` batch rows per block.
    """
    return _ConvMax.apply(emb, weight, bias, rows)


def conv_relu_max_reference(emb: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor) -> torch.Tensor:
    """The plain version with torch's convolution: the definition the fast one must match."""
    b, t, r, d = emb.shape
    x = emb.reshape(b, 1, t, r * d)  # (B, 1, T, R*D)
    w = weight.unsqueeze(1)  # (F, 1, K, D)
    conv = torch.nn.functional.conv2d(x, w, bias, stride=(1, d))  # (B, F, T', R)
    return torch.relu(conv).amax(dim=2).transpose(1, 2)  # (B, R, F)
