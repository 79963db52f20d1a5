"""Exposure bias measured exactly on the oracle corpus.

Shapes: N sequences, T positions, V oracle vocabulary, Vm the generator's vocabulary (V plus the
specials, which an oracle run's generator never emits), K latent draws.

The SeqGAN oracle gives the true next-token distribution O(. | x_<t) for any prefix, so the
divergence of the model's M(. | x_<t) from it can be computed exactly at each prefix instead of
estimated. He et al. 2019 ("Quantifying exposure bias for open-ended language generation")
compare that divergence on prefixes drawn from the data with prefixes drawn from the model
itself: CGD(M|D) and CGD(M|M), and EB-M = CGD(M|M) / CGD(M|D). Above 1, the model's own
prefixes lead it further astray than the data's do, which is what exposure bias claims. Here the
divergence is KL(O(. | x_<t) || M(. | x_<t)), the average runs over sampled prefixes, and the
only estimate left is that average (its standard error is reported).

A latent generator's next-token distribution is the mixture over z weighted by how likely each z
makes the prefix: M(v | x_<t) = sum_k p(x_<t | z_k) p(v | x_<t, z_k) / sum_k p(x_<t | z_k) over K
prior draws (self-normalised importance sampling of the posterior, a consistent estimate); with
prior=none it is exact.
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import torch

from textgan.data import SPECIALS
from textgan.evaluate import generate

START_TOKEN = 0  # the oracle's first input (textgan.oracle)


@torch.inference_mode()
def oracle_log_conditionals(oracle, ids: torch.Tensor) -> torch.Tensor:
    """log O(. | x_<t) for every position of oracle ids (N, T): (N, T, V), START as the first input."""
    table = oracle._input_table()  # (V, 4H)
    ids = ids.to(table.device)
    n = ids.shape[0]
    h = table.new_zeros(n, oracle.hidden_dim)
    c = torch.zeros_like(h)
    prev = torch.full((n,), START_TOKEN, dtype=torch.long, device=table.device)
    out = []
    for t in range(ids.shape[1]):
        logits, h, c = oracle._step(table[prev], h, c)  # (N, V)
        out.append(torch.log_softmax(logits, dim=1))
        prev = ids[:, t]
    return torch.stack(out, dim=1)


@torch.inference_mode()
def model_log_conditionals(generator, ids: torch.Tensor, z: torch.Tensor, temperature: float = 1.0) -> torch.Tensor:
    """log M(. | x_<t) over the oracle's ids for oracle ids (N, T), mixed over the K latent draws
    z (K, N, Z) by each draw's likelihood of the prefix (module docstring): (N, T, V). Scored at
    `temperature` (logits / temperature, as `sample` draws)."""
    offset = len(SPECIALS)
    return mixture_log_conditionals(generator, ids.to(z.device) + offset, z, temperature)[:, :, offset:]


@torch.inference_mode()
def mixture_log_conditionals(generator, tokens: torch.Tensor, z: torch.Tensor,
                             temperature: float = 1.0) -> torch.Tensor:
    """log M(. | x_<t) over the generator's whole vocabulary for its token ids (N, T), mixed over
    the K latent draws z (K, N, Z) by each draw's likelihood of the prefix: (N, T, Vm)."""
    k, n = z.shape[0], tokens.shape[0]
    tokens = tokens.to(z.device).repeat(k, 1)  # (K*N, T)
    logits = generator(tokens, z.reshape(k * n, -1))  # (K*N, T, Vm), banned tokens masked (any generator)
    if temperature != 1.0:
        logits = (logits - generator.logit_mask) / temperature + generator.logit_mask
    logp = torch.log_softmax(logits.float(), dim=-1).view(k, n, tokens.shape[1], -1)  # (K, N, T, Vm)
    if k == 1:
        return logp[0]
    gold = logp.gather(3, tokens.view(k, n, -1, 1)).squeeze(3)  # (K, N, T) log p(x_t | x_<t, z_k)
    prefix = torch.cumsum(gold, dim=2) - gold  # (K, N, T) log p(x_<t | z_k)
    weights = torch.log_softmax(prefix, dim=0)  # (K, N, T) posterior weight of each draw
    return torch.logsumexp(weights.unsqueeze(3) + logp, dim=0)  # (N, T, Vm)


def kl_per_position(log_p: torch.Tensor, log_q: torch.Tensor) -> torch.Tensor:
    """KL(p || q) along the last axis, in nats: (..., V) -> (...) float64, the terms in the inputs'
    precision (float32 here: half the memory traffic of float64 over N * T * V terms). Where p is 0 the
    term is 0, whatever q is."""
    p = log_p.exp()
    terms = torch.where(p > 0, p * (log_p - log_q), torch.zeros((), dtype=p.dtype, device=p.device))
    return terms.sum(-1).double()


@dataclass
class PrefixScores:
    """Per sequence and position (N, T), float64."""
    kl: torch.Tensor  # KL(O(. | x_<t) || M(. | x_<t))
    nll_oracle: torch.Tensor  # -log O(x_t | x_<t)


