"""Coverage: the share of samples holding a token that no reference holds.

Why: such a sample loses unigram precision, and so every BLEU-n, whatever its quality. On the
COCO benchmark half the training captions are like that (no test caption mentions a toilet, a
shower or a runway), so a BLEU change can come from writing less about those scenes rather than
writing better; this number separates the two.
"""
from __future__ import annotations

from collections.abc import Hashable, Sequence


def unseen_fraction(samples: Sequence[Sequence[Hashable]], references: Sequence[Sequence[Hashable]]) -> float:
    """Fraction of the samples holding at least one token that occurs in no reference."""
    if len(samples) == 0:
        raise ValueError("unseen_fraction needs at least one sample")
    known = {tok for ref in references for tok in ref}
    return sum(any(tok not in known for tok in s) for s in samples) / len(samples)
