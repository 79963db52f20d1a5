"""Training-time evaluation: the scored generator's metrics on the corpus's evaluation split,
logged to TensorBoard, checkpoints/best.pt kept by `log.best_metric`, and fixed-z samples.
Rank 0 evaluates and decodes; the other ranks receive its results.
"""
from __future__ import annotations

import math
from pathlib import Path
from typing import Callable

import torch

from textgan.config import Config
from textgan.corpus import Corpus
from textgan.distributed import Dist
from textgan.evaluate import evaluate, generate
from textgan.latent_training import LatentParts
from textgan.metrics.latent import is_latent_metric
from textgan.monitor import Monitor
from textgan.run_state import Progress

EVAL_TAG = {"test": "eval", "valid": "valid"}  # TensorBoard prefix of training-time metrics, by split
BEST = "best.pt"


class Evaluation:
    def __init__(self, cfg: Config, corpus: Corpus, progress: Progress, monitor: Monitor, dist: Dist,
                 latent: LatentParts | None = None, classifier: Path | None = None):
        self.cfg, self.corpus, self.progress, self.monitor, self.dist = cfg, corpus, progress, monitor, dist
        self.latent = latent  # its encoder / head add held-out figures (latent/*)
        self.classifier = classifier  # a conditional run's class classifier cache: class_acc* metrics

    def score(self, generator: torch.nn.Module) -> dict[str, float]:
        """Metrics of `generator` on the corpus's evaluation split (data.valid or valid_frac's
        validation sentences where there are any, else the test set), logged as valid/* or eval/*."""
        scored = self.corpus.scored_on(self.corpus.eval_split)
        metrics = self.dist.on_main(lambda: {  # rank 0 only
            **evaluate(generator, scored, self.cfg.eval, seed=self.cfg.run.seed + 13)[0],
            **(self.latent.evaluate(generator, scored, seed=self.cfg.run.seed) if self.latent is not None else {}),
            **self._class_metrics(generator, scored)})
        prefix = EVAL_TAG[self.corpus.eval_split]
        self.monitor.scalars({f"{'latent' if is_latent_metric(k) else prefix}/{k}": v for k, v in metrics.items()},
                             self.progress.global_step)
        return metrics

    def _class_metrics(self, generator: torch.nn.Module, scored: Corpus) -> dict[str, float]:
        """class_acc* of a class-conditional run (textgan/metrics/class_accuracy.py), pair_bleu* of a
        paired one (textgan/metrics/source_match.py), else nothing."""
        if scored.sources is not None and self.cfg.generator.paired:
            from textgan.metrics.source_match import source_metrics

            return source_metrics(generator, scored, self.cfg.eval.num_samples, seed=self.cfg.run.seed + 15)
        if self.classifier is None:
            return {}
        from textgan.metrics.class_accuracy import run_class_metrics

        return run_class_metrics(generator, scored, self.corpus.label_names, self.classifier,
                                 self.cfg.eval.num_samples, seed=self.cfg.run.seed + 15)

    def keep_best(self, metrics: dict[str, float], save: Callable[[Path], Path], ckpt_dir: Path) -> None:
        """`ckpt_dir`/best.pt holds the state (`save` writes it) with the best log.best_metric
        seen so far among the evaluations within log.best_ceiling."""
        log, p = self.cfg.log, self.progress
        name = log.best_metric
        if not name:
            return
        rule = self._rule()
        if rule != p.best_rule:  # resumed under other settings: the old best is not comparable
            if p.best_rule:  # (checkpoints from before best_rule existed keep theirs)
                p.best = None
            p.best_rule = rule
        if name not in metrics or not math.isfinite(metrics[name]):
            return
        if log.best_ceiling_metric and not metrics.get(log.best_ceiling_metric, math.nan) <= log.best_ceiling:
            return
        value, sign = metrics[name], 1.0 if log.best_mode == "max" else -1.0
        if p.best is None or sign * value > sign * p.best:
            p.best = value
            save(Path(ckpt_dir) / BEST)

    def _rule(self) -> str:
        """The log.best_* settings as one string, to notice a resume that changed them."""
        log = self.cfg.log
        rule = f"{log.best_mode} {log.best_metric}" + (f", {log.best_ceiling_metric} <= {log.best_ceiling}"
                                                       if log.best_ceiling_metric else "")
        if self.corpus.eval_split != "test":  # (test: the rule as runs before data.valid_frac wrote it)
            rule += f" on {self.corpus.eval_split}"
        return rule

    def samples(self, generator: torch.nn.Module, fixed_z: torch.Tensor) -> list[str]:
        """Sentences from the fixed latents `fixed_z` (N, Z), logged as TensorBoard text."""
        def decode() -> list[str]:
            ids = generate(generator, fixed_z.shape[0], self.corpus.max_len, self.cfg.run.seed + 14, z=fixed_z)
            return [" ".join(self.corpus.vocab.decode(row)) for row in ids.tolist()]
        lines = self.dist.on_main(decode)
        self.monitor.text("samples/fixed_z", lines, self.progress.global_step)
        return lines