def chunk_rows(t: int, vocab: int, draws: int, budget: int = 1 << 23) -> int:
    """Sequences per chunk so the (K, N, T, Vm) log-probabilities stay near `budget` floats."""
    return max(1, budget // max(1, t * vocab * draws))


@torch.inference_mode()
def prefix_scores(oracle, generator, ids: torch.Tensor, draws: int = 1, temperature: float = 1.0,
                  rng: torch.Generator | None = None) -> PrefixScores:
    """KL and NLL_oracle at every prefix of oracle ids (N, T); `draws` prior draws per sequence for
    a latent generator (1 for prior=none, whose conditional is exact)."""
    was_training = generator.training
    generator.eval()
    k = draws if generator.prior != "none" else 1
    rows = chunk_rows(ids.shape[1], generator.vocab_size, k)
    kls, nlls = [], []
    for start in range(0, ids.shape[0], rows):
        chunk = ids[start:start + rows]
        z = generator.sample_latent(k * chunk.shape[0], rng).view(k, chunk.shape[0], -1)  # (K, N, Z)
        log_o = oracle_log_conditionals(oracle, chunk)  # (N, T, V)
        log_m = model_log_conditionals(generator, chunk, z, temperature).to(log_o.device)
        kls.append(kl_per_position(log_o, log_m).cpu())
        gold = log_o.gather(2, chunk.to(log_o.device).unsqueeze(2)).squeeze(2)  # (N, T)
        nlls.append(-gold.double().cpu())
    generator.train(was_training)
    return PrefixScores(kl=torch.cat(kls), nll_oracle=torch.cat(nlls))


@dataclass
class ExposureBias:
    """Per position t = 1..T (the t-th token, prefix of t - 1 tokens); lists of T floats."""
    kl_oracle_prefix: list[float]  # He et al.'s CGD(M|D): KL on prefixes the oracle drew
    kl_oracle_prefix_se: list[float]  # its standard error over the sampled prefixes
    kl_model_prefix: list[float]  # CGD(M|M): KL on prefixes the model drew
    kl_model_prefix_se: list[float]
    ratio: list[float]  # EB-M: kl_model_prefix / kl_oracle_prefix (nan where the latter is 0)
    nll_oracle_model: list[float]  # NLL_oracle of the model's free-running token at t
    nll_oracle_data: list[float]  # the same on oracle samples: the oracle's own entropy at t
    num: int  # sequences drawn from each source
    draws: int  # K prior draws of the mixture (1: exact)

    def summary(self) -> dict[str, float]:
        """Scalars for metrics.json: KL averaged over positions on either source and their ratio."""
        data, model = _mean(self.kl_oracle_prefix), _mean(self.kl_model_prefix)
        return {"eb_kl_oracle_prefix": data, "eb_kl_model_prefix": model,
                "eb_ratio": model / data if data > 0 else math.nan,
                "eb_nll_oracle_model": _mean(self.nll_oracle_model),
                "eb_nll_oracle_data": _mean(self.nll_oracle_data)}

    def curves(self) -> dict:
        """The plot's series (textgan.eval_reports.plot_exposure) and what to call them."""
        return {"kl": (self.kl_oracle_prefix, self.kl_oracle_prefix_se, self.kl_model_prefix, self.kl_model_prefix_se),
                "ratio": self.ratio, "nll": (self.nll_oracle_model, self.nll_oracle_data),
                "reference": "oracle", "data": "the oracle", "nll_name": "NLL_oracle",
                "nll_data_label": "the oracle's samples (its entropy)",
                "title": "exposure bias on the oracle"}

    def rows(self) -> list[dict[str, float]]:
        """One row per position, for the CSV and TensorBoard."""
        return position_rows(self, ("kl_oracle_prefix", "kl_oracle_prefix_se", "kl_model_prefix",
                                    "kl_model_prefix_se", "ratio", "nll_oracle_model", "nll_oracle_data"))


def position_rows(curves, names: tuple[str, ...]) -> list[dict[str, float]]:
    """Rows {position, name: value at that position} of the per-position lists `names` of `curves`
    (positions from 1), for the exposure CSV and TensorBoard."""
    return [{"position": t + 1, **{name: getattr(curves, name)[t] for name in names}}
            for t in range(len(curves.ratio))]


def _mean(values: list[float]) -> float:
    return sum(values) / len(values)


def _mean_se(x: torch.Tensor) -> tuple[list[float], list[float]]:
    """Column means of (N, T) and their standard errors (0 for a single row)."""
    se = x.std(0) / math.sqrt(x.shape[0]) if x.shape[0] > 1 else torch.zeros(x.shape[1], dtype=x.dtype)
    return x.mean(0).tolist(), se.tolist()


def exposure_bias(oracle, generator, num: int, seed: int, temperature: float = 1.0,
                  draws: int = 1) -> ExposureBias:
    """`num` prefixes from the oracle (seed) and `num` free-running samples of the generator at
    `temperature` (seed + 1), each scored at every position (seed + 2 for the latent draws)."""
    device = generator.out.weight.device
    data = oracle.sample(num, generator=torch.Generator().manual_seed(seed))  # (N, T)
    own = generate(generator, num, oracle.seq_len, seed + 1, temperature=temperature) - len(SPECIALS)  # (N, T)
    if int(own.min()) < 0:
        raise ValueError("the generator emitted a special token; is it an oracle run's generator?")
    rng = torch.Generator(device=device).manual_seed(seed + 2)
    on_data = prefix_scores(oracle, generator, data, draws=draws, temperature=temperature, rng=rng)
    on_model = prefix_scores(oracle, generator, own, draws=draws, temperature=temperature, rng=rng)
    kl_d, kl_d_se = _mean_se(on_data.kl)
    kl_m, kl_m_se = _mean_se(on_model.kl)
    ratio = [m / d if d > 0 else math.nan for m, d in zip(kl_m, kl_d)]
    return ExposureBias(kl_oracle_prefix=kl_d, kl_oracle_prefix_se=kl_d_se, kl_model_prefix=kl_m,
                        kl_model_prefix_se=kl_m_se, ratio=ratio,
                        nll_oracle_model=on_model.nll_oracle.mean(0).tolist(),
                        nll_oracle_data=on_data.nll_oracle.mean(0).tolist(),
                        num=num, draws=draws if generator.prior != "none" else 1)
