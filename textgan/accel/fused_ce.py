"""Cross-entropy of a linear output layer, computed chunk by chunk so the logits stay in cache.

Shapes: N rows (B * T), H hidden, V vocabulary, C rows per chunk.
`linear_cross_entropy(h, W, b, y)` equals `F.cross_entropy(h @ W.T + b, y, ignore_index=...)`, but
never holds the (N, V) logits: each chunk of C rows gets its logits, softmax, loss terms and
at once its gradient `(softmax - onehot) / n_valid`, which is folded into the small gradients of
h, W and b before the next chunk overwrites the buffer. All of it runs in the forward pass (the
loss is a scalar, so its backward only scales the saved gradients), which reads the logits
while they are still in cache instead of writing and re-reading 40+ MB through memory several
times, and never allocates (and page-faults) such a tensor. Ignored rows (padding) have zero loss
and zero gradient, so they are dropped up front.
The idea is that of fused linear cross-entropy kernels (Wijmans et al., 2024, "Cut Your Losses
in Large-Vocabulary Language Models"), here in plain PyTorch ops; on CPU in float32 the C kernel
of textgan.accel.linear_ce does the same per block of rows (`kernel`: "auto" takes it where it applies,
a C compiler works and H <= AUTO_MAX_HIDDEN; "native" at any H; "torch" never).
"""
from __future__ import annotations

import torch
from torch import Tensor

from textgan.accel import linear_ce

# Logit elements per chunk. On CPU 2^20 (4 MB in fp32, about 225 rows of a 4663-word vocabulary)
# sits in L3 and amortises the read-modify-write of the (V, H + 1) gradient accumulator; measured
# on a 2-core EPYC, 64 to 512 rows of COCO were within 5% of one another and 2368 rows (the whole
# batch, 44 MB) 50% slower. On GPUs the chunk only bounds memory (128 MB in fp32).
CPU_CHUNK_ELEMENTS = 1 << 20
GPU_CHUNK_ELEMENTS = 1 << 25


