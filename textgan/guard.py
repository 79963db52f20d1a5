"""Updates that survive non-finite numbers: a NaN or inf loss or gradient skips the update (on
every rank alike), skips are counted and logged, and a streak of them (`run.nan_patience`) sends
the run back to its newest loadable checkpoint with lower learning rates (`run.nan_lr_factor`,
at most `run.nan_rollbacks` times).
"""
from __future__ import annotations

from pathlib import Path
from typing import Callable, Iterable

import torch

from textgan import checkpoint
from textgan.config import RunConfig
from textgan.distributed import Dist
from textgan.errors import UserError
from textgan.monitor import Monitor
from textgan.run_state import Progress


class Diverged(UserError):
    """Too many non-finite updates in a row, and no rollbacks left."""


def finite_step(optimizer: torch.optim.Optimizer, params: Iterable[torch.nn.Parameter], loss: torch.Tensor,
                clip: float, dist: Dist = Dist()) -> float | None:
    """Backward (under torchrun DDP averages the gradients over ranks), clip and step; the
    gradient norm, or None if skipped."""
    params = list(params)
    optimizer.zero_grad(set_to_none=True)
    loss.backward()
    finite = not dist.any(not bool(torch.isfinite(loss)))  # same verdict on every rank
    norm = torch.nn.utils.get_total_norm([p.grad for p in params if p.grad is not None])
    if not (finite and torch.isfinite(norm)):
        optimizer.zero_grad(set_to_none=True)
        return None
    # clip_grad_norm_'s scaling, only where its factor clip / (norm + 1e-6) is below 1 (it would
    # otherwise multiply every gradient by 1.0: ten ops per step for nothing)
    if clip > 0 and float(norm) + 1e-6 > clip:
        torch.nn.utils.clip_grads_with_norm_(params, clip, norm)
    optimizer.step()
    return float(norm)


class Updates:
    """`finite_step` for every update of the run, counting and logging the skipped ones."""

    def __init__(self, progress: Progress, monitor: Monitor, guard: RunConfig, dist: Dist):
        self.progress, self.monitor, self.guard, self.dist = progress, monitor, guard, dist

    def step(self, optimizer: torch.optim.Optimizer, params: Iterable[torch.nn.Parameter],
             loss: torch.Tensor, clip: float, name: str) -> float | None:
        """One update of the `name` ("mle", "d", "g") optimizer; the gradient norm, or None if skipped."""
        norm = finite_step(optimizer, params, loss, clip, dist=self.dist)
        if norm is None:
            p = self.progress
            p.skipped += 1
            self.monitor.scalars({"train/skipped_updates": p.skipped, f"train/skipped_{name}": 1.0},
                                 p.global_step)
        return norm

    def end_step(self, skipped_before: int) -> None:
        """A step with any skipped update extends the streak; a clean step ends it."""
        p = self.progress
        p.bad_streak = p.bad_streak + 1 if p.skipped > skipped_before else 0

    def diverging(self) -> bool:
        return self.progress.bad_streak >= self.guard.nan_patience


def rollback(progress: Progress, guard: RunConfig, ckpt_dir: Path, restore: Callable[[dict], None]) -> Path:
    """Back to the newest loadable checkpoint in `ckpt_dir` (`restore` loads it) with every
    learning rate times run.nan_lr_factor; the skip and rollback counts carry on. Returns its path."""
    p = progress
    if p.rollbacks >= guard.nan_rollbacks:
        raise Diverged(f"training diverged: {p.bad_streak} non-finite updates in a row after "
                       f"{p.rollbacks} rollback(s); lower mle.lr / adversarial.g_lr / adversarial.d_lr "
                       "or raise adversarial.grad_clip, then start again")
    try:
        state, path = checkpoint.load_latest_valid(ckpt_dir, warn=lambda m: None)
    except checkpoint.CheckpointError:
        raise Diverged("training diverged before its first checkpoint; lower mle.lr / "
                       "adversarial.g_lr / adversarial.d_lr and start again") from None
    rollbacks, skipped = p.rollbacks + 1, p.skipped
    restore(state)
    p.rollbacks, p.skipped, p.bad_streak = rollbacks, skipped, 0
    p.lr_scale *= guard.nan_lr_factor
    return path
