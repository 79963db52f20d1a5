"""Command line: parses arguments and calls the library; every user mistake is one line, exit 2,
reported before any work starts (textgan/arguments.py holds the checks)."""
from __future__ import annotations

import argparse
import os
import signal
import sys
from pathlib import Path

from textgan import __version__, arguments
from textgan.arguments import at_least_two, fraction, positive, seconds, seed, tau
from textgan.config import SPLITS, WEIGHTS, DataConfig, EvalConfig, choices
from textgan.errors import UserError
from textgan.streams import guarded_streams


class _Parser(argparse.ArgumentParser):
    def __init__(self, *args, **kwargs):
        kwargs.setdefault("formatter_class", _DefaultsFormatter)
        super().__init__(*args, **kwargs)

    def error(self, message: str) -> None:  # one line instead of usage + message
        raise UserError(f"{message} (see `{self.prog} --help`)")


class _DefaultsFormatter(argparse.HelpFormatter):
    """--help shows each flag's default, unless its help already says it or it has none."""

    def _get_help_string(self, action: argparse.Action) -> str:
        text = action.help or ""
        if "default" in text or action.default in (None, False, argparse.SUPPRESS) or not action.option_strings:
            return text
        return f"{text} (default: %(default)s)"


ENCODERS = ("auto", "variational", "info")  # as textgan.encoding.ENCODERS (no torch import here)
ENCODER_HELP = ("which network maps a sentence to z: variational (mle.objective elbo's q(z|x) mean), info "
                "(adversarial.info_weight's head), auto (default): variational where the run has one")
WEIGHTS_HELP = ("auto (default): adversarial.g_ema's average where the checkpoint has one, else the trained "
                "weights; average or trained: that one")
DEVICE_HELP = "where the model runs: cpu, cuda or cuda:N"
FORCE_HELP = "replace existing output files instead of refusing"
INTERVAL_HELP = ("seconds between progress lines when stderr is not a terminal (a terminal gets a bar); "
                 "0: none")
OOV_HELP = ("largest share of the scored file's tokens outside the run's vocabulary (they all read as <unk>) "
            "before it is an error; 1 scores any file")
DEFAULT_MAX_OOV = 0.25


