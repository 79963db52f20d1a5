"""`textgan eval`: score a trained run or checkpoint after the fact, on its own corpus or a new
test file, optionally under the texygen protocol so numbers line up with published tables.

The corpus is rebuilt from the checkpoint's own config and vocabulary, so ids mean what they
meant in training; `--data` only swaps the test file (BLEU references and NLL_gen).
"""
from __future__ import annotations

import dataclasses
import json
import sys
import time
from collections.abc import Callable
from pathlib import Path

import torch

from textgan.accel import fpenv
from textgan.config import SPLITS, EvalConfig, choices
from textgan.corpus import Corpus, prepare
from textgan.data import oov_share
from textgan.errors import UserError
from textgan.eval_reports import EXPOSURE_FILES, SAMPLES_FILE, SamplesFile, write_exposure
from textgan.evaluate import EvalResult, evaluate
from textgan.extra_metrics import Extras, check_flags, exposure_curves, prepare_extras, sample_set_metrics
from textgan.progress import NoProgress, Progress, phase_table, process_age, wall_profile
from textgan.sample import Drawn, Loaded, load_generator, refuse_greedy_without_latent

PROTOCOLS = choices(EvalConfig, "protocol")  # exact, texygen, both
SWEEP_FILES = ("sweep.csv", "sweep.png", "events.out.tfevents.*")  # what a sweep writes in its folder


def run_dir_of(path: Path) -> Path:
    """The run folder of a run folder or of a checkpoint file (usually <run>/checkpoints/x.pt)."""
    if path.is_dir():
        return path
    return path.parent.parent if path.parent.name == "checkpoints" else path.parent


def load_run(path: str | Path, data: str | None = None, device: str = "cpu",
             weights: str = "auto", split: str = "test", progress: Progress | None = None) -> tuple[Loaded, Corpus]:
    """The generator (`weights` as in load_generator) and its corpus, rebuilt with the run's
    vocabulary and sequence length, its test fields holding `split`'s sentences; `progress` is told
    the two phases (for `eval --profile`)."""
    progress = progress or NoProgress()
    if split not in SPLITS:
        raise UserError(f"unknown --split {split!r}; choose one of {', '.join(SPLITS)}")
    if data and split != "test":
        raise UserError("--data replaces the test file, so it cannot be scored with --split valid; drop one of them")
    path = Path(path)
    if not path.exists():
        raise UserError(f"run or checkpoint {path} not found; pass a run folder or a .pt file in it")
    progress.phase("loading: checkpoint")
    loaded = load_generator(path, device, warn=lambda m: print(m, file=sys.stderr), weights=weights)
    progress.phase("loading: corpus (tokens, vocabulary ids)")
    data_cfg = dataclasses.replace(loaded.config.data, max_len=loaded.max_len)
    if data:
        if data_cfg.source != "files":
            raise UserError(f"--data replaces the test file of a text corpus, but this run uses "
                            f"data.source={data_cfg.source}; leave --data out")
        data_cfg = dataclasses.replace(data_cfg, test=str(Path(data).resolve()))
    corpus = prepare(data_cfg, loaded.config.run.seed, vocab=loaded.vocab, paired=loaded.config.generator.paired)
    if split == "valid" and corpus.valid is None:
        raise UserError(f"{path} was trained without a validation split (data.valid_frac=0, no data.valid); "
                        "use --split test")
    return loaded, corpus.scored_on(split)


def eval_metrics(loaded: Loaded, corpus: Corpus, num: int, seed: int, temperature: float = 1.0,
                 protocol: str = "exact", progress: Progress | None = None) -> dict[str, float]:
    """`evaluate`'s metrics on `num` samples under `protocol` (the run's config sets the rest)."""
    return eval_run(loaded, corpus, num, seed, temperature, protocol, progress).metrics


