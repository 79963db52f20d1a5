"""How much a generator conditioned on source sentences (generator.condition=sentence) follows them.

One sample from each held-out pair's source (the first `num` pairs), scored against the pair:
- pair_bleu: corpus BLEU-2 of the samples, each against its own pair's sentence (one reference,
  as a translation is scored), and pair_bleu_shuffled against another pair's sentence (each source
  sample against the next pair's reference): a model that ignores its source scores both alike.
- pair_nll_tok: the held-out sentences' teacher-forced NLL per token given their own sources (z one
  prior draw each), and pair_nll_tok_shuffled given the next pair's source: the gap is what the
  source tells the model, in nats a token (the marginal NLL_gen draws sources from the prior).
- on the built-in grammar's pairs (a source and a sentence about the same subject), src_subject:
  the share of samples whose subject head is the source's, read off exactly; src_subject_shuffled,
  the same against the next pair's source, is that share by chance.
"""
from __future__ import annotations

import torch
from nltk.translate.bleu_score import SmoothingFunction, corpus_bleu

from textgan.corpus import Corpus

NAMES = ("pair_bleu", "pair_bleu_shuffled", "pair_nll_tok", "pair_nll_tok_shuffled")
GRAMMAR_NAMES = ("src_subject", "src_subject_shuffled")


def metric_names(corpus: Corpus) -> list[str]:
    """The names `source_metrics` reports for a paired corpus."""
    return list(NAMES) + (list(GRAMMAR_NAMES) if corpus.source == "grammar" else [])


def _pair_bleu(samples: list[list[str]], references: list[list[str]]) -> float:
    return corpus_bleu([[ref] for ref in references], samples, weights=(0.5, 0.5),
                       smoothing_function=SmoothingFunction().method1)


@torch.no_grad()
def source_metrics(generator, corpus: Corpus, num: int, seed: int, temperature: float = 1.0) -> dict[str, float]:
    """pair_bleu* (and on the grammar src_subject*) of one sample from each of the first `num`
    held-out pairs (the test fields: `Corpus.scored_on` puts the validation pairs there)."""
    n = min(num, corpus.test.tokens.shape[0])
    if n < 2:
        return {}
    was_training = generator.training
    generator.eval()
    device = generator.out.weight.device
    rng = torch.Generator(device=device).manual_seed(seed)
    rows = corpus.test.labels[:n]  # (n,) each sentence's source row
    z = generator.with_source(generator.sample_latent(n, rng), corpus.sources.test.tokens[rows].to(device),
                              corpus.sources.test.lengths[rows].to(device))
    out = generator.sample(z, corpus.max_len, temperature=temperature, generator=rng, need_dists=False)
    shuffled = torch.cat([z[:, :generator.latent_dim], z[:, generator.latent_dim:].roll(-1, 0)], dim=1)
    nll = {"pair_nll_tok": _nll(generator, corpus.test.tokens[:n].to(device), z, corpus.vocab.pad_id),
           "pair_nll_tok_shuffled": _nll(generator, corpus.test.tokens[:n].to(device), shuffled, corpus.vocab.pad_id)}
    generator.train(was_training)
    decode = corpus.vocab.decode
    samples = [decode(row) for row in out.tokens.tolist()]
    targets = [decode(row) for row in corpus.test.tokens[:n].tolist()]
    shifted = targets[1:] + targets[:1]  # the next pair's sentence
    metrics = {"pair_bleu": _pair_bleu(samples, targets), "pair_bleu_shuffled": _pair_bleu(samples, shifted), **nll}
    if corpus.source == "grammar":
        sources = [decode(row) for row in corpus.sources.test.tokens[rows].tolist()]
        metrics["src_subject"], metrics["src_subject_shuffled"] = subject_agreement(samples, sources)
    return metrics


def subject_agreement(samples: list[list[str]], sources: list[list[str]]) -> tuple[float, float]:
    """The shares of samples whose grammar subject is their own source's, and the next source's."""
    from textgan.grammar import subject_of

    heads, wanted = [subject_of(s) for s in samples], [subject_of(s) for s in sources]
    share = lambda against: sum(h is not None and h == w for h, w in zip(heads, against)) / len(heads)  # noqa: E731
    return share(wanted), share(wanted[1:] + wanted[:1])


def _nll(generator, tokens: torch.Tensor, codes: torch.Tensor, pad_id: int, chunk: int = 256) -> float:
    """Teacher-forced NLL per token of `tokens` (N, T) given `codes` (N, Z + F), a chunk of rows at a time."""
    total, count = 0.0, 0
    for start in range(0, tokens.shape[0], chunk):
        rows = tokens[start:start + chunk]
        n = int((rows != pad_id).sum())
        total += float(generator.mle_loss(rows, codes[start:start + chunk], pad_id=pad_id)) * n
        count += n
    return total / max(count, 1)
