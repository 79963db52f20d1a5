"""GAN losses, one small function each, on discriminator logits of matching shape.

Each returns (d_loss, g_loss) builders: `d_loss(real, fake)` for the discriminator
step and `g_loss(real, fake)` for the generator step. Relativistic losses need
both; the others ignore what they do not use.
"""
from __future__ import annotations

from typing import Callable

import torch
import torch.nn.functional as F

LossFn = Callable[[torch.Tensor, torch.Tensor], torch.Tensor]


def standard_d(real: torch.Tensor, fake: torch.Tensor) -> torch.Tensor:
    """-log D(x) - log(1 - D(G(z))) (Goodfellow et al. 2014)."""
    return F.softplus(-real).mean() + F.softplus(fake).mean()


def standard_g(real: torch.Tensor, fake: torch.Tensor) -> torch.Tensor:
    """Non-saturating: -log D(G(z))."""
    return F.softplus(-fake).mean()


def rsgan_d(real: torch.Tensor, fake: torch.Tensor) -> torch.Tensor:
    """Relativistic standard GAN (Jolicoeur-Martineau 2019), as RelGAN uses it."""
    return F.softplus(-(real - fake)).mean()


def rsgan_g(real: torch.Tensor, fake: torch.Tensor) -> torch.Tensor:
    return F.softplus(-(fake - real)).mean()


def hinge_d(real: torch.Tensor, fake: torch.Tensor) -> torch.Tensor:
    return F.relu(1 - real).mean() + F.relu(1 + fake).mean()


def hinge_g(real: torch.Tensor, fake: torch.Tensor) -> torch.Tensor:
    return -fake.mean()


def lsgan_d(real: torch.Tensor, fake: torch.Tensor) -> torch.Tensor:
    """Least squares GAN (Mao et al. 2017) with targets 1 (real) and 0 (fake)."""
    return 0.5 * ((real - 1) ** 2).mean() + 0.5 * (fake ** 2).mean()


def lsgan_g(real: torch.Tensor, fake: torch.Tensor) -> torch.Tensor:
    return 0.5 * ((fake - 1) ** 2).mean()


def wgan_d(real: torch.Tensor, fake: torch.Tensor) -> torch.Tensor:
    """Wasserstein critic loss; add `gradient_penalty` for WGAN-GP (Gulrajani et al. 2017)."""
    return fake.mean() - real.mean()


def wgan_g(real: torch.Tensor, fake: torch.Tensor) -> torch.Tensor:
    return -fake.mean()


def gradient_penalty(critic: Callable[[torch.Tensor], torch.Tensor], real: torch.Tensor,
                     fake: torch.Tensor, generator: torch.Generator | None = None) -> torch.Tensor:
    """E[(||grad_x critic(x)||_2 - 1)^2] on random interpolates of real and fake distributions."""
    alpha = torch.rand(real.shape[0], *([1] * (real.dim() - 1)), generator=generator,
                       device=real.device, dtype=real.dtype)
    mixed = (alpha * real + (1 - alpha) * fake).requires_grad_(True)
    out = critic(mixed)
    (grad,) = torch.autograd.grad(out.sum(), mixed, create_graph=True)
    return ((grad.flatten(1).norm(dim=1) - 1) ** 2).mean()


LOSSES: dict[str, tuple[LossFn, LossFn]] = {
    "standard": (standard_d, standard_g),
    "rsgan": (rsgan_d, rsgan_g),
    "hinge": (hinge_d, hinge_g),
    "lsgan": (lsgan_d, lsgan_g),
    "wgan_gp": (wgan_d, wgan_g),
}
