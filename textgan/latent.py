"""The terms that make z matter: the ELBO of variational pretraining and the latent
reconstruction term of the adversarial phase, and the figures that show whether z is used.

Shapes: B batch, T time, V vocabulary, Z latent, K importance samples.
Under plain MLE z is drawn independently of the sentence, so the best decoder ignores it. The
ELBO (Bowman et al. 2016) draws z from q(z | x) instead and charges KL(q || N(0, I)); annealing
its weight, free bits (Kingma et al. 2016) and word dropout keep the posterior from collapsing.
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import torch
import torch.nn.functional as F

from textgan.models.encoder import SentenceEncoder
from textgan.models.generator import Generator

LOG_2PI = math.log(2 * math.pi)
ACTIVE = 0.01  # a dimension is active when Cov_x(E_q[z | x]) exceeds this (Burda et al. 2016)


def kl_weight(step: int, anneal_steps: int) -> float:
    """Linear KL annealing: 0 at step 0, 1 from `anneal_steps` on (always 1 when it is 0)."""
    return 1.0 if anneal_steps == 0 else min(step / anneal_steps, 1.0)


def kl_per_dim(mean: torch.Tensor, log_var: torch.Tensor) -> torch.Tensor:
    """KL(N(mean, exp(log_var)) || N(0, I)) of each dimension, (B, Z)."""
    return 0.5 * (mean.pow(2) + log_var.exp() - 1.0 - log_var)


def free_bits_kl(kl: torch.Tensor, free_bits: float) -> torch.Tensor:
    """The KL charged per sentence: each dimension's batch mean floored at `free_bits` nats
    (Kingma et al. 2016: below the floor it costs nothing, so nothing pushes it lower)."""
    per_dim = kl.mean(0)  # (Z,)
    return (per_dim.clamp(min=free_bits) if free_bits > 0 else per_dim).sum()


def reparameterise(mean: torch.Tensor, log_var: torch.Tensor, rng: torch.Generator | None) -> torch.Tensor:
    """z = mean + std * eps, eps ~ N(0, I) from `rng`, differentiable in mean and log_var."""
    eps = torch.randn(mean.shape, generator=rng, device=mean.device, dtype=mean.dtype)
    return mean + (0.5 * log_var).exp() * eps


def drop_words(tokens: torch.Tensor, pad_id: int, unk_id: int, rate: float,
               rng: torch.Generator | None) -> torch.Tensor:
    """A copy of tokens (B, T) with each non-pad word replaced by <unk> with probability `rate`
    (Bowman et al. 2016's word dropout): fed as the decoder's inputs, never as its targets, so it
    must take from z what it cannot read from the previous words."""
    drop = torch.rand(tokens.shape, generator=rng, device=tokens.device) < rate  # (B, T)
    return tokens.masked_fill(drop & (tokens != pad_id), unk_id)


@dataclass
class ElboTerms:
    loss: torch.Tensor  # what is minimised, per token: NLL per token + weight * charged KL per token
    nll_tok: float  # teacher-forced NLL per token at z ~ q
    kl: float  # KL(q || prior) per sentence (the true one, not floored)
    weight: float  # the KL weight of this batch


def elbo(G: Generator, encoder: SentenceEncoder, tokens: torch.Tensor, lengths: torch.Tensor, *,
         pad_id: int, unk_id: int, weight: float, free_bits: float, word_dropout: float,
         rng: torch.Generator | None) -> ElboTerms:
    """The negative ELBO of a batch (tokens (B, T), lengths (B,)), divided by its token count so
    the MLE learning rate keeps its meaning: the same optimum as the per-sentence ELBO."""
    mean, log_var = encoder.encode_ids(tokens, lengths)  # (B, Z) each
    z = reparameterise(mean, log_var, rng)
    inputs = drop_words(tokens, pad_id, unk_id, word_dropout, rng) if word_dropout > 0 else None
    nll = G.mle_loss(tokens, z, pad_id=pad_id, inputs=inputs)
    kl = kl_per_dim(mean, log_var)  # (B, Z)
    per_token = tokens.shape[0] / lengths.sum().clamp(min=1)  # sentences per token
    loss = nll + weight * free_bits_kl(kl, free_bits) * per_token
    return ElboTerms(loss=loss, nll_tok=nll.item(), kl=kl.detach().sum(1).mean().item(), weight=weight)


def info_loss(head: SentenceEncoder, dists: torch.Tensor, lengths: torch.Tensor,
              z: torch.Tensor) -> tuple[torch.Tensor, float]:
    """0.5 * |z - head(x)|^2 per sentence (a unit-variance Gaussian's negative log-likelihood up to
    a constant), differentiable in the relaxed one-hots `dists` (B, T, V), and the recovery R^2."""
    recovered, _ = head.encode_dists(dists, lengths)  # (B, Z)
    loss = 0.5 * (recovered - z).pow(2).sum(1).mean()
    return loss, r_squared(recovered.detach(), z)


def r_squared(recovered: torch.Tensor, z: torch.Tensor) -> float:
    """1 - SSE / SST over every coordinate of the batch: 1 = z recovered exactly, 0 = no better than its mean."""
    sst = (z - z.mean(0)).pow(2).sum()
    return float(1.0 - (recovered - z).pow(2).sum() / sst.clamp(min=1e-12))


@torch.no_grad()
def posterior_stats(G: Generator, encoder: SentenceEncoder, tokens: torch.Tensor, lengths: torch.Tensor,
                    draws: int, rng: torch.Generator, batch_size: int = 256,
                    temperature: float = 1.0) -> dict[str, float]:
    """On held-out sentences: NLL_gen per token by importance sampling with q(z | x) as the proposal,
    -log (1/K) sum_k p(x, z_k) / q(z_k | x) with z_k ~ q (tighter than the prior Monte Carlo figure,
    whose proposal is the prior, where q is close to the true posterior; with few draws and a q far
    from it, looser), the mean KL(q || prior) per sentence, and the number of
    active units (dimensions whose E_q[z | x] varies over the sentences by more than 0.01).
    `temperature`: p(x | z) is the distribution sampled from at it (logits / T), as NLL_gen's."""
    was = (G.training, encoder.training)
    G.eval()
    encoder.eval()
    device = G.out.weight.device
    log_px, kl_sum, means = 0.0, 0.0, []
    for start in range(0, tokens.shape[0], batch_size):
        n = lengths[start:start + batch_size].to(device)
        x = tokens[start:start + batch_size, :max(int(n.max()), 1)].to(device)
        mean, log_var = encoder.encode_ids(x, n)
        means.append(mean)
        kl_sum += float(kl_per_dim(mean, log_var).sum())
        weights = []
        for _ in range(draws):
            eps = torch.randn(mean.shape, generator=rng, device=device)
            z = mean + (0.5 * log_var).exp() * eps
            log_q = -0.5 * (eps.pow(2) + log_var + LOG_2PI).sum(1)
            log_prior = -0.5 * (z.pow(2) + LOG_2PI).sum(1)
            weights.append(G.token_log_probs(x, n, z, temperature).sum(1) + log_prior - log_q)  # (B,)
        log_px += float((torch.logsumexp(torch.stack(weights).double(), 0) - math.log(draws)).sum())
    G.train(was[0])
    encoder.train(was[1])
    variance = torch.cat(means).var(0) if tokens.shape[0] > 1 else torch.zeros(1)
    return {f"nll_gen_is{draws}_tok": -log_px / float(lengths.sum()),
            "latent_kl": kl_sum / tokens.shape[0],
            "latent_active_units": float((variance > ACTIVE).sum())}


@torch.no_grad()
def recovery_r2(G: Generator, head: SentenceEncoder, num: int, max_len: int, rng: torch.Generator) -> float:
    """R^2 of the reconstruction head on `num` free-running samples (hard one-hots) of fresh prior z."""
    was = (G.training, head.training)
    G.eval()
    head.eval()
    z = G.sample_latent(num, rng)
    out = G.sample(z, max_len, generator=rng, need_dists=False)
    dists = F.one_hot(out.tokens, G.vocab_size).float()  # (B, T, V)
    recovered, _ = head.encode_dists(dists, out.lengths)
    G.train(was[0])
    head.train(was[1])
    return r_squared(recovered, z)
