"""The trainer: one run's models, optimizers, random streams and progress, and the steps that
`textgan.schedule.run` drives: MLE epochs (textgan/mle.py), then adversarial steps of D and G
updates from the chosen algorithm (textgan/algorithms/), with training-time evaluation
(textgan/train_eval.py), checkpoints and rollback after divergence (textgan/guard.py).

Every source of randomness is a named stream saved in checkpoints (textgan/run_state.py), so a
resumed run continues exactly.
"""
from __future__ import annotations

import time
from dataclasses import asdict
from pathlib import Path
from typing import Callable

import torch

from textgan import accel, checkpoint
from textgan.algorithms import Players, build_algorithm
from textgan.batches import TrainBatches
from textgan.config import Config, dump
from textgan.corpus import Corpus
from textgan.distributed import Dist, ParallelDiscriminator, ParallelGenerator
from textgan.ema import WeightAverage
from textgan.errors import UserError
from textgan.guard import Updates, rollback
from textgan.gumbel import tau_at
from textgan.latent_training import LatentParts
from textgan.metrics.class_accuracy import CLASSIFIER_FILE
from textgan.mle import MLE
from textgan.models import build_discriminator, build_run_generator
from textgan.monitor import Monitor
from textgan.run_state import Progress, Streams, adam, load_optimizer, set_learning_rate, set_seed
from textgan.train_eval import Evaluation


