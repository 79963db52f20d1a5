"""The per-sample metrics of an evaluation, streamed: samples are drawn a chunk at a time and
scored a block of at most `cap` at a time, so memory is bounded whatever the number of samples.

Metrics of single samples accumulate exactly over blocks (BLEU against the test set through
exact sums, counts for ref_unseen_frac, train_copy_frac, grammaticality and mean_length,
NLL_oracle as a float64 sum, unique_frac from the set of every distinct sample's hash); the ones
that compare samples with each other (leave-one-out Self-BLEU) are computed on the first block,
the first min(num, cap) samples, and the caller reports that size. With num <= cap there is one
block and every figure is what scoring all samples at once gives, to the bit.
"""
from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass, field

import torch

from textgan.corpus import Corpus
from textgan.data import SPECIALS
from textgan.metrics.bleu import TEXYGEN_SAMPLES, References, self_bleu_scores_by_order
from textgan.metrics.running import RunningScores
from textgan.progress import Progress
from textgan.sample import Drawn, draw_ids


def _rows(tokens: torch.Tensor, lengths: torch.Tensor) -> list[tuple[int, ...]]:
    return [tuple(row[:n]) for row, n in zip(tokens.tolist(), lengths.tolist())]


class SampleTally:
    """`evaluate.sample_metrics` over blocks of samples: NLL_oracle on the oracle corpus, else
    BLEU-n against the test set (and Self-BLEU-n of the block marked `whole_set`); grammaticality
    on the grammar corpus; train_copy_frac and unique_frac everywhere. The references, the
    training rows and the test vocabulary are prepared once."""

    def __init__(self, corpus: Corpus, bleu_n: list[int], num_references: int = 0):
        self.corpus, self.orders = corpus, list(bleu_n)
        self.n = 0
        self.bleu = {n: RunningScores() for n in self.orders}
        self.self_bleu: dict[int, float] = {}
        self.unseen = self.copies = self.grammatical = 0
        self.oracle_nll, self.oracle_tokens = 0.0, 0
        self.refs = self.known = None
        if corpus.oracle is None:
            sentences = corpus.test_sentences[: num_references or None]
            self.refs = References(sentences, max(self.orders)) if self.orders else None
            self.known = {tok for ref in sentences for tok in ref}
        train = corpus.train
        self.train_rows = set(_rows(train.tokens, train.lengths))
        self.distinct: set[int] = set()  # hash of each distinct sample's tokens (8 bytes a sample, not its row)

    def add(self, ids: torch.Tensor, samples: list[list[str]], whole_set: bool = True) -> None:
        """Score a block: ids (N, T) and their tokens; `whole_set`: Self-BLEU is computed on it."""
        if not samples:
            raise ValueError("a block needs at least one sample")
        corpus = self.corpus
        if corpus.oracle is not None:
            self.oracle_nll += float(-corpus.oracle.log_prob(ids - len(SPECIALS)).sum())
            self.oracle_tokens += ids.numel()
        else:
            if self.refs is not None:
                for n, scores in self.refs.scores(samples, self.orders).items():
                    self.bleu[n].add(scores)
                if whole_set:
                    self.self_bleu = {n: math.fsum(s) / len(s)  # bleu.py's mean
                                      for n, s in self_bleu_scores_by_order(samples, self.orders).items()}
            self.unseen += sum(any(tok not in self.known for tok in s) for s in samples)
        if corpus.source == "grammar":
            from textgan.grammar import grammaticality

            self.grammatical += round(grammaticality(samples) * len(samples))
        rows = _rows(ids, (ids != corpus.vocab.pad_id).sum(1))
        self.copies += sum(row in self.train_rows for row in rows)
        self.distinct.update(map(hash, rows))
        self.n += len(samples)

    def metrics(self) -> dict[str, float]:
        """The names and order of `evaluate.sample_metrics`."""
        out: dict[str, float] = {}
        if self.corpus.oracle is not None:
            out["nll_oracle"] = self.oracle_nll / self.oracle_tokens
        else:
            for n in self.orders:
                out[f"bleu{n}_exact"] = self.bleu[n].mean()
                out[f"bleu{n}_exact_se"] = self.bleu[n].standard_error()
                out[f"self_bleu{n}_loo"] = self.self_bleu[n]
            out["ref_unseen_frac"] = self.unseen / self.n
        if self.corpus.source == "grammar":
            out["grammaticality"] = self.grammatical / self.n
        out["train_copy_frac"] = self.copies / self.n
        out["unique_frac"] = len(self.distinct) / self.n
        return out


