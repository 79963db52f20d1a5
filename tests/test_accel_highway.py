"""The highway gate's C kernel (textgan/accel/csrc/highway.c): its output and both gradients against
the torch formula in float64, for widths that fill no vector (the scalar tail), saturated gates,
NaN and inf, any thread count; RelGAN's discriminator with either kernel (logits, parameter
gradients, and the second-order gradient a gradient penalty takes)."""
from __future__ import annotations


import pytest
import torch

from textgan import accel
from textgan.accel import highway as highway_native
from textgan.accel.build import _cpu_flags
from textgan.models.discriminator import Highway, RelGANCNN

from conftest import REPO, run_without_avx512

needs_cc = pytest.mark.skipif(highway_native.kernels() is None, reason="no C compiler")


def inputs(n, d, scale=3.0, seed=0, shared=False):
    """p (n, 2D), or (n, D) for the shared highway, x and dy (n, D)."""
    g = torch.Generator().manual_seed(seed)
    p = torch.randn(n, d if shared else 2 * d, generator=g) * scale
    return p, torch.randn(n, d, generator=g), torch.randn(n, d, generator=g)


def kernel_and_reference(p, x, dy):
    """The kernel's y and gradients of p, bias and x in float32, and the torch formula's in float64
    on the same inputs (bias: p's first row, the rest of p the product's output)."""
    got = [t.clone().requires_grad_() for t in (p[1:], p[0], x[1:])]
    y = highway_native.gate(*got)
    grads = torch.autograd.grad(y, got, dy[1:])
    want = [t.double().requires_grad_() for t in (p[1:], p[0], x[1:])]
    r = highway_native.gate_torch(want[0] + want[1], want[2])
    ref = torch.autograd.grad(r, want, dy[1:].double())
    return (y.detach(), *grads), (r.detach(), *ref)


@needs_cc
@pytest.mark.parametrize("shared", [False, True])
@pytest.mark.parametrize("n,d", [(300, 1200), (7, 37), (5, 16), (3, 5), (2, 1), (64, 33)])
def test_matches_the_torch_formula_in_float64(n, d, shared):
    got, want = kernel_and_reference(*inputs(n, d, shared=shared))
    for a, b in zip(got, want):  # float32 arithmetic on inputs of a few units: ~1e-6 absolute
        torch.testing.assert_close(a.double(), b, rtol=1e-5, atol=1e-5)


def test_shared_formula_is_the_gated_one_with_equal_weights():
    """g = h: the torch formula and its hand-written backward on p (n, D) equal the gated ones on
    [p, p], with the two halves of the gated d/dp summed."""
    p, x, dy = inputs(6, 11, shared=True)
    p, x, dy = p.double(), x.double(), dy.double()
    torch.testing.assert_close(highway_native.gate_torch(p, x), highway_native.gate_torch(torch.cat([p, p], -1), x))
    dp, dx = highway_native.backward_torch(dy, p, x)
    dpp, dxx = highway_native.backward_torch(dy, torch.cat([p, p], -1), x)
    torch.testing.assert_close(dp, dpp[:, :11] + dpp[:, 11:])
    torch.testing.assert_close(dx, dxx)
    want = torch.autograd.grad(highway_native.gate_torch(p.requires_grad_(), x), p, dy)[0]
    torch.testing.assert_close(dp, want)


@needs_cc
def test_saturated_gates_nan_and_inf_as_torch():
    p, x, dy = inputs(5, 21)
    p[1, :21] = torch.linspace(-200, 200, 21)  # h far on both sides of 0
    p[2, 21:] = torch.linspace(-200, 200, 21)  # g: the gate fully shut or open
    p[3, 3], p[3, 25], p[4, 0], p[4, 40] = float("nan"), float("nan"), float("inf"), float("-inf")
    got, want = kernel_and_reference(p, x, dy)
    for a, b in zip(got, want):
        assert torch.equal(a.isnan(), b.isnan())
        torch.testing.assert_close(a.double().nan_to_num(0.0), b.nan_to_num(0.0), rtol=1e-5, atol=1e-6)


@needs_cc
@pytest.mark.parametrize("shared", [False, True])
def test_same_bits_for_any_thread_count(shared):
    p, x, dy = inputs(97, 130, shared=shared)
    before = torch.get_num_threads()
    results = []
    try:
        for threads in (1, 2, 3):
            torch.set_num_threads(threads)
            results.append(kernel_and_reference(p, x, dy)[0])
    finally:
        torch.set_num_threads(before)
    for other in results[1:]:
        assert all(torch.equal(a, b) for a, b in zip(results[0], other))


def _discriminators(highway="gated"):
    torch.manual_seed(0)
    native = RelGANCNN(40, emb_dim=16, num_rep=8, filter_sizes=[2, 3], num_filters=[24, 13], dropout=0.0,
                       highway=highway)
    plain = RelGANCNN(40, emb_dim=16, num_rep=8, filter_sizes=[2, 3], num_filters=[24, 13], dropout=0.0,
                      highway=highway)
    plain.load_state_dict(native.state_dict())
    accel.apply(None, native, "native")
    accel.apply(None, plain, "off")
    return native, plain


