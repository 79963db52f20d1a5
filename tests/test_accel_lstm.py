"""The C recurrence of the teacher-forced LSTM (textgan/accel/csrc/lstm.c): the outputs and every
gradient (inputs, initial states, weights, biases) of nn.LSTM, checked against the module in
float64 (the trusted reference), for batches that do not fill its 16-row blocks, widths that do
not fill its register blocks, stacked layers, saturated gates, any thread count; and the
generator's MLE loss and NLL_gen scores with either kernel."""
from __future__ import annotations

import copy

import pytest
import torch
from torch import nn

from textgan import accel
from textgan.accel import lstm as lstm_native
from textgan.accel.build import _cpu_flags
from textgan.models.generator import Generator

from conftest import run_without_avx512

needs_cc = pytest.mark.skipif(lstm_native.kernels() is None, reason="no C compiler")


def problem(b, t, e, h, layers, seed=0, scale=1.0):
    torch.manual_seed(seed)
    lstm = nn.LSTM(e, h, layers, batch_first=True)
    with torch.no_grad():
        for p in lstm.parameters():
            p.mul_(scale)
    x = torch.randn(b, t, e)
    h0, c0 = torch.randn(layers, b, h), torch.randn(layers, b, h)
    return lstm, x, h0, c0


def outputs_and_grads(lstm, x, h0, c0, fn, dy):
    leaves = [a.detach().clone().requires_grad_() for a in (x, h0, c0)]
    y = fn(lstm, *leaves)
    grads = torch.autograd.grad(y, [*leaves, *lstm.parameters()], dy.to(y.dtype))
    return y.detach(), grads


def torch_lstm(lstm, x, h0, c0):
    return lstm(x, (h0, c0))[0]


def native_lstm(lstm, x, h0, c0):
    return lstm_native.run(lstm, x, (h0, c0))


@needs_cc
@pytest.mark.parametrize("b,t,e,h,layers", [(64, 22, 32, 32, 1), (1, 1, 3, 4, 1), (5, 7, 3, 5, 2), (17, 9, 16, 20, 3),
                                            (33, 4, 8, 64, 1), (48, 12, 32, 32, 2), (16, 37, 1, 3, 1)])
def test_matches_nn_lstm_in_float64(b, t, e, h, layers):
    lstm, x, h0, c0 = problem(b, t, e, h, layers)
    dy = torch.randn(b, t, h)
    got_y, got = outputs_and_grads(lstm, x, h0, c0, native_lstm, dy)
    ref = copy.deepcopy(lstm).double()
    want_y, want = outputs_and_grads(ref, x.double(), h0.double(), c0.double(), torch_lstm, dy)
    torch.testing.assert_close(got_y.double(), want_y, rtol=1e-5, atol=1e-6)
    names = ["x", "h0", "c0"] + [n for n, _ in lstm.named_parameters()]
    for name, a, r in zip(names, got, want):
        torch.testing.assert_close(a.double(), r, rtol=1e-4, atol=2e-5, msg=lambda m, n=name: f"{n}: {m}")


@needs_cc
def test_agrees_with_the_float32_module_like_the_module_with_itself():
    """Against torch's own float32 LSTM, the kernel is as close as float32 rounding allows: within a
    small multiple of the float32 module's own distance from float64."""
    lstm, x, h0, c0 = problem(64, 30, 32, 32, 2, seed=3)
    dy = torch.randn(64, 30, 32)
    _, got = outputs_and_grads(lstm, x, h0, c0, native_lstm, dy)
    _, f32 = outputs_and_grads(lstm, x, h0, c0, torch_lstm, dy)
    _, f64 = outputs_and_grads(copy.deepcopy(lstm).double(), x.double(), h0.double(), c0.double(), torch_lstm, dy)
    for a, t32, r in zip(got, f32, f64):
        own = (t32.double() - r).abs().max().item()
        assert (a.double() - r).abs().max().item() <= 4 * own + 1e-6


@needs_cc
def test_saturated_gates_and_nan():
    """Pre-activations in the hundreds (gates at 0 or 1): as close to float64 as torch's float32
    module is, finite gradients; a NaN input gives NaN outputs rather than being hidden."""
    lstm, x, h0, c0 = problem(20, 6, 4, 8, 1, scale=60.0)
    dy = torch.randn(20, 6, 8)
    got_y, got = outputs_and_grads(lstm, x, h0, c0, native_lstm, dy)
    f32_y, _ = outputs_and_grads(lstm, x, h0, c0, torch_lstm, dy)
    want_y, want = outputs_and_grads(copy.deepcopy(lstm).double(), x.double(), h0.double(), c0.double(), torch_lstm, dy)
    own = (f32_y.double() - want_y).abs().max().item()  # float32 rounding of pre-activations ~500
    assert (got_y.double() - want_y).abs().max().item() <= 4 * own + 1e-6
    assert all(torch.isfinite(g).all() for g in got)
    x[3, 2, 1] = float("nan")
    y = native_lstm(lstm, x, h0, c0)
    assert torch.isnan(y[3, 2:]).all() and torch.isfinite(y[:3]).all() and torch.isfinite(y[4:]).all()


