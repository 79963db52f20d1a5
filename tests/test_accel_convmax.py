"""accel's conv+max (blockwise torch, compiled, and the C kernel) computes what the models' plain
one (torch's convolution, textgan.models.discriminator.conv_relu_max) does: values, gradients
(first and second order) and, through the discriminator, the generator's gradients."""
from __future__ import annotations

import functools

import pytest
import torch

from textgan import accel
from textgan.accel.convmax_blocks import block_max, conv_relu_max
from textgan.models.discriminator import RelGANCNN
from textgan.models.discriminator import conv_relu_max as conv_relu_max_reference
from textgan.models.generator import Generator


@pytest.mark.parametrize("shape", [(3, 7, 4, 1, 5, 2), (5, 9, 3, 2, 6, 4), (2, 5, 2, 3, 4, 5)])
@pytest.mark.parametrize("rows", [1, 2, 8])
def test_matches_reference_float64(shape, rows):
    b, t, r, d, f, k = shape
    gen = torch.Generator().manual_seed(0)
    emb = torch.randn(b, t, r, d, generator=gen, dtype=torch.float64, requires_grad=True)
    w = torch.randn(f, k, d, generator=gen, dtype=torch.float64, requires_grad=True)
    bias = torch.randn(f, generator=gen, dtype=torch.float64, requires_grad=True)
    weight = torch.randn(b, r, f, generator=gen, dtype=torch.float64)
    fast = conv_relu_max(emb, w, bias, rows)
    ref = conv_relu_max_reference(emb, w, bias)
    torch.testing.assert_close(fast, ref, rtol=0, atol=1e-12)
    g_fast = torch.autograd.grad((fast * weight).sum(), (emb, w, bias))
    g_ref = torch.autograd.grad((ref * weight).sum(), (emb, w, bias))
    for a, e in zip(g_fast, g_ref):
        torch.testing.assert_close(a, e, rtol=0, atol=1e-12)


def test_second_order_gradients():
    gen = torch.Generator().manual_seed(1)
    inputs = (torch.randn(2, 6, 3, 2, generator=gen, dtype=torch.float64, requires_grad=True),
              torch.randn(4, 3, 2, generator=gen, dtype=torch.float64, requires_grad=True),
              torch.randn(4, generator=gen, dtype=torch.float64, requires_grad=True))
    assert torch.autograd.gradgradcheck(lambda e, w, b: conv_relu_max(e, w, b, 1), inputs)


def test_discriminator_fast_path_same_loss_and_generator_gradients():
    torch.manual_seed(0)
    gen = Generator(vocab_size=40, emb_dim=8, hidden_dim=16, num_layers=1, latent_dim=4, prior="normal",
                    banned=[0, 1])
    disc = RelGANCNN(40, emb_dim=16, num_rep=8, filter_sizes=[2, 3, 4, 5], num_filters=[7, 7, 7, 7])
    disc.eval()  # no dropout, so both passes see the same function
    results = []
    for mode in ("auto", "off"):
        accel.apply(None, disc, mode)
        gen.zero_grad()
        rng = torch.Generator().manual_seed(3)
        out = gen.sample(gen.sample_latent(6, rng), 12, tau=0.7, generator=rng)
        loss = disc(out.dists).mean()
        loss.backward()
        results.append((loss.detach(), [p.grad.clone() for p in gen.parameters()]))
    (loss_a, grads_a), (loss_b, grads_b) = results
    torch.testing.assert_close(loss_a, loss_b, rtol=1e-5, atol=1e-5)
    for a, b in zip(grads_a, grads_b):
        torch.testing.assert_close(a, b, rtol=1e-5, atol=1e-5)


@pytest.mark.slow
def test_compiled_blocks_match_eager():
    """run.accel=compile (torch.compile of each conv+max block) computes the same outputs and
    gradients as the eager blocks, with and without gradient tracking."""
    torch.manual_seed(0)
    eager = RelGANCNN(30, emb_dim=8, num_rep=8, filter_sizes=[2, 3], num_filters=[6, 5], dropout=0.0)
    compiled = RelGANCNN(30, emb_dim=8, num_rep=8, filter_sizes=[2, 3], num_filters=[6, 5], dropout=0.0)
    accel.apply(None, eager, "off")
    assert "conv+max compiled" in accel.apply(None, compiled, "compile")
    compiled.load_state_dict(eager.state_dict())
    dists = torch.softmax(torch.randn(4, 9, 30), dim=-1)
    outs, grads = [], []
    for model in (eager, compiled):
        x = dists.clone().requires_grad_(True)
        out = model(x)
        out.square().sum().backward()
        outs.append(out.detach())
        grads.append([x.grad] + [p.grad for p in model.parameters()])
        with torch.no_grad():
            assert torch.allclose(model(dists), out, atol=1e-6)
    assert torch.allclose(outs[0], outs[1], atol=1e-6)
    for a, b in zip(grads[0], grads[1]):
        assert torch.allclose(a, b, atol=1e-5)