class Trainer:
    def __init__(self, cfg: Config, corpus: Corpus, run_dir: Path, monitor: Monitor, dist: Dist = Dist()):
        self.cfg, self.corpus, self.run_dir, self.monitor = cfg, corpus, Path(run_dir), monitor
        self.dist = dist  # torchrun: this rank; batch sizes are per rank (run.batch_is_global: global)
        self.device = torch.device(dist.local_device(cfg.run.device))
        dist.check_corpus(corpus.train.tokens.shape[0])
        self.mle_bs = dist.per_rank_batch(cfg.mle.batch_size, cfg.run.batch_is_global)
        self.adv_bs = dist.per_rank_batch(cfg.adversarial.batch_size, cfg.run.batch_is_global)
        set_seed(cfg.run.seed)
        v = len(corpus.vocab)
        self.labels = corpus.label_names if cfg.generator.conditional else None  # class names
        sources = corpus.sources.train if cfg.generator.paired else None
        # a paired run's classes are its training sources (textgan/models/generator.py)
        classes = sources.tokens.shape[0] if sources is not None else len(self.labels or [])
        # G and D are the plain modules (checkpoints, evaluation); g and d what the steps call
        self.G = build_run_generator(cfg, v, corpus.banned, corpus.max_len, num_classes=classes).to(self.device)
        if sources is not None:
            self.G.set_sources(sources.tokens, sources.lengths)
        vector = self.G.state_vector_size if sources is not None else 0  # D projects a source's reading
        self.D = build_discriminator(cfg.discriminator, v, num_classes=0 if vector else classes,
                                     condition_dim=vector).to(self.device)
        if classes:  # fakes' classes are drawn as often as the training sentences have them
            counts = torch.bincount(corpus.train.labels, minlength=classes).float()
            self.G.class_prior.copy_(counts / counts.sum())
        self.accel = accel.apply(self.G, self.D, cfg.run.accel)  # faster ops, same results; the log's line
        self.g, self.d = ParallelGenerator(self.G, dist), ParallelDiscriminator(self.D, dist)
        if dist.rank:  # per-rank dropout masks
            torch.manual_seed(dist.rank_seed(cfg.run.seed))
        adv = cfg.adversarial
        self.opt_mle = adam(self.G.parameters(), cfg.mle.lr, (0.9, 0.999), self.device)
        self.opt_g = adam(self.G.parameters(), adv.g_lr, (adv.beta1, adv.beta2), self.device)
        self.opt_d = adam(self.D.parameters(), adv.d_lr, (adv.beta1, adv.beta2), self.device)
        self.latent = LatentParts(cfg, v, self.device, distributed=dist.enabled)  # q(z | x), info head
        self.streams = Streams(cfg.run.seed, self.device, dist)
        self.data_rng, self.noise_rng = self.streams.data, self.streams.noise
        fixed = torch.Generator(device=self.device).manual_seed(cfg.run.seed + 12)
        self.fixed_z = self.G.sample_latent(cfg.eval.num_fixed, fixed)
        # a paired run's fixed samples read their training sources afresh each time (the reader learns)
        self.fixed_sources = (torch.randint(classes, (cfg.eval.num_fixed,), generator=fixed, device=self.device)
                              if sources is not None else None)
        self.G_avg: WeightAverage | None = None  # adversarial.g_ema's average, made at the next adversarial step
        self.progress = Progress()
        self.last_metrics: dict[str, float] = {}
        self.stop_requested: Callable[[], bool] = lambda: False  # set by the caller (signals)
        self.updates = Updates(self.progress, monitor, cfg.run, dist)
        self.batches = TrainBatches(corpus, self.streams, dist, self.device, labelled=bool(classes))
        self.mle = MLE(cfg.mle, self.mle_bs, self.g, self.opt_mle, self.batches, self.noise_rng,
                       self.updates, self.progress, monitor, latent=self.latent)
        players = Players(g=self.g, d=self.d, opt_g=self.opt_g, opt_d=self.opt_d, batches=self.batches,
                          noise=self.noise_rng, updates=self.updates, progress=self.progress,
                          batch_size=self.adv_bs, latent=self.latent)
        self.algorithm = build_algorithm(players, cfg)
        self.evaluation = Evaluation(cfg, corpus, self.progress, monitor, dist, latent=self.latent,
                                     classifier=self.run_dir / CLASSIFIER_FILE if self.labels is not None else None)

    def state_dict(self) -> dict:
        """Rank 0's state; under torchrun also every rank's own random streams."""
        own = self.streams.own()
        ranks = self.dist.gather(own)  # collective
        return checkpoint.write_training(
            generator=self.G.state_dict(), discriminator=self.D.state_dict(),
            optimizers=checkpoint.Optimizers(mle=self.opt_mle.state_dict(), g=self.opt_g.state_dict(),
                                             d=self.opt_d.state_dict()),
            progress=asdict(self.progress), shared=self.streams.shared(), own=own, ranks=ranks,
            metrics=self.last_metrics, metrics_split=self.corpus.eval_split,
            generator_avg=None if self.G_avg is None else checkpoint.Average(self.G_avg.module.state_dict(),
                                                                             self.G_avg.updates),
            latent_parts=self.latent.state_dict(), algorithm_parts=self.algorithm.state_dict())

    def load_state_dict(self, state: dict) -> None:
        for name, module, weights in (("generator", self.G, checkpoint.read_generator(state)),
                                      ("discriminator", self.D, checkpoint.read_discriminator(state))):
            try:
                module.load_state_dict(weights)
            except RuntimeError as err:  # missing, unexpected or resized weights: a changed model setting
                first = next((line.strip() for line in str(err).splitlines()[1:] if line.strip()), str(err))
                raise UserError(f"the checkpoint's {name} does not fit this config ({first}); resume "
                                f"without changing the {name} settings of the run's config.yaml") from None
        saved = checkpoint.read_optimizers(state)
        for optimizer, own in ((self.opt_mle, saved.mle), (self.opt_g, saved.g), (self.opt_d, saved.d)):
            load_optimizer(optimizer, own)
        self.algorithm.load_state_dict(state)  # after the generator: SeqGAN's rollout network is a copy of it
        self.progress.load(checkpoint.read_progress(state))
        self.streams.load(state)
        self.latent.load_state_dict(state)
        self.last_metrics = checkpoint.read_metrics(state)
        self.G_avg = None  # without a saved one (MLE, or g_ema newly on) the next adversarial step starts it
        average = checkpoint.read_average(state)
        if self.cfg.adversarial.g_ema > 0 and average is not None:
            self.G_avg = WeightAverage(self.G, self.cfg.adversarial.g_ema)
            self.G_avg.load(average.weights, average.updates)
        self.apply_lr_scale()

    def apply_lr_scale(self) -> None:
        """Set every optimizer's learning rate to its configured value times progress.lr_scale
        (and the MLE one times progress.mle_lr_scale)."""
        p, adv = self.progress, self.cfg.adversarial
        set_learning_rate(self.opt_mle, self.cfg.mle.lr * p.mle_lr_scale * p.lr_scale)
        set_learning_rate(self.opt_g, adv.g_lr * p.lr_scale)
        set_learning_rate(self.opt_d, adv.d_lr * p.lr_scale)
        self.latent.set_lr(p.lr_scale, p.mle_lr_scale)

    def save(self, path: Path | None = None) -> Path:
        """A self-describing checkpoint at `path`, by default the next step checkpoint (the
        oldest beyond log.keep_last removed). Rank 0 writes; the others wait for it."""
        ckpt_dir = self.run_dir / "checkpoints"
        state = checkpoint.with_description(self.state_dict(), config=dump(self.cfg),
                                            vocab=self.corpus.vocab.itos, max_len=self.corpus.max_len,
                                            labels=self.labels)

        def write() -> Path:
            if path is not None:
                return checkpoint.save(state, path)
            written = checkpoint.save(state, checkpoint.step_path(ckpt_dir, self.progress.global_step))
            checkpoint.prune(ckpt_dir, self.cfg.log.keep_last)
            return written
        return self.dist.on_main(write)

    def rollback(self) -> Path:
        """Back to the newest loadable checkpoint with lower learning rates, after divergence."""
        path = rollback(self.progress, self.cfg.run, self.run_dir / "checkpoints", self.load_state_dict)
        self.apply_lr_scale()
        p = self.progress
        self.monitor.scalars({"train/rollbacks": p.rollbacks, "train/lr_scale": p.lr_scale}, p.global_step)
        return path

    def diverging(self) -> bool:
        return self.updates.diverging()

    def end_step(self, skipped_before: int) -> None:
        self.updates.end_step(skipped_before)

    def mle_epoch(self) -> bool:
        """Run the rest of the current MLE epoch; False if a stop was requested part-way."""
        return self.mle.epoch(stop=lambda: self.stop_requested() or self.diverging())

    def mle_batch(self, idx: torch.Tensor) -> dict[str, float]:
        return self.mle.batch(idx)

    def d_step(self, tau: float) -> dict[str, float]:
        return self.algorithm.d_step(tau)

    def g_step(self, tau: float) -> dict[str, float]:
        return self.algorithm.g_step(tau)

    def adversarial_step(self) -> dict[str, float]:
        """adversarial.d_steps D updates, then adversarial.g_steps G updates (the other way
        round with order g_first), at this step's Gumbel temperature (logged as adv/tau by an
        algorithm that relaxes its samples)."""
        adv = self.cfg.adversarial
        t0, skipped = time.perf_counter(), self.progress.skipped
        tau = tau_at(self.progress.step, self.cfg.gumbel, adv.steps)
        self.G.train()
        self.D.train()
        if adv.g_ema > 0 and self.G_avg is None:  # the average starts from the weights this step starts at
            self.G_avg = WeightAverage(self.G, adv.g_ema)
        stats: dict[str, float] = {}
        phases = [(adv.d_steps, self.algorithm.d_step), (adv.g_steps, self.algorithm.g_step)]
        for count, update in phases if adv.order == "d_first" else phases[::-1]:
            for _ in range(count):
                stats.update(update(tau))
        if self.G_avg is not None:
            self.G_avg.update(self.G)
        elapsed = time.perf_counter() - t0
        self.updates.end_step(skipped)
        if self.algorithm.relaxed:
            stats["adv/tau"] = tau
        stats.update({"adv/g_lr": self.opt_g.param_groups[0]["lr"],
                      "adv/d_lr": self.opt_d.param_groups[0]["lr"],
                      "adv/tokens_per_s": stats.pop("adv/fake_tokens") * adv.g_steps / elapsed,
                      "adv/step_s": elapsed})
        self.progress.step += 1
        self.progress.global_step += 1
        return stats

    def scored_generator(self) -> torch.nn.Module:
        """The generator evaluations and samples see: the weight average when there is one."""
        return self.G_avg.module if self.G_avg is not None else self.G

    def evaluate(self) -> dict[str, float]:
        """The scored generator's metrics (see `Evaluation.score`), kept for checkpoints, and
        best.pt updated."""
        metrics = self.evaluation.score(self.scored_generator())
        self.last_metrics = metrics
        self.keep_best(metrics)
        return metrics

    def keep_best(self, metrics: dict[str, float]) -> None:
        """checkpoints/best.pt: this state, if `metrics` are the best so far (`Evaluation.keep_best`)."""
        self.evaluation.keep_best(metrics, self.save, self.run_dir / "checkpoints")

    def restore_generator(self, path: Path) -> Progress:
        """Put back the generator (and its metrics) saved at `path` by `save`; the rest of the
        state (optimizers, progress, RNGs) goes on. Returns that checkpoint's progress."""
        state = checkpoint.load(path, map_location=self.device)
        self.G.load_state_dict(checkpoint.read_generator(state))
        self.latent.load_encoder(state)
        self.last_metrics = checkpoint.read_metrics(state)
        saved = Progress()
        saved.load(checkpoint.read_progress(state))
        return saved

    def log_samples(self) -> list[str]:
        g = self.scored_generator()
        if self.fixed_sources is None:
            return self.evaluation.samples(g, self.fixed_z)
        with torch.no_grad():
            return self.evaluation.samples(g, g.with_class(self.fixed_z, self.fixed_sources))
