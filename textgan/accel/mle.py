"""The teacher-forced MLE loss of an LSTM generator with every gradient computed in the forward
pass, by the C kernels of textgan.accel.lstm and textgan.accel.linear_ce (CPU, float32).

Shapes: B batch, T time, BP the batch padded to 16, E embedding, H hidden, L layers, V vocabulary,
n scored (non-pad) positions.
Why: the loss is a scalar, so its backward is a fixed sequence of products, and the C cross-entropy
already returns its gradients with the loss. Running the whole backward at once, in the kernels'
(F, T * BP) layout, leaves autograd one node (plus the latent projection's) instead of ~25, and
drops the permutes, pads, reshapes, scatters and their backward copies between the pieces: about
100 small torch operations per batch, a fifth of a 64-sentence COCO batch's time at H = 32.
It computes what Generator.hidden_states + fused_ce.linear_cross_entropy compute (same products,
same kernels; only the embedding gradient's summation order differs), tests/test_accel_mle.py.
"""
from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn
from torch.autograd.function import once_differentiable

from textgan.accel import linear_ce
from textgan.accel import lstm as rnn
from textgan.accel.fused_ce import native_scratch


@dataclass
class Grads:
    """d loss / d each input of `_TeacherForcedNLL`, in its order."""
    embedding: torch.Tensor  # (V, E)
    out_weight: torch.Tensor  # (V, H)
    out_bias: torch.Tensor  # (V,)
    state: torch.Tensor  # (B, 2 * L * H)
    layers: list[torch.Tensor]  # w_ih, w_hh, b_ih, b_hh of every layer


def applies(lstm: nn.LSTM) -> bool:
    """Whether the fused loss computes this LSTM's training loss: no dropout between layers is
    active (its random mask would have to be threaded through; the layered path keeps it)."""
    return not (lstm.training and lstm.dropout > 0 and lstm.num_layers > 1)


def _positions(tokens: torch.Tensor, bos_id: int, pad_id: int, bp: int):
    """Inputs (T * BP,), the gold previous token (BOS first; pad in the padded columns), and the
    flat indices (n,) of the scored positions with their targets (n,)."""
    b, t_len = tokens.shape
    inputs = tokens.new_full((t_len, bp), pad_id)
    inputs[0, :b] = bos_id
    inputs[1:, :b] = tokens[:, :-1].t()
    targets = tokens.new_full((t_len, bp), pad_id)
    targets[:, :b] = tokens.t()
    targets = targets.view(-1)
    idx = (targets != pad_id).nonzero().squeeze(1)
    return inputs.view(-1), idx, targets.index_select(0, idx)


def _nll_and_grads(tokens, bos_id, pad_id, embedding, out_weight, out_bias, state, layers) -> tuple[torch.Tensor, Grads]:
    """Mean NLL over the n scored positions and all its gradients."""
    b, t_len = tokens.shape
    bp = b + (-b % rnn.ROWS)
    hd, num_layers = layers[1].shape[1], len(layers) // 4
    inputs, idx, targets = _positions(tokens, bos_id, pad_id, bp)
    n = idx.numel()
    if n == 0:  # nothing scored: torch's mean over no rows, and no gradient
        zeros = [torch.zeros_like(t) for t in (embedding, out_weight, out_bias, state)]
        return state.new_tensor(float("nan")), Grads(*zeros, [torch.zeros_like(w) for w in layers])
    x = embedding.index_select(0, inputs).t()  # (E, T * BP), a transposed view
    h0p, c0p = F.pad(state.view(b, 2, num_layers, hd).permute(1, 2, 3, 0), (0, bp - b))  # (L, H, BP) each
    xs, states = [], []
    for layer in range(num_layers):
        w_ih, w_hh, b_ih, b_hh = layers[4 * layer:4 * layer + 4]
        st = rnn.layer_forward(x, t_len, w_ih, w_hh, (b_ih + b_hh).unsqueeze(1), h0p[layer], c0p[layer])
        xs.append(x)
        states.append(st)
        x = st.y.view(hd, -1)[:, bp:]  # steps 1..T, (H, T * BP)
    hv = x.t().index_select(0, idx)  # (n, H): the scored positions' top states
    res = linear_ce.loss_and_grads(hv, out_weight, out_bias, targets, scale=1.0 / n,
                                          grads=True, scratch=native_scratch(hv, out_weight))
    loss = -res.logp.sum() * (1.0 / n)  # scaled as fused_ce scales it
    dy = hv.new_zeros(hd, (t_len + 1) * bp)  # the top layer's dy; step 0 (h0's slot) stays 0
    dy[:, bp:].index_copy_(1, idx, res.grad_hidden.t())
    d_state, layer_grads = state.new_empty(2, num_layers, hd, bp), [None] * len(layers)
    for layer in reversed(range(num_layers)):
        st, w_ih = states[layer], layers[4 * layer]
        dg, d_state[0, layer], d_state[1, layer] = rnn.layer_backward(dy.view(hd, t_len + 1, bp), st)
        dw_ih, dw_hh, db = rnn.weight_grads(dg, xs[layer], rnn.previous_states(st.y))
        layer_grads[4 * layer:4 * layer + 4] = [dw_ih, dw_hh, db, db]
        if layer:  # the layer below's output gradient, in its y layout
            dy = hv.new_zeros(w_ih.shape[1], (t_len + 1) * bp)
            dy[:, bp:] = w_ih.t() @ dg
    dx = torch.mm(dg.t(), layers[0])  # (T * BP, E): the input embeddings' gradients
    g_emb = torch.zeros_like(embedding).index_add_(0, inputs, dx)
    d_state = d_state[..., :b].permute(3, 0, 1, 2).reshape(b, -1)  # (B, 2 * L * H)
    return loss, Grads(g_emb, res.grad_weight, res.grad_bias, d_state, layer_grads)


class _TeacherForcedNLL(torch.autograd.Function):
    """(tokens, bos, pad, embedding, out weight, out bias, state, *layer weights) -> mean NLL."""

    @staticmethod
    def forward(ctx, tokens, bos_id, pad_id, embedding, out_weight, out_bias, state, *layers):
        loss, grads = _nll_and_grads(tokens, bos_id, pad_id, embedding, out_weight, out_bias, state, layers)
        ctx.grads = grads
        return loss

    @staticmethod
    @once_differentiable  # the gradients were computed in the forward pass
    def backward(ctx, grad_out):
        g, ctx.grads = ctx.grads, None
        flat = [g.embedding, g.out_weight, g.out_bias, g.state, *g.layers]
        if float(grad_out) != 1.0:  # the training loss's own backward is 1: twelve products fewer
            flat = [t * grad_out for t in flat]
        return (None, None, None, *flat)


def mle_loss(lstm: nn.LSTM, embedding: torch.Tensor, out_weight: torch.Tensor, out_bias: torch.Tensor,
             tokens: torch.Tensor, state: torch.Tensor, bos_id: int, pad_id: int) -> torch.Tensor:
    """Mean teacher-forced NLL of tokens (B, T) over non-pad positions, as Generator.mle_loss
    computes it through the layered path; state (B, 2 * L * H): h0 then c0 of every layer, the
    latent projection's output as Generator.init_state reads it."""
    layers = [w for layer in range(lstm.num_layers) for w in rnn.layer_weights(lstm, layer)]
    return _TeacherForcedNLL.apply(tokens, bos_id, pad_id, embedding, out_weight, out_bias, state, *layers)
