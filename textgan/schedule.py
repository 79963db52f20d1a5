"""The training schedule: MLE epochs, discriminator pretraining, then the adversarial loop, with
evaluation, fixed-z samples, checkpoints, stop requests and divergence rollbacks at their intervals.

It drives a `Trainer` from wherever its progress stands, so a fresh run and a resumed one take
the same path.
"""
from __future__ import annotations

import math
import sys
from pathlib import Path

from textgan.gumbel import tau_at
from textgan.train import Trainer


def should(every: int, step: int, last: int) -> bool:
    """True on every `every`-th step and on the last one."""
    return step == last or (every > 0 and step % every == 0)


class Interrupted(Exception):
    """A stop was requested (SIGINT/SIGTERM); a checkpoint was written first."""

    def __init__(self, path: Path):
        super().__init__(f"stopped; checkpoint {path}")
        self.path = path


def run(trainer: Trainer, on_checkpoint=lambda path: None) -> dict[str, float]:
    """The whole schedule from wherever `trainer.progress` stands; returns the final metrics."""
    cfg, p, mon = trainer.cfg, trainer.progress, trainer.monitor

    def checkpoint_and_stop_if_asked(saved: Path | None = None) -> None:
        """On a stop request, raise with the checkpoint `saved` this step, or a new one."""
        if trainer.stop_requested():
            mon.close_bar()
            raise Interrupted(saved or trainer.save())

    def guard() -> None:
        if trainer.diverging():
            mon.close_bar()
            path = trainer.rollback()
            print(f"warning: non-finite updates; rolled back to {path.name}, learning rates x"
                  f"{p.lr_scale:.3g}", file=sys.stderr)

    while p.epoch < cfg.mle.epochs:
        if not trainer.mle_epoch():
            checkpoint_and_stop_if_asked()
        if trainer.diverging() or p.batch:  # never checkpoint a diverging state
            guard()
            continue
        if should(cfg.eval.mle_every, p.epoch, cfg.mle.epochs):
            trainer.evaluate()
        trainer.log_samples()
        saved = trainer.save()
        on_checkpoint(saved)
        checkpoint_and_stop_if_asked(saved)
    while p.d_pretrain < cfg.adversarial.d_pretrain_steps:
        skipped = p.skipped
        stats = trainer.d_step(tau_at(0, cfg.gumbel, cfg.adversarial.steps))
        trainer.end_step(skipped)
        p.d_pretrain += 1
        p.global_step += 1
        mon.scalars({k.replace("adv/", "dpre/"): v for k, v in stats.items()}, p.global_step)
        checkpoint_and_stop_if_asked()
        guard()
    steps = cfg.adversarial.steps
    if p.step < steps:
        mon.start_bar(steps, "adversarial", initial=p.step)
    while p.step < steps:
        stats = trainer.adversarial_step()
        mon.scalars(stats, p.global_step)
        if trainer.diverging():
            guard()
            mon.start_bar(steps, "adversarial", initial=p.step)
            continue
        mon.advance({"d": stats.get("adv/d_loss", math.nan), "g": stats.get("adv/g_loss", math.nan),
                     "tau": stats["adv/tau"], "tok/s": stats["adv/tokens_per_s"]})
        if should(cfg.eval.every, p.step, steps):
            trainer.evaluate()
        if should(cfg.eval.sample_every, p.step, steps):
            trainer.log_samples()
        saved = trainer.save() if should(cfg.log.checkpoint_every, p.step, steps) else None
        if saved is not None:
            on_checkpoint(saved)
        if p.step < steps:  # also on a step that checkpointed anyway (checkpoint_every 1 included)
            checkpoint_and_stop_if_asked(saved)
    mon.close_bar()
    if not trainer.last_metrics:
        trainer.evaluate()
        trainer.log_samples()
        on_checkpoint(trainer.save())
    return trainer.last_metrics
