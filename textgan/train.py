"""One trainer: MLE batches (teacher forcing), discriminator steps on detached fakes and generator
steps through Gumbel-softmax; `textgan.schedule.run` drives them.

Shapes: B batch, T time, V vocabulary. Every source of randomness is a named
generator saved in checkpoints, so a resumed run continues exactly.
"""
from __future__ import annotations

import math
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Callable

import torch

from textgan import checkpoint
from textgan.config import Config, dump
from textgan.corpus import Corpus
from textgan.distributed import Dist
from textgan.ema import WeightAverage
from textgan.errors import UserError
from textgan.evaluate import evaluate, generate
from textgan.gumbel import tau_at
from textgan.latent_training import LatentParts
from textgan.losses import LOSSES, gradient_penalty
from textgan.metrics.latent import is_latent_metric
from textgan.models import build_discriminator, build_generator
from textgan.monitor import Monitor


EVAL_TAG = {"test": "eval", "valid": "valid"}  # TensorBoard prefix of training-time metrics, by split


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


def set_seed(seed: int) -> None:
    """The one place global RNGs are seeded (dropout uses torch's global generator)."""
    import random

    import numpy as np

    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)


def _adam(params, lr: float, betas: tuple[float, float], device: torch.device) -> torch.optim.Adam:
    """Adam, fused into one kernel per step where torch has one (CPU and CUDA): the default
    per-parameter loop costs about as much as a small model's whole update."""
    return torch.optim.Adam(params, lr=lr, betas=betas, fused=device.type in ("cpu", "cuda"))


