"""One evaluation of a generator: quality and diversity numbers, with the protocol in each name.

Tags: bleuN_exact (mean nltk sentence BLEU of every sample against all test sentences),
self_bleuN_loo (leave-one-out Self-BLEU), nll_gen_mcK_tok (per token incl. EOS, K prior
draws), nll_gen_zmean_tok, nll_gen_pos (the field's per-position figure), nll_oracle,
grammaticality, train_copy_frac (samples that are training sequences verbatim).
"""
from __future__ import annotations

import torch

from textgan.config import EvalConfig
from textgan.corpus import Corpus
from textgan.data import SPECIALS
from textgan.metrics.bleu import bleu, self_bleu
from textgan.metrics.nll import nll_gen
from textgan.metrics.novelty import copy_fraction


@torch.inference_mode()
def generate(generator, num: int, max_len: int, rng: torch.Generator, temperature: float = 1.0,
             z: torch.Tensor | None = None, batch_size: int = 512) -> torch.Tensor:
    """Free-running samples (num, T) with z from the prior (or the given z)."""
    was_training = generator.training
    generator.eval()
    out = []
    for start in range(0, num, batch_size):
        b = min(batch_size, num - start)
        zb = generator.sample_latent(b, rng) if z is None else z[start:start + b]
        out.append(generator.sample(zb, max_len, temperature=temperature, generator=rng,
                                    need_dists=False).tokens)
    generator.train(was_training)
    return torch.cat(out).cpu()


def metric_names(cfg: EvalConfig, corpus: Corpus, prior: str) -> list[str]:
    """The names `evaluate` returns for this corpus and generator, known before training starts."""
    if corpus.oracle is not None:
        names = ["nll_oracle"]
    else:
        names = [f"{kind}{n}_{proto}" for n in cfg.bleu_n for kind, proto in (("bleu", "exact"), ("self_bleu", "loo"))]
    if corpus.source == "grammar":
        names.append("grammaticality")
    names.append("train_copy_frac")
    if cfg.nll_gen:
        draws = cfg.latent_draws if prior != "none" else 1
        names += [f"nll_gen_mc{draws}_tok", "nll_gen_zmean_tok", "nll_gen_pos"]
    return names + ["mean_length"]


def sample_metrics(ids: torch.Tensor, samples: list[list[str]], corpus: Corpus, bleu_n: list[int],
                   num_references: int = 0) -> dict[str, float]:
    """Quality and diversity of samples (ids (N, T) and their decoded tokens): NLL_oracle on the
    oracle corpus, else BLEU-n against the test set and leave-one-out Self-BLEU-n; grammaticality
    on the grammar corpus; the fraction copied from the training set on every corpus."""
    metrics: dict[str, float] = {}
    if corpus.oracle is not None:
        metrics["nll_oracle"] = float(corpus.oracle.nll(ids - len(SPECIALS)))
    else:
        refs = corpus.test_sentences[: num_references or None]
        for n in bleu_n:
            metrics[f"bleu{n}_exact"] = bleu(samples, refs, max_n=n)
            metrics[f"self_bleu{n}_loo"] = self_bleu(samples, max_n=n)
    if corpus.source == "grammar":
        from textgan.grammar import grammaticality

        metrics["grammaticality"] = grammaticality(samples)
    train = corpus.train
    metrics["train_copy_frac"] = copy_fraction(ids, (ids != corpus.vocab.pad_id).sum(1), train.tokens, train.lengths)
    return metrics


def evaluate(generator, corpus: Corpus, cfg: EvalConfig, seed: int, temperature: float = 1.0,
             nll: bool | None = None) -> tuple[dict[str, float], list[list[str]]]:
    """Metrics on `cfg.num_samples` fresh samples, and the samples as tokens."""
    device = generator.out.weight.device
    rng = torch.Generator(device=device).manual_seed(seed)
    ids = generate(generator, cfg.num_samples, corpus.max_len, rng, temperature)
    samples = [corpus.vocab.decode(row) for row in ids.tolist()]
    metrics = sample_metrics(ids, samples, corpus, cfg.bleu_n, cfg.num_references)
    if cfg.nll_gen if nll is None else nll:
        res = nll_gen(generator, corpus.test.tokens, corpus.test.lengths, draws=cfg.latent_draws,
                      rng=torch.Generator(device=device).manual_seed(seed + 1))
        metrics[f"nll_gen_mc{res.draws}_tok"] = res.per_token
        metrics["nll_gen_zmean_tok"] = res.per_token_prior_mean
        metrics["nll_gen_pos"] = res.per_position
    lengths = [len(s) for s in samples]
    metrics["mean_length"] = sum(lengths) / len(lengths)
    return metrics, samples
