"""The fused teacher-forced MLE loss (textgan/accel/mle.py): its loss and every gradient
(embedding, LSTM layers, output layer, latent projection) equal those of the layered path (the
generator's hidden states, then the fused cross-entropy) with the same C kernels, and those of
torch's own LSTM and cross-entropy, for batches that do not fill the 16-row blocks, stacked
layers, both priors and sentences of one token; the generator takes it only where it applies."""
from __future__ import annotations

import pytest
import torch

from textgan import accel
from textgan.accel import linear_ce as linear_ce_native
from textgan.accel import lstm as lstm_native
from textgan.accel import mle as mle_native
from textgan.accel.fused_ce import linear_cross_entropy
from textgan.models.generator import Generator

needs_cc = pytest.mark.skipif(lstm_native.kernels() is None or linear_ce_native.kernels() is None,
                              reason="no C compiler")
PAD, BOS, EOS, V = 0, 1, 2, 70


def generator(layers=1, prior="normal", kernel="native", dropout=0.0, seed=0):
    torch.manual_seed(seed)
    gen = Generator(V, 12, 20, layers, 6, prior, dropout=dropout, banned=[PAD, BOS])
    accel.apply(gen, None, "native" if kernel == "native" else "off")
    return gen


def batch(b, t, seed=0):
    """Sentences of random lengths 1..t, each ending in EOS, padded."""
    g = torch.Generator().manual_seed(seed)
    tokens = torch.randint(3, V, (b, t), generator=g)
    lengths = torch.randint(1, t + 1, (b,), generator=g)
    lengths[0] = t  # the batch's longest fills it
    for i, n in enumerate(lengths.tolist()):
        tokens[i, n - 1], tokens[i, n:] = EOS, PAD
    return tokens, torch.randn(b, 6, generator=g)


def layered_loss(gen, tokens, z, kernel):
    """The generator's other path: teacher-forced hidden states, then the fused cross-entropy."""
    hidden = gen.hidden_states(tokens, z)
    return linear_cross_entropy(hidden.reshape(-1, gen.hidden_dim), gen.out.weight, gen.output_bias(),
                                tokens.reshape(-1), ignore_index=PAD, kernel=kernel)


def loss_and_grads(gen, fn):
    loss = fn()
    return loss.detach(), torch.autograd.grad(loss, list(gen.parameters()))


@needs_cc
@pytest.mark.parametrize("b,t,layers,prior", [(64, 22, 1, "normal"), (5, 7, 2, "none"), (17, 9, 3, "normal"),
                                              (1, 1, 1, "normal"), (33, 4, 2, "uniform")])
def test_same_loss_and_gradients_as_the_layered_and_the_torch_paths(b, t, layers, prior):
    tokens, z = batch(b, t)
    gen = generator(layers, prior)
    assert accel.mle_fused(gen)
    fused = loss_and_grads(gen, lambda: gen.mle_loss(tokens, z, pad_id=PAD))
    layered = loss_and_grads(gen, lambda: layered_loss(gen, tokens, z, "native"))
    accel.apply(gen, None, "off")
    assert accel.describe(gen, None)["lstm"] == "torch" and not accel.mle_fused(gen)
    plain = loss_and_grads(gen, lambda: gen.mle_loss(tokens, z, pad_id=PAD))
    torch.testing.assert_close(fused[0], layered[0], rtol=1e-6, atol=0)  # the same rows, summed in another order
    torch.testing.assert_close(fused[0], plain[0], rtol=1e-5, atol=1e-6)
    names = [name for name, _ in gen.named_parameters()]
    for name, f, lay, pl in zip(names, fused[1], layered[1], plain[1]):
        assert f.abs().sum() > 0, name  # every comparison below is of something
        torch.testing.assert_close(f, lay, rtol=1e-5, atol=1e-7, msg=name)
        torch.testing.assert_close(f, pl, rtol=1e-4, atol=1e-6, msg=name)


@needs_cc
def test_gradients_scale_with_the_upstream_gradient():
    tokens, z = batch(9, 6)
    gen = generator(2)
    base = torch.autograd.grad(gen.mle_loss(tokens, z, pad_id=PAD), list(gen.parameters()))
    scaled = torch.autograd.grad(gen.mle_loss(tokens, z, pad_id=PAD) * 2.5, list(gen.parameters()))
    for a, b in zip(base, scaled):
        torch.testing.assert_close(b, a * 2.5)


@needs_cc
def test_nothing_scored_is_nan_without_gradient():
    tokens = torch.full((4, 3), PAD)
    gen = generator()
    loss = gen.mle_loss(tokens, torch.randn(4, 6), pad_id=PAD)
    assert torch.isnan(loss)
    assert all(float(g.abs().sum()) == 0 for g in torch.autograd.grad(loss, list(gen.parameters())))


@needs_cc
def test_double_backward_is_an_error():
    tokens, z = batch(4, 5)
    gen = generator()
    grads = torch.autograd.grad(gen.mle_loss(tokens, z, pad_id=PAD), list(gen.parameters()), create_graph=True)
    with pytest.raises(RuntimeError):
        torch.autograd.grad(grads[0].sum(), list(gen.parameters()))


@needs_cc
def test_taken_only_where_it_computes_the_same_thing():
    gen = generator(2, dropout=0.5)
    assert not accel.mle_fused(gen)  # training with dropout between layers: the layered path draws it
    gen.eval()
    assert accel.mle_fused(gen)
    with torch.no_grad():
        assert not accel.mle_fused(gen)  # no gradients wanted: nothing to precompute
    assert accel.mle_fused(generator(1, dropout=0.5))  # one layer: nn.LSTM applies no dropout
    assert not accel.mle_fused(generator(kernel="torch"))
    assert mle_native.applies(generator(2, dropout=0.5).eval().lstm)