def _finite_step(optimizer, params, loss: torch.Tensor, clip: float, dist: Dist = Dist()) -> float | None:
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
        self.G = build_generator(cfg.generator, v, corpus.banned).to(self.device)
        self.D = build_discriminator(cfg.discriminator, v).to(self.device)
        # what the steps call: Calls adapters, DDP-wrapped under torchrun; G and D stay the plain
        # modules (checkpoints, evaluation, the frozen D of the G step)
        self.G_parallel, self.D_parallel = dist.parallel(self.G), dist.parallel(self.D)
        if dist.rank:  # per-rank dropout masks
            torch.manual_seed(dist.rank_seed(cfg.run.seed))
        adv = cfg.adversarial
        self.opt_mle = _adam(self.G.parameters(), cfg.mle.lr, (0.9, 0.999), self.device)
        self.opt_g = _adam(self.G.parameters(), adv.g_lr, (adv.beta1, adv.beta2), self.device)
        self.opt_d = _adam(self.D.parameters(), adv.d_lr, (adv.beta1, adv.beta2), self.device)
        self.latent = LatentParts(cfg, v, self.device, distributed=dist.enabled)  # q(z | x), info head
        seed = cfg.run.seed
        self.data_rng = torch.Generator().manual_seed(seed + 10)
        self.noise_rng = torch.Generator(device=self.device).manual_seed(dist.rank_seed(seed) + 11)
        self.fixed_z = self.G.sample_latent(cfg.eval.num_fixed, torch.Generator(device=self.device).manual_seed(seed + 12))
        self.loss_d, self.loss_g = LOSSES[adv.loss]
        self.G_avg: WeightAverage | None = None  # adversarial.g_ema's average, made at the next adversarial step
        self.progress = Progress()
        self.train_tokens = corpus.train.tokens.to(self.device)
        self.train_lengths = corpus.train.lengths.to(self.device)
        self.last_metrics: dict[str, float] = {}
        self.epoch_rng = self.data_rng.get_state()  # data RNG at the start of the current epoch
        self.stop_requested: Callable[[], bool] = lambda: False  # set by the caller (signals)

    # ---- state -------------------------------------------------------------------------------
    def state_dict(self) -> dict:
        """Rank 0's state; under torchrun also every rank's own RNG streams in rng["ranks"]."""
        rng = {"data": self.data_rng.get_state(), "noise": self.noise_rng.get_state(),
               "epoch": self.epoch_rng, "torch": torch.get_rng_state(),
               "cuda": torch.cuda.get_rng_state_all() if self.device.type == "cuda" else []}
        ranks = self.dist.gather({k: rng[k] for k in ("noise", "torch", "cuda")})  # collective
        return {"generator": self.G.state_dict(), "discriminator": self.D.state_dict(),
                "opt_mle": self.opt_mle.state_dict(), "opt_g": self.opt_g.state_dict(),
                "opt_d": self.opt_d.state_dict(), "progress": asdict(self.progress),
                "rng": rng if ranks is None else {**rng, "ranks": ranks},
                "metrics": dict(self.last_metrics), "metrics_split": self.corpus.eval_split,
                **({"generator_avg": self.G_avg.state_dict()} if self.G_avg is not None else {}),
                **self.latent.state_dict()}

    def load_state_dict(self, state: dict) -> None:
        for name, module in (("generator", self.G), ("discriminator", self.D)):
            try:
                module.load_state_dict(state[name])
            except RuntimeError as err:  # missing, unexpected or resized weights: a changed model setting
                first = next((line.strip() for line in str(err).splitlines()[1:] if line.strip()), str(err))
                raise UserError(f"the checkpoint's {name} does not fit this config ({first}); resume "
                                f"without changing the {name} settings of the run's config.yaml") from None
        for name in ("opt_mle", "opt_g", "opt_d"):
            opt = getattr(self, name)
            fused = [group["fused"] for group in opt.param_groups]  # this device's, not the saver's
            opt.load_state_dict(state[name])
            for group, flag in zip(opt.param_groups, fused):
                group["fused"] = flag
        for key, value in state["progress"].items():  # in place: callers hold `trainer.progress`
            setattr(self.progress, key, value)
        self.data_rng.set_state(state["rng"]["data"])
        self.epoch_rng = state["rng"]["epoch"]
        own = self.dist.rank_state(state["rng"])  # None: no saved streams for this rank; keep its own
        if own is not None:
            self.noise_rng.set_state(own["noise"])
            torch.set_rng_state(own["torch"])
            if own["cuda"]:
                torch.cuda.set_rng_state_all(own["cuda"])
        self.latent.load_state_dict(state)
        self.last_metrics = dict(state.get("metrics", {}))
        self.G_avg = None  # without a saved one (MLE, or g_ema newly on) the next adversarial step starts it
        if self.cfg.adversarial.g_ema > 0 and "generator_avg" in state:
            self.G_avg = WeightAverage(self.G, self.cfg.adversarial.g_ema)
            self.G_avg.load_state_dict(state["generator_avg"])
        self.apply_lr_scale()

    def apply_lr_scale(self) -> None:
        """Set every optimizer's learning rate to its configured value times progress.lr_scale
        (and the MLE one times progress.mle_lr_scale)."""
        p, adv = self.progress, self.cfg.adversarial
        scale = p.lr_scale
        for opt, base in ((self.opt_mle, self.cfg.mle.lr * p.mle_lr_scale), (self.opt_g, adv.g_lr), (self.opt_d, adv.d_lr)):
            for group in opt.param_groups:
                group["lr"] = base * scale
        self.latent.set_lr(scale, p.mle_lr_scale)

    def save(self, path: Path | None = None) -> Path:
        """A self-describing checkpoint: weights, optimizers, progress, RNGs, config and vocabulary."""
        ckpt_dir = self.run_dir / "checkpoints"
        state = {**self.state_dict(), "config": dump(self.cfg), "vocab": self.corpus.vocab.itos,
                 "max_len": self.corpus.max_len}

        def write() -> Path:
            if path is not None:
                return checkpoint.save(state, path)
            written = checkpoint.save(state, checkpoint.step_path(ckpt_dir, self.progress.global_step))
            checkpoint.prune(ckpt_dir, self.cfg.log.keep_last)
            return written
        return self.dist.on_main(write)  # rank 0 writes; the others wait for it

    def rollback(self) -> Path:
        """Back to the newest loadable checkpoint with lower learning rates, after divergence."""
        p, guard = self.progress, self.cfg.run
        if p.rollbacks >= guard.nan_rollbacks:
            raise Diverged(f"training diverged: {p.bad_streak} non-finite updates in a row after "
                           f"{p.rollbacks} rollback(s); lower mle.lr / adversarial.g_lr / adversarial.d_lr "
                           "or raise adversarial.grad_clip, then start again")
        try:
            state, path = checkpoint.load_latest_valid(self.run_dir / "checkpoints", warn=lambda m: None)
        except checkpoint.CheckpointError:
            raise Diverged("training diverged before its first checkpoint; lower mle.lr / "
                           "adversarial.g_lr / adversarial.d_lr and start again") from None
        rollbacks, skipped = p.rollbacks + 1, p.skipped
        self.load_state_dict(state)
        p.rollbacks, p.skipped, p.bad_streak = rollbacks, skipped, 0
        p.lr_scale *= guard.nan_lr_factor
        self.apply_lr_scale()
        self.monitor.scalars({"train/rollbacks": p.rollbacks, "train/lr_scale": p.lr_scale}, p.global_step)
        return path

    def diverging(self) -> bool:
        return self.progress.bad_streak >= self.cfg.run.nan_patience

    # ---- steps -------------------------------------------------------------------------------
    def mle_epoch(self) -> bool:
        """Run the rest of the current MLE epoch; False if a stop was requested part-way."""
        cfg, p = self.cfg.mle, self.progress
        self.G.train()
        n = self.train_tokens.shape[0]
        batch = self.mle_bs * self.dist.world_size  # global batch: one shared order, sharded per rank
        num_batches = max(n // batch, 1)
        if p.batch == 0:
            self.epoch_rng = self.data_rng.get_state()
            order = torch.randperm(n, generator=self.data_rng)
        else:  # resumed part-way: redraw this epoch's order from the RNG state at its start
            replay = torch.Generator()
            replay.set_state(self.epoch_rng)
            order = torch.randperm(n, generator=replay)
        self.monitor.start_bar(num_batches, f"mle epoch {p.epoch + 1}/{cfg.epochs}", initial=p.batch)
        while p.batch < num_batches:
            stats = self.mle_batch(order[p.batch * batch:(p.batch + 1) * batch])
            p.batch += 1
            p.global_step += 1
            if p.batch % 10 == 1 or p.batch == num_batches:
                self.monitor.scalars(stats, p.global_step)
            self.monitor.advance({"loss": stats["mle/loss"], "tok/s": stats["mle/tokens_per_s"]})
            if p.batch < num_batches and (self.stop_requested() or self.diverging()):
                return False
        self.monitor.close_bar()
        p.batch = 0
        p.epoch += 1
        return True

    def mle_batch(self, idx: torch.Tensor) -> dict[str, float]:
        """One teacher-forced update on the sentences `idx` (the global batch; this rank's shard)."""
        t0, skipped = time.perf_counter(), self.progress.skipped
        loss, weight, lengths = self._nll(idx.to(self.device), parallel=True)
        optimizer, params = self.latent.mle_update(self.opt_mle, self.G.parameters())
        norm = _finite_step(optimizer, params, loss if weight == 1.0 else loss * weight,
                            self.cfg.mle.grad_clip, dist=self.dist)
        self._count_skip(norm, "mle")
        self.end_step(skipped)
        ntok = float(lengths.sum())
        stats = {"mle/loss": loss.item(), "mle/lr": self.opt_mle.param_groups[0]["lr"],
                 "mle/tokens_per_s": ntok / (time.perf_counter() - t0), **self.latent.pop_stats()}
        if norm is not None:
            stats["mle/grad_norm"] = norm
        return stats

    def _real(self, batch_size: int) -> torch.Tensor:
        """Real sequences as one-hot distributions (B, T, V), drawn with replacement (one shared
        draw of the global batch; this rank's shard)."""
        idx = torch.randint(self.train_tokens.shape[0], (batch_size * self.dist.world_size,),
                            generator=self.data_rng)
        tokens = self.train_tokens[self.dist.shard(idx).to(self.device)]  # (B, T)
        # Written as float directly: F.one_hot(...).float() filled an int64 array twice the size
        # and converted it (~30 ms a batch at COCO's size, six batches an adversarial step).
        dists = torch.zeros(*tokens.shape, len(self.corpus.vocab), device=self.device)
        return dists.scatter_(-1, tokens.unsqueeze(-1), 1.0)

    def _nll(self, whole: torch.Tensor, parallel: bool) -> tuple[torch.Tensor, float, torch.Tensor]:
        """Teacher-forced NLL per token of this rank's shard of the global batch `whole`, the
        shard's weight (its share of the batch's tokens) and its lengths. parallel: through the
        DDP wrapper, for an update whose only forward this is; else the plain module."""
        idx = self.dist.shard(whole)
        lengths = self.train_lengths[idx]  # (B,)
        # Positions past the batch's longest sentence are all padding: no loss, no gradient.
        tokens = self.train_tokens[idx, :int(lengths.max())]  # (B, T_batch)
        pad = self.corpus.vocab.pad_id
        if parallel and self.latent.encoder is not None:  # mle.objective: elbo (one process)
            loss = self.latent.elbo_loss(self.G, tokens, lengths, step=self.progress.global_step, pad_id=pad,
                                         unk_id=self.corpus.vocab.unk_id, rng=self.noise_rng)
            return loss, 1.0, lengths
        z = self.G.sample_latent(tokens.shape[0], self.noise_rng)
        loss = self.G_parallel("mle_loss", tokens, z, pad_id=pad) if parallel else self.G.mle_loss(tokens, z, pad_id=pad)
        return loss, self.dist.token_weight(lengths, self.train_lengths[whole]), lengths

    def _real_nll(self, batch_size: int) -> torch.Tensor:
        """The NLL term of adversarial.mle_weight on a fresh draw of real sentences, weighted as in
        MLE; the plain module, as the G step's sampling forward already went through DDP."""
        whole = torch.randint(self.train_tokens.shape[0], (batch_size * self.dist.world_size,),
                              generator=self.data_rng).to(self.device)
        nll, weight, _ = self._nll(whole, parallel=False)
        return nll if weight == 1.0 else nll * weight

    def _fake(self, batch_size: int, tau: float, z: torch.Tensor | None = None):
        z = self.G.sample_latent(batch_size, self.noise_rng) if z is None else z
        return self.G_parallel("sample", z, self.corpus.max_len, tau=tau, generator=self.noise_rng,
                               straight_through=self.cfg.gumbel.mode == "straight_through")

    def d_step(self, tau: float) -> dict[str, float]:
        adv = self.cfg.adversarial
        real = self._real(self.adv_bs)
        with torch.no_grad():  # the D step never back-propagates into the generator
            fake = self._fake(self.adv_bs, tau).dists
        d_real, d_fake, penalty = self._score(real, fake)
        loss = self.loss_d(d_real, d_fake)
        if penalty is not None:
            loss = loss + adv.gp_weight * penalty
        norm = _finite_step(self.opt_d, self.D.parameters(), loss, adv.grad_clip, dist=self.dist)
        self._count_skip(norm, "d")
        out = {"adv/d_loss": loss.item(), "adv/d_real": d_real.mean().item(), "adv/d_fake": d_fake.mean().item()}
        if norm is not None:
            out["adv/d_grad_norm"] = norm
        return out

    def _score(self, real: torch.Tensor, fake: torch.Tensor):
        """D's logits on real and fake, and wgan_gp's gradient penalty (else None). Under DDP in
        one forward over the concatenated batch, as DDP syncs one forward per backward (dropout
        masks then differ from separate calls; the discriminators are otherwise per-row)."""
        gp = self.cfg.adversarial.loss == "wgan_gp"
        if not self.dist.enabled:
            d_real, d_fake = self.D(real), self.D(fake)
            return d_real, d_fake, gradient_penalty(self.D, real, fake, self.noise_rng) if gp else None
        b = real.shape[0]
        if not gp:
            d_real, d_fake = self.D_parallel("__call__", torch.cat([real, fake])).split(b)
            return d_real, d_fake, None
        logits: list[torch.Tensor] = []

        def critic(mixed: torch.Tensor) -> torch.Tensor:  # called once, after drawing the interpolation
            logits.extend(self.D_parallel("__call__", torch.cat([real, fake, mixed])).split(b))
            return logits[2]
        penalty = gradient_penalty(critic, real, fake, self.noise_rng)
        return logits[0], logits[1], penalty

    def g_step(self, tau: float) -> dict[str, float]:
        adv = self.cfg.adversarial
        real = self._real(self.adv_bs)
        z = self.G.sample_latent(self.adv_bs, self.noise_rng)
        fake = self._fake(self.adv_bs, tau, z)
        self.D.requires_grad_(False)
        try:
            loss = self.loss_g(self.D(real), self.D(fake.dists))
            nll = self._real_nll(self.adv_bs) if self._mle_term_on() else None
            total = loss if nll is None else loss + adv.mle_weight * nll
            if self.latent.head is not None:  # adversarial.info_weight: recover z from the fakes
                total = total + self.latent.info_term(fake.dists, fake.lengths, z)
            optimizer, params = self.latent.g_update(self.opt_g, self.G.parameters())
            norm = _finite_step(optimizer, params, total, adv.grad_clip, dist=self.dist)
        finally:
            self.D.requires_grad_(True)
        self._count_skip(norm, "g")
        out = {"adv/g_loss": loss.item(), "adv/fake_tokens": float(fake.lengths.sum()), **self.latent.pop_stats()}
        if nll is not None:
            out["adv/g_mle_loss"] = nll.item()
        if norm is not None:
            out["adv/g_grad_norm"] = norm
        return out

    def _mle_term_on(self) -> bool:
        """Whether this step's G updates add adversarial.mle_weight times a real batch's NLL."""
        adv = self.cfg.adversarial
        return adv.mle_weight > 0 and (adv.mle_weight_steps == 0 or self.progress.step < adv.mle_weight_steps)

    def _count_skip(self, norm: float | None, name: str) -> None:
        p = self.progress
        if norm is None:
            p.skipped += 1
            self.monitor.scalars({"train/skipped_updates": p.skipped, f"train/skipped_{name}": 1.0},
                                 p.global_step)

    def end_step(self, skipped_before: int) -> None:
        """A step with any skipped update extends the streak; a clean step ends it."""
        p = self.progress
        p.bad_streak = p.bad_streak + 1 if p.skipped > skipped_before else 0

    def adversarial_step(self) -> dict[str, float]:
        adv = self.cfg.adversarial
        t0, skipped = time.perf_counter(), self.progress.skipped
        tau = tau_at(self.progress.step, self.cfg.gumbel, adv.steps)
        self.G.train()
        self.D.train()
        stats: dict[str, float] = {}
        phases = [(adv.d_steps, self.d_step), (adv.g_steps, self.g_step)]
        if adv.g_ema > 0 and self.G_avg is None:  # the average starts from the weights this step starts at
            self.G_avg = WeightAverage(self.G, adv.g_ema)
        for count, update in phases if adv.order == "d_first" else phases[::-1]:
            for _ in range(count):
                stats.update(update(tau))
        if self.G_avg is not None:
            self.G_avg.update(self.G)
        elapsed = time.perf_counter() - t0
        self.end_step(skipped)
        stats.update({"adv/tau": tau, "adv/g_lr": self.opt_g.param_groups[0]["lr"],
                      "adv/d_lr": self.opt_d.param_groups[0]["lr"],
                      "adv/tokens_per_s": stats.pop("adv/fake_tokens") * adv.g_steps / elapsed,
                      "adv/step_s": elapsed})
        self.progress.step += 1
        self.progress.global_step += 1
        return stats

    # ---- evaluation and samples --------------------------------------------------------------
    def scored_generator(self) -> torch.nn.Module:
        """The generator evaluations and samples see: the weight average when there is one."""
        return self.G_avg.module if self.G_avg is not None else self.G

    def evaluate(self) -> dict[str, float]:
        """Metrics of the scored generator on the corpus's evaluation split (data.valid or valid_frac's
        validation sentences where there are any, else the test set), logged as valid/* or eval/*."""
        scored = self.corpus.scored_on(self.corpus.eval_split)
        metrics = self.dist.on_main(lambda: {  # rank 0 only
            **evaluate(self.scored_generator(), scored, self.cfg.eval, seed=self.cfg.run.seed + 13)[0],
            **self.latent.evaluate(self.scored_generator(), scored, seed=self.cfg.run.seed)})
        self.last_metrics = metrics
        prefix = EVAL_TAG[self.corpus.eval_split]
        self.monitor.scalars({f"{'latent' if is_latent_metric(k) else prefix}/{k}": v for k, v in metrics.items()},
                             self.progress.global_step)
        self._keep_best(metrics)
        return metrics

    def _keep_best(self, metrics: dict[str, float]) -> None:
        """checkpoints/best.pt holds the state with the best log.best_metric seen so far among
        the evaluations within log.best_ceiling."""
        log, p = self.cfg.log, self.progress
        name = log.best_metric
        if not name:
            return
        rule = f"{log.best_mode} {name}" + (f", {log.best_ceiling_metric} <= {log.best_ceiling}"
                                           if log.best_ceiling_metric else "")
        if self.corpus.eval_split != "test":  # (test: the rule as runs before data.valid_frac wrote it)
            rule += f" on {self.corpus.eval_split}"
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
            self.save(self.run_dir / "checkpoints" / "best.pt")

    def restore_generator(self, path: Path) -> dict:
        """Put back the generator (and its metrics) saved at `path` by `save`; the rest of the
        state (optimizers, progress, RNGs) goes on. Returns that checkpoint's progress."""
        state = checkpoint.load(path, map_location=self.device)
        self.G.load_state_dict(state["generator"])
        self.latent.load_encoder(state)
        self.last_metrics = dict(state.get("metrics", {}))
        return state["progress"]

    def log_samples(self) -> list[str]:
        def decode() -> list[str]:
            rng = torch.Generator(device=self.device).manual_seed(self.cfg.run.seed + 14)
            ids = generate(self.scored_generator(), self.fixed_z.shape[0], self.corpus.max_len, rng, z=self.fixed_z)
            return [" ".join(self.corpus.vocab.decode(row)) for row in ids.tolist()]
        lines = self.dist.on_main(decode)
        self.monitor.text("samples/fixed_z", lines, self.progress.global_step)
        return lines


class Diverged(UserError):
    """Too many non-finite updates in a row, and no rollbacks left."""