def build_parser() -> argparse.ArgumentParser:
    p = _Parser(prog="textgan", description="Train, sample and evaluate GANs for text.")
    p.add_argument("--version", action="version", version=f"textgan {__version__}")
    sub = p.add_subparsers(dest="command", required=True, parser_class=_Parser)

    t = sub.add_parser("train", help="train from a YAML config (MLE pretraining, then adversarial)")
    t.add_argument("config", nargs="?", help="YAML file in configs/ (omit with --resume)")
    t.add_argument("overrides", nargs="*", help="dotted overrides, e.g. adversarial.steps=200")
    t.add_argument("--resume", metavar="RUN", help="continue this run folder from its newest valid checkpoint")
    t.add_argument("--force", action="store_true", help="replace an existing run folder of the same name")

    s = sub.add_parser("sample", help="print sentences from a run or checkpoint")
    s.add_argument("path", help="run folder or checkpoint file")
    s.add_argument("--num", type=positive, help="number of sentences (default 10)")
    s.add_argument("--seed", type=seed, default=0, help="seed of the latent and the sampling noise: sentence i "
                                                         "depends on (seed, i) only, so --num 3 is a prefix of --num 6")
    s.add_argument("--temperature", type=tau, default=1.0, help="divides the logits; <1 is greedier")
    s.add_argument("--z", metavar="FILE.npy", help="explicit latent vectors, shape (N, Z): one sentence each")
    s.add_argument("--interpolate", type=positive, metavar="K", help="K points from z(--seed) to z(--seed-to)")
    s.add_argument("--seed-to", type=seed, help="end seed of the interpolation (default 1; needs --interpolate)")
    s.add_argument("--from-text", metavar="TEXT", help="with --interpolate and --to-text: start the path at this "
                                                       "sentence's z (greedy decoding)")
    s.add_argument("--to-text", metavar="TEXT", help="end sentence of --from-text's path")
    s.add_argument("--greedy", action="store_true", help="decode with the noise off: the most likely token at each "
                                                         "step (e.g. to reconstruct --z of `textgan encode`)")
    s.add_argument("--encoder", choices=ENCODERS, help=ENCODER_HELP + " (default auto; needs --from-text)")
    s.add_argument("--class", dest="class_name", metavar="NAME", help="a conditional run: every sentence of this "
                                                                      "class (default: each drawn from the class prior)")
    s.add_argument("--source", metavar="TEXT", help="a run conditioned on sentences (generator.condition=sentence): "
                                                    "every sentence from this source sentence (default: each from a "
                                                    "training source drawn for it)")
    s.add_argument("--out", metavar="FILE", help="also write the sentences to FILE (must not exist)")
    s.add_argument("--save-z", metavar="FILE.npy", help="also write the (N, Z) latents of the sentences to FILE.npy "
                                                        "(must not exist); --z FILE.npy with the same --seed "
                                                        "gives the same sentences")
    s.add_argument("--force", action="store_true", help=FORCE_HELP)
    s.add_argument("--device", default="cpu", help=DEVICE_HELP)
    s.add_argument("--weights", choices=WEIGHTS, default="auto", help=WEIGHTS_HELP)

    e = sub.add_parser("eval", help="score a run or checkpoint; optionally sweep the sampling temperature")
    e.add_argument("path", help="run folder or checkpoint file")
    e.add_argument("--data", metavar="FILE", help="test file replacing the run's data.test (BLEU refs, NLL_gen)")
    e.add_argument("--split", choices=SPLITS, default="test",
                   help="held-out sentences scored against: test, or the run's validation split "
                        "(data.valid_frac or data.valid), for choosing a checkpoint without looking at the test set")
    e.add_argument("--num", type=at_least_two, help="samples scored (>= 2; default eval.num_samples of the run)")
    e.add_argument("--latent-samples", type=positive, metavar="N",
                   help="sentences latent_mi and the sensitivity are measured on (default eval.latent_samples "
                        "of the run, 64); needs a latent")
    e.add_argument("--self-bleu-max", type=at_least_two, metavar="M",
                   help="the most samples held at once: with more --num, samples are scored in blocks of M and "
                        "Self-BLEU on the first M, as metrics.json's computed_on says (default eval.self_bleu_max "
                        "of the run, 10000 unless set)")
    e.add_argument("--seed", type=seed, help="seed of the latent and the sampling noise (default run.seed)")
    e.add_argument("--temperature", type=tau, help="divides the logits; <1 is greedier (default 1; "
                                                    "not with --sweep-temperature)")
    e.add_argument("--greedy", action="store_true",
                   help="score the noise-off decoding (the most likely token at each step, z the only noise: as "
                        "generator.noise=none and `sample --greedy`); needs a latent; not with --temperature")
    e.add_argument("--protocol", choices=choices(EvalConfig, "protocol"),
                   help="BLEU protocol: exact (the default: all samples, leave-one-out Self-BLEU), texygen or both")
    e.add_argument("--sweep-temperature", metavar="A:B:K",
                   help="K temperatures from A to B: writes sweep.csv, sweep.png and TensorBoard events")
    e.add_argument("--out", metavar="DIR", help="folder for metrics.json / sweep files (default RUN/eval, "
                                                "or RUN/eval-2, -3, ... where an earlier result is there)")
    e.add_argument("--exposure-bias", action="store_true",
                   help="also KL(oracle || model) by position on data vs model prefixes, their ratio (EB-M) and the "
                        "oracle's NLL by position: exact on an oracle run, estimated on text with a real-data LM "
                        "(trained once per corpus, cached) as the oracle; writes exposure_bias.csv/.json/.png and "
                        "TensorBoard events")
    e.add_argument("--lm-score", action="store_true",
                   help="also lm_score (a real-data LM scores the samples), reverse_lm_score (an LM of the samples "
                        "scores the test set) and lm_real_reference; the real-data LM is cached per corpus")
    e.add_argument("--fed", action="store_true",
                   help="also fed: Fréchet distance of sentence embeddings, samples vs test set, and fed_real_floor "
                        "(two halves of the test set), on equal-size sets; needs pip install 'textgan[embed]'")
    e.add_argument("--mauve", action="store_true",
                   help="also mauve (Pillutla et al. 2021) on the same sentence embeddings as --fed, samples vs test "
                        "set, and mauve_real_ceiling (two halves of the test set); needs pip install 'textgan[mauve]'")
    e.add_argument("--force", action="store_true", help=FORCE_HELP + " in --out")
    e.add_argument("--max-oov", type=fraction, default=DEFAULT_MAX_OOV, metavar="FRAC", help=OOV_HELP)
    e.add_argument("--interval-s", type=seconds, metavar="S", help=INTERVAL_HELP + " (default: the run's log.interval_s)")
    e.add_argument("--device", default="cpu", help=DEVICE_HELP)
    e.add_argument("--weights", choices=WEIGHTS, default="auto", help=WEIGHTS_HELP)
    e.add_argument("--profile", action="store_true",
                   help="print where the time goes: seconds per phase (start-up and imports, loading, sampling, "
                        "BLEU, NLL_gen, ...), summing to the wall time since the process started")

    n = sub.add_parser("encode", help="sentences to latent vectors z (.npy): the variational encoder's mean "
                                      "or the reconstruction head's output")
    n.add_argument("path", help="run folder or checkpoint file")
    source = n.add_mutually_exclusive_group(required=True)
    source.add_argument("--text", help="one sentence")
    source.add_argument("--file", metavar="FILE", help="text file, one sentence per line")
    n.add_argument("--out", metavar="Z.npy", required=True, help="where to write the (N, Z) float32 array")
    n.add_argument("--force", action="store_true", help="replace --out if it exists")
    n.add_argument("--encoder", choices=ENCODERS, default="auto", help=ENCODER_HELP)
    n.add_argument("--device", default="cpu", help=DEVICE_HELP)
    n.add_argument("--weights", choices=WEIGHTS, default="auto", help=WEIGHTS_HELP)

    c = sub.add_parser("score", help="score a file of sentences (any model's samples, or real data): BLEU "
                                     "against a test file, or NLL_oracle of oracle token ids")
    c.add_argument("samples", help="text file, one sentence per line (token ids with --oracle)")
    c.add_argument("--refs", metavar="FILE", help="test file: the BLEU references")
    c.add_argument("--oracle", metavar="PARAMS.npz", help="SeqGAN oracle parameters: SAMPLES holds token ids, "
                                                          "scored by NLL_oracle")
    c.add_argument("--train", metavar="FILE", help="training file: adds train_copy_frac")
    c.add_argument("--second", metavar="FILE", help="an independent sample set: adds self_bleuN_texygen")
    c.add_argument("--tokenizer", choices=choices(DataConfig, "tokenizer"), default="whitespace",
                   help="as data.tokenizer of the run being compared (the COCO configs use nltk)")
    c.add_argument("--keep-case", action="store_true", help="do not lowercase (data.lowercase=false)")
    c.add_argument("--protocol", choices=choices(EvalConfig, "protocol"), default="exact",
                   help="BLEU protocol: exact (all samples, leave-one-out Self-BLEU), texygen or both")
    c.add_argument("--orders", help="BLEU orders, comma-separated (default 2,3,4,5)")
    c.add_argument("--num", type=positive, help="score the first NUM sentences only")
    c.add_argument("--out", metavar="FILE", help="also write the metrics to FILE.json (must not exist)")
    c.add_argument("--force", action="store_true", help=FORCE_HELP)
    c.add_argument("--max-oov", type=fraction, default=0.5, metavar="FRAC",
                   help="largest share of the samples' tokens that no reference holds (a tokenizer or corpus "
                        "mismatch) before it is an error; 1 scores any file")
    c.add_argument("--fed", action="store_true", help="also FED against the references and its real-vs-real floor "
                                                      "(text; needs pip install 'textgan[embed]'), as eval --fed")
    c.add_argument("--mauve", action="store_true", help="also MAUVE and its real-vs-real ceiling on the same "
                                                        "embeddings (text; needs pip install 'textgan[mauve]')")
    c.add_argument("--seed", type=int, default=0, help="seeds the split of the references into halves for "
                                                       "--fed/--mauve (default 0)")
    c.add_argument("--interval-s", type=seconds, default=30.0, metavar="S", help=INTERVAL_HELP)

    v = sub.add_parser("curves", help="temperature sweeps of several models on one plot, with each one's gap "
                                      "to the first at equal diversity")
    v.add_argument("sweeps", nargs="+", metavar="SWEEP.csv",
                   help="sweep.csv files of `textgan eval --sweep-temperature`, the baseline first")
    v.add_argument("--labels", help="curve names, comma-separated, one per file (default: the run or folder of each sweep.csv)")
    v.add_argument("--x", help="diversity column (default self_bleuN, or nll_gen_tok for the oracle)")
    v.add_argument("--y", help="quality column (default bleuN for the largest N, or nll_oracle)")
    v.add_argument("--out", metavar="DIR", help="also write DIR/curves.csv and DIR/curves.png (must not exist)")
    v.add_argument("--force", action="store_true", help=FORCE_HELP + " in --out")

    r = sub.add_parser("configs", help="list the YAML configs that come with textgan, or copy one out to edit")
    r.add_argument("dest", nargs="?", metavar="DEST",
                   help="with --copy: the folder (default: the current one) or file name to copy to")
    r.add_argument("--copy", metavar="NAME", help="copy this config (e.g. quickstart) to DEST")
    r.add_argument("--force", action="store_true", help="replace an existing file at DEST")

    d = sub.add_parser("data", help="benchmark datasets")
    dsub = d.add_subparsers(dest="data_command", required=True, parser_class=_Parser)
    g = dsub.add_parser("get", help="download a benchmark corpus and verify its checksums")
    g.add_argument("name", help="coco or emnlp_news")
    g.add_argument("--dest", default="data", help="folder to put <name>/ in")
    g.add_argument("--base-url", help="mirror replacing the upstream repository URL prefix")
    g.add_argument("--force", action="store_true", help="replace files whose checksum does not match")
    return p


