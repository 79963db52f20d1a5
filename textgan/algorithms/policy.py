"""What the policy-gradient objectives (SeqGAN, MaliGAN) share: discrete sentences sampled from
the generator, their log-probabilities under it, the discriminator's probabilities on token ids,
and its binary cross-entropy update on real against generated sentences, as SeqGAN's code trains
it (fresh fakes, a few epochs over them mixed with as many real sentences).

Shapes: B batch, T time, V vocabulary, R discriminator representations.
"""
from __future__ import annotations

import math
from contextlib import contextmanager
from typing import Iterator

import torch
import torch.nn.functional as F

from textgan.algorithms.base import Players
from textgan.config import AdversarialConfig, PolicyGradientConfig
from textgan.models import SampleOutput
from textgan.models.generator import sequence_log_probs


@contextmanager
def evaluating(*modules: torch.nn.Module) -> Iterator[None]:
    """The modules in eval mode meanwhile (no dropout: the policy whose log-probabilities a
    gradient uses is the one that sampled, and rewards are D's deterministic scores)."""
    modes = [m.training for m in modules]
    for m in modules:
        m.eval()
    try:
        yield
    finally:
        for m, mode in zip(modules, modes):
            m.train(mode)


def d_logits(d: torch.nn.Module, tokens: torch.Tensor) -> torch.Tensor:
    """D's logits (B, R) on the one-hots of tokens (B, T)."""
    logits = d.forward_tokens(tokens)
    return logits if logits.dim() == 2 else logits.unsqueeze(1)


def d_probability(d: torch.nn.Module, tokens: torch.Tensor) -> torch.Tensor:
    """D's probability (B,) that each sentence is real: the mean over its R representations."""
    return torch.sigmoid(d_logits(d, tokens)).mean(dim=1)


def d_log_odds(d: torch.nn.Module, tokens: torch.Tensor) -> torch.Tensor:
    """log(D / (1 - D)) (B,) of `d_probability`, computed without forming D / (1 - D)."""
    logits = d_logits(d, tokens)
    if logits.shape[1] == 1:  # log(sigmoid(l) / sigmoid(-l)) = l
        return logits[:, 0]
    log_r = math.log(logits.shape[1])
    return (torch.logsumexp(F.logsigmoid(logits), 1) - log_r) - (torch.logsumexp(F.logsigmoid(-logits), 1) - log_r)


def token_log_probs(gen: torch.nn.Module, tokens: torch.Tensor, lengths: torch.Tensor,
                    z: torch.Tensor) -> torch.Tensor:
    """log G(y_t | y_<t, z) of each sampled token (B, T), differentiable; 0 past each length."""
    logp = sequence_log_probs(gen(tokens, z), tokens)  # (B, T), teacher forced on the sample
    alive = torch.arange(tokens.shape[1], device=tokens.device) < lengths.unsqueeze(1)  # (B, T)
    return logp * alive


class DiscreteGAN:
    """The discriminator update and generator sampling of SeqGAN and MaliGAN; subclasses add
    `g_step`."""

    relaxed = False  # no Gumbel temperature: the trainer logs no adv/tau

    def __init__(self, players: Players, adv: AdversarialConfig, pg: PolicyGradientConfig):
        self.p, self.adv, self.pg = players, adv, pg

    def state_dict(self) -> dict[str, dict]:
        return {}

    def load_state_dict(self, state: dict) -> None:
        """Nothing beyond the trainer's own state (subclasses with networks of their own load them)."""

    @torch.no_grad()
    def sample(self, num: int) -> tuple[torch.Tensor, SampleOutput]:
        """z (num, Z) and discrete sentences drawn from the dropout-free generator under it, in
        batches of adversarial.batch_size (a draw's Gumbel noise is (T, batch, V))."""
        p, gen = self.p, self.p.g.module
        z = gen.sample_latent(num, p.noise)
        tokens, lengths = [], []
        with evaluating(gen):
            for s in range(0, num, p.batch_size):
                out = gen.sample(z[s:s + p.batch_size], p.batches.max_len, generator=p.noise, need_dists=False)
                tokens.append(out.tokens)
                lengths.append(out.lengths)
        return z, SampleOutput(tokens=torch.cat(tokens), lengths=torch.cat(lengths), dists=None)

    def d_step(self, tau: float) -> dict[str, float]:
        """policy_gradient.d_samples fakes and as many real sentences, D trained d_epochs epochs
        over them in shuffled mixed batches with binary cross-entropy (real 1, fake 0)."""
        p, d = self.p, self.p.d.module
        n = self.pg.d_samples or p.batch_size
        fake = self.sample(n)[1].tokens  # (n, T)
        real = p.batches.tokens[p.batches.draw(n).to(p.batches.device)]  # (n, T)
        tokens = torch.cat([real, fake])
        labels = torch.cat([torch.ones(n, device=tokens.device), torch.zeros(n, device=tokens.device)])
        losses, norms = [], []
        for _ in range(self.pg.d_epochs):
            order = torch.randperm(2 * n, generator=p.noise, device=p.noise.device).to(tokens.device)
            sums = torch.zeros(2, device=tokens.device)  # this epoch's summed mean logits: fake, real
            for s in range(0, 2 * n, p.batch_size):
                idx = order[s:s + p.batch_size]
                logits = d_logits(d, tokens[idx])  # (b, R)
                target = labels[idx].unsqueeze(1).expand_as(logits)
                loss = F.binary_cross_entropy_with_logits(logits, target)
                norm = p.updates.step(p.opt_d, d.parameters(), loss, self.adv.grad_clip, "d")
                losses.append(loss.item())
                if norm is not None:
                    norms.append(norm)
                sums.index_add_(0, labels[idx].long(), logits.detach().mean(1))
        out = {"adv/d_loss": sum(losses) / len(losses), "adv/d_real": sums[1].item() / n,
               "adv/d_fake": sums[0].item() / n}
        if norms:
            out["adv/d_grad_norm"] = sum(norms) / len(norms)
        return out

    def g_update(self, loss: torch.Tensor) -> float | None:
        p = self.p
        return p.updates.step(p.opt_g, p.g.module.parameters(), loss, self.adv.grad_clip, "g")


def one_process_only(name: str) -> str:
    """The one-line refusal of a torchrun launch (checked before the run folder is made)."""
    return (f"adversarial.algorithm={name} trains in one process only (its rewards are scored "
            f"per batch on one rank); launch `textgan train` without torchrun")

