"""Every flag of every subcommand given a wrong value: one line on stderr, exit 2, no traceback,
nothing written. The cases call `textgan.cli.main` in this process (a traceback would fail the
test as an uncaught exception); a few run the real CLI in a subprocess as well."""
from __future__ import annotations

import argparse
import pickle

import numpy as np
import pytest

from conftest import FAST, REPO, run_cli
from textgan.cli import build_parser, main

CONFIG = str(REPO / "configs" / "coco_rsgan.yaml")


@pytest.fixture(scope="module")
def paths(data_root, tmp_path_factory):
    """A small MLE-only run (latent size 8, no weight average) and the files the cases point at."""
    tmp = tmp_path_factory.mktemp("args")
    assert main(["train", CONFIG, *FAST, f"log.dir={tmp}", "adversarial.steps=0"]) == 0
    files = {"run": tmp / "coco_rsgan", "tmp": tmp, "test": data_root / "tiny" / "test.txt"}
    np.save(tmp / "good.npy", np.zeros((3, 8), np.float32))
    arrays = {"nan": np.array([[0.0] * 8, [np.nan] + [0.0] * 7]), "inf": np.full((2, 8), np.inf),
              "dim": np.zeros((3, 5)), "ints": np.zeros((3, 8), np.int64), "cube": np.zeros((2, 2, 8)),
              "empty": np.zeros((0, 8)), "strings": np.array(["a", "b"])}
    for name, arr in arrays.items():
        np.save(tmp / f"{name}.npy", arr)
    with open(tmp / "pickled.npy", "wb") as fh:  # an object array: loading it would need a pickle
        np.save(fh, np.array([{"a": 1}], dtype=object), allow_pickle=True)
    (tmp / "garbage.npy").write_bytes(pickle.dumps("not an array"))
    (tmp / "a_file").write_text("x\n")
    (tmp / "no_ckpt" / "checkpoints").mkdir(parents=True)  # a run stopped before its first checkpoint
    (tmp / "exists.txt").write_text("keep me\n")
    (tmp / "foreign.txt").write_text("zzq qqx wwv\nxxv yyq zzv\n")
    (tmp / "one.csv").write_text("temperature,bleu2,self_bleu2\n1.0,0.5,0.4\n2.0,0.4,0.3\n")
    (tmp / "notcsv.csv").write_text("temperature,bleu2\nhot,cold\nwarm,cool\n")
    return files