def eval_run(loaded: Loaded, corpus: Corpus, num: int, seed: int, temperature: float = 1.0,
             protocol: str = "exact", progress: Progress | None = None,
             sink: Callable[[list[list[str]], Drawn], None] | None = None, keep: bool = False) -> EvalResult:
    """`eval_metrics`' metrics (with the posterior ones of a variational run), and the samples they
    scored, tokens and ids (see EvalResult); `sink` gets each chunk's samples as they are drawn."""
    if protocol not in PROTOCOLS:
        raise UserError(f"unknown --protocol {protocol!r}; choose one of {', '.join(PROTOCOLS)}")
    if num < 2:
        raise UserError(f"--num must be >= 2 (Self-BLEU needs two samples), got {num}")
    cfg = dataclasses.replace(loaded.config.eval, num_samples=num, protocol=protocol)
    progress = progress or NoProgress()
    res = evaluate(loaded.generator, corpus, cfg, seed, temperature=temperature, progress=progress, sink=sink,
                   keep=keep)
    if loaded.config.mle.objective == "elbo":  # a variational encoder to score with
        progress.phase("NLL_gen importance sampled with the encoder")
    held = min(num, cfg.self_bleu_max)  # class_acc* draw their own samples: at most this many, held at once
    classes = class_metrics(loaded, corpus, held, seed, temperature)
    return res._replace(metrics={**res.metrics, **posterior_metrics(loaded, corpus, seed, temperature), **classes},
                        computed_on={**res.computed_on, **(dict.fromkeys(classes, held) if held < num else {})})


def class_metrics(loaded: Loaded, corpus: Corpus, num: int, seed: int, temperature: float = 1.0) -> dict[str, float]:
    """A conditional run's class_acc* (textgan/metrics/class_accuracy.py): `num` samples over its
    classes, read by the classifier cached in the run folder (trained there on first use), drawn as
    the training evaluation draws them (seed + 15). A paired run's pair_bleu* on `num` held-out
    pairs (textgan/metrics/source_match.py). Nothing for an unconditional run."""
    if corpus.sources is not None and loaded.config.generator.paired:
        from textgan.metrics.source_match import source_metrics

        return source_metrics(loaded.generator, corpus, num, seed=seed + 15, temperature=temperature)
    if loaded.labels is None:
        return {}
    from textgan.metrics.class_accuracy import CLASSIFIER_FILE, run_class_metrics

    cache = run_dir_of(loaded.path) / CLASSIFIER_FILE
    return run_class_metrics(loaded.generator, corpus, loaded.labels, cache, num, seed=seed + 15,
                             temperature=temperature)


def posterior_metrics(loaded: Loaded, corpus: Corpus, seed: int, temperature: float = 1.0) -> dict[str, float]:
    """With a variational encoder q(z | x) (mle.objective elbo): held-out NLL_gen by importance
    sampling with q as the proposal, nll_gen_isK_tok, beside evaluate's prior Monte Carlo
    nll_gen_mcK_tok (K = eval.latent_draws each), latent_kl and latent_active_units, drawn as the
    training evaluation draws them (seed + 21), so at the run's seed the figures are the logged ones.
    Nothing for a run without one."""
    from textgan.encoding import variational_encoder
    from textgan.latent import posterior_stats

    if (encoder := variational_encoder(loaded)) is None:
        return {}
    rng = torch.Generator(device=loaded.generator.out.weight.device).manual_seed(seed + 21)
    return posterior_stats(loaded.generator, encoder, corpus.test.tokens, corpus.test.lengths,
                           draws=loaded.config.eval.latent_draws, rng=rng, temperature=temperature)


def bound_names(metrics: dict[str, float]) -> dict[str, str]:
    """Which bound each NLL_gen figure of `metrics` is (metrics.json's nll_gen_bounds)."""
    kinds = {"nll_gen_mc": "prior Monte Carlo: -log mean_k p(x | z_k), z_k ~ p(z)",
             "nll_gen_is": "importance sampling with q(z | x) as the proposal: -log mean_k p(x | z_k) p(z_k) / "
                           "q(z_k | x), z_k ~ q (the tighter bound when q is close to the posterior)"}
    return {name: kinds[name[:10]] for name in metrics if name[:10] in kinds}