def cmd_train(args) -> int:
    from textgan import config as config_mod

    if args.config and "=" in args.config:  # `train --resume RUN key=value`: no config file given
        args.overrides.insert(0, args.config)
        args.config = None
    if not args.resume and not args.config:
        raise UserError("train needs a config file (e.g. configs/quickstart.yaml) or --resume RUN")
    if args.resume and args.config:
        raise UserError("give either a config file or --resume RUN, not both (the run keeps its config)")
    if args.resume and args.force:
        raise UserError("--force replaces a run folder and --resume continues one; drop one of them")
    # a new run's config is checked before torch loads (~4 s here), so a mistake in it reports at once
    cfg = None if args.resume else config_mod.load(args.config, args.overrides)
    from textgan.experiment import train_command

    return train_command(args.config, args.overrides, resume=args.resume, force=args.force, cfg=cfg)


def _force_needs_out(args) -> None:
    if args.force and not args.out and not getattr(args, "save_z", None):
        flags = "--out or --save-z" if hasattr(args, "save_z") else "--out"
        raise UserError(f"--force replaces what {flags} names; give {flags}, or drop --force")


def _check_sample_flags(args) -> None:
    """Flags that contradict each other are an error, never silently ignored."""
    if args.z and args.interpolate:
        raise UserError("--z and --interpolate both choose the latents; give one of them")
    if args.seed_to is not None and not args.interpolate:
        raise UserError("--seed-to is the end point of --interpolate K; add --interpolate or drop --seed-to")
    if args.num is not None and (args.z or args.interpolate):
        which = "--z's rows" if args.z else "--interpolate K"
        raise UserError(f"the number of sentences is set by {which}; drop --num")
    _check_latent_flags(args)