def cases(p) -> list[tuple[list[str], str]]:
    """(argv, a phrase the one-line error must hold); every option of every subcommand appears."""
    run, tmp, test = str(p["run"]), p["tmp"], str(p["test"])
    npy = lambda name: str(tmp / f"{name}.npy")  # noqa: E731
    sweep = str(tmp / "one.csv")
    return [
        # train
        (["train"], "needs a config file"),
        (["train", CONFIG, "--resume", run], "not both"),
        (["train", "--resume", run, "--force"], "drop one of them"),
        (["train", "--resume", str(tmp / "nowhere")], "not a run folder"),
        (["train", str(tmp / "missing.yaml")], "not found"),
        (["train", CONFIG, "mle.epochs=-1"], "mle.epochs"),
        (["train", CONFIG, "mle.epochz=1"], "unknown key"),
        (["train", CONFIG, "log.interval_s=-1"], "log.interval_s"),
        (["train", CONFIG, "data.max_oov=2"], "data.max_oov"),
        (["train", CONFIG, "data.max_len_ceiling=-3"], "data.max_len_ceiling"),
        (["train", CONFIG, "--bogus"], "unrecognized arguments"),
        # sample
        (["sample", str(tmp / "nowhere")], "not found"),
        (["sample", str(tmp)], "not a run folder"),
        (["sample", run, "--num", "0"], "must be >= 1"),
        (["sample", run, "--num", "ten"], "expected a whole number"),
        (["sample", run, "--seed", "-1"], "from 0 to 2**63-1"),
        (["sample", run, "--seed", str(2**64)], "from 0 to 2**63-1"),
        (["sample", run, "--seed", "1.5"], "expected a whole number"),
        (["sample", run, "--temperature", "0"], "finite number > 0"),
        (["sample", run, "--temperature", "nan"], "finite number > 0"),
        (["sample", run, "--temperature", "inf"], "finite number > 0"),
        (["sample", run, "--temperature", "warm"], "expected a number"),
        (["sample", run, "--z", npy("missing")], "cannot read latent file"),
        (["sample", run, "--z", npy("nan")], "row 1 holds NaN or infinity"),
        (["sample", run, "--z", npy("inf")], "NaN or infinity"),
        (["sample", run, "--z", npy("dim")], "(N, 8)"),
        (["sample", run, "--z", npy("ints")], "dtype int64"),
        (["sample", run, "--z", npy("cube")], "shape (2, 2, 8)"),
        (["sample", run, "--z", npy("empty")], "no latent vectors"),
        (["sample", run, "--z", npy("strings")], "give floats"),
        (["sample", run, "--z", npy("pickled")], "cannot read latent file"),
        (["sample", run, "--z", npy("garbage")], "cannot read latent file"),
        (["sample", run, "--z", npy("good"), "--interpolate", "3"], "give one of them"),
        (["sample", run, "--z", npy("good"), "--num", "3"], "drop --num"),
        (["sample", run, "--interpolate", "0"], "must be >= 1"),
        (["sample", run, "--interpolate", "4", "--num", "4"], "drop --num"),
        (["sample", run, "--seed-to", "2"], "add --interpolate"),
        (["sample", run, "--interpolate", "3", "--seed-to", "x"], "expected a whole number"),
        (["sample", run, "--out", str(tmp / "exists.txt")], "already exists"),
        (["sample", run, "--out", str(tmp / "no_folder" / "s.txt")], "does not exist"),
        (["sample", run, "--out", str(tmp / "a_file" / "s.txt")], "does not exist"),
        (["sample", run, "--out", str(tmp)], "is a folder"),
        (["sample", run, "--force"], "give --out"),
        (["sample", run, "--save-z", str(tmp / "exists.txt")], "already exists"),
        (["sample", run, "--save-z", str(tmp / "no_folder" / "z.npy")], "does not exist"),
        (["sample", run, "--save-z", str(tmp)], "is a folder"),
        (["sample", run, "--out", str(tmp / "same"), "--save-z", str(tmp / "same")], "same file"),
        (["sample", run, "--device", "gpu"], "not a device"),
        (["sample", run, "--device", "cuda:x"], "not a device"),
        (["sample", run, "--device", "cuda:0"], "CUDA is not available"),
        (["sample", run, "--weights", "best"], "invalid choice"),
        (["sample", run, "--weights", "average"], "no weight average"),
        (["sample", str(tmp / "no_ckpt")], "train the run until it writes one"),
        (["sample", run, "--from-text", "a man"], "go together"),
        (["sample", run, "--from-text", "a man", "--to-text", "a dog"], "need --interpolate K"),
        (["sample", run, "--interpolate", "3", "--from-text", "a man", "--to-text", "a dog", "--seed-to", "2"],
         "give one of them"),
        (["sample", run, "--encoder", "info"], "add them or drop --encoder"),
        (["sample", run, "--class", "people"], "not a conditional run"),
        (["sample", run, "--source", "a man rides a horse"], "not conditioned on source sentences"),
        (["sample", run, "--interpolate", "3", "--from-text", "a man", "--to-text", "a dog", "--encoder", "pca"],
         "invalid choice"),
        (["sample", run, "--greedy", "--interpolate", "3"], "drop one of them"),
        (["sample", run, "--interpolate", "3", "--from-text", "a man", "--to-text", "a dog"], "no sentence encoder"),
        # encode (the run has no sentence encoder: an MLE-only nll run)
        (["encode", str(tmp / "nowhere"), "--text", "a man", "--out", npy("z")], "not found"),
        (["encode", run, "--out", npy("z")], "is required"),
        (["encode", run, "--text", "a man", "--file", test, "--out", npy("z")], "not allowed with"),
        (["encode", run, "--file", str(tmp / "missing.txt"), "--out", npy("z")], "not found"),
        (["encode", run, "--text", "a man", "--out", str(tmp / "exists.txt")], "already exists"),
        (["encode", run, "--text", "a man", "--out", str(tmp / "no_folder" / "z.npy")], "does not exist"),
        (["encode", run, "--text", "a man", "--out", str(tmp / "exists.txt"), "--force"], "no sentence encoder"),
        (["encode", run, "--text", "a man", "--out", npy("z"), "--encoder", "pca"], "invalid choice"),
        (["encode", run, "--text", "a man", "--out", npy("z"), "--device", "gpu"], "not a device"),
        (["encode", run, "--text", "a man", "--out", npy("z"), "--weights", "average"], "no weight average"),
        (["encode", run, "--text", "a man", "--out", npy("z")], "no sentence encoder"),
        # eval
        (["eval", str(tmp / "nowhere")], "not found"),
        (["eval", run, "--data", str(tmp / "missing.txt")], "not found"),
        (["eval", run, "--data", str(tmp / "foreign.txt")], "outside the run's vocabulary"),
        (["eval", run, "--data", test, "--split", "valid"], "cannot be scored with --split valid"),
        (["eval", run, "--split", "valid"], "without a validation split"),
        (["eval", run, "--split", "dev"], "invalid choice"),
        (["eval", run, "--num", "1"], "must be >= 2"),
        (["eval", run, "--num", "many"], "expected a whole number"),
        (["eval", run, "--self-bleu-max", "1"], "must be >= 2"),
        (["eval", run, "--latent-samples", "0"], "must be >= 1"),
        (["eval", run, "--seed", "-5"], "from 0 to 2**63-1"),
        (["eval", run, "--temperature", "-1"], "finite number > 0"),
        (["eval", run, "--protocol", "corpus"], "invalid choice"),
        (["eval", run, "--sweep-temperature", "2:1:3"], "bad --sweep-temperature"),
        (["eval", run, "--sweep-temperature", "a:b:c"], "bad --sweep-temperature"),
        (["eval", run, "--sweep-temperature", "0.5:1:3", "--temperature", "1"], "drop --temperature"),
        (["eval", run, "--sweep-temperature", "0.5:1:3", "--protocol", "both"], "drop --temperature / --protocol"),
        (["eval", run, "--out", str(tmp / "a_file")], "is a file"),
        (["eval", run, "--out", str(tmp / "a_file" / "sub")], "is a file, not a folder"),
        (["eval", run, "--force"], "give --out"),
        (["eval", run, "--max-oov", "2"], "from 0 to 1"),
        (["eval", run, "--max-oov", "some"], "expected a number"),
        (["eval", run, "--interval-s", "-1"], "seconds >= 0"),
        (["eval", run, "--interval-s", "inf"], "seconds >= 0"),
        (["eval", run, "--interval-s", "often"], "expected a number of seconds"),
        (["eval", run, "--device", "tpu"], "not a device"),
        (["eval", run, "--weights", "average"], "no weight average"),
        (["eval", run, "--sweep-temperature", "0.5:1:3", "--profile"], "drop it or drop --sweep-temperature"),
        (["eval", run, "--greedy", "--temperature", "0.5"], "no temperature changes"),
        (["eval", str(tmp / "no_ckpt")], "train the run until it writes one"),
        (["eval", run, "--lm-score", "--exposure-bias", "--sweep-temperature", "0.5:1:3"], "scores one temperature"),
        (["eval", run, "--fed", "--num", "20"], "at least 32"),
        (["eval", run, "--mauve", "--num", "20"], "MAUVE compares equal-size sets of at least 32"),
        # score
        (["score", str(tmp / "missing.txt"), "--refs", test], "not found"),
        (["score", test], "one of the two"),
        (["score", test, "--refs", str(tmp / "missing.txt")], "--refs"),
        (["score", test, "--refs", test, "--oracle", str(tmp / "a_file")], "one of the two"),
        (["score", test, "--oracle", str(tmp / "missing.npz")], "--oracle"),
        (["score", test, "--refs", test, "--train", str(tmp / "missing.txt")], "--train"),
        (["score", test, "--refs", test, "--second", str(tmp / "missing.txt")], "--second"),
        (["score", test, "--refs", test, "--second", test], "add --protocol texygen"),
        (["score", test, "--refs", test, "--tokenizer", "spacy"], "invalid choice"),
        (["score", test, "--oracle", str(tmp / "a_file"), "--keep-case"], "leave them out with --oracle"),
        (["score", test, "--refs", test, "--protocol", "corpus"], "invalid choice"),
        (["score", test, "--refs", test, "--orders", "2,x"], "--orders"),
        (["score", test, "--refs", test, "--orders", "0"], "must all be >= 1"),
        (["score", test, "--refs", test, "--num", "0"], "must be >= 1"),
        (["score", test, "--refs", test, "--out", str(tmp / "exists.txt")], "already exists"),
        (["score", test, "--refs", test, "--out", str(tmp / "no_folder" / "m.json")], "does not exist"),
        (["score", test, "--refs", test, "--force"], "give --out"),
        (["score", test, "--oracle", str(tmp / "a_file"), "--fed"], "drop them"),
        (["score", test, "--oracle", str(tmp / "a_file"), "--mauve"], "drop them"),
        (["score", test, "--refs", test, "--seed", "x"], "invalid int value"),
        (["score", str(tmp / "foreign.txt"), "--refs", test], "appear in no reference"),
        (["score", test, "--refs", test, "--max-oov", "-0.1"], "from 0 to 1"),
        (["score", test, "--refs", test, "--interval-s", "nan"], "seconds >= 0"),
        # curves
        (["curves", sweep], "two sweep.csv files"),
        (["curves", sweep, str(tmp / "missing.csv")], "not found"),
        (["curves", sweep, str(tmp / "notcsv.csv")], "not a row of numbers"),
        (["curves", sweep, sweep, "--labels", "a,b,c"], "one per file"),
        (["curves", sweep, sweep, "--x", "nope"], "no column 'nope'"),
        (["curves", sweep, sweep, "--y", "nope"], "no column 'nope'"),
        (["curves", sweep, sweep, "--out", str(tmp / "a_file")], "is a file"),
        (["curves", sweep, sweep, "--force"], "give --out"),
        # configs
        (["configs", "--copy", "nosuchconfig", str(tmp)], "unknown config 'nosuchconfig'; choose one of: "),
        (["configs", "--copy", "quickstart", str(tmp / "exists.txt")], "already exists"),
        (["configs", "--copy", "quickstart", str(tmp / "no_folder" / "q.yaml")], "does not exist"),
        (["configs", "--copy", "quickstart", str(tmp / "new_folder") + "/"], "not an existing folder"),
        (["configs", "--force"], "--force applies only to --copy NAME"),
        (["configs", str(tmp)], "DEST applies only to --copy NAME"),
        # data get
        (["data", "get", "imagenet"], "unknown dataset"),
        (["data", "get", "coco", "--base-url", "ftp://mirror"], "--base-url"),
        (["data", "get", "coco", "--dest", str(tmp / "a_file"), "--force"], "choose another --dest"),
        (["data"], "required"),
        (["frobnicate"], "invalid choice"),
    ]


