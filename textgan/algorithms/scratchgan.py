"""ScratchGAN's dense REINFORCE (de Masson d'Autume et al. 2019, "Training Language GANs from
Scratch"): the discriminator is an LSTM that scores every prefix of a sentence (its logit after
each token, `LSTMDiscriminator.step_logits`), trained with binary cross-entropy at every step of
real and generated sentences. Token t of a discrete sample is rewarded r_t = 2 D(y_1..t) - 1 (in
[-1, 1]; the paper's choice over MaskGAN's log D, more stable), its return is the discounted sum
R_t = sum_{s >= t} gamma^(s - t) r_s of the rewards from t on, and the generator follows the
REINFORCE gradient of sum_t (R_t - b_t) log G(y_t | y_<t, z), b_t a moving average of the batches'
mean return at step t. No rollouts, no MLE pretraining: the recipes start from scratch with large
batches and D regularised by dropout and an L2 penalty (scratchgan.d_l2).

The baseline a batch subtracts is the one before that batch's own update, so it does not depend
on the batch's samples and the gradient estimate stays unbiased (ScratchGAN's code updates it
first); it is one value per time step here, where the paper's code keeps one for all steps.
Left out: pretrained word embeddings, the discriminator's position signal and layer norm, and the
paper's generator regularisers (its samples come from the toolkit's z -> h0/c0 generator).

Shapes: B batch, T time.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F

from textgan import checkpoint
from textgan.algorithms.base import Players
from textgan.algorithms.policy import DiscreteGAN, evaluating, token_log_probs
from textgan.config import AdversarialConfig, ScratchGANConfig


def steps_alive(lengths: torch.Tensor, t: int) -> torch.Tensor:
    """(B, T) 1.0 at each sentence's tokens (EOS included), 0.0 after its end."""
    return (torch.arange(t, device=lengths.device) < lengths.unsqueeze(1)).float()


def step_rewards(logits: torch.Tensor, alive: torch.Tensor) -> torch.Tensor:
    """r_t = 2 sigmoid(logit_t) - 1 (B, T) at each sentence's steps, 0 after its end."""
    return (2.0 * torch.sigmoid(logits) - 1.0) * alive


def discounted_returns(rewards: torch.Tensor, discount: float) -> torch.Tensor:
    """R_t = r_t + discount * R_{t+1} (B, T), i.e. sum_{s >= t} discount^(s - t) r_s."""
    returns = torch.zeros_like(rewards)
    later = torch.zeros_like(rewards[:, 0])  # (B,) R_{t+1}
    for t in range(rewards.shape[1] - 1, -1, -1):
        later = rewards[:, t] + discount * later
        returns[:, t] = later
    return returns


def reinforce_loss(log_probs: torch.Tensor, returns: torch.Tensor, baseline: torch.Tensor,
                   alive: torch.Tensor) -> torch.Tensor:
    """-mean over the batch of sum_t (R_t - b_t) log G(y_t | y_<t) over each sentence's steps:
    its gradient is the REINFORCE estimate of -grad E[sum_t r_t] with baseline b (T,).
    log_probs (B, T) differentiable; returns (B, T) and baseline constants."""
    advantage = (returns - baseline) * alive  # (B, T)
    return -(advantage.detach() * log_probs).sum(1).mean()


def updated_baseline(baseline: torch.Tensor, returns: torch.Tensor, alive: torch.Tensor,
                     decay: float) -> torch.Tensor:
    """b_t <- decay * b_t + (1 - decay) * the mean of R_t over the sentences still running at
    step t; a step no sentence reaches keeps its b_t. baseline (T,), returns and alive (B, T)."""
    count = alive.sum(0)  # (T,)
    mean = (returns * alive).sum(0) / count.clamp(min=1.0)  # (T,)
    return torch.where(count > 0, decay * baseline + (1.0 - decay) * mean, baseline)


