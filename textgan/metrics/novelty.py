"""Copying: the fraction of samples that are training sequences verbatim.

Why: BLEU against the test set rewards a generator that replays its training captions (they share
most n-grams with the test captions), and NLL_oracle rewards replaying the oracle's own samples;
beside either, this says whether a gain is generation or memory.
"""
from __future__ import annotations

from collections.abc import Hashable, Iterable, Sequence

import torch


def copy_fraction_rows(samples: Sequence[Sequence[Hashable]], train: Iterable[Sequence[Hashable]]) -> float:
    """Fraction of the samples (token or id sequences) equal to some training sequence."""
    if len(samples) == 0:
        raise ValueError("copy_fraction needs at least one sample")
    seen = {tuple(row) for row in train}
    return sum(tuple(row) in seen for row in samples) / len(samples)


def _rows(tokens: torch.Tensor, lengths: torch.Tensor) -> list[tuple[int, ...]]:
    return [tuple(row[:n]) for row, n in zip(tokens.tolist(), lengths.tolist())]


def copy_fraction(samples: torch.Tensor, sample_lengths: torch.Tensor, train: torch.Tensor,
                  train_lengths: torch.Tensor) -> float:
    """Fraction of the samples (N, T) equal, over their lengths (N,), to some training row."""
    return copy_fraction_rows(_rows(samples, sample_lengths), _rows(train, train_lengths))