def test_every_wrong_value_is_one_line_and_exit_2(paths, capsys):
    before = sorted(p.name for p in paths["tmp"].iterdir())
    for argv, needle in cases(paths):
        code = main(argv)
        err = capsys.readouterr().err
        lines = [line for line in err.splitlines() if line.strip()]
        assert code == 2, (argv, err)
        assert lines and lines[-1].startswith("textgan: error:") and needle in lines[-1], (argv, err)
        # the error is the one line, apart from the vocabulary share that eval --data and score report first
        assert all(line.startswith("vocabulary:") for line in lines[:-1]), (argv, err)
        assert "Traceback" not in err and "without --resume" not in err  # (a hint for `train` only)
    assert sorted(p.name for p in paths["tmp"].iterdir()) == before  # nothing written anywhere
    assert not (paths["run"] / "eval").exists()
    assert (paths["tmp"] / "exists.txt").read_text() == "keep me\n"


def _options(parser: argparse.ArgumentParser, prefix: list[str]):
    """(command words, option strings) of every subcommand, recursively."""
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for name, sub in action.choices.items():
                yield from _options(sub, prefix + [name])
    if prefix:
        opts = [o for a in parser._actions for o in a.option_strings[-1:] if o != "--help"]
        yield prefix, opts


def test_the_cases_walk_every_flag_of_every_subcommand(paths):
    covered: dict[tuple, set] = {}
    for argv, _ in cases(paths):
        words = tuple(w for w in argv[:2] if not w.startswith("-")
                      and w in ("train", "sample", "encode", "eval", "score", "curves", "configs", "data", "get"))
        covered.setdefault(words, set()).update(a for a in argv if a.startswith("--"))
    for words, opts in _options(build_parser(), []):
        if words == ["data"]:
            continue  # only the `get` subcommand
        missing = set(opts) - covered.get(tuple(words), set())
        assert not missing, (words, missing)


@pytest.mark.parametrize("argv, needle", [
    (["sample", "{run}", "--z", "{tmp}/nan.npy"], "NaN or infinity"),
    (["eval", "{run}", "--device", "cuda:0"], "CUDA is not available"),
    (["sample", "{run}", "--interpolate", "3", "--z", "{tmp}/good.npy"], "give one of them"),
])
def test_real_cli_one_line_exit_2(paths, argv, needle):
    res = run_cli(*[a.format(run=paths["run"], tmp=paths["tmp"]) for a in argv])
    assert res.returncode == 2 and needle in res.stderr, res.stderr
    assert len(res.stderr.strip().splitlines()) == 1 and "Traceback" not in res.stderr
    assert res.stdout == ""


def test_version_help_defaults_and_device_help(capsys):
    with pytest.raises(SystemExit) as stop:
        main(["--version"])
    assert stop.value.code == 0
    from textgan import __version__
    assert capsys.readouterr().out.strip() == f"textgan {__version__}"
    with pytest.raises(SystemExit):
        main(["eval", "--help"])
    text = " ".join(capsys.readouterr().out.split())
    assert "(default: cpu)" in text and "where the model runs: cpu, cuda or cuda:N" in text
    assert "(default: 0.25)" in text  # --max-oov
