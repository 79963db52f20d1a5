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

MLE_BEST = "mle_best.pt"  # mle.patience: the pretraining epoch with the lowest held-out NLL_gen


def should(every: int, step: int, last: int) -> bool:
    """True on every `every`-th step and on the last one."""
    return step == last or (every > 0 and step % every == 0)


class Interrupted(Exception):
    """A stop was requested (SIGINT/SIGTERM); a checkpoint was written first."""

    def __init__(self, path: Path):
        super().__init__(f"stopped; checkpoint {path}")
        self.path = path


def early_stop_mle(trainer: Trainer) -> None:
    """mle.patience, after an MLE evaluation: keep the epoch with the lowest held-out NLL_gen in
    checkpoints/mle_best.pt; at each evaluation without a lower one multiply the MLE learning rate
    by plateau_lr_factor; after `patience` of them, or at the last epoch, put that generator back
    and end pretraining. Held-out NLL_gen, not BLEU: it is the likelihood MLE optimises, measured
    where overfitting shows."""
    cfg, p = trainer.cfg, trainer.progress
    best_path = trainer.run_dir / "checkpoints" / MLE_BEST
    name = next(k for k in trainer.last_metrics if k.startswith("nll_gen_mc"))
    value = trainer.last_metrics[name]
    if math.isfinite(value) and (p.mle_best is None or value < p.mle_best):
        p.mle_best, p.mle_since_best = value, 0
        trainer.save(best_path)
    else:
        p.mle_since_best += 1
        if cfg.mle.plateau_lr_factor < 1.0:
            p.mle_lr_scale *= cfg.mle.plateau_lr_factor
            trainer.apply_lr_scale()
    if p.mle_since_best < cfg.mle.patience and p.epoch < cfg.mle.epochs:
        return
    p.mle_done = True
    if p.mle_since_best == 0:  # this epoch is the best: nothing to put back
        return
    best = trainer.restore_generator(best_path)
    trainer.monitor.scalars({"mle/best_epoch": best.epoch, "mle/stopped_epoch": p.epoch}, p.global_step)
    if trainer.dist.is_main:
        print(f"mle: held-out ({trainer.corpus.eval_split} split) {name} not below {p.mle_best:.4f} "
              f"for {p.mle_since_best} evaluation(s); "
              f"pretraining ends after epoch {p.epoch}, generator back to epoch {best.epoch}", file=sys.stderr)


def _stop_if_asked(trainer: Trainer, saved: Path | None = None) -> None:
    """On a stop request, raise with the checkpoint `saved` this step, or a new one."""
    if trainer.stop_requested():
        trainer.monitor.close_bar()
        raise Interrupted(saved or trainer.save())


def _roll_back_if_diverging(trainer: Trainer) -> None:
    if trainer.diverging():
        trainer.monitor.close_bar()
        path = trainer.rollback()
        print(f"warning: non-finite updates; rolled back to {path.name}, learning rates x"
              f"{trainer.progress.lr_scale:.3g}", file=sys.stderr)


def _pretrain(trainer: Trainer, on_checkpoint) -> None:
    """MLE epochs, each followed by its evaluation (every eval.mle_every), samples and checkpoint."""
    cfg, p = trainer.cfg, trainer.progress
    while p.epoch < cfg.mle.epochs and not p.mle_done:
        if not trainer.mle_epoch():
            _stop_if_asked(trainer)
        if trainer.diverging() or p.batch:  # never checkpoint a diverging state
            _roll_back_if_diverging(trainer)
            continue
        if should(cfg.eval.mle_every, p.epoch, cfg.mle.epochs):
            trainer.evaluate()
            if cfg.mle.patience:
                early_stop_mle(trainer)
        trainer.log_samples()
        saved = trainer.save()
        on_checkpoint(saved)
        _stop_if_asked(trainer, saved)


def _pretrain_discriminator(trainer: Trainer) -> None:
    """adversarial.d_pretrain_steps D updates at the first step's temperature, logged as dpre/*."""
    cfg, p, mon = trainer.cfg, trainer.progress, trainer.monitor
    if p.d_pretrain < cfg.adversarial.d_pretrain_steps:
        mon.start_bar(cfg.adversarial.d_pretrain_steps, "discriminator pretraining", initial=p.d_pretrain)
    while p.d_pretrain < cfg.adversarial.d_pretrain_steps:
        skipped = p.skipped
        stats = trainer.d_step(tau_at(0, cfg.gumbel, cfg.adversarial.steps))
        trainer.end_step(skipped)
        p.d_pretrain += 1
        p.global_step += 1
        mon.scalars({k.replace("adv/", "dpre/"): v for k, v in stats.items()}, p.global_step)
        mon.advance({"d": stats["adv/d_loss"]})
        _stop_if_asked(trainer)
        _roll_back_if_diverging(trainer)


def _adversarial(trainer: Trainer, on_checkpoint) -> None:
    """The adversarial steps, with evaluations, samples and checkpoints at their intervals."""
    cfg, p, mon = trainer.cfg, trainer.progress, trainer.monitor
    steps = cfg.adversarial.steps
    if p.step < steps:
        mon.start_bar(steps, "adversarial", initial=p.step)
    while p.step < steps:
        stats = trainer.adversarial_step()
        mon.scalars(stats, p.global_step)
        if trainer.diverging():
            _roll_back_if_diverging(trainer)
            mon.start_bar(steps, "adversarial", initial=p.step)
            continue
        shown = {"d": stats.get("adv/d_loss", math.nan), "g": stats.get("adv/g_loss", math.nan)}
        if "adv/tau" in stats:  # an algorithm with relaxed samples
            shown["tau"] = stats["adv/tau"]
        mon.advance({**shown, "tok/s": stats["adv/tokens_per_s"]})
        if should(cfg.eval.every, p.step, steps):
            trainer.evaluate()
        if should(cfg.eval.sample_every, p.step, steps):
            trainer.log_samples()
        saved = trainer.save() if should(cfg.log.checkpoint_every, p.step, steps) else None
        if saved is not None:
            on_checkpoint(saved)
        if p.step < steps:  # also on a step that checkpointed anyway (checkpoint_every 1 included)
            _stop_if_asked(trainer, saved)
    mon.close_bar()


def run(trainer: Trainer, on_checkpoint=lambda path: None) -> dict[str, float]:
    """The whole schedule from wherever `trainer.progress` stands; returns the final metrics."""
    _pretrain(trainer, on_checkpoint)
    _pretrain_discriminator(trainer)
    _adversarial(trainer, on_checkpoint)
    if not trainer.last_metrics:
        trainer.evaluate()
        trainer.log_samples()
        on_checkpoint(trainer.save())
    return trainer.last_metrics
