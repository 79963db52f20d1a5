"""Means and standard errors of per-sample scores added a block at a time, so an evaluation can
stream its samples and still report the numbers it would report holding them all.

Why exact sums: `bleu.py` takes the mean of per-sample scores with math.fsum, the correctly
rounded sum. Summing block by block in floats would round once per block; keeping the sum as an
integer multiple of 2**-1074 (every finite double is one) rounds only once, at the end, so the
mean is fsum's to the bit however the samples are split.
"""
from __future__ import annotations

import math
from collections.abc import Iterable
from fractions import Fraction

from textgan.metrics.bleu import standard_error

_SCALE = 1074  # every finite double is an integer multiple of 2**-1074


def _scaled(x: float, scale: int) -> int:
    """x * 2**scale as an exact integer (x a finite double, scale large enough)."""
    num, den = x.as_integer_ratio()  # den is a power of two
    return num << (scale - den.bit_length() + 1)


class ExactSum:
    """A sum of finite floats with no rounding until it is read: `value()` equals math.fsum of
    every value added, in whatever blocks they came."""

    def __init__(self) -> None:
        self.total = 0  # the sum times 2**1074, exactly
        self.count = 0

    def add(self, values: Iterable[float]) -> None:
        for x in values:
            if not math.isfinite(x):
                raise ValueError(f"ExactSum adds finite values only, got {x!r}")
            self.total += _scaled(x, _SCALE)
            self.count += 1

    def value(self) -> float:
        return self.total / (1 << _SCALE)  # int / int: correctly rounded, as fsum


class RunningScores:
    """Mean and standard error of per-sample scores (BLEU of each hypothesis) over blocks.

    One block: exactly `bleu.py`'s figures (fsum mean, standard_error). Several: the same mean to
    the bit, and the standard error from exact sums of the scores and their squares, equal to the
    two-pass float formula up to its rounding (relative differences near 1e-16)."""

    def __init__(self) -> None:
        self.sum = ExactSum()
        self.squares = 0  # sum of squared scores times 2**2148, exactly
        self.only: list[float] | None = None  # the scores while they are one block

    @property
    def count(self) -> int:
        return self.sum.count

    def add(self, scores: list[float]) -> None:
        self.only = list(scores) if self.count == 0 else None
        self.sum.add(scores)
        self.squares += sum(_scaled(s, _SCALE) ** 2 for s in scores)

    def mean(self) -> float:
        if not self.count:
            raise ValueError("no scores to average")
        return self.sum.value() / self.count

    def standard_error(self) -> float:
        if self.only is not None:
            return standard_error(self.only)
        n = self.count
        if n < 2:
            return math.nan
        spread = Fraction(n * self.squares - self.sum.total ** 2, n * (n - 1) * n)  # variance / n, 2**2148 units
        return math.sqrt(float(spread / (1 << 2 * _SCALE)))
