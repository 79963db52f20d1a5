"""Copying: the fraction of samples that are training sequences verbatim.

Why: BLEU against the test set rewards a generator that replays its training captions (they share
most n-grams with the test captions), and NLL_oracle rewards replaying the oracle's own samples;
beside either, this says whether a gain is generation or memory.
"""
from __future__ import annotations

import torch


def _rows(tokens: torch.Tensor, lengths: torch.Tensor) -> list[tuple[int, ...]]:
    return [tuple(row[:n]) for row, n in zip(tokens.tolist(), lengths.tolist())]


def copy_fraction(samples: torch.Tensor, sample_lengths: torch.Tensor, train: torch.Tensor,
                  train_lengths: torch.Tensor) -> float:
    """Fraction of the samples (N, T) equal, over their lengths (N,), to some training row."""
    if samples.shape[0] == 0:
        raise ValueError("copy_fraction needs at least one sample")
    seen = set(_rows(train, train_lengths))
    return sum(row in seen for row in _rows(samples, sample_lengths)) / samples.shape[0]
