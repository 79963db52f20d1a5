"""The blockwise conv+max computes exactly what torch's convolution does: values, gradients
(first and second order) and, through the discriminator, the generator's gradients."""
from __future__ import annotations

import pytest
import torch

from textgan.models.convmax import conv_relu_max, conv_relu_max_reference
from textgan.models.discriminator import RelGANCNN
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
    for fast in (True, False):
        disc.fast = fast
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


def test_compiled_blocks_match_eager():
    """discriminator.compile=true (torch.compile of each conv+max block) computes the same
    outputs and gradients as the eager blocks, with and without gradient tracking."""
    from textgan.models.discriminator import RelGANCNN

    torch.manual_seed(0)
    eager = RelGANCNN(30, emb_dim=8, num_rep=8, filter_sizes=[2, 3], num_filters=[6, 5], dropout=0.0)
    compiled = RelGANCNN(30, emb_dim=8, num_rep=8, filter_sizes=[2, 3], num_filters=[6, 5], dropout=0.0,
                         compile=True)
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


def test_compiled_blocks_cover_every_width_and_mode_without_eager_fallback():
    """Five filter widths in the D step (D trainable), the G step (D frozen, input with a gradient)
    and evaluation (no gradient): one compiled graph per (width, argmax tracked), ten in all, more
    than dynamo's default limit of 8 per function, so none may silently fall back to eager."""
    import torch._dynamo
    from torch._C._dynamo.eval_frame import _debug_get_cache_entry_list

    from textgan.models.convmax import block_max
    from textgan.models.discriminator import RelGANCNN

    torch._dynamo.reset()
    torch.manual_seed(0)
    widths = [2, 3, 4, 5, 6]
    model = RelGANCNN(20, emb_dim=4, num_rep=4, filter_sizes=widths, num_filters=[3] * 5, dropout=0.0,
                      compile=True)
    dists = torch.softmax(torch.randn(2, 8, 20), dim=-1)
    model(dists).sum().backward()  # D step
    model.requires_grad_(False)
    model(dists.clone().requires_grad_(True)).sum().backward()  # G step
    with torch.no_grad():
        model(dists)  # evaluation
    assert len(_debug_get_cache_entry_list(block_max.__code__)) == 2 * len(widths)
