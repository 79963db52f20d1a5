"""One evaluation of a generator: quality and diversity numbers, with the protocol in each name.

Tags: bleuN_exact (mean nltk sentence BLEU of every sample against all test sentences; its
standard error over the samples in bleuN_exact_se, bleuN_texygen_se likewise),
self_bleuN_loo (leave-one-out Self-BLEU), nll_gen_mcK_tok (per token incl. EOS, K prior
draws), nll_gen_zmean_tok, nll_gen_pos (the field's per-position figure), nll_oracle,
grammaticality, train_copy_frac (samples that are training sequences verbatim), unique_frac
(distinct samples / samples: a generator that repeats a few sentences scores low), ref_unseen_frac
(samples holding a token no test sentence holds, which BLEU penalises whatever their quality),
latent_mi_K (with its ceiling latent_mi_K_max = log K), latent_sensitivity, latent_token_change,
interp_distinct and interp_edit (how much z decides a sentence: textgan.metrics.latent). Under the texygen
protocol (EvalConfig.protocol) also bleuN_texygen, self_bleuN_texygen and nll_gen_pos_train, the
figures published tables were measured with, so training curves can be set beside them.
"""
from __future__ import annotations

from collections.abc import Callable
from typing import NamedTuple

import torch

from textgan.config import EvalConfig
from textgan.corpus import Corpus
from textgan.eval_stream import SampleTally, stream_scores
from textgan.metrics.bleu import References, bleu_metrics
from textgan.metrics.latent import latent_metric_names, latent_metrics
from textgan.metrics.nll import NLLGen, nll_gen
from textgan.progress import NoProgress, Progress
from textgan.sample import Drawn, draw_ids


def generate(generator, num: int, max_len: int, seed: int, temperature: float = 1.0,
             z: torch.Tensor | None = None, batch_size: int = 512, progress: Progress | None = None) -> torch.Tensor:
    """Free-running samples (num, T) on CPU, sample i from the prior draw of (seed, i) (or row i of
    z) and the noise of (seed, i): `textgan sample`'s sampler (textgan.sample.draw_ids), so the
    first n samples of any evaluation are those of `textgan sample --num n` at that seed."""
    return torch.cat([drawn.ids for drawn in draw_ids(generator, num, max_len, seed, temperature, z=z,
                                                      chunk=batch_size, progress=progress)])


def metric_names(cfg: EvalConfig, corpus: Corpus, prior: str) -> list[str]:
    """The names `evaluate` returns for this corpus and generator, known before training starts."""
    exact, texygen = cfg.protocol != "texygen", cfg.protocol != "exact"
    if corpus.oracle is not None:
        names = ["nll_oracle"]
    else:  # text: exact BLEU under exact/both; the vocabulary check under every protocol
        names = [name for n in (cfg.bleu_n if exact else [])
                 for name in (f"bleu{n}_exact", f"bleu{n}_exact_se", f"self_bleu{n}_loo")] + ["ref_unseen_frac"]
    if corpus.source == "grammar":
        names.append("grammaticality")
    names += ["train_copy_frac", "unique_frac"]
    if cfg.nll_gen:
        draws = cfg.latent_draws if prior != "none" else 1
        names += [f"nll_gen_mc{draws}_tok", "nll_gen_zmean_tok", "nll_gen_pos"]
    names.append("mean_length")
    names += latent_metric_names(cfg.latent_samples, cfg.latent_mi_k, cfg.interp_pairs)
    if texygen and cfg.nll_gen:
        names.append("nll_gen_pos_train")
    if texygen and corpus.oracle is None:
        names += [name for n in cfg.bleu_n
                  for name in (f"bleu{n}_texygen", f"bleu{n}_texygen_se", f"self_bleu{n}_texygen")]
    return names


def sample_metrics(ids: torch.Tensor, samples: list[list[str]], corpus: Corpus, bleu_n: list[int],
                   num_references: int = 0) -> dict[str, float]:
    """Quality and diversity of samples (ids (N, T) and their decoded tokens): NLL_oracle on the
    oracle corpus, else BLEU-n against the test set and leave-one-out Self-BLEU-n; grammaticality
    on the grammar corpus; the fraction copied from the training set on every corpus."""
    tally = SampleTally(corpus, bleu_n, num_references)
    tally.add(ids, samples)
    return tally.metrics()


def texygen_metrics(generator, corpus: Corpus, samples: list[list[str]], seed: int, temperature: float,
                    orders: list[int], second_num: int | None = None, counted: References | None = None,
                    progress: Progress | None = None) -> dict[str, float]:
    """The incumbent's protocol: first 200 samples vs the test set, and Self-BLEU of those 200
    against a second, independent sample set of `second_num` samples (default len(samples),
    drawn here with seed + 2). `counted`: the whole test set as counted for the exact protocol.
    `progress` is told the two phases, drawing and scoring."""
    progress = progress or NoProgress()
    num = second_num or len(samples)
    progress.phase("texygen protocol: second sample set", num)
    ids = generate(generator, num, corpus.max_len, seed + 2, temperature=temperature, progress=progress)
    second = [corpus.vocab.decode(row) for row in ids.tolist()]
    progress.phase("texygen protocol: BLEU and Self-BLEU")
    return bleu_metrics(samples, corpus.test_sentences, orders, protocol="texygen", second=second, counted=counted)


