"""Command line: parses arguments and calls the library; every user mistake is one line, exit 2."""
from __future__ import annotations

import argparse
import os
import signal
import sys
from pathlib import Path

from textgan.config import SPLITS, WEIGHTS, DataConfig, EvalConfig, choices
from textgan.errors import UserError


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> None:  # one line instead of usage + message
        raise UserError(f"{message} (see `{self.prog} --help`)")


def _positive(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a whole number, got {text!r}") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be >= 1, got {value}")
    return value


def _tau(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a number, got {text!r}") from None
    if not value > 0 or value == float("inf"):
        raise argparse.ArgumentTypeError(f"must be a finite number > 0, got {text}")
    return value


ENCODERS = ("auto", "variational", "info")  # as textgan.encoding.ENCODERS (no torch import here)
ENCODER_HELP = ("which network maps a sentence to z: variational (mle.objective elbo's q(z|x) mean), info "
                "(adversarial.info_weight's head), auto (default): variational where the run has one")
WEIGHTS_HELP = ("auto (default): adversarial.g_ema's average where the checkpoint has one, else the trained "
                "weights; average or trained: that one")


def build_parser() -> argparse.ArgumentParser:
    p = _Parser(prog="textgan", description="Train, sample and evaluate GANs for text.")
    sub = p.add_subparsers(dest="command", required=True, parser_class=_Parser)

    t = sub.add_parser("train", help="train from a YAML config (MLE pretraining, then adversarial)")
    t.add_argument("config", nargs="?", help="YAML file in configs/ (omit with --resume)")
    t.add_argument("overrides", nargs="*", help="dotted overrides, e.g. adversarial.steps=200")
    t.add_argument("--resume", metavar="RUN", help="continue this run folder from its newest valid checkpoint")
    t.add_argument("--force", action="store_true", help="replace an existing run folder of the same name")

    s = sub.add_parser("sample", help="print sentences from a run or checkpoint")
    s.add_argument("path", help="run folder or checkpoint file")
    s.add_argument("--num", type=_positive, default=10, help="number of sentences")
    s.add_argument("--seed", type=int, default=0, help="seed of the latent and the sampling noise")
    s.add_argument("--temperature", type=_tau, default=1.0, help="divides the logits; <1 is greedier")
    s.add_argument("--z", metavar="FILE.npy", help="explicit latent vectors, shape (N, Z)")
    s.add_argument("--interpolate", type=_positive, metavar="K", help="K points from z(--seed) to z(--seed-to)")
    s.add_argument("--seed-to", type=int, default=1, help="end seed of the interpolation")
    s.add_argument("--from-text", metavar="TEXT", help="with --interpolate and --to-text: start the path at this "
                                                       "sentence's z (greedy decoding)")
    s.add_argument("--to-text", metavar="TEXT", help="end sentence of --from-text's path")
    s.add_argument("--greedy", action="store_true", help="decode with the noise off: the most likely token at each "
                                                         "step (e.g. to reconstruct --z of `textgan encode`)")
    s.add_argument("--encoder", choices=ENCODERS, default="auto", help=ENCODER_HELP)
    s.add_argument("--out", metavar="FILE", help="also write the sentences to FILE (must not exist)")
    s.add_argument("--device", default="cpu")
    s.add_argument("--weights", choices=WEIGHTS, default="auto", help=WEIGHTS_HELP)

    e = sub.add_parser("eval", help="score a run or checkpoint; optionally sweep the sampling temperature")
    e.add_argument("path", help="run folder or checkpoint file")
    e.add_argument("--data", metavar="FILE", help="test file replacing the run's data.test (BLEU refs, NLL_gen)")
    e.add_argument("--split", choices=SPLITS, default="test",
                   help="held-out sentences scored against: test, or the run's validation split "
                        "(data.valid_frac or data.valid), for choosing a checkpoint without looking at the test set")
    e.add_argument("--num", type=int, help="samples scored (>= 2; default eval.num_samples of the run)")
    e.add_argument("--seed", type=int, help="seed of the latent and the sampling noise (default run.seed)")
    e.add_argument("--temperature", type=_tau, default=1.0, help="divides the logits; <1 is greedier")
    e.add_argument("--protocol", choices=choices(EvalConfig, "protocol"), default="exact",
                   help="BLEU protocol: exact (all samples, leave-one-out Self-BLEU), texygen or both")
    e.add_argument("--sweep-temperature", metavar="A:B:K",
                   help="K temperatures from A to B: writes sweep.csv, sweep.png and TensorBoard events")
    e.add_argument("--out", metavar="DIR", help="folder for metrics.json / sweep files (default RUN/eval)")
    e.add_argument("--device", default="cpu")
    e.add_argument("--weights", choices=WEIGHTS, default="auto", help=WEIGHTS_HELP)

    n = sub.add_parser("encode", help="sentences to latent vectors z (.npy): the variational encoder's mean "
                                      "or the reconstruction head's output")
    n.add_argument("path", help="run folder or checkpoint file")
    source = n.add_mutually_exclusive_group(required=True)
    source.add_argument("--text", help="one sentence")
    source.add_argument("--file", metavar="FILE", help="text file, one sentence per line")
    n.add_argument("--out", metavar="Z.npy", required=True, help="where to write the (N, Z) float32 array")
    n.add_argument("--force", action="store_true", help="replace --out if it exists")
    n.add_argument("--encoder", choices=ENCODERS, default="auto", help=ENCODER_HELP)
    n.add_argument("--device", default="cpu")
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
    c.add_argument("--num", type=_positive, help="score the first NUM sentences only")
    c.add_argument("--out", metavar="FILE", help="also write the metrics to FILE.json (must not exist)")

    v = sub.add_parser("curves", help="temperature sweeps of several models on one plot, with each one's gap "
                                      "to the first at equal diversity")
    v.add_argument("sweeps", nargs="+", metavar="SWEEP.csv",
                   help="sweep.csv files of `textgan eval --sweep-temperature`, the baseline first")
    v.add_argument("--labels", help="curve names, comma-separated, one per file (default: the run or folder of each sweep.csv)")
    v.add_argument("--x", help="diversity column (default self_bleuN, or nll_gen_tok for the oracle)")
    v.add_argument("--y", help="quality column (default bleuN for the largest N, or nll_oracle)")
    v.add_argument("--out", metavar="DIR", help="also write DIR/curves.csv and DIR/curves.png (must not exist)")

    d = sub.add_parser("data", help="benchmark datasets")
    dsub = d.add_subparsers(dest="data_command", required=True, parser_class=_Parser)
    g = dsub.add_parser("get", help="download a benchmark corpus and verify its checksums")
    g.add_argument("name", help="coco or emnlp_news")
    g.add_argument("--dest", default="data", help="folder to put <name>/ in (default: data)")
    g.add_argument("--base-url", help="mirror replacing the upstream repository URL prefix")
    g.add_argument("--force", action="store_true", help="replace files whose checksum does not match")
    return p


def _device(name: str) -> str:
    import torch

    if name.startswith("cuda") and not torch.cuda.is_available():
        raise UserError(f"device {name!r} requested but CUDA is not available here; set run.device=cpu")
    return name


def cmd_train(args) -> int:
    from textgan import config as config_mod

    if args.config and "=" in args.config:  # `train --resume RUN key=value`: no config file given
        args.overrides.insert(0, args.config)
        args.config = None
    if not args.resume and not args.config:
        raise UserError("train needs a config file (e.g. configs/quickstart.yaml) or --resume RUN")
    if args.resume and args.config:
        raise UserError("give either a config file or --resume RUN, not both (the run keeps its config)")
    # a new run's config is checked before torch loads (~4 s here), so a mistake in it reports at once
    cfg = None if args.resume else config_mod.load(args.config, args.overrides)
    from textgan.experiment import train_command

    return train_command(args.config, args.overrides, resume=args.resume, force=args.force, cfg=cfg)


def _check_latent_args(args) -> None:
    """The latent options' combinations, before anything loads."""
    if (args.from_text is None) != (args.to_text is None):
        raise UserError("--from-text and --to-text go together: give both sentences of the path")
    if args.from_text is not None and not args.interpolate:
        raise UserError("--from-text/--to-text need --interpolate K, the number of points on the path")
    if args.z and args.interpolate:
        raise UserError("--z and --interpolate are two ways to choose z; give one of them")


def cmd_sample(args) -> int:
    from textgan import encoding, fpenv, sample

    _check_latent_args(args)
    if args.out and Path(args.out).exists():
        raise UserError(f"--out {args.out} already exists; choose a new file name")
    loaded = sample.load_generator(args.path, _device(args.device),
                                   warn=lambda m: print(m, file=sys.stderr), weights=args.weights)
    fpenv.apply(loaded.config.run)  # as the run trained
    if loaded.generator.prior == "none" and (args.z or args.interpolate):
        raise UserError("this generator has prior=none: it has no latent for --z or --interpolate; "
                        "sample it without them")
    if args.from_text is not None:
        lines = encoding.text_interpolation(loaded, args.from_text, args.to_text, args.interpolate, args.encoder)
    elif args.interpolate:
        lines = sample.interpolation_text(loaded, args.seed, args.seed_to, args.interpolate,
                                          args.temperature, noise_seed=args.seed)
    else:
        z = sample.read_latent(args.z, loaded.generator.latent_dim) if args.z else None
        num = z.shape[0] if z is not None else args.num
        if args.greedy:
            lines = encoding.decode_text(loaded, z if z is not None else sample.latent_from_seed(loaded, args.seed, num))
        else:
            lines = sample.sample_text(loaded, num, args.seed, args.temperature, z=z)
    if args.out:
        Path(args.out).write_text("\n".join(lines) + "\n", encoding="utf-8")
    print("\n".join(lines))
    return 0


def cmd_encode(args) -> int:
    from textgan import encoding, fpenv, sample
    from textgan.data import read_lines

    if Path(args.out).exists() and not args.force:
        raise UserError(f"--out {args.out} already exists; choose a new file name or add --force")
    if args.text is not None:
        lines = [args.text]
    else:
        read_lines(args.file)  # a missing, binary or non-UTF-8 file: its one-line error
        lines = Path(args.file).read_text(encoding="utf-8").splitlines()  # empty lines kept: each an error
    loaded = sample.load_generator(args.path, _device(args.device),
                                   warn=lambda m: print(m, file=sys.stderr), weights=args.weights)
    fpenv.apply(loaded.config.run)
    z = encoding.encode_text(loaded, lines, args.encoder)
    out = encoding.write_latent(z, args.out, args.force)
    print(f"wrote {z.shape[0]} latent vector(s) of {z.shape[1]} dimensions to {out}")
    return 0


def cmd_eval(args) -> int:
    from textgan.evaluation_cli import eval_command

    return eval_command(args.path, data=args.data, num=args.num, seed=args.seed, temperature=args.temperature,
                        protocol=args.protocol, sweep=args.sweep_temperature, out=args.out,
                        device=_device(args.device), weights=args.weights, split=args.split)


def cmd_score(args) -> int:
    from textgan.score_cli import score_command

    return score_command(args.samples, args.refs, train=args.train, second=args.second, tokenizer=args.tokenizer,
                         lowercase=not args.keep_case, protocol=args.protocol, orders=args.orders, num=args.num,
                         out=args.out, oracle=args.oracle)


def cmd_curves(args) -> int:
    from textgan.curves import curves_command

    labels = [name.strip() for name in args.labels.split(",")] if args.labels else None
    return curves_command(args.sweeps, labels, x=args.x, y=args.y, out=args.out)


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
    try:
        args = build_parser().parse_args(argv)
        handler = {"train": cmd_train, "sample": cmd_sample, "encode": cmd_encode, "data": cmd_data, "eval": cmd_eval,
                   "score": cmd_score, "curves": cmd_curves}[args.command]
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
