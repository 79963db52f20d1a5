"""Dropout whose CPU float32 masks come from the Philox stream of textgan.philox.

Same function as nn.Dropout (inverted dropout: kept units scaled by 1 / (1 - p), identity in
eval mode) with one definition of its randomness whatever is installed: each mask takes a fresh
key from torch's global generator, which `set_seed` seeds and checkpoints save. `keep_mask` is the
mask source (philox.keep_mask); a faster one giving the same masks may replace it. Elsewhere
(GPU, float64) torch's bernoulli draws the mask.
"""
from __future__ import annotations

import torch
from torch import nn

from textgan import philox


class Dropout(nn.Dropout):
    def __init__(self, p: float = 0.5):
        super().__init__(p)
        self.keep_mask = philox.keep_mask  # (shape, p) -> mask, float32 on CPU

    def mask(self, x: torch.Tensor) -> torch.Tensor | None:
        """The mask `forward` multiplies x by, drawn now; None where forward is the identity. A
        layer before it may apply the mask in its own pass (the highway of RelGANCNN does)."""
        if not self.training or self.p == 0.0:
            return None
        if philox.applies(x.device, x.dtype):
            return self.keep_mask(tuple(x.shape), self.p)
        return torch.empty_like(x).bernoulli_(1.0 - self.p).div_(1.0 - self.p)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        mask = self.mask(x)
        return x if mask is None else x * mask