def _check_latent_flags(args) -> None:
    """--from-text/--to-text, --greedy and --encoder: the combinations that mean something."""
    if (args.from_text is None) != (args.to_text is None):
        raise UserError("--from-text and --to-text go together: give both sentences of the path")
    if args.from_text is not None and not args.interpolate:
        raise UserError("--from-text/--to-text need --interpolate K, the number of points on the path")
    if args.from_text is not None and args.seed_to is not None:
        raise UserError("--seed-to and --to-text both end the path; give one of them")
    if args.encoder is not None and args.from_text is None:
        raise UserError("--encoder chooses the network that reads --from-text/--to-text; add them or drop --encoder")
    if args.greedy and args.interpolate:
        raise UserError("--greedy decodes --z or seed draws; --interpolate samples (--from-text paths are "
                        "greedy already); drop one of them")


def cmd_sample(args) -> int:
    _check_sample_flags(args)
    _force_needs_out(args)
    arguments.run_or_checkpoint(args.path)
    device = arguments.device(args.device)
    out = arguments.new_file(args.out, "--out", args.force) if args.out else None
    save_z = arguments.new_file(args.save_z, "--save-z", args.force) if args.save_z else None
    if out and save_z and out.resolve() == save_z.resolve():
        raise UserError("--out and --save-z name the same file; give two names")
    from textgan import sample
    from textgan.accel import fpenv

    z = sample.load_latent(args.z) if args.z else None  # a bad file is reported before the model loads
    loaded = sample.load_generator(args.path, device, warn=lambda m: print(m, file=sys.stderr), weights=args.weights)
    fpenv.apply(loaded.config.run)  # as the run trained
    if args.greedy:
        sample.refuse_greedy_without_latent(loaded.generator)
    if loaded.generator.prior == "none" and (z is not None or args.interpolate or save_z):
        flag = "--save-z" if save_z and z is None and not args.interpolate else "--z or --interpolate"
        raise UserError(f"this generator has prior=none: it has no latent for {flag}; sample it without them")
    if z is not None:
        z = sample.check_latent(z, loaded.generator.latent_dim, args.z)
    if args.from_text is not None:
        if args.class_name is not None or args.source is not None:
            raise UserError("--from-text paths come from an encoder, without a class or source; drop --class/--source")
        chunks = iter([sample.text_path_samples(loaded, args.from_text, args.to_text, args.interpolate,
                                                args.encoder or "auto")])
        rows = args.interpolate
    elif args.interpolate:
        condition = loaded.condition(args.class_name, args.source)
        chunks = sample.interpolation_samples(loaded, args.seed, 1 if args.seed_to is None else args.seed_to,
                                              args.interpolate, args.temperature, condition=condition)
        rows = args.interpolate
    else:
        rows = z.shape[0] if z is not None else 10 if args.num is None else args.num
        chunks = sample.stream_samples(loaded, rows, args.seed, args.temperature, z=z, greedy=args.greedy,
                                       condition=loaded.condition(args.class_name, args.source))
    latents = sample.LatentFile(save_z, rows, loaded.generator.latent_dim, args.force) if save_z else None
    sample.write_lines(chunks, out, force=args.force, save_z=latents)
    return 0