def write_metrics(out_dir: Path, metrics: dict[str, float], settings: dict, force: bool = False,
                  computed_on: dict[str, int] | None = None) -> Path:
    """out_dir/metrics.json: a new file ("x": never one made meanwhile), or replaced with `force`;
    beside settings and metrics, `nll_gen_bounds` says which bound each NLL_gen figure is and
    `computed_on` on how many samples each metric computed on a subset was (the others saw all
    settings.num)."""
    out_dir.mkdir(parents=True, exist_ok=True)
    path = out_dir / "metrics.json"
    try:
        with open(path, "w" if force else "x", encoding="utf-8") as fh:
            record = {"settings": settings, "metrics": metrics, "nll_gen_bounds": bound_names(metrics),
                      "computed_on": computed_on or {}}
            fh.write(json.dumps(record, indent=2) + "\n")
    except FileExistsError:
        raise UserError(f"{path} appeared while scoring; nothing overwritten, rerun with another --out") from None
    return path


def check_oov(corpus: Corpus, data: str, max_oov: float) -> None:
    """The share of --data's tokens outside the run's vocabulary, reported; above `max_oov` an error."""
    share = oov_share(corpus.test_sentences, corpus.vocab)
    print(f"vocabulary: {share:.1%} of the tokens of {data} are outside the run's vocabulary (read as <unk>)",
          file=sys.stderr)
    if share > max_oov:
        raise UserError(f"{share:.1%} of the tokens of {data} are outside the run's vocabulary (limit --max-oov "
                        f"{max_oov:g}): is it the run's corpus and tokenizer? Pass --max-oov 1 to score it anyway")


