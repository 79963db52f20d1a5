"""LeakGAN (Guo et al. 2018): the generator (textgan/models/leakgan.py) reads the discriminator's
leaked features of its prefix; its manager and worker are trained apart.

- Rewards: Q (B, T), token t's value, as SeqGAN's: the mean D probability of `rollouts` Monte
  Carlo completions (by the generator itself) of the prefix ending at t; the sentence's own score
  for its last token. The "bootstrapped rescaled activation" replaces each by
  sigmoid(delta * (1/2 - rank / B_t)), its rank (1 = best) among the B_t sentences alive at t.
- Manager: maximises sum_t Q~_t cos(F[t + c] - F[t], g_t), its goal against the feature change
  c tokens on (F[s] the features of the first s tokens, capped at the sentence's end).
- Worker: REINFORCE with the intrinsic reward r_t = (1/c) sum_{i=1..c} cos(F[t + 1] - F[t + 1 - i],
  g_{t + 1 - i}) (the goals that steered token t; goals before the start count 0), its goals
  detached so only the worker and W_psi learn from it.
- Interleaved training: the supervised loss (worker NLL plus the manager's mean
  -cos(F[t + c] - F[t], g_t) on real sentences) every leakgan.mle_every steps, and
  leakgan.pretrain_batches of it before the first generator update.
- The discriminator (binary cross-entropy) is `DiscreteGAN`'s; after each of its updates the
  generator's leaked copy takes its weights.

Shapes: B batch, T time, V vocabulary, F leaked features, N rollouts.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F

from textgan.algorithms.base import Players
from textgan.algorithms.policy import DiscreteGAN, d_probability, evaluating
from textgan.config import AdversarialConfig, LeakGANConfig, PolicyGradientConfig
from textgan.models.generator import sequence_log_probs
from textgan.models.leakgan import LeakedRun, LeakGANGenerator


def alive_mask(lengths: torch.Tensor, t: int) -> torch.Tensor:
    """(B, T) True up to and including each sentence's last token."""
    return torch.arange(t, device=lengths.device) < lengths.unsqueeze(1)


def rescaled_ranks(q: torch.Tensor, alive: torch.Tensor, delta: float) -> torch.Tensor:
    """sigmoid(delta * (1/2 - rank / B_t)) (B, T) of rewards q (B, T): rank 1 is the largest of
    column t among its alive rows, B_t their number (ties by row order); 0 where not alive."""
    scored = q.masked_fill(~alive, -torch.inf)
    order = torch.argsort(scored, dim=0, descending=True, stable=True)  # (B, T)
    ranks = torch.empty_like(order).scatter_(0, order, torch.arange(1, q.shape[0] + 1, device=q.device)
                                             .unsqueeze(1).expand_as(order))  # (B, T)
    count = alive.sum(0, keepdim=True).clamp(min=1)  # (1, T)
    return torch.sigmoid(delta * (0.5 - ranks / count)) * alive


def feature_change_cos(run: LeakedRun, lengths: torch.Tensor, steps: int) -> torch.Tensor:
    """cos(F[min(t + c, len)] - F[t], g_t) (B, T), differentiable in the goals."""
    b, t, _ = run.goals.shape
    ahead = torch.minimum(torch.arange(t, device=lengths.device) + steps, lengths.unsqueeze(1))  # (B, T)
    later = run.features.gather(1, ahead.unsqueeze(2).expand(-1, -1, run.features.shape[2]))  # (B, T, F)
    return F.cosine_similarity(later - run.features[:, :t], run.goals, dim=2)


def intrinsic_rewards(run: LeakedRun, steps: int) -> torch.Tensor:
    """r_t = (1/c) sum_{i=1..c} cos(F[t + 1] - F[t + 1 - i], g_{t + 1 - i}) (B, T), constants."""
    feats, goals = run.features.detach(), run.goals.detach()
    t = goals.shape[1]
    total = torch.zeros(goals.shape[:2], device=goals.device, dtype=goals.dtype)
    for i in range(1, steps + 1):
        if i > t:
            break
        # goal j = t + 1 - i exists for t >= i - 1: columns i - 1 .. T - 1
        change = feats[:, i:t + 1] - feats[:, :t + 1 - i]  # (B, T + 1 - i, F): F[s] - F[s - i], s = i..T
        total[:, i - 1:] += F.cosine_similarity(change, goals[:, :t + 1 - i], dim=2)
    return total / steps


def manager_loss(cos: torch.Tensor, rewards: torch.Tensor) -> torch.Tensor:
    """-mean over the batch of sum_t Q~_t cos_t (cos (B, T), rewards (B, T) constants, 0 past each end)."""
    return -(rewards * cos).sum(1).mean()


def worker_loss(log_probs: torch.Tensor, intrinsic: torch.Tensor, alive: torch.Tensor) -> torch.Tensor:
    """-mean over the batch of sum_t r_t log p(y_t) over the alive tokens: REINFORCE's estimate."""
    return -(log_probs * intrinsic * alive).sum(1).mean()