@dataclass
class Streamed:
    """What `stream_scores` scored."""
    metrics: dict[str, float]  # SampleTally's
    mean_length: float  # tokens per sample, over all of them
    subset: int  # samples the whole-set metrics (Self-BLEU) saw: the first min(num, cap)
    texygen_hyps: list[list[str]]  # the first 200 samples (the texygen protocol's hypotheses)
    samples: list[list[str]] = field(default_factory=list)  # the first block where kept, as tokens
    ids: torch.Tensor | None = None  # and as ids (N, T)
    peak_held: int = 0  # the most samples held at once (blocks, pending chunk, kept first block)
    references: References | None = None  # the BLEU references as counted (None on the oracle or without orders)


def stream_scores(generator, corpus: Corpus, num: int, cap: int, seed: int, temperature: float,
                  orders: list[int], num_references: int, progress: Progress, chunk: int = 512,
                  sink: Callable[[list[list[str]], Drawn], None] | None = None, keep: bool = False,
                  label: str = "") -> Streamed:
    """Draw `num` samples (`generate`'s, a chunk at a time), hand each chunk's tokens and ids to
    `sink` as they come, and score them in blocks of `cap`. The first block is returned when it
    is all the samples, or with `keep` (then up to 2 * cap + chunk samples are held). Progress
    phases are named `label` + "sampling" and + "BLEU and Self-BLEU" (or "NLL_oracle")."""
    tally = None  # made in the first scoring phase, so --profile counts the references' counting there
    block_ids: list[torch.Tensor] = []
    block: list[list[str]] = []
    first: tuple[list, torch.Tensor | None] = ([], None)
    hyps: list[list[str]] = []
    drawn = lengths = peak = 0
    phase = label + ("NLL_oracle" if corpus.oracle is not None else "BLEU and Self-BLEU")
    progress.phase(label + "sampling", num)
    for out in draw_ids(generator, num, corpus.max_len, seed, temperature, chunk=chunk):
        progress.advance(out.ids.shape[0])
        drawn += out.ids.shape[0]
        ids, tokens = out.ids, [corpus.vocab.decode(row) for row in out.ids.tolist()]
        if sink is not None:
            sink(tokens, out)
        lengths += sum(len(s) for s in tokens)
        hyps += tokens[:TEXYGEN_SAMPLES - len(hyps)]
        while tokens:
            take = min(cap - len(block), len(tokens))
            block_ids.append(ids[:take])
            block += tokens[:take]
            ids, tokens = ids[take:], tokens[take:]
            peak = max(peak, len(block) + len(tokens) + len(first[0]))
            if len(block) < cap and drawn < num:
                continue
            progress.phase(phase)
            whole = tally is None
            tally = tally or SampleTally(corpus, orders, num_references)
            block_ids = torch.cat(block_ids)
            tally.add(block_ids, block, whole_set=whole)
            if whole and (keep or (drawn == num and not tokens)):  # kept, or all the samples
                first = (block, block_ids)
            block_ids, block = [], []
            if drawn < num:
                progress.phase(label + "sampling", num, done=drawn)
    return Streamed(tally.metrics(), lengths / num, subset=min(num, cap), texygen_hyps=hyps, samples=first[0],
                    ids=first[1], peak_held=peak, references=tally.refs)
