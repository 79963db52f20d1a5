"""A teacher-forced nn.LSTM run by the C recurrence in textgan/accel/csrc/lstm.c (CPU, float32).

Why: the generator's LSTM is small (H = 32 in the published settings), and at that size torch's
LSTM (mkldnn) spends ~2 ms per 64-sentence batch in per-step overhead for ~0.1 GFLOP of work. Here
each layer is one torch product for all steps' input projections (x W_ih^T + b), the kernel's
recurrence, and, going back, one product each for the input and weight gradients. Inside,
activations are laid out (F, T, BP): unit-major, batch-minor with the batch padded to 16, so the
kernel's vectors are 16 batch rows of one unit and every array is a plain (F, T * BP) matrix for
torch's products. Same weights, same results as the module (tests/test_accel_lstm.py);
between stacked layers the module's dropout is applied with F.dropout (other random draws).
"""
from __future__ import annotations

import ctypes
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn
from torch.autograd.function import once_differentiable

from textgan.accel import build

_P, _I64 = ctypes.c_void_p, ctypes.c_int64
_SIGNATURES = {"lstm_forward_f32": [_P, _P, _I64, _I64, _I64, _P, _P, _P, _I64],
               "lstm_backward_f32": [_P, _P, _P, _P, _P, _I64, _I64, _I64, _P, _P, _P, _I64]}
ROWS = 16  # the batch is padded to a multiple of the kernel's widest vector (16 floats)
AUTO_MAX_HIDDEN = 64  # `auto` takes the kernel up to this width (BENCHMARKS.md: the crossover)


def kernels() -> ctypes.CDLL | None:
    """The built library with its signatures declared, or None where no C compiler works."""
    return build.load("lstm", _SIGNATURES)


def uses_native(lstm: nn.LSTM, kernel: str, like: torch.Tensor) -> bool:
    """Whether `kernel` (auto | native | torch) runs the C recurrence for `lstm` on `like`'s
    device and dtype: native wherever it can (CPU float32), auto only up to AUTO_MAX_HIDDEN."""
    if kernel == "torch" or like.device.type != "cpu" or like.dtype != torch.float32:
        return False
    if kernel == "auto" and lstm.hidden_size > AUTO_MAX_HIDDEN:
        return False
    return kernels() is not None


@dataclass
class LayerState:
    """What one layer's forward leaves for its backward: w_hh contiguous (4H, H), act the gate
    activations (4H, T * BP), tcs tanh of the cell states (H, T, BP), and y and cs the hidden and
    cell states (H, T + 1, BP), step 0 being h0 and c0."""
    w_hh: torch.Tensor
    act: torch.Tensor
    tcs: torch.Tensor
    y: torch.Tensor
    cs: torch.Tensor


def layer_forward(x: torch.Tensor, t_len: int, w_ih: torch.Tensor, w_hh: torch.Tensor, b: torch.Tensor,
                  h0: torch.Tensor, c0: torch.Tensor) -> LayerState:
    """One layer on x (E, T * BP), a matrix view, from h0 and c0 (H, BP); b (4H, 1) both biases
    summed. No autograd: `_Layer` and textgan.accel.mle wrap it."""
    hd, bp = h0.shape
    act = torch.addmm(b, w_ih, x)  # (4H, T * BP): every step's input projection; the kernel's in-out
    tcs = x.new_empty(hd, t_len, bp)
    y, cs = x.new_empty(hd, t_len + 1, bp), x.new_empty(hd, t_len + 1, bp)
    y[:, 0], cs[:, 0] = h0, c0
    w_hh = w_hh.contiguous()
    kernels().lstm_forward_f32(act.data_ptr(), w_hh.data_ptr(), t_len, hd, bp, tcs.data_ptr(), y.data_ptr(),
                               cs.data_ptr(), torch.get_num_threads())
    return LayerState(w_hh, act, tcs, y, cs)