def eval_command(path: str, data: str | None = None, num: int | None = None, seed: int | None = None,
                 temperature: float = 1.0, protocol: str = "exact", sweep: str | None = None,
                 out: str | Path | None = None, device: str = "cpu", weights: str = "auto", split: str = "test",
                 force: bool = False, max_oov: float = 1.0, exposure: bool = False,
                 lm: bool = False, fed: bool = False, mauve: bool = False, profile: bool = False,
                 interval_s: float | None = None, self_bleu_max: int | None = None, greedy: bool = False,
                 latent_samples: int | None = None) -> int:
    """Print metrics (a "name value" line each) and write metrics.json, or run a temperature sweep.
    Without `out` the results go to RUN/eval, or the first of RUN/eval-2, -3, ... without them.
    `exposure` adds the exposure-bias curves (textgan.metrics.exposure, exact on an oracle run;
    textgan.metrics.exposure_lm, a real-data LM's estimate on text), `lm` the LM
    and reverse-LM scores (textgan.metrics.lm_score), `fed` the Fréchet embedding distance
    (textgan.metrics.fed), `mauve` MAUVE on the same embeddings (textgan.metrics.mauve). Progress on
    stderr: a bar on a terminal, else a line every `interval_s` seconds (None: the run's
    log.interval_s); `profile` prints the seconds of each phase at the end.
    The samples stream to samples.txt as they are drawn; `self_bleu_max` (None: the run's
    eval.self_bleu_max) bounds the samples held at once (see EvalConfig.self_bleu_max); `greedy`
    scores the noise-off decoding (see greedy_decoding); `latent_samples` (None: the run's
    eval.latent_samples) is how many sentences latent_mi and the sensitivity are measured on."""
    from textgan.arguments import numbered_dir

    temps = None
    if sweep:  # only then: its module loads TensorBoard's writer (a quarter of a second)
        from textgan import sweep as sweep_mod

        temps = sweep_mod.parse_spec(sweep)  # a bad spec fails before loading anything
    if num is not None and num < 2:
        raise UserError(f"--num must be >= 2 (Self-BLEU needs two samples), got {num}")
    if self_bleu_max is not None and self_bleu_max < 2:
        raise UserError(f"--self-bleu-max must be >= 2 (leave-one-out Self-BLEU needs two samples), got {self_bleu_max}")
    extras = Extras(exposure=exposure, lm=lm, fed=fed, mauve=mauve)
    check_flags(extras, sweep=temps is not None)
    entered, startup, loading = time.monotonic(), process_age(), NoProgress()  # --profile's clocks
    loaded, corpus = load_run(path, data, device, weights, split, progress=loading)
    if greedy:
        greedy_decoding(loaded)
    num = num or loaded.config.eval.num_samples
    if latent_samples is not None and loaded.generator.prior == "none":
        raise UserError("--latent-samples sets how many sentences measure z's use, but this run has "
                        "generator.prior=none (no z); drop --latent-samples")
    loaded = with_eval_settings(loaded, self_bleu_max=self_bleu_max, latent_samples=latent_samples)
    cap = loaded.config.eval.self_bleu_max
    if extras.embeds:
        loading.phase("loading: FED's / MAUVE's encoder")
    # the sentence encoder: a missing extra fails here, before any work
    prepare_extras(extras, corpus, path, num, device)
    loading.close()
    if data:
        check_oov(corpus, data, max_oov)
    fpenv.apply(loaded.config.run)  # as the run trained
    seed = loaded.config.run.seed if seed is None else seed
    targets = SWEEP_FILES if temps is not None else ("metrics.json", SAMPLES_FILE) + (EXPOSURE_FILES if exposure else ())
    out_dir = Path(out) if out else numbered_dir(run_dir_of(Path(path)) / "eval", targets)
    if not out and out_dir.name != "eval":
        print(f"{out_dir.with_name('eval')} holds an earlier result; writing to {out_dir}", file=sys.stderr)
    interval_s = loaded.config.log.interval_s if interval_s is None else interval_s
    if temps is not None:
        more = ((lambda ids, t: sample_set_metrics(extras, corpus, ids, seed=seed, device=device))
                if extras.per_sample_set else None)
        with Progress("eval", interval_s) as progress:
            rows = sweep_mod.temperature_sweep(loaded, corpus, temps, num=num, seed=seed, progress=progress,
                                               extra=more)
        for row in rows:
            print(" ".join(f"{k}={v:.6g}" for k, v in row.items()))
        if num > cap and corpus.oracle is None:
            print(f"self_bleuN: computed on the first {cap} of the {num} samples of each temperature "
                  "(eval.self_bleu_max; --self-bleu-max sets it)", file=sys.stderr)
        for written in sweep_mod.write_sweep(rows, out_dir, sweep_mod.axes(corpus, loaded.config.eval.bleu_n),
                                             force=force):
            print(f"wrote {written}", file=sys.stderr)
        print(f"wrote TensorBoard scalars sweep/* to {out_dir}", file=sys.stderr)
        return 0
    settings = {"checkpoint": str(loaded.path), "split": split,
                "test": str(corpus_test_file(loaded, data, split)), "num": num,
                "seed": seed, "temperature": temperature, "protocol": protocol,
                "weights": "g_ema average" if loaded.averaged else "trained",
                "decoding": "greedy (generator.noise=none)" if greedy else f"generator.noise={loaded.generator.noise}",
                "latent_samples": loaded.config.eval.latent_samples if loaded.generator.prior != "none" else 0}
    with Progress("eval", interval_s) as progress:
        metrics, computed_on, eb = score_once(loaded, corpus, settings, extras, out_dir, force=force,
                                              progress=progress, device=device)
    for name, value in metrics.items():
        print(f"{name} {value:.6g}")
    bounds = bound_names(metrics)
    if len(bounds) > 1:  # two bounds on one NLL: say which is which
        for name, kind in bounds.items():
            print(f"{name}: {kind}", file=sys.stderr)
    subsets = [name for name, count in computed_on.items() if count < num]
    if subsets:
        print(f"{', '.join(subsets)}: computed on the first {cap} of the {num} samples (eval.self_bleu_max; "
              "--self-bleu-max sets it); the other metrics on all of them", file=sys.stderr)
    print(f"wrote {write_metrics(out_dir, metrics, settings, force=force, computed_on=computed_on)}", file=sys.stderr)
    if eb is not None:
        for written in write_exposure(eb, out_dir, settings, force=force):
            print(f"wrote {written}", file=sys.stderr)
        print(f"wrote TensorBoard scalars exposure_bias/* (step = position) to {out_dir}", file=sys.stderr)
    if profile:
        rows = wall_profile({**loading.seconds, **progress.seconds}, entered, startup)
        print(f"time by phase ({num} samples, protocol {protocol}; wall time since the process started):\n"
              f"{phase_table(rows)}", file=sys.stderr)
    return 0