def default_chunk_rows(num_classes: int, device: torch.device) -> int:
    budget = CPU_CHUNK_ELEMENTS if device.type == "cpu" else GPU_CHUNK_ELEMENTS
    return max(8, budget // max(num_classes, 1))


KERNELS = ("auto", "native", "torch")
# "auto" takes the C kernel up to this hidden size. Measured on the 2-core Xeon (800 rows,
# V = 4,663, loss and gradients): 5.2 against 7.6 ms at H = 32, 9.5 against 11.3 at 64, but
# 21.0 against 19.6 at 128 and 58 against 33 at 256, where torch's matmuls outrun the kernel's.
AUTO_MAX_HIDDEN = 64


def uses_native(hidden_dim: int, kernel: str, probe: Tensor) -> bool:
    """Whether the C kernel computes a cross-entropy of this width, kernel setting, device and dtype."""
    if kernel == "torch" or not linear_ce.supports(probe):
        return False
    return kernel == "native" or hidden_dim <= AUTO_MAX_HIDDEN


def _native(hv: Tensor, kernel: str) -> bool:
    return hv.shape[0] > 0 and uses_native(hv.shape[1], kernel, hv)


def _loss_and_grads(hidden: Tensor, weight: Tensor, bias: Tensor | None, targets: Tensor,
                    ignore_index: int, chunk_rows: int, reduction: str, need: tuple[bool, bool, bool],
                    kernel: str = "auto"):
    """Loss and, where `need` says so, d loss / d (hidden, weight, bias); everything chunked."""
    n_rows, h_dim = hidden.shape
    idx, hv, tv = _valid_rows(hidden, targets, ignore_index)  # (n,) or None, (n, H), (n,)
    n = hv.shape[0]
    grad_on = any(need)
    if _native(hv, kernel):
        scale = 1.0 / n if reduction == "mean" else 1.0
        res = linear_ce.loss_and_grads(hv, weight, bias, tv, scale=scale, grads=grad_on,
                                              scratch=native_scratch(hv, weight))
        loss = -res.logp.sum() * scale
        return (loss, _scatter_rows(res.grad_hidden, idx, n_rows) if need[0] else None,
                res.grad_weight if need[1] else None, res.grad_bias if need[2] else None)
    if not grad_on:
        loss = -_target_log_probs(hv, weight, bias, tv, chunk_rows).sum()
        return (loss / n if n else loss * float("nan")) if reduction == "mean" else loss, None, None, None
    scale = (1.0 / n if n else 0.0) if reduction == "mean" else 1.0
    hs = hv * scale if need[1] else None  # (n, H): grad W = (P - onehot).T @ hs
    gw = weight.new_zeros(weight.shape) if need[1] else None  # (V, H)
    # grad b = column sums of P - onehot, scaled. A separate (V,) sum costs less than a 33rd
    # column in the weight-gradient matmul, whose odd width slows it by a quarter.
    gb = weight.new_zeros(weight.shape[0]) if need[2] else None  # (V,)
    gh = hv.new_empty(n, h_dim) if need[0] else None  # (n, H)
    logp_t = hv.new_empty(n, 1)  # log p(target) per row
    buf = _train_buffer(min(chunk_rows, n), weight.shape[0], hv)  # (C, V), reused
    wt = weight.t()
    for s in range(0, n, chunk_rows):
        e = min(s + chunk_rows, n)
        z = _logits_into(buf[: e - s], hv[s:e], wt, bias)  # (C, V)
        # One softmax kernel instead of log_softmax + exp (a third of the chunk's time);
        # p(target) is read off p, its log taken after the loop.
        p = torch._softmax(z, 1, False, out=z)  # (C, V); the one-hot part is subtracted below
        torch.gather(p, 1, tv[s:e, None], out=logp_t[s:e])
        if gh is not None:
            torch.mm(p, weight, out=gh[s:e])
        if gw is not None:
            gw.addmm_(p.t(), hs[s:e])
        if gb is not None:
            gb.add_(p.sum(0), alpha=scale)
    _log_exactly(logp_t, hv, weight, bias, tv)  # once per batch: recomputed where p underflowed
    loss = -logp_t.sum()
    if reduction == "mean":
        loss = loss / n if n else loss * float("nan")
    gh_out = None
    if gh is not None:
        gh.sub_(weight.index_select(0, tv)).mul_(scale)  # (P - onehot) @ W * scale
        gh_out = _scatter_rows(gh, idx, n_rows)
    if gw is not None:
        gw.index_add_(0, tv, hs, alpha=-1.0)  # minus onehot.T @ hs
    if gb is not None:
        gb.index_add_(0, tv, hv.new_full((n,), scale), alpha=-1.0)
    return loss, gh_out, gw, gb


def _valid_rows(hidden: Tensor, targets: Tensor, ignore_index: int):
    """The rows whose target is not ignored: their indices (None when that is all of them), hidden
    states and targets. Ignored rows have no loss and no gradient, so they cost nothing."""
    valid = targets != ignore_index
    if bool(valid.all()):
        return None, hidden, targets
    idx = valid.nonzero().squeeze(1)
    return idx, hidden.index_select(0, idx), targets.index_select(0, idx)


def _scatter_rows(values: Tensor, idx: Tensor | None, n_rows: int) -> Tensor:
    """Per-row `values` of the valid rows back in place among all `n_rows`, zeros elsewhere."""
    if idx is None:
        return values
    return values.new_zeros((n_rows,) + values.shape[1:]).index_copy_(0, idx, values)


def _target_log_probs(hidden: Tensor, weight: Tensor, bias: Tensor | None, targets: Tensor,
                      chunk_rows: int) -> Tensor:
    """log softmax(hidden @ weight.T + bias)[row, target], (N,), chunk by chunk; no gradients."""
    out = hidden.new_empty(hidden.shape[0], 1)
    buf = hidden.new_empty(min(chunk_rows, hidden.shape[0]), weight.shape[0])  # (C, V), reused
    wt = weight.t()
    for s in range(0, hidden.shape[0], chunk_rows):
        e = min(s + chunk_rows, hidden.shape[0])
        z = _logits_into(buf[: e - s], hidden[s:e], wt, bias)  # (C, V)
        torch.log_softmax(z, 1, out=z)  # row-wise, so safe in place
        torch.gather(z, 1, targets[s:e, None], out=out[s:e])
    return out.squeeze(1)


_TRAIN_BUFFERS: dict[torch.dtype, Tensor] = {}


def _train_buffer(rows: int, cols: int, like: Tensor) -> Tensor:
    """The training loop's (rows, cols) chunk buffer, kept across calls on CPU. A fresh 4 MB
    tensor per batch often comes from a new mmap, and page-faulting it in cost as much as the
    matmul that fills it (a tenth of an MLE epoch). GPUs have torch's caching allocator.
    Only `_loss_and_grads` and `native_scratch` use it, one call at a time (`_log_exactly`
    allocates its own). Grown outside inference mode even when an evaluation grows it: an
    inference tensor refuses the in-place writes of a later training step."""
    if like.device.type != "cpu":
        return like.new_empty(rows, cols)
    buf = _TRAIN_BUFFERS.get(like.dtype)
    if buf is None or buf.numel() < rows * cols:
        with torch.inference_mode(False):
            buf = _TRAIN_BUFFERS[like.dtype] = torch.empty(rows * cols, dtype=like.dtype)
    return buf[: rows * cols].view(rows, cols)


def native_scratch(hv: Tensor, weight: Tensor) -> Tensor:
    """The C kernel's work space: the same kept buffer as the torch path's chunks."""
    return _train_buffer(1, linear_ce.scratch_size(hv.shape[1], weight.shape[0]), hv).view(-1)


def _log_exactly(p_t: Tensor, h: Tensor, weight: Tensor, bias: Tensor | None, t: Tensor) -> None:
    """log of the target probabilities `p_t` (C, 1), in place; rows whose probability fell below
    fp range (a target logit ~87+ below the row's maximum) get the exact log-softmax instead."""
    tiny = (p_t < torch.finfo(p_t.dtype).tiny).squeeze(1)
    p_t.log_()
    if bool(tiny.any()):
        rows = tiny.nonzero().squeeze(1)
        p_t[rows, 0] = _target_log_probs(h[rows], weight, bias, t[rows], chunk_rows=len(rows))


def _logits_into(out: Tensor, h: Tensor, wt: Tensor, bias: Tensor | None) -> Tensor:
    """h @ wt + bias written into the chunk buffer `out`. On CPU as mm then an in-place bias add:
    addmm first broadcasts the bias into `out` and has the matmul read it back, which cost
    200-340 us more per (224, 4663) chunk than the add (measured on a 2-core Xeon)."""
    if bias is None:
        return torch.mm(h, wt, out=out)
    if out.device.type == "cpu":
        return torch.mm(h, wt, out=out).add_(bias)
    return torch.addmm(bias, h, wt, out=out)


class _LinearCrossEntropy(torch.autograd.Function):
    @staticmethod
    def forward(ctx, hidden, weight, bias, targets, ignore_index, chunk_rows, reduction, kernel):
        need = (ctx.needs_input_grad[0], ctx.needs_input_grad[1], bias is not None and ctx.needs_input_grad[2])
        loss, *grads = _loss_and_grads(hidden, weight, bias, targets, ignore_index, chunk_rows,
                                       reduction, need, kernel)
        ctx.grads = grads
        return loss

    @staticmethod
    @torch.autograd.function.once_differentiable
    def backward(ctx, grad_out):
        grads = [None if g is None else g * grad_out for g in ctx.grads]
        ctx.grads = None
        return grads[0], grads[1], grads[2], None, None, None, None, None


def _checked_chunk_rows(hidden: Tensor, weight: Tensor, targets: Tensor, chunk_rows: int | None,
                        kernel: str) -> int:
    """The rows per chunk, after checking the kernel name and the shapes both entry points take."""
    if kernel not in KERNELS:
        raise ValueError(f"kernel must be one of {KERNELS}, got {kernel!r}")
    if hidden.dim() != 2 or weight.dim() != 2 or targets.shape != hidden.shape[:1]:
        raise ValueError(f"expected hidden (N, H), weight (V, H), targets (N,); got "
                         f"{tuple(hidden.shape)}, {tuple(weight.shape)}, {tuple(targets.shape)}")
    return chunk_rows or default_chunk_rows(weight.shape[0], hidden.device)


def linear_cross_entropy(hidden: Tensor, weight: Tensor, bias: Tensor | None, targets: Tensor,
                         ignore_index: int = -100, chunk_rows: int | None = None,
                         reduction: str = "mean", kernel: str = "auto") -> Tensor:
    """`F.cross_entropy(hidden @ weight.T + bias, targets, ignore_index, reduction)` without the logits.

    hidden (N, H), weight (V, H), bias (V,) or None, targets (N,) -> scalar. reduction is "mean"
    (over non-ignored rows; nan when there are none, as in torch) or "sum". Gradients are computed
    during the forward pass only when grad mode is on and an input requires them; the result is
    not twice differentiable. `kernel`: one of KERNELS (see the module docstring).
    """
    if reduction not in ("mean", "sum"):
        raise ValueError(f"reduction must be 'mean' or 'sum', got {reduction!r}")
    rows = _checked_chunk_rows(hidden, weight, targets, chunk_rows, kernel)
    with torch.autocast(hidden.device.type, enabled=False):
        hidden_c = hidden.to(weight.dtype)
        bias_c = None if bias is None else bias.to(weight.dtype)
        inputs = (hidden_c, weight, bias_c)
        if torch.is_grad_enabled() and any(t is not None and t.requires_grad for t in inputs):
            return _LinearCrossEntropy.apply(hidden_c, weight, bias_c, targets, ignore_index, rows,
                                             reduction, kernel)
        return _loss_and_grads(hidden_c, weight, bias_c, targets, ignore_index, rows, reduction,
                               (False, False, False), kernel)[0]


@torch.no_grad()
def target_log_probs(hidden: Tensor, weight: Tensor, bias: Tensor | None, targets: Tensor,
                     ignore_index: int = -100, chunk_rows: int | None = None, kernel: str = "auto") -> Tensor:
    """`log_softmax(hidden @ weight.T + bias)` at each row's target, (N,), without the (N, V)
    logits; 0 at ignored rows, which cost nothing. For scoring (NLL_gen); no gradients."""
    rows = _checked_chunk_rows(hidden, weight, targets, chunk_rows, kernel)
    hidden = hidden.to(weight.dtype)
    bias = None if bias is None else bias.to(weight.dtype)
    idx, hv, tv = _valid_rows(hidden, targets, ignore_index)
    if _native(hv, kernel):
        logp = linear_ce.loss_and_grads(hv, weight, bias, tv, scale=1.0, grads=False,
                                               scratch=native_scratch(hv, weight)).logp
    else:
        logp = _target_log_probs(hv, weight, bias, tv, rows) if tv.numel() else hv.new_zeros(0)
    return _scatter_rows(logp, idx, hidden.shape[0])
