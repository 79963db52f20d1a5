"""MaliGAN (Che et al. 2017): with an optimal discriminator, r(x) = D(x) / (1 - D(x)) is
p_data(x) / p_G(x), so r-weighted samples of the generator are importance-weighted samples of the
data. The generator maximises their likelihood, the weights normalised over the batch (which
cancels r's unknown scale), minus a baseline:

    grad = sum_i (r(x_i) / sum_j r(x_j) - b) grad log p_G(x_i),   b = 1 / m

(m the batch size: the mean normalised weight, so the centred weights sum to zero and a batch D
scores alike moves nothing; TextGAN-PyTorch's choice for the paper's b). The discriminator
(binary cross-entropy) is `DiscreteGAN`'s. Whole-sentence weights, no rollouts: the paper's
basic algorithm, not its sequential variant with mixed MLE.

Shapes: B batch, T time.
"""
from __future__ import annotations

import torch

from textgan.algorithms.policy import DiscreteGAN, d_log_odds, evaluating, token_log_probs


def centred_weights(log_odds: torch.Tensor) -> torch.Tensor:
    """r_i / sum_j r_j - 1 / m from log r (B,), as a softmax (no overflow for a confident D)."""
    return torch.softmax(log_odds, dim=0) - 1.0 / log_odds.shape[0]


def maligan_loss(log_probs: torch.Tensor, log_odds: torch.Tensor) -> torch.Tensor:
    """-sum_i (r_i / sum_j r_j - 1/m) log p_G(x_i), log_probs (B, T) (0 past each end), log_odds
    (B,) a constant: its gradient is MaliGAN's estimate with the sign for a minimiser."""
    return -(centred_weights(log_odds).detach() * log_probs.sum(1)).sum()


class MaliGAN(DiscreteGAN):
    def g_step(self, tau: float) -> dict[str, float]:
        """The normalised importance-weighted likelihood of a fresh batch of discrete samples."""
        p, gen, d = self.p, self.p.g.module, self.p.d.module
        z, fake = self.sample(p.batch_size)
        with torch.no_grad(), evaluating(d):
            log_odds = d_log_odds(d, fake.tokens)  # (B,)
        with evaluating(gen):
            loss = maligan_loss(token_log_probs(gen, fake.tokens, fake.lengths, z), log_odds)
            norm = self.g_update(loss)
        weights = torch.softmax(log_odds, dim=0)
        out = {"adv/g_loss": loss.item(), "adv/fake_tokens": float(fake.lengths.sum()),
               "adv/reward": torch.sigmoid(log_odds).mean().item(),
               "adv/weight_ess": (1.0 / (weights ** 2).sum()).item() / len(weights)}
        if norm is not None:
            out["adv/g_grad_norm"] = norm
        return out