@needs_cc
def test_same_bits_for_any_thread_count():
    """Each 16-row block is worked by one thread with no sum across threads: outputs and the
    kernel's gradients are bitwise the same for 1, 2 or 3 threads."""
    lstm, x, h0, c0 = problem(80, 10, 16, 24, 1, seed=5)
    dy = torch.randn(80, 10, 24)
    before = torch.get_num_threads()
    results = []
    try:
        for threads in (1, 2, 3):
            torch.set_num_threads(threads)
            results.append(outputs_and_grads(lstm, x, h0, c0, native_lstm, dy))
    finally:
        torch.set_num_threads(before)
    for y, grads in results[1:]:
        assert torch.equal(y, results[0][0])
        for a, r in zip(grads[:3], results[0][1][:3]):  # inputs and states: the kernel's own sums
            assert torch.equal(a, r)


@needs_cc
def test_double_backward_is_an_error_not_a_silent_zero():
    lstm, x, h0, c0 = problem(16, 5, 8, 8, 1)
    x.requires_grad_()
    y = native_lstm(lstm, x, h0, c0)
    (gx,) = torch.autograd.grad(y.square().sum(), x, create_graph=True)
    with pytest.raises(RuntimeError, match="once_differentiable|differentiate"):
        gx.sum().backward()


@needs_cc
def test_dropout_between_layers_only_in_training():
    lstm, x, h0, c0 = problem(16, 5, 8, 8, 2)
    lstm.dropout = 0.5
    lstm.eval()
    torch.testing.assert_close(native_lstm(lstm, x, h0, c0), torch_lstm(lstm, x, h0, c0), rtol=1e-5, atol=1e-6)
    lstm.train()
    torch.manual_seed(0)
    a = native_lstm(lstm, x, h0, c0)
    torch.manual_seed(1)
    b = native_lstm(lstm, x, h0, c0)
    assert not torch.equal(a, b)  # the second layer's input was dropped differently


MODES = {"native": "native", "torch": "off", "auto": "auto"}  # the LSTM kernel each run.accel takes


def _generator(kernel, hidden=32, layers=1):
    torch.manual_seed(0)
    gen = Generator(60, 16, hidden, layers, 8, "normal")
    accel.apply(gen, None, MODES[kernel])
    return gen


def used(gen):
    return accel.describe(gen, None)["lstm"]


@needs_cc
@pytest.mark.parametrize("layers", [1, 2])
def test_generator_loss_gradients_and_scores_same_with_either_kernel(layers):
    tokens = torch.randint(3, 60, (23, 11))
    tokens[5:, 8:] = 0  # padding after shorter sentences
    lengths = (tokens != 0).sum(1)
    z = torch.randn(23, 8)
    results = {}
    for kernel in ("native", "torch"):
        gen = _generator(kernel, layers=layers)
        assert used(gen) == kernel
        loss = gen.mle_loss(tokens, z, pad_id=0)
        grads = torch.autograd.grad(loss, list(gen.parameters()))
        results[kernel] = (loss.detach(), grads, gen.token_log_probs(tokens, lengths, z))
    (l1, g1, s1), (l2, g2, s2) = results["native"], results["torch"]
    torch.testing.assert_close(l1, l2, rtol=1e-5, atol=1e-6)
    torch.testing.assert_close(s1, s2, rtol=1e-5, atol=1e-5)
    for a, b in zip(g1, g2):
        torch.testing.assert_close(a, b, rtol=1e-4, atol=1e-6)


def test_auto_takes_the_kernel_only_for_small_widths():
    small, wide = _generator("auto", hidden=lstm_native.AUTO_MAX_HIDDEN), _generator("auto", hidden=128)
    assert used(small) == ("native" if lstm_native.kernels() else "torch")
    assert used(wide) == "torch"
    assert used(_generator("torch")) == "torch"
    relational = Generator(60, 16, 32, 1, 8, "normal", core="relational_memory", num_heads=2, head_size=8)
    accel.apply(relational, None, "auto")
    assert used(relational) == "none"
    if lstm_native.kernels():
        assert used(_generator("native", hidden=128)) == "native"
        assert used(_generator("native").double()) == "torch"  # float64: torch's LSTM


@pytest.mark.slow
@needs_cc
@pytest.mark.skipif("avx512f" not in _cpu_flags(), reason="the generic path is the default here")
def test_generic_vector_path_matches_too(tmp_path):
    """The kernel built without AVX-512 (TEXTGAN_CFLAGS=-mno-avx512f: the AVX2 machines' exp,
    division and register blocks) in a fresh process: the module's outputs and gradients."""
    script = """
import copy, torch
from torch import nn
from textgan.accel import lstm as lstm_native
torch.manual_seed(0)
for b, t, e, h, layers in [(64, 22, 32, 32, 1), (5, 7, 3, 5, 2), (33, 4, 8, 64, 1)]:
    lstm = nn.LSTM(e, h, layers, batch_first=True)
    leaves = [torch.randn(b, t, e), torch.randn(layers, b, h), torch.randn(layers, b, h)]
    dy = torch.randn(b, t, h)
    got = [a.clone().requires_grad_() for a in leaves]
    y = lstm_native.run(lstm, got[0], (got[1], got[2]))
    g1 = torch.autograd.grad(y, [*got, *lstm.parameters()], dy)
    ref = copy.deepcopy(lstm).double()
    want = [a.double().requires_grad_() for a in leaves]
    r = ref(want[0], (want[1], want[2]))[0]
    g2 = torch.autograd.grad(r, [*want, *ref.parameters()], dy.double())
    torch.testing.assert_close(y.double(), r, rtol=1e-5, atol=1e-6)
    for a, w in zip(g1, g2):
        torch.testing.assert_close(a.double(), w, rtol=1e-4, atol=2e-5)
print("OK")
"""
    run_without_avx512(script, tmp_path, "lstm")
