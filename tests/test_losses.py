"""Every GAN loss against numbers worked out by hand, the signs of their gradients, and the
WGAN-GP gradient penalty against critics whose input gradient is known in closed form."""
from __future__ import annotations

import math

import pytest
import torch

from textgan.losses import LOSSES, gradient_penalty


def t(*values: float) -> torch.Tensor:
    return torch.tensor(values, dtype=torch.float64)


def sp(x: float) -> float:
    """softplus, log(1 + e^x)."""
    return math.log1p(math.exp(x))


LOG2 = math.log(2.0)
REAL, FAKE = t(2.0, -1.0), t(0.5, 3.0)

# name -> (d_loss, g_loss) on (REAL, FAKE), computed by hand from each paper's formula.
EXPECTED = {
    "standard": ((sp(-2.0) + sp(1.0)) / 2 + (sp(0.5) + sp(3.0)) / 2, (sp(-0.5) + sp(-3.0)) / 2),
    "rsgan": ((sp(-1.5) + sp(4.0)) / 2, (sp(1.5) + sp(-4.0)) / 2),
    "hinge": ((0.0 + 2.0) / 2 + (1.5 + 4.0) / 2, -(0.5 + 3.0) / 2),
    "lsgan": (0.5 * (1.0 + 4.0) / 2 + 0.5 * (0.25 + 9.0) / 2, 0.5 * (0.25 + 4.0) / 2),
    "wgan_gp": ((0.5 + 3.0) / 2 - (2.0 - 1.0) / 2, -(0.5 + 3.0) / 2),
}


def test_every_loss_has_hand_computed_numbers():
    assert set(LOSSES) == set(EXPECTED)


@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_loss_values(name):
    d_loss, g_loss = LOSSES[name]
    want_d, want_g = EXPECTED[name]
    assert float(d_loss(REAL, FAKE)) == pytest.approx(want_d, rel=1e-12)
    assert float(g_loss(REAL, FAKE)) == pytest.approx(want_g, rel=1e-12)


@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_losses_average_over_every_representation(name):
    """Logits (B, R) count every entry once, as if flattened."""
    d_loss, g_loss = LOSSES[name]
    gen = torch.Generator().manual_seed(0)
    real, fake = torch.randn(4, 3, generator=gen, dtype=torch.float64), torch.randn(4, 3, generator=gen,
                                                                                      dtype=torch.float64)
    for fn in (d_loss, g_loss):
        torch.testing.assert_close(fn(real, fake), fn(real.flatten(), fake.flatten()))
        assert fn(real, fake).dim() == 0


def test_landmark_values():
    d, g = LOSSES["standard"]
    assert float(d(t(0.0), t(0.0))) == pytest.approx(2 * LOG2, rel=1e-12)
    assert float(g(t(0.0), t(0.0))) == pytest.approx(LOG2, rel=1e-12)
    d, g = LOSSES["rsgan"]
    x = t(-3.0, 0.0, 7.5)
    assert float(d(x, x)) == pytest.approx(LOG2, rel=1e-12)
    assert float(g(x, x)) == pytest.approx(LOG2, rel=1e-12)
    d, _ = LOSSES["hinge"]
    assert float(d(t(1.0, 5.0), t(-1.0, -4.0))) == 0.0  # margins met: no loss
    d, g = LOSSES["lsgan"]
    assert float(d(t(1.0), t(0.0))) == 0.0 and float(g(t(0.0), t(1.0))) == 0.0  # at the targets
    d, _ = LOSSES["wgan_gp"]
    assert float(d(x, x)) == 0.0


@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_relativistic_g_is_d_with_roles_swapped(name):
    d_loss, g_loss = LOSSES[name]
    if name == "rsgan":
        torch.testing.assert_close(g_loss(REAL, FAKE), d_loss(FAKE, REAL))
    else:  # the others ignore real logits in the generator loss
        torch.testing.assert_close(g_loss(REAL, FAKE), g_loss(REAL * 0 + 17.0, FAKE))


