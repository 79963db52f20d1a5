"""One training experiment end to end: config -> data -> run folder -> trainer -> samples.

Everything that can fail on user input (config, data, run folder, checkpoint) is
checked before the run folder is touched, so a mistake leaves nothing behind.
"""
from __future__ import annotations

import signal
import sys
from pathlib import Path

import torch

from textgan import accel, algorithms, checkpoint, distributed, encoding, latent_training, runs, warm_start
from textgan import config as config_mod
from textgan.corpus import Corpus, prepare
from textgan.data import Vocab
from textgan.distributed import Dist
from textgan.errors import UserError
from textgan.evaluate import metric_names
from textgan.accel import fpenv
from textgan.monitor import Monitor, append_log, metrics_table
from textgan.schedule import Interrupted, run
from textgan.train import Trainer


def _log(message: str) -> None:
    print(message, file=sys.stderr)


def _check_device(name: str) -> None:
    if name.startswith("cuda") and not torch.cuda.is_available():
        raise UserError(f"run.device={name} but CUDA is not available here; set run.device=cpu")


def _describe(corpus: Corpus) -> str:
    valid = f" / {corpus.valid.tokens.shape[0]} validation" if corpus.valid is not None else ""
    return (f"data: {corpus.train.tokens.shape[0]} train{valid} / {corpus.test.tokens.shape[0]} test sentences, "
            f"vocab {len(corpus.vocab)}, max_len {corpus.max_len}, "
            f"truncated {corpus.truncated}, dropped {corpus.dropped}; "
            f"training-time evaluations score the {corpus.eval_split} split")


def _check_best_metric(cfg: config_mod.Config, corpus: Corpus) -> None:
    names = metric_names(cfg.eval, corpus, cfg.generator.prior)
    if cfg.generator.paired:  # textgan/metrics/source_match.py
        from textgan.metrics.source_match import metric_names as source_names

        names += source_names(corpus)
    elif cfg.generator.conditional:  # textgan/metrics/class_accuracy.py
        names += ["class_acc", "class_acc_real"] + [f"class_acc_{name}" for name in corpus.label_names]
    for key in ("best_metric", "best_ceiling_metric"):
        value = getattr(cfg.log, key)
        if value and value not in names:
            raise UserError(f"log.{key}={value} is not computed by this run; choose one of {', '.join(names)}")


def _resume_state(run_dir: Path, log):
    state, path = checkpoint.load_latest_valid(run_dir / "checkpoints", warn=log)
    saved = Vocab.load(run_dir / "vocab.json")
    if saved.itos != checkpoint.read_vocab(state):
        raise UserError(f"{run_dir}/vocab.json does not match checkpoint {path.name}; "
                        "restore the run's own vocab.json")
    return state, path, saved


def _new_run(cfg: config_mod.Config, config_path: str | None, corpus: Corpus, force: bool) -> Path:
    run_dir = runs.create(cfg, config_path, force)
    try:
        runs.write_metadata(run_dir, cfg, corpus.vocab)
    except OSError as err:
        raise UserError(f"cannot write the run folder {run_dir} ({err.strerror or err}); "
                        "free disk space or set log.dir to another folder") from None
    return run_dir


def train_command(config_path: str | None, overrides: list[str], resume: str | None = None,
                  force: bool = False, cfg: config_mod.Config | None = None) -> int:
    """Train in this process, or as one rank of `torchrun --nproc_per_node N -m textgan train`.
    `cfg`: a new run's config, loaded by the caller from `config_path` and `overrides` (the CLI
    does it before torch loads); a resumed run's comes from its folder, with `overrides`."""
    if resume:
        cfg = runs.load_config(Path(resume), overrides)
    _check_device(cfg.run.device)
    with distributed.launched(cfg.run.device) as dist:
        algorithms.check_distributed(cfg.adversarial.algorithm, dist.world_size)  # before any run folder
        for size in (cfg.mle.batch_size, cfg.adversarial.batch_size):
            dist.per_rank_batch(size, cfg.run.batch_is_global)
        return _train(cfg, config_path, resume, force, dist)


