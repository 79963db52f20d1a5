"""Negative log-likelihoods: of real text under the generator (NLL_gen) and of
generated text under the oracle (NLL_oracle).

Shapes: B batch, T time, V vocabulary, K latent draws.
With a latent prior p(x) = E_z p(x|z); we estimate it by plain Monte Carlo over
K prior draws (log-mean-exp), a lower bound in expectation (Jensen), and also
report the value at the prior mean z.
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import torch


@torch.inference_mode()
def sequence_nll(generator, tokens: torch.Tensor, lengths: torch.Tensor, z: torch.Tensor,
                 temperature: float = 1.0) -> torch.Tensor:
    """Summed teacher-forced NLL of each sequence up to and including EOS, (B,), under the
    generator's distribution at sampling temperature `temperature`."""
    return -generator.token_log_probs(tokens, lengths, z, temperature).sum(1)


@dataclass
class NLLGen:
    per_token: float  # MC estimate, per token up to and including EOS
    per_token_prior_mean: float  # same at z = prior mean
    per_position: float  # the field's figure: summed NLL / (N * max_len), padding counted as 0
    draws: int  # K prior draws of the Monte Carlo estimate (1 when there is no latent)


def nll_gen(generator, tokens: torch.Tensor, lengths: torch.Tensor, draws: int = 8,
            batch_size: int = 256, rng: torch.Generator | None = None, temperature: float = 1.0,
            prior_mean: bool = True) -> NLLGen:
    """NLL of real sequences under the generator (sampling at `temperature`: what a temperature
    sweep costs in coverage of the data); `draws` is ignored for prior=none. Without
    `prior_mean` the pass at the prior mean is skipped (per_token_prior_mean is nan): a caller
    that reads only the Monte Carlo figures saves a pass over the data, and they are unchanged.

    Each sentence gets the z draws it would get scored in file order, batch by batch; the
    sentences are then scored in batches of similar length (within blocks of 64 batches, so
    memory stays bounded): a batch runs to its longest sentence, and in file order half of
    every COCO batch is padding."""
    was_training = generator.training
    generator.eval()
    device = generator.out.weight.device
    k = draws if generator.prior != "none" else 1
    mc_sum, mean_sum = 0.0, 0.0
    mean_z = generator.prior_mean(1) if prior_mean and generator.prior != "none" else None  # (1, Z): once a pass
    block = batch_size * 64
    for first in range(0, tokens.shape[0], block):
        x_all, n_all = tokens[first:first + block], lengths[first:first + block]
        z_all = torch.cat([torch.stack([generator.sample_latent(min(batch_size, x_all.shape[0] - s), rng)
                                        for _ in range(k)])
                           for s in range(0, x_all.shape[0], batch_size)], dim=1)  # (K, N_block, Z)
        order = torch.argsort(n_all, stable=True)
        for start in range(0, x_all.shape[0], batch_size):
            idx = order[start:start + batch_size]
            x, n = x_all[idx].to(device), n_all[idx].to(device)
            per_draw = torch.stack([-sequence_nll(generator, x, n, z_all[j, idx.to(z_all.device)], temperature)
                                    for j in range(k)])  # (K, B) log p(x | z_k)
            log_px = torch.logsumexp(per_draw.double(), dim=0) - math.log(k)  # (B,)
            mc_sum += float(-log_px.sum())
            if not prior_mean:
                mean_sum = math.nan
            elif generator.prior == "none":  # z is zero either way: the same number
                mean_sum += float(-per_draw[0].double().sum())
            else:
                mean_sum += float(sequence_nll(generator, x, n, mean_z.expand(x.shape[0], -1),
                                               temperature).double().sum())
    generator.train(was_training)
    n_tokens = float(lengths.sum())
    return NLLGen(per_token=mc_sum / n_tokens, per_token_prior_mean=mean_sum / n_tokens,
                  per_position=mc_sum / (tokens.shape[0] * tokens.shape[1]), draws=k)


def nll_oracle(oracle, oracle_ids: torch.Tensor) -> float:
    """Mean per-token NLL of generated sequences (oracle ids, (B, T)) under the oracle."""
    return float(oracle.nll(oracle_ids))