def nll_gen_on_test(generator, corpus: Corpus, draws: int, seed: int, temperature: float = 1.0) -> NLLGen:
    """NLL_gen of the test set (draws: seed + 1), the one estimate `evaluate` and the temperature
    sweep both report, so their figures agree at the same seed and temperature."""
    rng = torch.Generator(device=generator.out.weight.device).manual_seed(seed + 1)
    return nll_gen(generator, corpus.test.tokens, corpus.test.lengths, draws=draws, rng=rng, temperature=temperature)


def train_nll_per_position(generator, corpus: Corpus, draws: int, seed: int, temperature: float = 1.0) -> float:
    """NLL_gen as the RelGAN paper reports it: per position (max_len per sentence, padding
    counted as 0) on the *training* set, which its code scores, not the test set (draws: seed + 3)."""
    rng = torch.Generator(device=generator.out.weight.device).manual_seed(seed + 3)
    return nll_gen(generator, corpus.train.tokens, corpus.train.lengths, draws=draws, rng=rng,
                   temperature=temperature, prior_mean=False).per_position


def latent_usage(generator, corpus: Corpus, cfg: EvalConfig, seed: int, temperature: float = 1.0) -> dict[str, float]:
    """How much z decides a sentence (textgan.metrics.latent) at `temperature`, the one estimate
    `evaluate` and the temperature sweep both report (draws: seed + 4, + 5, + 6)."""
    return latent_metrics(generator, max_len=corpus.max_len, seed=seed + 4, num=cfg.latent_samples,
                          k=cfg.latent_mi_k, pairs=cfg.interp_pairs, steps=cfg.interp_steps, temperature=temperature)


class EvalResult(NamedTuple):
    """What `evaluate` scored: its metrics, and the samples as tokens and as ids (N, T), so later
    metrics of the same samples (`textgan eval --lm-score / --fed`) need not draw them again: all
    of them when they are at most eval.self_bleu_max, else the first self_bleu_max where asked
    for (`keep`), else none. `computed_on`: the metrics computed on fewer than all the samples
    (Self-BLEU) and on how many; `peak_held`: the most samples held at once."""
    metrics: dict[str, float]
    samples: list[list[str]]
    ids: torch.Tensor | None
    computed_on: dict[str, int] = {}
    peak_held: int = 0


def subset_names(cfg: EvalConfig, text: bool) -> list[str]:
    """The metrics `evaluate` computes on the first min(num, eval.self_bleu_max) samples: those
    comparing samples with each other (Self-BLEU, and the texygen protocol's second set)."""
    if not text:
        return []
    names = [f"self_bleu{n}_loo" for n in cfg.bleu_n] if cfg.protocol != "texygen" else []
    return names + ([f"self_bleu{n}_texygen" for n in cfg.bleu_n] if cfg.protocol != "exact" else [])


def evaluate(generator, corpus: Corpus, cfg: EvalConfig, seed: int, temperature: float = 1.0,
             nll: bool | None = None, progress: Progress | None = None, chunk: int = 512,
             sink: Callable[[list[list[str]], Drawn], None] | None = None, keep: bool = False) -> EvalResult:
    """Metrics on `cfg.num_samples` fresh samples under `cfg.protocol` (those of `generate` at
    `seed`), and the samples. Sampled `chunk` at a time (each chunk's tokens handed to `sink`)
    and scored in blocks of eval.self_bleu_max (textgan.eval_stream), so memory is bounded
    whatever the number; Self-BLEU is that of the first block. At a temperature other than 1
    the NLL_gen figures score the same tempered distribution the samples come from: one model,
    the one the samples describe. `progress` is told each phase."""
    progress = progress or NoProgress()
    exact_orders = [] if cfg.protocol == "texygen" else cfg.bleu_n  # texygen alone: no exact BLEU to compute
    streamed = stream_scores(generator, corpus, cfg.num_samples, cfg.self_bleu_max, seed, temperature, exact_orders,
                             cfg.num_references, progress, chunk=chunk, sink=sink, keep=keep)
    metrics = dict(streamed.metrics)
    computed_on = dict.fromkeys(subset_names(cfg, corpus.oracle is None), streamed.subset)
    done = lambda m: EvalResult(m, streamed.samples, streamed.ids, computed_on, streamed.peak_held)  # noqa: E731
    score_nll = cfg.nll_gen if nll is None else nll
    if score_nll:
        progress.phase("NLL_gen of the test set")
        res = nll_gen_on_test(generator, corpus, cfg.latent_draws, seed, temperature)
        metrics[f"nll_gen_mc{res.draws}_tok"] = res.per_token
        metrics["nll_gen_zmean_tok"] = res.per_token_prior_mean
        metrics["nll_gen_pos"] = res.per_position
    metrics["mean_length"] = streamed.mean_length
    progress.phase("latent metrics")
    metrics.update(latent_usage(generator, corpus, cfg, seed, temperature))
    if cfg.protocol == "exact":
        return done(metrics)
    if score_nll:
        progress.phase("NLL_gen of the training set")
        metrics["nll_gen_pos_train"] = train_nll_per_position(generator, corpus, cfg.latent_draws, seed, temperature)
    if corpus.oracle is not None:  # no BLEU on oracle ids
        return done(metrics)
    whole_test_set = streamed.references if not cfg.num_references else None  # counted already
    extra = texygen_metrics(generator, corpus, streamed.texygen_hyps, seed=seed, temperature=temperature,
                            orders=cfg.bleu_n, second_num=streamed.subset, counted=whole_test_set, progress=progress)
    return done({**metrics, **extra})
