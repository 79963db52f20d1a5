"""MLE pretraining: epochs of teacher-forced updates over shuffled training sentences, which a
stop request or divergence may interrupt and a resume continues at the same batch.

Shapes: B batch, T time.
"""
from __future__ import annotations

import time
from typing import Callable

import torch

from textgan.batches import Batch, TrainBatches
from textgan.config import MLEConfig
from textgan.distributed import ParallelGenerator
from textgan.guard import Updates
from textgan.latent_training import LatentParts
from textgan.monitor import Monitor
from textgan.run_state import Progress


def teacher_forced_nll(g: ParallelGenerator, batch: Batch, noise: torch.Generator, pad_id: int,
                       synced: bool = True) -> torch.Tensor:
    """The generator's NLL per token of `batch`, z drawn from `noise`. synced: through the DDP
    wrapper, for an update whose only forward this is; else the plain module (an update whose
    synced forward is another one). A conditional generator reads each sentence's own class."""
    z = g.module.sample_latent(batch.tokens.shape[0], noise, classes=batch.labels)
    if synced:
        return g.mle_loss(batch.tokens, z, pad_id=pad_id)
    return g.module.mle_loss(batch.tokens, z, pad_id=pad_id)


class MLE:
    """The MLE epochs of one run, on its generator, optimizer and progress counters."""

    def __init__(self, cfg: MLEConfig, batch_size: int, g: ParallelGenerator, optimizer: torch.optim.Optimizer,
                 batches: TrainBatches, noise: torch.Generator, updates: Updates, progress: Progress,
                 monitor: Monitor, latent: LatentParts | None = None):
        self.cfg, self.batch_size, self.g, self.optimizer = cfg, batch_size, g, optimizer
        self.latent = latent  # mle.objective elbo's encoder q(z | x), trained with the generator
        self.batches, self.noise, self.updates = batches, noise, updates
        self.progress, self.monitor = progress, monitor

    def epoch(self, stop: Callable[[], bool] = lambda: False) -> bool:
        """Run the rest of the current epoch; False if `stop()` said so part-way."""
        p = self.progress
        self.g.module.train()
        n = self.batches.tokens.shape[0]
        batch = self.batch_size * self.batches.dist.world_size  # global batch: one shared order, sharded per rank
        num_batches = max(n // batch, 1)
        order = self.batches.epoch_order(resumed=p.batch > 0)
        self.monitor.start_bar(num_batches, f"mle epoch {p.epoch + 1}/{self.cfg.epochs}", initial=p.batch)
        while p.batch < num_batches:
            stats = self.batch(order[p.batch * batch:(p.batch + 1) * batch])
            p.batch += 1
            p.global_step += 1
            if p.batch % 10 == 1 or p.batch == num_batches:
                self.monitor.scalars(stats, p.global_step)
            self.monitor.advance({"loss": stats["mle/loss"], "tok/s": stats["mle/tokens_per_s"]})
            if p.batch < num_batches and stop():
                return False
        self.monitor.close_bar()
        p.batch = 0
        p.epoch += 1
        return True

    def batch(self, idx: torch.Tensor) -> dict[str, float]:
        """One teacher-forced update on the sentences `idx` (the global batch; this rank's shard)."""
        t0, skipped = time.perf_counter(), self.progress.skipped
        batch = self.batches.shard(idx)
        loss, optimizer, params = self._loss(batch)
        norm = self.updates.step(optimizer, params, batch.weighted(loss), self.cfg.grad_clip, "mle")
        self.updates.end_step(skipped)
        stats = {"mle/loss": loss.item(), "mle/lr": self.optimizer.param_groups[0]["lr"],
                 "mle/tokens_per_s": float(batch.lengths.sum()) / (time.perf_counter() - t0)}
        if self.latent is not None:
            stats.update(self.latent.pop_stats())  # mle/kl, mle/kl_weight, mle/nll_tok
        if norm is not None:
            stats["mle/grad_norm"] = norm
        return stats

    def _loss(self, batch: Batch) -> tuple[torch.Tensor, object, list]:
        """The update's loss, optimizer and parameters: the teacher-forced NLL and the generator's,
        or with mle.objective elbo the negative ELBO and the generator's and encoder's together."""
        if self.latent is None or self.latent.encoder is None:
            return (teacher_forced_nll(self.g, batch, self.noise, self.batches.pad_id), self.optimizer,
                    list(self.g.module.parameters()))
        loss = self.latent.elbo_loss(self.g.module, batch.tokens, batch.lengths, step=self.progress.global_step,
                                     pad_id=self.batches.pad_id, unk_id=self.batches.unk_id, rng=self.noise)
        optimizer, params = self.latent.mle_update(self.optimizer, self.g.module.parameters())
        return loss, optimizer, params