@pytest.mark.slow
def test_compiled_blocks_cover_every_width_and_mode_without_eager_fallback():
    """Five filter widths in the D step (D trainable), the G step (D frozen, input with a gradient)
    and evaluation (no gradient): one compiled graph per (width, argmax tracked), ten in all, more
    than dynamo's default limit of 8 per function, so none may silently fall back to eager."""
    import torch._dynamo
    from torch._C._dynamo.eval_frame import _debug_get_cache_entry_list

    torch._dynamo.reset()
    torch.manual_seed(0)
    widths = [2, 3, 4, 5, 6]
    model = RelGANCNN(20, emb_dim=4, num_rep=4, filter_sizes=widths, num_filters=[3] * 5, dropout=0.0)
    accel.apply(None, model, "compile")
    dists = torch.softmax(torch.randn(2, 8, 20), dim=-1)
    model(dists).sum().backward()  # D step
    model.requires_grad_(False)
    model(dists.clone().requires_grad_(True)).sum().backward()  # G step
    with torch.no_grad():
        model(dists)  # evaluation
    assert len(_debug_get_cache_entry_list(block_max.__code__)) == 2 * len(widths)


native_only = pytest.mark.skipif(not __import__("textgan.accel.convmax", fromlist=["x"]).kernels(),
                                 reason="no C compiler for the native kernel")


@native_only
@pytest.mark.parametrize("shape", [(3, 7, 4, 1, 5, 2), (5, 9, 3, 2, 6, 4), (2, 5, 2, 3, 4, 5), (2, 6, 3, 1, 17, 6)])
@pytest.mark.parametrize("dtype", [torch.float64, torch.float32])
def test_native_kernel_matches_reference(shape, dtype):
    """The C kernel: values and first-order gradients equal torch's convolution (float64 to
    1e-12; float32 to rounding), filter counts that are not a multiple of the vector width too."""
    from textgan.accel.convmax import conv_relu_max_native

    b, t, r, d, f, k = shape
    gen = torch.Generator().manual_seed(0)
    emb = torch.randn(b, t, r, d, generator=gen, dtype=dtype, requires_grad=True)
    w = torch.randn(f, k, d, generator=gen, dtype=dtype, requires_grad=True)
    bias = torch.randn(f, generator=gen, dtype=dtype, requires_grad=True)
    weight = torch.randn(b, r, f, generator=gen, dtype=dtype)
    fast, ref = conv_relu_max_native(emb, w, bias), conv_relu_max_reference(emb, w, bias)
    tol = 1e-12 if dtype == torch.float64 else 1e-5
    torch.testing.assert_close(fast, ref, rtol=0, atol=tol)
    g_fast = torch.autograd.grad((fast * weight).sum(), (emb, w, bias))
    g_ref = torch.autograd.grad((ref * weight).sum(), (emb, w, bias))
    for a, e in zip(g_fast, g_ref):
        torch.testing.assert_close(a, e, rtol=0, atol=tol * 10)


@native_only
def test_native_kernel_gradcheck_and_second_order():
    """gradcheck in float64, and create_graph (gradient penalties) through its torch backward."""
    from textgan.accel.convmax import conv_relu_max_native

    gen = torch.Generator().manual_seed(1)
    inputs = (torch.randn(2, 6, 3, 2, generator=gen, dtype=torch.float64, requires_grad=True),
              torch.randn(4, 3, 2, generator=gen, dtype=torch.float64, requires_grad=True),
              torch.randn(4, generator=gen, dtype=torch.float64, requires_grad=True))
    assert torch.autograd.gradcheck(conv_relu_max_native, inputs)
    assert torch.autograd.gradgradcheck(conv_relu_max_native, inputs)


@native_only
@pytest.mark.parametrize("threads", [1, 2, 3])
def test_native_kernel_same_result_for_any_thread_count(threads):
    from textgan.accel.convmax import conv_relu_max_native

    gen = torch.Generator().manual_seed(2)
    emb = torch.randn(5, 11, 7, 1, generator=gen, requires_grad=True)
    w = torch.randn(33, 3, 1, generator=gen, requires_grad=True)
    bias = torch.randn(33, generator=gen, requires_grad=True)
    before = torch.get_num_threads()
    try:
        torch.set_num_threads(1)
        out1 = conv_relu_max_native(emb, w, bias)
        grads1 = torch.autograd.grad(out1.sum(), (emb, w, bias))
        torch.set_num_threads(threads)
        out = conv_relu_max_native(emb, w, bias)
        grads = torch.autograd.grad(out.sum(), (emb, w, bias))
    finally:
        torch.set_num_threads(before)
    assert torch.equal(out, out1)
    assert torch.equal(grads[0], grads1[0]) and torch.equal(grads[2], grads1[2])
    torch.testing.assert_close(grads[1], grads1[1], rtol=1e-6, atol=1e-6)  # per-range sums added


@native_only
@pytest.mark.parametrize("mode", ["native", "blockwise"])
def test_discriminator_kernels_agree(mode):
    """RelGANCNN with the C kernel or the blockwise torch conv+max gives torch conv2d's logits
    and gradients."""
    torch.manual_seed(0)
    disc = RelGANCNN(40, emb_dim=16, num_rep=8, filter_sizes=[2, 3, 4, 5], num_filters=[7, 9, 16, 20])
    disc.eval()
    dists = torch.softmax(torch.randn(6, 12, 40), dim=-1)
    results = []
    for fast in (mode, "off"):
        accel.apply(None, disc, "off" if fast == "off" else "native")
        if fast == "blockwise":  # accel's torch conv+max, as where the C kernel cannot be built
            disc.conv_relu_max = functools.partial(accel._conv_relu_max, native=False, block=block_max)
        x = dists.clone().requires_grad_(True)
        out = disc(x)
        out.square().sum().backward()
        results.append((out.detach(), x.grad))
        disc.zero_grad()
    torch.testing.assert_close(results[0][0], results[1][0], rtol=1e-5, atol=1e-5)
    torch.testing.assert_close(results[0][1], results[1][1], rtol=1e-5, atol=1e-5)