def cmd_encode(args) -> int:
    arguments.run_or_checkpoint(args.path)
    device = arguments.device(args.device)
    out = arguments.new_file(args.out, "--out", args.force)
    if args.text is not None:
        lines = [args.text]
    else:
        from textgan.data import read_lines

        arguments.existing_file(args.file, "--file")
        read_lines(args.file)  # a binary or non-UTF-8 file: its one-line error
        lines = Path(args.file).read_text(encoding="utf-8").splitlines()  # empty lines kept: each an error
    from textgan import encoding, sample
    from textgan.accel import fpenv

    loaded = sample.load_generator(args.path, device,
                                   warn=lambda m: print(m, file=sys.stderr), weights=args.weights)
    fpenv.apply(loaded.config.run)
    z = encoding.encode_text(loaded, lines, args.encoder)
    out = encoding.write_latent(z, out, args.force)
    print(f"wrote {z.shape[0]} latent vector(s) of {z.shape[1]} dimensions to {out}")
    return 0


def cmd_eval(args) -> int:
    from textgan.eval_reports import EXPOSURE_FILES, SAMPLES_FILE
    from textgan.evaluation_cli import SWEEP_FILES, eval_command

    if args.sweep_temperature and (args.temperature is not None or args.protocol is not None):
        raise UserError("--sweep-temperature sets the temperatures and scores the exact protocol; "
                        "drop --temperature / --protocol, or drop the sweep")
    if args.sweep_temperature and args.profile:
        raise UserError("--profile times one evaluation; drop it or drop --sweep-temperature")
    if args.greedy and (args.temperature is not None or args.sweep_temperature):
        raise UserError("--greedy takes the most likely token, which no temperature changes; drop --greedy or "
                        "the temperature")
    _force_needs_out(args)
    arguments.run_or_checkpoint(args.path)
    if args.data:
        arguments.existing_file(args.data, "--data")
    device = arguments.device(args.device)
    single = ("metrics.json", SAMPLES_FILE, *(EXPOSURE_FILES if args.exposure_bias else ()))
    targets = SWEEP_FILES if args.sweep_temperature else single
    out = arguments.output_dir(args.out, "--out", targets, args.force) if args.out else None
    return eval_command(args.path, data=args.data, num=args.num, seed=args.seed,
                        temperature=1.0 if args.temperature is None else args.temperature,
                        protocol=args.protocol or "exact", sweep=args.sweep_temperature, out=out,
                        device=device, weights=args.weights, split=args.split, force=args.force,
                        max_oov=args.max_oov, exposure=args.exposure_bias,
                        lm=args.lm_score, fed=args.fed, mauve=args.mauve, profile=args.profile,
                        interval_s=args.interval_s,
                        self_bleu_max=args.self_bleu_max, greedy=args.greedy,
                        latent_samples=args.latent_samples)


