"""Discriminators over (B, T, V) distributions: output shapes, padding masked through the pad
one-hot, and RelGAN's fast conv+max path equal to torch's convolution in values and gradients."""
from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from textgan import accel
from textgan.models.discriminator import Highway, LSTMDiscriminator, RelGANCNN

V, PAD = 11, 0


def relgan(filter_sizes=(2, 3, 4, 5), num_filters=(6, 5, 4, 3), emb_dim=16, num_rep=4, seed=0,
           dtype=torch.float64) -> RelGANCNN:
    torch.manual_seed(seed)
    return RelGANCNN(V, emb_dim=emb_dim, num_rep=num_rep, filter_sizes=list(filter_sizes),
                     num_filters=list(num_filters), dropout=0.25, pad_id=PAD).to(dtype).eval()


def lstm_disc(seed=0, dtype=torch.float64) -> LSTMDiscriminator:
    torch.manual_seed(seed)
    return LSTMDiscriminator(V, emb_dim=8, hidden_dim=12, dropout=0.25, pad_id=PAD).to(dtype).eval()


def soft_dists(b: int, t: int, seed: int = 0, dtype=torch.float64) -> torch.Tensor:
    """Random relaxed one-hots with a little pad mass everywhere (no position is fully masked)."""
    return torch.softmax(torch.randn(b, t, V, generator=torch.Generator().manual_seed(seed), dtype=dtype) * 2, -1)


def padded_one_hots(lengths: list[int], t: int, seed: int = 0, dtype=torch.float64) -> torch.Tensor:
    ids = torch.randint(3, V, (len(lengths), t), generator=torch.Generator().manual_seed(seed))
    for row, n in enumerate(lengths):
        ids[row, n:] = PAD
    return F.one_hot(ids, V).to(dtype)


# ---------------------------------------------------------------------------- shapes

@pytest.mark.parametrize("t", [1, 3, 5, 12])
@pytest.mark.parametrize("num_rep", [1, 4, 16])
def test_relgan_output_shape(t, num_rep):
    disc = relgan(num_rep=num_rep)
    out = disc(soft_dists(3, t))
    assert out.shape == (3, num_rep)
    assert torch.isfinite(out).all()


@pytest.mark.parametrize("t", [1, 4, 12])
def test_lstm_output_shape(t):
    out = lstm_disc()(soft_dists(3, t))
    assert out.shape == (3, 1) and torch.isfinite(out).all()


@pytest.mark.parametrize("make", [relgan, lstm_disc])
def test_rows_are_scored_independently(make):
    disc = make()
    x = soft_dists(4, 7)
    out = disc(x)
    y = x.clone()
    y[2] = soft_dists(1, 7, seed=5)[0]
    out2 = disc(y)
    torch.testing.assert_close(out2[[0, 1, 3]], out[[0, 1, 3]])
    assert not torch.allclose(out2[2], out[2])


@pytest.mark.parametrize("make", [relgan, lstm_disc])
def test_dropout_only_in_training(make):
    disc = make()
    x = soft_dists(4, 7)
    torch.testing.assert_close(disc(x), disc(x))  # eval: deterministic
    disc.train()
    torch.manual_seed(0)
    a = disc(x)
    torch.manual_seed(1)
    assert not torch.allclose(a, disc(x))


def test_highway_formula():
    torch.manual_seed(0)
    hw = Highway(5).double()
    x = torch.randn(3, 5, dtype=torch.float64)
    h, g = hw.proj(x).chunk(2, -1)
    gate = torch.sigmoid(g)
    torch.testing.assert_close(hw(x), gate * torch.relu(h) + (1 - gate) * x)


def test_shared_highway_formula():
    """TextGAN-PyTorch's RelGAN_D: one product h = W x + b is both transform and gate."""
    torch.manual_seed(0)
    for mode in ("off", "auto"):
        hw = Highway(5, shared=True)
        if mode == "auto":
            hw.gate = accel._highway_gate  # the C kernel's, where it builds
        assert hw.proj.weight.shape == (5, 5)
        x = torch.randn(3, 5)
        h = hw.proj(x)
        torch.testing.assert_close(hw(x), torch.sigmoid(h) * torch.relu(h) + (1 - torch.sigmoid(h)) * x)


# ---------------------------------------------------------------------------- padding

@pytest.mark.parametrize("make", [relgan, lstm_disc])
def test_pad_positions_are_masked(make):
    """A pad one-hot embeds to zero: the pad column of the embedding never matters for one-hots."""
    disc = make()
    x = padded_one_hots([7, 3, 1, 5], 7)
    before = disc(x)
    with torch.no_grad():
        disc.embed.weight[:, PAD] = torch.randn(disc.embed.weight.shape[0], dtype=x.dtype) * 10
    torch.testing.assert_close(disc(x), before, rtol=0, atol=0)


