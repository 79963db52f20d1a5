"""Exposure bias on real text, estimated with a real-data language model in the oracle's place
(He et al. 2019, "Quantifying exposure bias for open-ended language generation").

Shapes: N sentences, T positions (max_len), Vm the generator's vocabulary, K latent draws.

On text nothing gives the true next-token distribution, so a language model trained on the real
training sentences, R, stands in for it: at every prefix the divergence KL(R(. | x_<t) ||
M(. | x_<t)) of the model M from R is averaged over prefixes taken from real test sentences
(CGD(M|D)) and over prefixes the model drew itself (CGD(M|M)); EB-M is their ratio. Every figure
is an estimate twice over: R is not the data distribution (its own test NLL is reported beside
it, the smaller the better the stand-in), and the averages run over sampled prefixes. Sentences end
at their EOS, so position t averages over the sentences still running there (counts reported);
the summary averages over every token of either set.

R is the toolkit's own generator (prior none) trained by its own MLE trainer with one fixed recipe
of the width of the COCO recipe's generator (`REFERENCE_RECIPE`), cached per corpus as the LM score's
real-data LM is (textgan.metrics.lm_score).
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path

import torch

from textgan.corpus import Corpus
from textgan.evaluate import generate
from textgan.metrics.exposure import chunk_rows, kl_per_position, mixture_log_conditionals, position_rows
from textgan.metrics.lm_score import LM_RECIPE, lm_nll, real_lm, sample_lengths

# The stand-in LM: LM_RECIPE's training settings with configs/coco_mle_h256.yaml's network (256
# wide, tied, io dropout 0.5) for that run's best epoch count (11), so R is as strong as the
# models it judges. A dotted-override tuple: part of the cache key.
REFERENCE_RECIPE = tuple(o for o in LM_RECIPE if not o.startswith(("generator.", "mle.epochs", "mle.batch_size"))) + (
    "generator.prior=none", "generator.emb_dim=256", "generator.hidden_dim=256", "generator.num_layers=1",
    "generator.tie_embeddings=true", "generator.io_dropout=0.5", "generator.init_std=0", "mle.epochs=11",
    "mle.batch_size=64")


@dataclass
class LMExposureBias:
    """Per position t = 1..T (lists of T floats; nan where no sentence of a set reaches t)."""
    kl_data_prefix: list[float]  # CGD(M|D): KL(R || M) on prefixes of real test sentences
    kl_data_prefix_se: list[float]  # its standard error over the sentences at t
    kl_model_prefix: list[float]  # CGD(M|M): on prefixes the model drew
    kl_model_prefix_se: list[float]
    ratio: list[float]  # EB-M: kl_model_prefix / kl_data_prefix
    nll_lm_model: list[float]  # -log R of the model's free-running token at t
    nll_lm_data: list[float]  # -log R of the real sentences' token at t
    count_data: list[int]  # real sentences that reach position t
    count_model: list[int]  # samples that reach position t
    summary_kl: tuple[float, float]  # KL over every token of the real set, of the samples
    summary_nll: tuple[float, float]  # -log R per token of the samples, of the real set
    reference_nll: float  # R's per-token NLL of the whole test split: how good a stand-in it is
    num: int  # sentences from each source
    draws: int  # K prior draws of the model's mixture (1: exact)

    def summary(self) -> dict[str, float]:
        """Scalars for metrics.json; names say that R, a language model, is the reference."""
        data, model = self.summary_kl
        return {"eb_lm_kl_data_prefix": data, "eb_lm_kl_model_prefix": model,
                "eb_lm_ratio": model / data if data > 0 else math.nan,
                "eb_lm_nll_model": self.summary_nll[0], "eb_lm_nll_data": self.summary_nll[1],
                "eb_lm_reference_nll": self.reference_nll}

    def rows(self) -> list[dict[str, float]]:
        """One row per position, for the CSV and TensorBoard."""
        return position_rows(self, ("kl_data_prefix", "kl_data_prefix_se", "kl_model_prefix", "kl_model_prefix_se",
                                    "ratio", "nll_lm_model", "nll_lm_data", "count_data", "count_model"))

    def curves(self) -> dict:
        """The plot's series (textgan.eval_reports.plot_exposure) and what to call them."""
        return {"kl": (self.kl_data_prefix, self.kl_data_prefix_se, self.kl_model_prefix, self.kl_model_prefix_se),
                "ratio": self.ratio, "nll": (self.nll_lm_model, self.nll_lm_data),
                "reference": "the real-data LM", "data": "real test sentences", "nll_name": "-log LM",
                "nll_data_label": "real test sentences",
                "title": "exposure bias on text, estimated with a real-data LM"}


@dataclass
class _Scores:
    kl: torch.Tensor  # (N, T) KL(R || M) at each prefix, float64
    nll: torch.Tensor  # (N, T) -log R(x_t | x_<t), float64
    mask: torch.Tensor  # (N, T) bool: position t is part of the sentence (EOS included)


