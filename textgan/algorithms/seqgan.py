"""SeqGAN (Yu et al. 2017): the generator is a policy over tokens, trained with REINFORCE. The
reward of token y_t is Q(y_1..t): the discriminator's mean probability of `rollouts` completions
of the prefix y_1..t drawn by the rollout network (the sentence itself for its last token). The
rollout network is a delayed copy of the generator: after every generator update each of its
weights moves to rate * its own + (1 - rate) * the generator's, the embedding copied, as SeqGAN's
rollout.py updates it (rate 0.8). The discriminator (binary cross-entropy) is `DiscreteGAN`'s.

All prefixes' rollouts of a batch run as one pass: rows sorted by prefix length, so the rows
still sampling at any step are a leading slice of the batch.

Shapes: B batch, T time, V vocabulary, R rollout rows (prefixes x rollouts), L layers, H hidden.
"""
from __future__ import annotations

import copy
from dataclasses import dataclass
from typing import Callable

import torch
import torch.nn.functional as F

from textgan import checkpoint, philox
from textgan.algorithms.base import Players
from textgan.algorithms.policy import DiscreteGAN, d_probability, evaluating, token_log_probs
from textgan.config import AdversarialConfig, PolicyGradientConfig
from textgan.gumbel import gumbel_noise
from textgan.models import Generator


@dataclass
class Completions:
    tokens: torch.Tensor  # (R, T) a sample's first `prefix` tokens, then the rollout's, pad after EOS
    prefix: torch.Tensor  # (R,) how many tokens of the sample each row keeps, 1..T-1
    sample: torch.Tensor  # (R,) which sample (batch row) each row completes


def _stack(states: list):
    """Per-step core states stacked on a new leading dim: LSTM (h, c) -> two (T, L, B, H); memory -> (T, B, S, D)."""
    if isinstance(states[0], tuple):
        return tuple(torch.stack([s[i] for s in states]) for i in range(2))
    return torch.stack(states)


def _select(stacked, step: torch.Tensor, row: torch.Tensor):
    """The state of batch row `row` after step `step`, for each pair (R,): (L, R, H) twice, or (R, S, D)."""
    if isinstance(stacked, tuple):
        return tuple(s[step, :, row].transpose(0, 1).contiguous() for s in stacked)
    return stacked[step, row]


def _leading(state, m: int):
    """The first m rows of a core state."""
    if isinstance(state, tuple):
        return tuple(s[:, :m].contiguous() for s in state)
    return state[:m]


def _draw(net: Generator, logits: torch.Tensor, generator: torch.Generator | None) -> torch.Tensor:
    """argmax(logits (m, V) + Gumbel noise (m, V) drawn from `generator`), (m,). On CPU the noise is
    one Philox key's stream, row r its elements r V ..: `ops.gumbel_argmax_at` picks the same tokens
    without making the noise (accel's fused kernel); elsewhere torch's generator draws it."""
    if not philox.applies(logits.device, torch.float32):  # as gumbel_noise decides
        return (logits + gumbel_noise(tuple(logits.shape), generator, logits.device)).argmax(dim=-1)
    m, v = logits.shape
    keys = torch.full((m,), philox.new_key(generator), dtype=torch.int64)  # the key gumbel_noise would take
    return net.ops.gumbel_argmax_at(logits, keys, torch.arange(m) * v).to(logits.device)


@torch.no_grad()
def complete(net: Generator, z: torch.Tensor, tokens: torch.Tensor, lengths: torch.Tensor, rollouts: int,
             generator: torch.Generator | None) -> Completions:
    """`rollouts` completions by `net` under each sample's own z (B, Z) of every prefix of
    tokens (B, T) that stops before the sample's end (prefix length k < lengths[b])."""
    b, t = tokens.shape
    device = tokens.device
    k_minus_1, row = torch.nonzero(torch.arange(1, t, device=device).unsqueeze(1) < lengths, as_tuple=True)
    k_minus_1, row = k_minus_1.repeat_interleave(rollouts), row.repeat_interleave(rollouts)  # (R,), k ascending
    inputs = torch.cat([torch.full_like(tokens[:, :1], net.bos_id), tokens[:, :-1]], 1)  # (B, T)
    state, states = net.init_state(z), []
    for j in range(t - 1):  # states[k - 1]: after reading BOS and the first k - 1 tokens
        state = net.core(net.embedding(inputs[:, j:j + 1]), state)[1]
        states.append(state)
    out = tokens[row].clone()  # (R, T)
    if not len(row):
        return Completions(out, k_minus_1 + 1, row)
    state = _select(_stack(states), k_minus_1, row)
    inp = tokens[row, k_minus_1]  # (R,) each prefix's last token, the first input
    bias = net.output_bias()  # (V,)
    still = torch.bincount(t - 1 - k_minus_1, minlength=t).flip(0).cumsum(0).flip(0).tolist()  # rows with > s left
    for s in range(t - 1):
        m = still[s + 1]
        if m == 0:
            break
        state, inp = _leading(state, m), inp[:m]
        hidden, state = net.core(net.embedding(inp).unsqueeze(1), state)  # (m, 1, H)
        # net.logits with the mask in the bias: one pass over (m, V) fewer, the same logits wherever
        # a token is allowed (b + 0 is b), so the same draws
        logits = F.linear(hidden[:, 0], net.out.weight, bias)  # (m, V)
        inp = _draw(net, logits, generator)  # (m,) an exact draw (Gumbel-max)
        out[torch.arange(m, device=device), k_minus_1[:m] + 1 + s] = inp
    return Completions(net._finish(out, None).tokens, k_minus_1 + 1, row)