def cmd_score(args) -> int:
    from textgan.score_cli import score_command

    _force_needs_out(args)
    arguments.existing_file(args.samples, "SAMPLES")
    for flag in ("refs", "oracle", "train", "second"):
        if getattr(args, flag):
            arguments.existing_file(getattr(args, flag), f"--{flag}")
    if args.out:
        arguments.new_file(args.out, "--out", args.force)
    return score_command(args.samples, args.refs, train=args.train, second=args.second, tokenizer=args.tokenizer,
                         lowercase=not args.keep_case, protocol=args.protocol, orders=args.orders, num=args.num,
                         out=args.out, oracle=args.oracle, force=args.force, max_oov=args.max_oov,
                         interval_s=args.interval_s, fed=args.fed, mauve=args.mauve, seed=args.seed)


def cmd_curves(args) -> int:
    from textgan.curves import curves_command

    _force_needs_out(args)
    for path in args.sweeps:
        arguments.existing_file(path, "sweep")
    if args.out:
        arguments.output_dir(args.out, "--out", ("curves.csv", "curves.png"), args.force)
    labels = [name.strip() for name in args.labels.split(",")] if args.labels else None
    return curves_command(args.sweeps, labels, x=args.x, y=args.y, out=args.out, force=args.force)


def cmd_configs(args) -> int:
    from textgan import recipes

    if args.copy is None and (args.dest is not None or args.force):
        raise UserError(f"{'DEST' if args.dest is not None else '--force'} applies only to --copy NAME; "
                        "add --copy, or drop it to list the configs")
    if args.copy is None:
        folder = recipes.configs_dir()
        print(f"configs in {folder} (copy one out with `textgan configs --copy NAME`):", file=sys.stderr)
        print(recipes.listing(recipes.recipes(folder)))
        return 0
    print(recipes.copy(args.copy, args.dest or ".", args.force))
    return 0


def cmd_data(args) -> int:
    from textgan.download import get_dataset

    paths = get_dataset(args.name, Path(args.dest), base_url=args.base_url, force=args.force,
                        log=lambda m: print(m, file=sys.stderr))
    for path in paths:
        print(path)
    return 0


def main(argv: list[str] | None = None) -> int:
    if hasattr(signal, "SIGXFSZ"):  # a file-size limit becomes an OSError we report, not a kill
        signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
    with guarded_streams():  # a closed pipe (`textgan train | head`) never ends a run
        try:
            args = build_parser().parse_args(argv)
            handler = {"train": cmd_train, "sample": cmd_sample, "encode": cmd_encode, "data": cmd_data, "eval": cmd_eval,
                       "score": cmd_score, "curves": cmd_curves, "configs": cmd_configs}[args.command]
            return handler(args)
        except UserError as err:
            print(f"textgan: error: {err}", file=sys.stderr)
            return 2


def exit_process(code: int) -> None:
    """Exit with `code`. Under torchrun, skip interpreter finalisation: gloo's worker threads can
    still hold work objects then, and tearing them down aborts the process (SIGABRT) after the run
    has already finished and saved everything."""
    if int(os.environ.get("WORLD_SIZE", "1") or 1) > 1:
        sys.stdout.flush()
        sys.stderr.flush()
        os._exit(code)
    sys.exit(code)


if __name__ == "__main__":
    exit_process(main())