def test_relgan_pad_reads_like_an_empty_position():
    disc = relgan()
    x = padded_one_hots([7, 3, 1, 5], 7)
    zeroed = x.clone()
    zeroed[x[..., PAD] == 1] = 0.0
    torch.testing.assert_close(disc(zeroed), disc(x))


@pytest.mark.parametrize("extra", [1, 4, 9])
def test_lstm_trailing_pad_does_not_change_the_score(extra):
    """The LSTM discriminator scores the state at the last real token."""
    disc = lstm_disc()
    x = padded_one_hots([6, 2, 1, 4], 6)
    longer = torch.cat([x, F.one_hot(torch.full((4, extra), PAD), V).to(x.dtype)], dim=1)
    torch.testing.assert_close(disc(longer), disc(x), rtol=0, atol=1e-12)
    # it is the state at the last real token, not at the end
    hidden, _ = disc.lstm(disc.embed(x) * (1 - x[..., PAD]).unsqueeze(-1))
    last = hidden[torch.arange(4), torch.tensor([5, 1, 0, 3])]
    torch.testing.assert_close(disc(x), disc.logit(last))


def test_lstm_score_ignores_what_follows_the_sequence():
    disc = lstm_disc()
    x = padded_one_hots([3, 3], 8)
    y = x.clone()
    y[:, 3:] = padded_one_hots([8, 8], 8, seed=9)[:, 3:]  # real tokens after the end...
    y[:, 3:, PAD] = 0.0
    assert not torch.allclose(disc(x), disc(y))  # ...are read when they are not pad


# ---------------------------------------------------------------------------- fast path

CONFIGS = [  # (filter_sizes, num_filters, emb_dim, num_rep, T)
    ((2, 3, 4, 5), (6, 5, 4, 3), 16, 4, 9),
    ((2, 3, 4, 5), (6, 5, 4, 3), 16, 16, 3),  # T shorter than the widest filter
    ((1, 3), (7, 2), 12, 3, 2),
    ((5,), (8,), 8, 2, 1),  # a single token
    ((2, 4), (3, 3), 8, 8, 20),
]


def run_both(disc: RelGANCNN, x: torch.Tensor, weights: torch.Tensor):
    """Output and gradients w.r.t. input and every parameter, with accel's conv+max (the C kernel
    where it builds, else blockwise torch) and with the plain one."""
    results = {}
    for fast in (True, False):
        accel.apply(None, disc, "auto" if fast else "off")
        xi = x.clone().requires_grad_(True)
        out = disc(xi)
        grads = torch.autograd.grad((out * weights).sum(), [xi, *disc.parameters()])
        results[fast] = (out.detach(), grads)
    return results[True], results[False]


@pytest.mark.parametrize(("filter_sizes", "num_filters", "emb_dim", "num_rep", "t"), CONFIGS)
@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_fast_path_matches_reference(filter_sizes, num_filters, emb_dim, num_rep, t, dtype):
    disc = relgan(filter_sizes, num_filters, emb_dim, num_rep, dtype=dtype)
    x = soft_dists(5, t, seed=1, dtype=dtype)
    weights = torch.randn(5, num_rep, generator=torch.Generator().manual_seed(2), dtype=dtype)
    (out_f, grads_f), (out_r, grads_r) = run_both(disc, x, weights)
    tol = 1e-5 if dtype == torch.float32 else 1e-10
    torch.testing.assert_close(out_f, out_r, rtol=tol, atol=tol)
    names = ["input"] + [name for name, _ in disc.named_parameters()]
    for name, a, b in zip(names, grads_f, grads_r):
        torch.testing.assert_close(a, b, rtol=tol, atol=tol, msg=name)
    assert grads_f[0].abs().sum() > 0


def distinct_one_hots(lengths: list[int], t: int, seed: int) -> torch.Tensor:
    """One-hot rows with no token repeated (so no two real windows are equal), pad after `lengths`."""
    gen = torch.Generator().manual_seed(seed)
    ids = torch.stack([torch.randperm(V - 3, generator=gen)[:t] + 3 for _ in lengths])
    for row, n in enumerate(lengths):
        ids[row, n:] = PAD
    return F.one_hot(ids, V).double()


