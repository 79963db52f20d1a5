"""textGAN's feature matching (Zhang et al. 2017, "Adversarial Feature Matching for Text
Generation"): the generator z -> LSTM h0/c0 feeds back its soft-argmax softmax(logits / tau)
(generator.feedback soft, noise none: z is the only randomness), and the discriminator sees those
soft one-hots, so its features are differentiable in the generator's weights. The generator
minimises a kernel MMD^2 between the discriminator's sentence features (the input of its output
layer) of a real and a fake batch, with a sum of Gaussian kernels (mmd.bandwidths); the
discriminator is a classifier trained with binary cross-entropy, minus mmd.d_weight times the
same MMD^2 (textGAN's lambda_m; 0 by default). textGAN's third term, D's reconstruction of z
from its features, is not included (adversarial.info_weight's head is the toolkit's version of
that idea, for the gumbel algorithm).

Shapes: B batch (N real, M fake where they differ), T time, V vocabulary, F D's features.
"""
from __future__ import annotations

import torch

from textgan.algorithms.base import Players, frozen
from textgan.algorithms.policy import evaluating
from textgan.config import AdversarialConfig, MMDConfig
from textgan.losses import standard_d


def gaussian_kernel(x: torch.Tensor, y: torch.Tensor, bandwidths: list[float]) -> torch.Tensor:
    """k(x_i, y_j) = sum_s exp(-|x_i - y_j|^2 / (2 s^2)), (N, M) from x (N, F) and y (M, F). The
    squared distances from the expansion |x|^2 + |y|^2 - 2 x.y (no square root: a finite
    gradient where x_i = y_j)."""
    d2 = (x.pow(2).sum(1, keepdim=True) + y.pow(2).sum(1) - 2.0 * x @ y.t()).clamp(min=0.0)  # (N, M)
    return sum(torch.exp(-d2 / (2.0 * s * s)) for s in bandwidths)


def mmd2(x: torch.Tensor, y: torch.Tensor, bandwidths: list[float], unbiased: bool = True) -> torch.Tensor:
    """The squared maximum mean discrepancy between the samples x (N, F) and y (M, F) under
    `gaussian_kernel` (Gretton et al. 2012): unbiased, the within-sample means leave out each
    point's kernel with itself (N, M >= 2); biased, every pair counts."""
    kxx, kyy, kxy = (gaussian_kernel(a, b, bandwidths) for a, b in ((x, x), (y, y), (x, y)))
    if not unbiased:
        return kxx.mean() + kyy.mean() - 2.0 * kxy.mean()
    n, m = x.shape[0], y.shape[0]
    within_x = (kxx.sum() - kxx.diagonal().sum()) / (n * (n - 1))
    within_y = (kyy.sum() - kyy.diagonal().sum()) / (m * (m - 1))
    return within_x + within_y - 2.0 * kxy.mean()


def kernel_bandwidths(x: torch.Tensor, y: torch.Tensor, mmd: MMDConfig) -> list[float]:
    """mmd.bandwidths, or with bandwidth_unit median those times the median distance between the
    pooled rows of x (N, F) and y (M, F) (a constant of the step, not differentiated)."""
    if mmd.bandwidth_unit == "fixed":
        return list(mmd.bandwidths)
    with torch.no_grad():
        pooled = torch.cat([x, y]).detach()
        dist = torch.cdist(pooled, pooled)  # (N + M, N + M)
        unit = dist[~torch.eye(len(pooled), dtype=torch.bool, device=dist.device)].median().item()
    return [b * max(unit, 1e-12) for b in mmd.bandwidths]


def features_mmd2(fake: torch.Tensor, real: torch.Tensor, mmd: MMDConfig) -> torch.Tensor:
    """mmd2 of feature rows fake (M, F) and real (N, F) under mmd.*'s kernel and estimator."""
    return mmd2(fake, real, kernel_bandwidths(fake, real, mmd), mmd.estimator == "unbiased")


def discriminator_mmd2(d: torch.nn.Module, fake: torch.Tensor, real: torch.Tensor, mmd: MMDConfig) -> torch.Tensor:
    """MMD^2 between D's sentence features of the fakes (B, T, V), differentiable in them, and of
    the real one-hots (constants), D without dropout (the matched features are a fixed function of
    the sentence); D's own weights are the caller's to freeze."""
    with evaluating(d):
        with torch.no_grad():
            real_feats = d.features_and_logits(real)[0]  # (B, F)
        return features_mmd2(d.features_and_logits(fake)[0], real_feats, mmd)


class TextGANMMD:
    relaxed = True  # the soft-argmax's tau follows gumbel.*'s schedule (adv/tau)

    def __init__(self, players: Players, adv: AdversarialConfig, mmd: MMDConfig):
        self.p, self.adv, self.mmd = players, adv, mmd

    def state_dict(self) -> dict[str, dict]:
        return {}  # nothing beyond the trainer's generator, discriminator and optimizers

    def load_state_dict(self, state: dict) -> None:
        pass

    def fake(self, tau: float, z: torch.Tensor | None = None):
        """Free-running soft-argmax samples from `z` (B, Z), by default fresh (`.dists` (B, T, V))."""
        p = self.p
        z = p.g.module.sample_latent(p.batch_size, p.noise) if z is None else z
        return p.g.sample(z, p.batches.max_len, tau=tau, generator=p.noise)

    def d_step(self, tau: float) -> dict[str, float]:
        """D's binary cross-entropy on real one-hots and detached fakes (minus d_weight * MMD^2 of
        its features), real and fake in one forward."""
        p, b = self.p, self.p.batch_size
        real = p.batches.real_dists(b)
        with torch.no_grad():  # the D step never back-propagates into the generator
            fake = self.fake(tau).dists
        feats, logits = p.d.replica("features_and_logits", torch.cat([real, fake]))  # (2B, F), (2B, R)
        loss = standard_d(logits[:b], logits[b:])
        out = {"adv/d_real": logits[:b].mean().item(), "adv/d_fake": logits[b:].mean().item()}
        if self.mmd.d_weight > 0:
            gap = features_mmd2(feats[b:], feats[:b], self.mmd)
            loss = loss - self.mmd.d_weight * gap
            out["adv/d_mmd2"] = gap.item()
        norm = p.updates.step(p.opt_d, p.d.module.parameters(), loss, self.adv.grad_clip, "d")
        out["adv/d_loss"] = loss.item()
        if norm is not None:
            out["adv/d_grad_norm"] = norm
        return out

    def g_step(self, tau: float) -> dict[str, float]:
        """G minimises the MMD^2 between D's features of a fresh fake batch and a real batch; D
        frozen and without dropout (the matched features are a fixed function of the sentence)."""
        p = self.p
        real = p.batches.real_dists(p.batch_size)
        fake = self.fake(tau)
        with frozen(p.d.module) as d:
            loss = discriminator_mmd2(d, fake.dists, real, self.mmd)
            norm = p.updates.step(p.opt_g, p.g.module.parameters(), loss, self.adv.grad_clip, "g")
        out = {"adv/g_loss": loss.item(), "adv/fake_tokens": float(fake.lengths.sum())}
        if norm is not None:
            out["adv/g_grad_norm"] = norm
        return out