def greedy_decoding(loaded: Loaded) -> None:
    """Switch `loaded`'s generator to the noise-off decoding, as if trained with generator.noise=none:
    each token the most likely one, z the only source of variety (its samples, latent figures and
    relaxed one-hots follow; the teacher-forced NLL_gen does not change)."""
    refuse_greedy_without_latent(loaded.generator)
    loaded.generator.noise = "none"


def with_eval_settings(loaded: Loaded, **fields: int | None) -> Loaded:
    """`loaded` with the eval.* fields given (not None) replaced (`--self-bleu-max`, `--latent-samples`)."""
    given = {name: value for name, value in fields.items() if value is not None}
    if not given:
        return loaded
    cfg = loaded.config
    return dataclasses.replace(loaded, config=dataclasses.replace(cfg, eval=dataclasses.replace(cfg.eval, **given)))


def score_once(loaded: Loaded, corpus: Corpus, settings: dict, extras: Extras, out_dir: Path, force: bool,
               progress: Progress, device: str):
    """One evaluation at `settings`' num, seed, temperature and protocol, its samples written to
    out_dir/samples.txt as they come, then the asked-for extras: (metrics, computed_on, the
    exposure-bias curves or None)."""
    num, seed, temperature = settings["num"], settings["seed"], settings["temperature"]
    samples_file = SamplesFile(out_dir, force=force)
    try:
        scored = eval_run(loaded, corpus, num=num, seed=seed, temperature=temperature, protocol=settings["protocol"],
                          progress=progress, sink=samples_file,
                          keep=extras.per_sample_set)
    except BaseException:
        samples_file.abandon()
        raise
    print(f"wrote {samples_file.finish()} ({samples_file.lines} samples)", file=sys.stderr)
    metrics, computed_on, eb = dict(scored.metrics), dict(scored.computed_on), None
    if extras.exposure:  # seeds seed + 10, + 11, + 12: none of evaluate's draws
        progress.phase("exposure bias")
        held = min(num, loaded.config.eval.self_bleu_max)  # prefixes from each source, held at once
        eb = exposure_curves(corpus, loaded.generator, num=held, seed=seed + 10, temperature=temperature,
                             draws=loaded.config.eval.latent_draws, device=device)
        metrics.update(eb.summary())
        if held < num:
            computed_on.update(dict.fromkeys(eb.summary(), held))
    if extras.per_sample_set:
        progress.phase("LM scores, FED, MAUVE")  # of the samples just scored (the first self_bleu_max), not drawn again
        more = sample_set_metrics(extras, corpus, scored.ids, seed=seed, device=device)
        metrics.update(more)
        computed_on.update(dict.fromkeys(more, scored.ids.shape[0]))
    return metrics, computed_on, eb


def corpus_test_file(loaded: Loaded, data: str | None, split: str = "test") -> str:
    """The held-out sentences the metrics used (for the record in metrics.json)."""
    cfg = loaded.config.data
    if split == "valid" and cfg.valid:
        return str(Path(cfg.root) / cfg.valid)
    if split == "valid":
        origin = str(Path(cfg.root) / cfg.train) if cfg.source == "files" else f"built-in {cfg.source} corpus"
        return f"validation split of {origin} (data.valid_frac={cfg.valid_frac}, data.valid_seed={cfg.valid_seed})"
    if cfg.source != "files":
        return f"built-in {cfg.source} corpus"
    return str(Path(data).resolve()) if data else str(Path(cfg.root) / cfg.test)
