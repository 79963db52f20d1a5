"""Where a run stands, besides its weights: the progress counters, the named random streams and
the optimizers, and how each goes into and out of a checkpoint (`textgan.checkpoint`'s schema).

Every source of randomness is a named generator saved in checkpoints, so a resumed run
continues exactly: `data` (epoch orders, real draws; one stream shared by all ranks), `noise`
(z and Gumbel noise; per rank) and torch's global generator (dropout; per rank).
"""
from __future__ import annotations

from dataclasses import dataclass

import torch

from textgan import checkpoint
from textgan.distributed import Dist


@dataclass
class Progress:
    epoch: int = 0  # MLE epochs done
    batch: int = 0  # MLE batches done in the current epoch
    d_pretrain: int = 0  # discriminator pretraining steps done
    step: int = 0  # adversarial steps done
    global_step: int = 0  # x-axis of every TensorBoard plot: MLE batches + D-pretrain + adversarial steps
    skipped: int = 0  # updates skipped for a non-finite loss or gradient
    bad_streak: int = 0  # consecutive steps with a skipped update (reset by a clean step)
    rollbacks: int = 0  # times the run went back to its last checkpoint after diverging
    lr_scale: float = 1.0  # every learning rate is multiplied by this (lowered at each rollback)
    best: float | None = None  # best value of log.best_metric so far
    best_rule: str = ""  # the log.best_* settings `best` was found under (a resume may change them)
    mle_best: float | None = None  # mle.patience: lowest held-out NLL_gen of an MLE evaluation
    mle_since_best: int = 0  # mle.patience: MLE evaluations since that one
    mle_done: bool = False  # mle.patience: pretraining has ended (early or not), generator restored
    mle_lr_scale: float = 1.0  # mle.plateau_lr_factor to the power of the evaluations without a new best

    def load(self, saved: dict) -> None:
        """Take a checkpoint's counters in place (callers hold this object); fields the file
        lacks (it predates them) keep their values."""
        for key, value in saved.items():
            setattr(self, key, value)


def set_seed(seed: int) -> None:
    """The one place global RNGs are seeded (dropout uses torch's global generator)."""
    import random

    import numpy as np

    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)


def adam(params, lr: float, betas: tuple[float, float], device: torch.device) -> torch.optim.Adam:
    """Adam, fused into one kernel per step where torch has one (CPU and CUDA): the default
    per-parameter loop costs about as much as a small model's whole update."""
    return torch.optim.Adam(params, lr=lr, betas=betas, fused=device.type in ("cpu", "cuda"))


def load_optimizer(optimizer: torch.optim.Optimizer, saved: dict) -> None:
    """A saved optimizer state, keeping this device's `fused` flags rather than the saver's."""
    fused = [group["fused"] for group in optimizer.param_groups]
    optimizer.load_state_dict(saved)
    for group, flag in zip(optimizer.param_groups, fused):
        group["fused"] = flag


def set_learning_rate(optimizer: torch.optim.Optimizer, lr: float) -> None:
    for group in optimizer.param_groups:
        group["lr"] = lr


class Streams:
    """The run's named random streams (see the module docstring); `epoch` is `data`'s state at
    the start of the current MLE epoch, from which a resume part-way redraws that epoch's order."""

    def __init__(self, seed: int, device: torch.device, dist: Dist):
        self.device, self.dist = device, dist
        self.data = torch.Generator().manual_seed(seed + 10)
        self.noise = torch.Generator(device=device).manual_seed(dist.rank_seed(seed) + 11)
        self.epoch = self.data.get_state()

    def own(self) -> checkpoint.RankStreams:
        cuda = torch.cuda.get_rng_state_all() if self.device.type == "cuda" else []
        return checkpoint.RankStreams(noise=self.noise.get_state(), torch=torch.get_rng_state(), cuda=cuda)

    def shared(self) -> checkpoint.SharedStreams:
        return checkpoint.SharedStreams(data=self.data.get_state(), epoch=self.epoch)

    def load(self, state: dict) -> None:
        """Restore from a checkpoint: the shared streams, and this rank's own where it has an
        entry (a rank without one keeps its fresh streams)."""
        shared = checkpoint.read_shared_streams(state)
        self.data.set_state(shared.data)
        self.epoch = shared.epoch
        own = checkpoint.read_rank_streams(state, self.dist.rank, self.dist.world_size)
        if own is not None:
            self.noise.set_state(own.noise)
            torch.set_rng_state(own.torch)
            if own.cuda:
                torch.cuda.set_rng_state_all(own.cuda)