def _train(cfg: config_mod.Config, config_path: str | None, resume: str | None, force: bool,
           dist: Dist) -> int:
    log = _log if dist.is_main else (lambda message: None)  # rank 0 speaks for the job
    accel.check(cfg.run.accel, cfg.generator.core, cfg.discriminator.kind)  # before any run folder is made
    latent_training.check_distributed(cfg, dist.enabled)
    if cfg.generator.paired and dist.enabled:
        raise UserError("generator.condition=sentence runs in one process for now (its source reader works "
                        "outside the generator's forward); run it without torchrun")
    state = source = None
    latent_weights: dict[str, dict] = {}
    if resume:
        run_dir = Path(resume)
        state, path, vocab = _resume_state(run_dir, log)  # every rank reads the same checkpoint
        corpus = prepare(cfg.data, cfg.run.seed, vocab=vocab, paired=cfg.generator.paired)
        saved_labels = checkpoint.read_labels(state)
        if cfg.generator.conditional and saved_labels != corpus.label_names:
            raise UserError(f"the run's classes ({', '.join(saved_labels or ['none'])}) differ from the labels of its "
                            f"data ({', '.join(corpus.label_names or ['none'])}); resume with the run's own label files")
        log(f"resuming {run_dir} from {path.name}" + (f" on {dist.world_size} ranks" if dist.enabled else ""))
    else:
        source = warm_start.load_source(cfg.generator) if cfg.generator.init_from else None
        if source is not None and (mismatch := warm_start.split_mismatch(cfg.data, source)):
            log(mismatch)
        if source is not None:
            latent_weights = warm_start.latent_weights(cfg, source, log)
        corpus = prepare(cfg.data, cfg.run.seed, vocab=source.vocab if source else None,
                         paired=cfg.generator.paired)
        if source is not None:
            warm_start.check_vocabulary(corpus.train_oov, cfg.data.max_oov, source, log)
            warm_start.check_classes(cfg.generator.conditional, corpus.label_names, source)
        _check_best_metric(cfg, corpus)
        dist.check_corpus(corpus.train.tokens.shape[0])
        run_dir = dist.on_main(lambda: _new_run(cfg, config_path, corpus, force))  # the others wait
    if cfg.run.threads:
        torch.set_num_threads(cfg.run.threads)
    fpenv.apply(cfg.run)
    log(_describe(corpus))
    on_terminal = sys.stderr.isatty()  # a tqdm bar there; elsewhere a line every log.interval_s
    monitor = Monitor(run_dir, progress=cfg.log.progress and on_terminal, enabled=dist.is_main,
                      interval_s=0.0 if on_terminal else cfg.log.interval_s)
    monitor.scalars({"data/truncated": corpus.truncated, "data/dropped": corpus.dropped,
                     "data/vocab_size": len(corpus.vocab)}, 0)
    trainer = Trainer(cfg, corpus, run_dir, monitor, dist=dist)
    log(trainer.accel)  # one line: what runs in C, what in torch
    if state is not None:
        trainer.load_state_dict(state)
    elif source is not None:
        warm_start.apply(trainer.G, source)
        warm_start.apply_latent(trainer.latent, latent_weights)
        carried = " and ".join(warm_start.LATENT_SHAPES[name][0] for name in latent_weights)
        log(f"generator initialised from {source.path}" + (f" (with its {carried})" if carried else ""))
    received: list[int] = []
    trainer.stop_requested = lambda: dist.any(bool(received))  # every rank stops at the same step
    previous = {sig: signal.signal(sig, lambda signum, frame: received.append(signum))
                for sig in (signal.SIGINT, signal.SIGTERM)}
    try:
        metrics = run(trainer)
        lines = trainer.log_samples()
        path = dist.on_main(lambda: encoding.training_interpolation(  # the latent at work, after the samples
            trainer.scored_generator(), trainer.latent.encoder or trainer.latent.head, corpus, cfg.run.seed))
        split_tag = "" if corpus.eval_split == "test" else f"{corpus.eval_split}_"  # hparam/valid_bleu2_exact
        monitor.hparams(_hparams(cfg), {f"{split_tag}{k}": v for k, v in metrics.items()})
        if dist.is_main:
            (run_dir / "samples.txt").write_text("\n".join(lines) + "\n", encoding="utf-8")
    except OSError as err:  # disk full, file too large, folder removed: earlier checkpoints are intact
        raise UserError(f"cannot write to {run_dir} ({err.strerror or err}); free disk space, then "
                        f"`textgan train --resume {run_dir}`") from None
    except Interrupted as stop:
        signum = received[0] if received else signal.SIGTERM  # a rank told by another one
        log(f"{signal.Signals(signum).name}: saved {stop.path}; continue with "
            f"`textgan train --resume {run_dir}`")
        return 128 + signum
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)
        monitor.close()
    if dist.is_main:
        _report(run_dir, metrics, lines, corpus.eval_split, path)
    return 0


def _report(run_dir: Path, metrics: dict[str, float], lines: list[str], split: str,
            path: tuple[str, list[str]] = ("", [])) -> None:
    table = metrics_table(metrics, f"final metrics ({split} split):")
    _log("\n".join(table))
    append_log(run_dir, table)
    print(f"run folder: {run_dir}")
    print("samples (fixed z):")
    for line in lines:
        print(f"  {line}")
    header, steps = path
    if steps:
        print(header)
        for line in steps:
            print(f"  {line}")


def _hparams(cfg: config_mod.Config) -> dict:
    return {"generator.core": cfg.generator.core, "generator.hidden_dim": cfg.generator.hidden_dim,
            "generator.prior": cfg.generator.prior, "generator.latent_dim": cfg.generator.latent_dim,
            "generator.feedback": cfg.generator.feedback,
            "discriminator.kind": cfg.discriminator.kind, "adversarial.loss": cfg.adversarial.loss,
            "adversarial.steps": cfg.adversarial.steps, "adversarial.g_lr": cfg.adversarial.g_lr,
            "adversarial.d_lr": cfg.adversarial.d_lr, "gumbel.schedule": cfg.gumbel.schedule,
            "gumbel.tau_end": cfg.gumbel.tau_end, "mle.epochs": cfg.mle.epochs, "data.source": cfg.data.source,
            "run.seed": cfg.run.seed}