@pytest.mark.parametrize(("filter_sizes", "num_filters", "emb_dim", "num_rep", "t"), CONFIGS[:3])
@pytest.mark.parametrize("bias", [-0.5, 0.5])
def test_fast_path_with_padding(filter_sizes, num_filters, emb_dim, num_rep, t, bias):
    """Padded one-hots: when the real windows are below zero, several all-zero pad windows tie
    for the maximum; both send that gradient to the last of them. Values and every gradient agree,
    the pad column of fully padded positions (the mask's own gradient) included."""
    disc = relgan(filter_sizes, num_filters, emb_dim, num_rep)
    with torch.no_grad():
        for conv in disc.convs:
            conv.bias.fill_(bias)
    x = distinct_one_hots([t, max(t - 2, 1), 1, max(t // 2, 1)], t, seed=3)
    weights = torch.randn(4, num_rep, generator=torch.Generator().manual_seed(4), dtype=x.dtype)
    (out_f, grads_f), (out_r, grads_r) = run_both(disc, x, weights)
    torch.testing.assert_close(out_f, out_r, rtol=1e-10, atol=1e-10)
    for a, b in zip(grads_f[1:], grads_r[1:]):
        torch.testing.assert_close(a, b, rtol=1e-10, atol=1e-10)
    torch.testing.assert_close(grads_f[0], grads_r[0], rtol=1e-10, atol=1e-10)


def test_fast_path_with_repeated_ngrams():
    """Exact one-hots that repeat an n-gram give equal windows, hence exact ties (real data, or
    straight-through fakes): both send the input gradient to the last occurrence, so a
    straight-through generator gets the same gradient with accel or without."""
    disc = relgan((2, 3), (6, 6), 8, 2)
    ids = torch.tensor([[3, 4, 5, 3, 4, 5, 3, 4], [6, 7, 6, 7, 6, 7, 6, 7], [8, 9, 10, 8, 9, 10, 0, 0]])
    x = F.one_hot(ids, V).double()
    weights = torch.randn(3, 2, generator=torch.Generator().manual_seed(0), dtype=x.dtype)
    (out_f, grads_f), (out_r, grads_r) = run_both(disc, x, weights)
    torch.testing.assert_close(out_f, out_r, rtol=1e-10, atol=1e-10)
    for a, b in zip(grads_f[1:], grads_r[1:]):
        torch.testing.assert_close(a, b, rtol=1e-10, atol=1e-10)
    torch.testing.assert_close(grads_f[0], grads_r[0], rtol=1e-10, atol=1e-10)


def test_fast_path_under_no_grad():
    disc = relgan()
    x = soft_dists(3, 8)
    with torch.no_grad():
        accel.apply(None, disc, "auto")
        a = disc(x)
        accel.apply(None, disc, "off")
        b = disc(x)
    torch.testing.assert_close(a, b)


# ---------------------------------------------------------------------------- spectral norm

@pytest.mark.parametrize("kind", ["relgan_cnn", "lstm"])
def test_spectral_norm_bounds_every_weight_and_survives_a_reload(kind):
    """discriminator.spectral_norm: after a few training forwards (one power iteration each) every
    Linear and Conv2d weight has largest singular value 1, and the state dict (with the power
    iteration's vectors) reloads into a fresh discriminator that scores the same."""
    from textgan.config import DiscriminatorConfig
    from textgan.models import build_discriminator

    cfg = DiscriminatorConfig(kind=kind, emb_dim=16, num_rep=4, num_filters=[6, 5, 4, 3], hidden_dim=12,
                              spectral_norm=True)
    torch.manual_seed(0)
    disc = build_discriminator(cfg, V).train()
    x = soft_dists(4, 7, dtype=torch.float32)
    for _ in range(30):
        disc(x)
    layers = [m for m in disc.modules() if isinstance(m, (torch.nn.Linear, torch.nn.Conv2d))]
    assert len(layers) == (8 if kind == "relgan_cnn" else 2)  # embed, 4 convs, highway, feature, logit
    for layer in layers:
        sigma = torch.linalg.matrix_norm(layer.weight.detach().reshape(layer.weight.shape[0], -1), ord=2)
        assert abs(float(sigma) - 1.0) < 1e-3, (layer, float(sigma))
    plain = build_discriminator(DiscriminatorConfig(kind=kind, emb_dim=16, num_rep=4, num_filters=[6, 5, 4, 3],
                                                    hidden_dim=12), V)
    assert not any(isinstance(m, torch.nn.Linear) and torch.nn.utils.parametrize.is_parametrized(m)
                   for m in plain.modules())
    disc.eval()
    again = build_discriminator(cfg, V)
    again.load_state_dict(disc.state_dict())
    again.eval()
    torch.testing.assert_close(again(x), disc(x), rtol=0, atol=0)


@pytest.mark.parametrize("make", [relgan, lstm_disc], ids=["relgan_cnn", "lstm"])
def test_forward_tokens_is_forward_of_the_one_hots(make):
    """The policy-gradient algorithms score token ids without making (B, T, V) one-hots; the
    logits and D's gradients are those of the one-hots, padding included."""
    disc = make().eval()
    v = disc.embed.in_features
    tokens = torch.randint(1, v, (6, 7), generator=torch.Generator().manual_seed(3))
    tokens[:3, 4:] = 0  # padded sentences
    one_hot = F.one_hot(tokens, v).to(torch.float64)
    torch.testing.assert_close(disc.forward_tokens(tokens), disc(one_hot), rtol=1e-12, atol=1e-12)
    grads = [torch.autograd.grad(f().sum(), list(disc.parameters())) for f in
             (lambda: disc.forward_tokens(tokens), lambda: disc(one_hot))]
    for a, b in zip(*grads):
        torch.testing.assert_close(a, b, rtol=1e-10, atol=1e-12)