def per_step_bce(real_logits: torch.Tensor, real_alive: torch.Tensor, fake_logits: torch.Tensor,
                 fake_alive: torch.Tensor) -> torch.Tensor:
    """0.5 * the mean binary cross-entropy over real sentences' steps (target 1) + 0.5 * that over
    generated ones' (target 0), every prefix a prediction of its own. Logits and alive (B, T)."""
    real = F.binary_cross_entropy_with_logits(real_logits, torch.ones_like(real_logits), reduction="none")
    fake = F.binary_cross_entropy_with_logits(fake_logits, torch.zeros_like(fake_logits), reduction="none")
    return 0.5 * (real * real_alive).sum() / real_alive.sum() + 0.5 * (fake * fake_alive).sum() / fake_alive.sum()


def masked_mean(values: torch.Tensor, alive: torch.Tensor) -> float:
    return ((values * alive).sum() / alive.sum()).item()


class ScratchGAN(DiscreteGAN):
    """DiscreteGAN's sampler and generator update; a per-step D step and the baseline of its own."""

    def __init__(self, players: Players, adv: AdversarialConfig, cfg: ScratchGANConfig):
        self.p, self.adv, self.cfg = players, adv, cfg
        self.baseline = torch.zeros(players.batches.max_len, device=players.batches.device)  # (T,) b_t

    def state_dict(self) -> dict[str, dict]:
        return {"baseline": {"values": self.baseline.clone()}}

    def load_state_dict(self, state: dict) -> None:
        """The saved baseline, or zeros (a checkpoint of another algorithm's run)."""
        saved = checkpoint.read_algorithm_part(state, "baseline")
        self.baseline = (torch.zeros_like(self.baseline) if saved is None
                         else saved["values"].to(self.baseline.device, self.baseline.dtype))

    def d_step(self, tau: float) -> dict[str, float]:
        """A real and a fresh fake batch in one pass of D; BCE at every step (`per_step_bce`),
        plus scratchgan.d_l2 * 0.5 * |weights|^2."""
        p, d, b = self.p, self.p.d.module, self.p.batch_size
        fake = self.sample(b)[1]
        idx = p.batches.draw(b).to(p.batches.device)
        tokens = torch.cat([p.batches.tokens[idx], fake.tokens])  # (2B, T)
        alive = steps_alive(torch.cat([p.batches.lengths[idx], fake.lengths]), tokens.shape[1])  # (2B, T)
        logits = d.step_logits(tokens)  # (2B, T)
        loss = per_step_bce(logits[:b], alive[:b], logits[b:], alive[b:])
        if self.cfg.d_l2 > 0:
            loss = loss + self.cfg.d_l2 * 0.5 * sum(w.pow(2).sum() for w in d.parameters())
        norm = p.updates.step(p.opt_d, d.parameters(), loss, self.adv.grad_clip, "d")
        logits = logits.detach()
        out = {"adv/d_loss": loss.item(), "adv/d_real": masked_mean(logits[:b], alive[:b]),
               "adv/d_fake": masked_mean(logits[b:], alive[b:])}
        if norm is not None:
            out["adv/d_grad_norm"] = norm
        return out

    def g_step(self, tau: float) -> dict[str, float]:
        """REINFORCE on a fresh batch of discrete samples with D's per-step rewards (D without
        dropout), discounted returns and the baseline; then the baseline takes this batch's returns."""
        p, gen, d = self.p, self.p.g.module, self.p.d.module
        z, fake = self.sample(p.batch_size)
        alive = steps_alive(fake.lengths, fake.tokens.shape[1])  # (B, T)
        with torch.no_grad(), evaluating(d):
            logits = d.step_logits(fake.tokens)  # (B, T)
        returns = discounted_returns(step_rewards(logits, alive), self.cfg.discount)  # (B, T)
        with evaluating(gen):
            loss = reinforce_loss(token_log_probs(gen, fake.tokens, fake.lengths, z), returns, self.baseline, alive)
            norm = self.g_update(loss)
        self.baseline = updated_baseline(self.baseline, returns, alive, self.cfg.baseline_decay)
        reached = alive.amax(0)  # (T,) steps some sample reached
        out = {"adv/g_loss": loss.item(), "adv/fake_tokens": float(fake.lengths.sum()),
               "adv/reward": masked_mean(torch.sigmoid(logits), alive),  # D's mean per-step probability
               "adv/return": masked_mean(returns, alive),
               "adv/baseline": masked_mean(self.baseline, reached)}
        if norm is not None:
            out["adv/g_grad_norm"] = norm
        return out