@torch.no_grad()
def leak_rollout_rewards(gen: LeakGANGenerator, z: torch.Tensor, tokens: torch.Tensor, lengths: torch.Tensor,
                         rollouts: int, noise: torch.Generator, d: torch.nn.Module) -> torch.Tensor:
    """Q (B, T): for each prefix length k < the sentence's length the mean D probability of
    `rollouts` completions of its first k tokens (its z, free-running after them), at column
    k - 1; the sentence's own probability at its last token; 0 past its end. All prefixes'
    completions are drawn in one pass and scored B * rollouts at a time (D's activations bounded)."""
    b, t = tokens.shape
    q = torch.zeros(b, t, device=tokens.device)
    done = gen.complete(z, tokens, lengths, rollouts, noise)
    chunk = b * rollouts
    for s in range(0, done.tokens.shape[0], chunk):
        means = d_probability(d, done.tokens[s:s + chunk]).view(-1, rollouts).mean(1)  # (chunk / N,)
        first = slice(s, s + chunk, rollouts)  # each prefix's first completion
        q[done.sample[first], done.prefix[first] - 1] = means
    q[torch.arange(b, device=tokens.device), lengths - 1] = d_probability(d, tokens)
    return q * alive_mask(lengths, t)


class LeakGAN(DiscreteGAN):
    def __init__(self, players: Players, adv: AdversarialConfig, pg: PolicyGradientConfig, leak: LeakGANConfig):
        super().__init__(players, adv, pg)
        self.leak = leak
        self._pretrained = False  # leakgan.pretrain_batches done (at adversarial step 0 only)
        players.g.module.copy_features_from(players.d.module)  # the features the MLE phase reads

    def d_step(self, tau: float) -> dict[str, float]:
        out = super().d_step(tau)
        self.p.g.module.copy_features_from(self.p.d.module)
        return out

    def supervised_loss(self, tokens: torch.Tensor, lengths: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Worker NLL per token and the manager's mean -cos to the real feature changes, of real sentences."""
        gen = self.p.g.module
        z = gen.sample_latent(tokens.shape[0], self.p.noise)
        run = gen.run(tokens, z)
        alive = alive_mask(lengths, tokens.shape[1])
        nll = -(sequence_log_probs(run.logits, tokens) * alive).sum() / alive.sum()
        cos = feature_change_cos(run, lengths, self.leak.goal_steps)
        return nll, -(cos * alive).sum() / alive.sum()

    def supervised_updates(self, count: int) -> dict[str, float]:
        """`count` updates of NLL + manager cosine loss on real batches (interleaved MLE)."""
        p, stats = self.p, {}
        for _ in range(count):
            idx = p.batches.draw(p.batch_size).to(p.batches.device)
            nll, cos_loss = self.supervised_loss(p.batches.tokens[idx], p.batches.lengths[idx])
            self.g_update(nll + cos_loss)
            stats = {"adv/mle_nll": nll.item(), "adv/mle_manager_loss": cos_loss.item()}
        return stats

    def g_step(self, tau: float) -> dict[str, float]:
        """Manager and worker updates on a fresh batch of samples, then the interleaved MLE."""
        p, gen, d, lk = self.p, self.p.g.module, self.p.d.module, self.leak
        out: dict[str, float] = {}
        if p.progress.step == 0 and lk.pretrain_batches and not self._pretrained:
            out.update(self.supervised_updates(lk.pretrain_batches))
        self._pretrained = True
        z, fake = self.sample(p.batch_size)
        with evaluating(d, gen):
            q = leak_rollout_rewards(gen, z, fake.tokens, fake.lengths, self.pg.rollouts, p.noise, d)
            alive = alive_mask(fake.lengths, fake.tokens.shape[1])
            rewards = rescaled_ranks(q, alive, lk.rescale_delta)
            run = gen.run(fake.tokens, z, detach_goals=True)
            m_loss = manager_loss(feature_change_cos(run, fake.lengths, lk.goal_steps) * alive, rewards)
            intrinsic = intrinsic_rewards(run, lk.goal_steps)
            w_loss = worker_loss(sequence_log_probs(run.logits, fake.tokens), intrinsic, alive)
            norm = self.g_update(m_loss + w_loss)
        out.update({"adv/g_loss": (m_loss + w_loss).item(), "adv/manager_loss": m_loss.item(),
                    "adv/worker_loss": w_loss.item(), "adv/fake_tokens": float(fake.lengths.sum()),
                    "adv/reward": q.gather(1, (fake.lengths - 1).unsqueeze(1)).mean().item(),  # D(sample)
                    "adv/intrinsic_reward": ((intrinsic * alive).sum() / alive.sum()).item()})
        if norm is not None:
            out["adv/g_grad_norm"] = norm
        if lk.mle_every and (p.progress.step + 1) % lk.mle_every == 0:
            out.update(self.supervised_updates(lk.mle_batches))
        return out