@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_gradient_signs(name):
    """D is pushed to raise real and lower fake logits; G to raise fake logits."""
    d_loss, g_loss = LOSSES[name]
    # inside every loss's active region (hinge: real < 1, fake > -1; lsgan: real < 1, 0 < fake < 1)
    real = t(0.3, -0.5, 0.9).requires_grad_(True)
    fake = t(0.1, 0.2, 0.4).requires_grad_(True)
    d_real, d_fake = torch.autograd.grad(d_loss(real, fake), (real, fake))
    assert (d_real < 0).all() and (d_fake > 0).all()
    (g_fake,) = torch.autograd.grad(g_loss(real, fake), (fake,))
    assert (g_fake < 0).all()
    # and the same as finite moves
    step = 0.05
    real, fake = real.detach(), fake.detach()
    base = float(d_loss(real, fake))
    assert float(d_loss(real + step, fake)) < base and float(d_loss(real, fake - step)) < base
    assert float(g_loss(real, fake + step)) < float(g_loss(real, fake))


# ---------------------------------------------------------------------------- gradient penalty

def linear_critic(w: torch.Tensor):
    return lambda x: (x * w).flatten(1).sum(1)  # f(x) = <w, x>, so grad_x f = w everywhere


@pytest.mark.parametrize("scale", [0.0, 0.3, 1.0, 2.5])
def test_penalty_of_linear_critic_is_norm_minus_one_squared(scale):
    gen = torch.Generator().manual_seed(0)
    w = torch.randn(6, 9, generator=gen, dtype=torch.float64)
    w = w / w.norm() * scale
    real = torch.rand(5, 6, 9, generator=gen, dtype=torch.float64)
    fake = torch.rand(5, 6, 9, generator=gen, dtype=torch.float64)
    gp = gradient_penalty(linear_critic(w), real, fake, generator=gen)
    assert float(gp) == pytest.approx((scale - 1.0) ** 2, abs=1e-12)


def test_penalty_interpolates_between_real_and_fake():
    """f(x) = ||x||^2 / 2 has grad x: the penalty then reads the interpolates themselves."""
    gen = torch.Generator().manual_seed(1)
    real = torch.rand(4, 5, 7, generator=gen, dtype=torch.float64)
    fake = torch.rand(4, 5, 7, generator=gen, dtype=torch.float64)
    gp = gradient_penalty(lambda x: 0.5 * (x ** 2).flatten(1).sum(1), real, fake,
                          generator=torch.Generator().manual_seed(9))
    alpha = torch.rand(4, 1, 1, generator=torch.Generator().manual_seed(9), dtype=torch.float64)
    mixed = alpha * real + (1 - alpha) * fake
    expected = ((mixed.flatten(1).norm(dim=1) - 1) ** 2).mean()
    torch.testing.assert_close(gp, expected, rtol=1e-12, atol=1e-12)
    assert not torch.allclose(gp, ((real.flatten(1).norm(dim=1) - 1) ** 2).mean())


def test_penalty_is_differentiable_in_the_critic_parameters():
    """d/dw (||w|| - 1)^2 = 2 (||w|| - 1) w / ||w||: the penalty trains the critic."""
    gen = torch.Generator().manual_seed(2)
    w = (torch.randn(3, 4, generator=gen, dtype=torch.float64) * 0.8).requires_grad_(True)
    real = torch.rand(6, 3, 4, generator=gen, dtype=torch.float64)
    fake = torch.rand(6, 3, 4, generator=gen, dtype=torch.float64)
    gp = gradient_penalty(linear_critic(w), real, fake, generator=gen)
    (grad,) = torch.autograd.grad(gp, w)
    norm = w.detach().norm()
    torch.testing.assert_close(grad, 2 * (norm - 1) * w.detach() / norm)