@torch.no_grad()
def rollout_rewards(net: Generator, z: torch.Tensor, tokens: torch.Tensor, lengths: torch.Tensor,
                    rollouts: int, generator: torch.Generator | None,
                    score: Callable[[torch.Tensor], torch.Tensor], chunk: int | None = None) -> torch.Tensor:
    """Q (B, T): for each token before a sample's last the mean `score` (sentences (N, T) -> (N,))
    of its prefix's completions, for the last the sample's own score, 0 past its end. `score`
    takes `chunk` rows at a time (default 2B, a D step's real and fake batch: D's activations fit)."""
    b, t = tokens.shape
    chunk = chunk or 2 * b
    done = complete(net, z, tokens, lengths, rollouts, generator)
    scores = torch.cat([score(done.tokens[s:s + chunk]) for s in range(0, len(done.sample), chunk)]
                       or [tokens.new_zeros(0, dtype=torch.float)])
    q = torch.zeros(b, t, device=tokens.device, dtype=scores.dtype)
    q.index_put_((done.sample, done.prefix - 1), scores, accumulate=True)
    q /= rollouts
    q[torch.arange(b, device=tokens.device), lengths - 1] = score(tokens).to(q.dtype)
    return q


def policy_gradient_loss(log_probs: torch.Tensor, rewards: torch.Tensor) -> torch.Tensor:
    """-mean over the batch of sum_t log G(y_t | y_<t) Q(y_1..t): its gradient is SeqGAN's
    estimate of -grad E[D] (log_probs (B, T), 0 past each end; rewards (B, T), constants)."""
    return -(log_probs * rewards).sum(1).mean()


class SeqGAN(DiscreteGAN):
    def __init__(self, players: Players, adv: AdversarialConfig, pg: PolicyGradientConfig):
        super().__init__(players, adv, pg)
        self.rollout: Generator | None = None  # made from the generator at the first G update

    def state_dict(self) -> dict[str, dict]:
        return {} if self.rollout is None else {"rollout": self.rollout.state_dict()}

    def load_state_dict(self, state: dict) -> None:
        """The saved rollout network (after the generator's weights are loaded), or none yet."""
        weights = checkpoint.read_algorithm_part(state, "rollout")
        self.rollout = None if weights is None else self._copy_generator()
        if weights is not None:
            self.rollout.load_state_dict(weights)

    def _copy_generator(self) -> Generator:
        return copy.deepcopy(self.p.g.module).eval().requires_grad_(False)

    @torch.no_grad()
    def follow(self) -> None:
        """The rollout network's delayed update (SeqGAN's rollout.update_params)."""
        rate = self.pg.rollout_update_rate
        for (name, mine), theirs in zip(self.rollout.named_parameters(), self.p.g.module.parameters()):
            if name.startswith("embedding.") or rate == 0.0:
                mine.copy_(theirs)
            else:
                mine.mul_(rate).add_(theirs, alpha=1.0 - rate)

    def g_step(self, tau: float) -> dict[str, float]:
        """REINFORCE on a fresh batch of discrete samples, rewarded by D through rollouts."""
        p, gen, d = self.p, self.p.g.module, self.p.d.module
        if self.rollout is None:
            self.rollout = self._copy_generator()
        z, fake = self.sample(p.batch_size)
        with evaluating(d):
            rewards = rollout_rewards(self.rollout, z, fake.tokens, fake.lengths, self.pg.rollouts, p.noise,
                                      lambda tokens: d_probability(d, tokens))
        with evaluating(gen):
            loss = policy_gradient_loss(token_log_probs(gen, fake.tokens, fake.lengths, z), rewards)
            norm = self.g_update(loss)
        self.follow()
        out = {"adv/g_loss": loss.item(), "adv/fake_tokens": float(fake.lengths.sum()),
               "adv/reward": rewards.gather(1, (fake.lengths - 1).unsqueeze(1)).mean().item()}  # D(sample)
        if norm is not None:
            out["adv/g_grad_norm"] = norm
        return out