@torch.inference_mode()
def prefix_scores(lm, generator, tokens: torch.Tensor, lengths: torch.Tensor, draws: int, temperature: float,
                  rng: torch.Generator | None, budget: int = 1 << 23) -> _Scores:
    """KL(R || M) and -log R at every position of token ids (N, T) of the run's vocabulary; 0 past
    each sentence's end. Both models are causal, so a sentence is scored only up to its length:
    sentences go through longest first, each chunk cut to its longest one (captions average a
    third of max_len, and the (N, T, Vm) terms are most of the cost); `budget` bounds a chunk's
    log-probabilities in floats."""
    was_training = generator.training
    generator.eval()
    k = draws if generator.prior != "none" else 1
    device = generator.out.weight.device
    n, t_max = tokens.shape
    kl, nll = torch.zeros(n, t_max, dtype=torch.float64), torch.zeros(n, t_max, dtype=torch.float64)
    order = torch.argsort(lengths, descending=True, stable=True)
    start = 0
    while start < n:
        t = max(1, int(lengths[order[start]]))
        idx = order[start:start + chunk_rows(t, generator.vocab_size, k + 1, budget)]
        start += idx.numel()
        chunk = tokens[idx, :t].to(device)
        z = generator.sample_latent(k * chunk.shape[0], rng).view(k, chunk.shape[0], -1)  # (K, n, Z)
        log_r = mixture_log_conditionals(lm, chunk, lm.prior_mean(chunk.shape[0]).unsqueeze(0))  # (n, t, Vm)
        log_m = mixture_log_conditionals(generator, chunk, z, temperature)
        kl[idx, :t] = kl_per_position(log_r, log_m).cpu()
        nll[idx, :t] = -log_r.gather(2, chunk.unsqueeze(2)).squeeze(2).double().cpu()
    generator.train(was_training)
    mask = torch.arange(t_max).unsqueeze(0) < lengths.unsqueeze(1)  # (N, T)
    return _Scores(kl=kl * mask, nll=nll * mask, mask=mask)


def _masked_mean_se(x: torch.Tensor, mask: torch.Tensor) -> tuple[list[float], list[float], list[int]]:
    """Column means of (N, T) over the rows where mask is set, their standard errors and counts."""
    count = mask.sum(0)  # (T,)
    m = mask.double()
    mean = (x * m).sum(0) / count.clamp(min=1)
    var = (((x - mean) ** 2) * m).sum(0) / (count - 1).clamp(min=1)
    se = (var / count.clamp(min=1)).sqrt()
    mean = torch.where(count > 0, mean, torch.full_like(mean, math.nan))
    se = torch.where(count > 1, se, torch.zeros_like(se))
    return mean.tolist(), se.tolist(), count.tolist()


def _token_mean(x: torch.Tensor, mask: torch.Tensor) -> float:
    return float(x[mask].mean()) if bool(mask.any()) else math.nan


def exposure_bias_lm(corpus: Corpus, generator, num: int, seed: int, temperature: float = 1.0, draws: int = 1,
                     recipe: tuple[str, ...] = REFERENCE_RECIPE, device: str = "cpu",
                     cache: Path | None = None) -> LMExposureBias:
    """The first `num` test sentences and `num` free-running samples of the generator at
    `temperature` (seed + 1), each scored at every position against the real-data LM of `recipe`
    (trained once per corpus and cached, in `cache` or lm_score's folder); seed + 2 draws the model's
    latent mixture."""
    lm = real_lm(corpus, recipe, device, cache).generator
    n = min(num, corpus.test.tokens.shape[0])
    eos = corpus.vocab.eos_id if corpus.add_eos else None
    real_tokens, real_lengths = corpus.test.tokens[:n], corpus.test.lengths[:n]
    own = generate(generator, n, corpus.max_len, seed + 1, temperature=temperature)  # (N, T)
    rng = torch.Generator(device=generator.out.weight.device).manual_seed(seed + 2)
    on_data = prefix_scores(lm, generator, real_tokens, real_lengths, draws, temperature, rng)
    on_model = prefix_scores(lm, generator, own, sample_lengths(own, eos), draws, temperature, rng)
    kl_d, kl_d_se, count_d = _masked_mean_se(on_data.kl, on_data.mask)
    kl_m, kl_m_se, count_m = _masked_mean_se(on_model.kl, on_model.mask)
    ratio = [m / d if d > 0 else math.nan for m, d in zip(kl_m, kl_d)]  # nan stays nan
    whole = n == corpus.test.tokens.shape[0]  # the data prefixes are the whole test split: R's NLL of it is known
    reference = _token_mean(on_data.nll, on_data.mask) if whole else lm_nll(lm, corpus.test)
    return LMExposureBias(
        kl_data_prefix=kl_d, kl_data_prefix_se=kl_d_se, kl_model_prefix=kl_m, kl_model_prefix_se=kl_m_se,
        ratio=ratio, nll_lm_model=_masked_mean_se(on_model.nll, on_model.mask)[0],
        nll_lm_data=_masked_mean_se(on_data.nll, on_data.mask)[0], count_data=count_d, count_model=count_m,
        summary_kl=(_token_mean(on_data.kl, on_data.mask), _token_mean(on_model.kl, on_model.mask)),
        summary_nll=(_token_mean(on_model.nll, on_model.mask), _token_mean(on_data.nll, on_data.mask)),
        reference_nll=reference, num=n, draws=draws if generator.prior != "none" else 1)
