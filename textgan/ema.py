"""An exponential moving average of the generator's weights over the adversarial steps
(`adversarial.g_ema`).

Why: a text GAN's generator wanders from step to step, and the state one evaluation picks is
partly that noise. Averaging the iterates (Yazici et al. 2019, "The unusual effectiveness of
averaging in GAN training") keeps the direction the updates share and cancels the part they do
not. Only the trained weights are averaged; the raw generator goes on training, so the average
never feeds back into the game. (On the oracle's narrow NLL_oracle dip, decay 0.95 moved the best
state a little along the quality-diversity trade-off rather than lower: BENCHMARKS.md.)
"""
from __future__ import annotations

import copy

import torch


class WeightAverage:
    """A frozen copy of `module` whose weights follow the module's as an EMA.

    The decay at update t (counted from 0) is min(decay, (1 + t) / (10 + t)): the early
    updates forget the start quickly, so a short run is not an average dominated by the MLE
    weights it began from (the warm-up of TensorFlow's ExponentialMovingAverage(num_updates)).
    """

    def __init__(self, module: torch.nn.Module, decay: float):
        self.decay = decay
        self.module = copy.deepcopy(module).eval().requires_grad_(False)
        self.updates = 0  # updates since it was made

    def decay_at(self, updates: int) -> float:
        return min(self.decay, (1 + updates) / (10 + updates))

    @torch.no_grad()
    def update(self, module: torch.nn.Module) -> None:
        """avg <- d * avg + (1 - d) * w for every parameter; buffers are copied as they are."""
        weight = 1.0 - self.decay_at(self.updates)
        for mine, theirs in zip(self.module.parameters(), module.parameters()):
            mine.lerp_(theirs, weight)
        for mine, theirs in zip(self.module.buffers(), module.buffers()):
            mine.copy_(theirs)
        self.updates += 1

    def load(self, weights: dict, updates: int) -> None:
        """Continue a saved average: its weights and the number of updates it has had."""
        self.module.load_state_dict(weights)
        self.updates = int(updates)