@needs_cc
@pytest.mark.parametrize("highway", ["gated", "shared"])
def test_discriminator_logits_gradients_and_penalty_with_either_kernel(highway):
    native, plain = _discriminators(highway)
    assert native.highway.proj.weight.shape == ((37 if highway == "shared" else 74), 37)
    assert accel.describe(None, native)["highway"] == "native" and accel.describe(None, plain)["highway"] == "torch"
    dists = torch.softmax(torch.randn(6, 9, 40), -1)
    results = []
    for d in (native, plain):
        x = dists.clone().requires_grad_()
        out = d(x)
        grads = torch.autograd.grad(out.square().sum(), [x, *d.parameters()], create_graph=True)
        penalty = (grads[0].flatten(1).norm(dim=1) - 1).square().mean()  # WGAN-GP's, through the kernel's backward
        second = torch.autograd.grad(penalty, list(d.parameters()))
        results.append((out.detach(), [g.detach() for g in grads], second))
    (o1, g1, s1), (o2, g2, s2) = results
    torch.testing.assert_close(o1, o2, rtol=1e-5, atol=1e-6)
    for a, b in zip(g1 + list(s1), g2 + list(s2)):
        torch.testing.assert_close(a, b, rtol=1e-4, atol=1e-6)


@needs_cc
@pytest.mark.parametrize("shared", [False, True])
def test_dropout_mask_in_the_kernel_is_the_separate_multiply_bit_for_bit(shared):
    """The following dropout's mask applied inside the kernel's passes gives the output and every
    gradient of the layer and a separate dropout, to the bit, from the same random draws."""
    from textgan.models.dropout import Dropout
    torch.manual_seed(0)
    layer, drop = Highway(37, shared=shared), Dropout(0.4)
    layer.gate = accel._highway_gate  # the C kernel's gate
    x0, dy = torch.randn(6, 5, 37), torch.randn(6, 5, 37)
    results = []
    for fused in (True, False):
        x = x0.clone().requires_grad_()
        torch.manual_seed(7)
        y = layer(x, drop.mask(x)) if fused else drop(layer(x))
        results.append((y.detach(), *torch.autograd.grad(y, [x, *layer.parameters()], dy)))
    assert (results[0][0] == 0).float().mean() > 0.2  # the mask dropped units
    for a, b in zip(*results):
        assert torch.equal(a, b)


@needs_cc
def test_discriminator_with_dropout_matches_across_kernels():
    """RelGAN's discriminator in training mode (dropout 0.4): the fused native gate and torch's
    ops with a separate dropout, from the same seed."""
    torch.manual_seed(0)
    kw = dict(emb_dim=16, num_rep=8, filter_sizes=[2, 3], num_filters=[24, 13], dropout=0.4)
    native, plain = RelGANCNN(40, **kw), RelGANCNN(40, **kw)
    plain.load_state_dict(native.state_dict())
    accel.apply(None, native, "native")
    accel.apply(None, plain, "off")
    dists = torch.softmax(torch.randn(6, 9, 40), -1)
    results = []
    for d in (native, plain):
        torch.manual_seed(3)
        x = dists.clone().requires_grad_()
        out = d(x)
        results.append((out.detach(), *torch.autograd.grad(out.square().sum(), [x, *d.parameters()])))
    torch.manual_seed(4)
    assert not torch.allclose(native(dists), results[0][0])  # another seed, another mask
    for a, b in zip(*results):
        torch.testing.assert_close(a, b, rtol=1e-4, atol=1e-6)


def test_plain_gate_and_other_dtypes_take_the_formula():
    layer = Highway(8).double()
    layer.gate = accel._highway_gate  # float64: the kernel's op falls back to the formula
    x = torch.randn(3, 8, dtype=torch.float64)
    h, g = layer.proj(x).chunk(2, dim=-1)
    torch.testing.assert_close(layer(x), torch.sigmoid(g) * torch.relu(h) + (1 - torch.sigmoid(g)) * x)


@needs_cc
@pytest.mark.skipif("avx512f" not in _cpu_flags(), reason="the generic path is the default here")
def test_generic_vector_path_matches_too(tmp_path):
    """The kernel built without AVX-512 (TEXTGAN_CFLAGS=-mno-avx512f) in a fresh process."""
    script = f"""
import sys, torch
sys.path.insert(0, {str(REPO / "tests")!r})
from test_accel_highway import inputs, kernel_and_reference
for n, d in [(300, 1200), (7, 37)]:
    got, want = kernel_and_reference(*inputs(n, d))
    for a, b in zip(got, want):
        torch.testing.assert_close(a.double(), b, rtol=1e-5, atol=1e-5)
print("OK")
"""
    run_without_avx512(script, tmp_path, "highway")