def layer_backward(dy: torch.Tensor, st: LayerState) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """From dy (H, T + 1, BP), the gradient of `st.y`: those of the gate pre-activations (4H, T * BP),
    of h0 and of c0 (H, BP). The weights' and inputs' gradients are products with the first."""
    hd, t_len, bp = st.tcs.shape
    dy = dy.contiguous()
    dg, dh0, dc0 = torch.empty_like(st.act), st.act.new_empty(hd, bp), st.act.new_empty(hd, bp)
    w_hh_t = st.w_hh.t().contiguous()  # held by a name: a temporary's memory is freed before the call
    kernels().lstm_backward_f32(dy.data_ptr(), w_hh_t.data_ptr(), st.act.data_ptr(), st.tcs.data_ptr(),
                                st.cs.data_ptr(), t_len, hd, bp, dg.data_ptr(), dh0.data_ptr(), dc0.data_ptr(),
                                torch.get_num_threads())
    return dg, dh0, dc0


def layer_weights(lstm: nn.LSTM, layer: int) -> tuple[torch.Tensor, ...]:
    """w_ih, w_hh, b_ih and b_hh of one layer of `lstm`."""
    return tuple(getattr(lstm, f"{name}_l{layer}") for name in ("weight_ih", "weight_hh", "bias_ih", "bias_hh"))


def previous_states(y: torch.Tensor) -> torch.Tensor:
    """h_{t-1} of every step, (H, T * BP), a view of y (H, T + 1, BP)."""
    return y.view(y.shape[0], -1)[:, :y.shape[1] * y.shape[2] - y.shape[2]]


def weight_grads(dg: torch.Tensor, x: torch.Tensor, prev: torch.Tensor):
    """The gradients of w_ih (4H, E), w_hh (4H, H) and of each bias (4H,) from those of the gate
    pre-activations dg (4H, T * BP), the layer's inputs x (E, T * BP) and previous states prev
    (H, T * BP)."""
    return dg @ x.t(), dg @ prev.t(), dg.sum(1)  # w_hh's: sum over columns of dg h_{t-1}^T


class _Layer(torch.autograd.Function):
    """One layer: (x (E, T * BP) a matrix view, T, w_ih, w_hh, b (4H, 1) both biases summed,
    h0 (H, BP), c0 (H, BP)) -> y (H, T + 1, BP), step 0 being h0 (so y's first T steps are
    what each step read, and its last T the outputs)."""

    @staticmethod
    def forward(ctx, x, t_len, w_ih, w_hh, b, h0, c0):
        st = layer_forward(x, t_len, w_ih, w_hh, b, h0, c0)
        ctx.save_for_backward(x, w_ih, st.w_hh, st.act, st.tcs, st.y, st.cs)
        return st.y

    @staticmethod
    @once_differentiable  # the kernel's backward is not itself differentiable: an error, not a silent 0
    def backward(ctx, dy):
        x, w_ih, w_hh, act, tcs, y, cs = ctx.saved_tensors
        dg, dh0, dc0 = layer_backward(dy, LayerState(w_hh, act, tcs, y, cs))
        dx = w_ih.t() @ dg if ctx.needs_input_grad[0] else None
        dw_ih, dw_hh, db = weight_grads(dg, x, previous_states(y))
        return dx, None, dw_ih, dw_hh, db.unsqueeze(1), dh0, dc0


def run(lstm: nn.LSTM, inputs: torch.Tensor, state: tuple[torch.Tensor, torch.Tensor]) -> torch.Tensor:
    """The top layer's outputs (B, T, H) of `lstm` (batch_first, unidirectional, with biases) on
    inputs (B, T, E) from state (h0, c0), each (L, B, H): what `lstm(inputs, state)[0]` gives."""
    b, t_len, _ = inputs.shape
    pad = -b % ROWS
    h0, c0 = (F.pad(s.transpose(1, 2), (0, pad)) for s in state)  # (L, H, BP)
    x = F.pad(inputs.permute(2, 1, 0), (0, pad)).reshape(inputs.shape[2], -1)  # (E, T * BP)
    for layer in range(lstm.num_layers):
        if layer and lstm.training and lstm.dropout > 0:
            x = F.dropout(x, lstm.dropout, training=True)
        w_ih, w_hh, b_ih, b_hh = layer_weights(lstm, layer)
        y = _Layer.apply(x, t_len, w_ih, w_hh, (b_ih + b_hh).unsqueeze(1), h0[layer], c0[layer])  # (H, T + 1, BP)
        x = y.view(lstm.hidden_size, -1)[:, b + pad:]  # steps 1..T, (H, T * BP), a view
    return x.view(lstm.hidden_size, t_len, -1)[:, :, :b].permute(2, 1, 0)  # (B, T, H)
