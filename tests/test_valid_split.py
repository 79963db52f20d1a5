"""data.valid_frac: a validation split carved from the training sentences, which training-time
evaluations, mle.patience and best.pt score instead of the test set, so a run chooses its
checkpoint without looking at the test set; `textgan eval --split valid` scores it afterwards."""
from __future__ import annotations

import json

import pytest
from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

from conftest import FAST, REPO, run_cli
from textgan import checkpoint
from textgan.config import DataConfig
from textgan.corpus import prepare, split_off
from textgan.data import DataError, read_lines

pytestmark = pytest.mark.slow  # each test trains real runs through the CLI

CONFIG = str(REPO / "configs" / "coco_rsgan.yaml")
VALID = ["data.valid_frac=0.2", "eval.sample_every=0"]


def _scalars(run_dir) -> dict[str, dict[int, float]]:
    out: dict[str, dict[int, float]] = {}
    for path in sorted(run_dir.glob("events.out.tfevents.*")):
        acc = EventAccumulator(str(path), size_guidance={"scalars": 0})
        acc.Reload()
        for tag in acc.Tags()["scalars"]:
            out.setdefault(tag, {}).update({e.step: e.value for e in acc.Scalars(tag)})
    return out


def _tiny(data_root, **kw) -> DataConfig:
    return DataConfig(root=str(data_root), train="tiny/train.txt", test="tiny/test.txt", **kw)


def test_split_is_a_seeded_partition_of_the_training_sentences():
    sentences = [[str(i)] for i in range(50)]
    kept, held = split_off(sentences, 0.2, seed=0)
    assert len(held) == 10 and len(kept) == 40
    assert sorted(kept + held) == sorted(sentences)  # a partition: nothing lost, nothing twice
    assert kept == sorted(kept, key=lambda s: int(s[0])) and held == sorted(held, key=lambda s: int(s[0]))
    assert split_off(sentences, 0.2, seed=0) == (kept, held)  # deterministic
    assert split_off(sentences, 0.2, seed=1)[1] != held  # valid_seed chooses others


def test_prepare_holds_out_validation_sentences_before_building_the_vocabulary(data_root):
    full = prepare(_tiny(data_root), seed=0)
    corpus = prepare(_tiny(data_root, valid_frac=0.2), seed=0)
    assert full.valid is None and full.eval_split == "test"
    assert corpus.eval_split == "valid"
    assert corpus.train.tokens.shape[0] == 400 and corpus.valid.tokens.shape[0] == 100
    assert corpus.test.tokens.shape[0] == full.test.tokens.shape[0] == 100  # the test set is untouched
    lines = read_lines(data_root / "tiny" / "train.txt")
    assert len(corpus.valid_sentences) == 100 and all(" ".join(s) in lines for s in corpus.valid_sentences)
    # words only the validation sentences hold are unknown to the model, as a test sentence's are
    assert any(w not in corpus.vocab.stoi for s in corpus.valid_sentences for w in s)
    assert len(corpus.vocab) < len(full.vocab)
    # run.seed (and data.seed) leave the split alone: warm-started runs hold out the same sentences
    assert prepare(_tiny(data_root, valid_frac=0.2, seed=7), seed=3).valid_sentences == corpus.valid_sentences
    scored = corpus.scored_on("valid")
    assert scored.test is corpus.valid and scored.test_sentences is corpus.valid_sentences
    assert corpus.scored_on("test") is corpus
    with pytest.raises(DataError, match="no validation split"):
        full.scored_on("valid")


@pytest.mark.parametrize("frac", [0.0001, 0.999])
def test_a_fraction_that_empties_a_side_is_a_one_line_error(data_root, frac):
    with pytest.raises(DataError, match=f"data.valid_frac={frac} holds out") as err:
        prepare(_tiny(data_root, valid_frac=frac), seed=0)
    assert "\n" not in str(err.value)


@pytest.mark.parametrize("value", ["1.0", "-0.1"])
def test_cli_rejects_a_fraction_outside_zero_to_one(tmp_path, data_root, value):
    res = run_cli("train", CONFIG, *FAST, f"log.dir={tmp_path}", "log.name=bad", f"data.valid_frac={value}")
    assert res.returncode != 0
    assert "valid_frac" in res.stderr and "[0, 1)" in res.stderr
    assert len(res.stderr.strip().splitlines()) == 1
    assert not (tmp_path / "bad").exists()


def test_training_scores_the_validation_split_and_eval_scores_either(tmp_path, data_root):
    """TensorBoard holds valid/* and no eval/*; mle.patience and best.pt follow the validation
    numbers; `textgan eval --split valid` at the training evaluation's seed repeats them exactly,
    while the default split (test) gives other numbers."""
    res = run_cli("train", CONFIG, *FAST, f"log.dir={tmp_path}", "log.name=v", *VALID, "mle.epochs=3",
                  "mle.lr=0.1", "mle.patience=5", "adversarial.steps=4", "eval.every=2",
                  "log.best_metric=bleu2_exact")
    assert res.returncode == 0, res.stderr
    assert "400 train / 100 validation / 100 test sentences" in res.stderr
    assert "training-time evaluations score the valid split" in res.stderr
    assert "final metrics (valid split)" in res.stderr
    run_dir = tmp_path / "v"
    tags = _scalars(run_dir)
    assert not any(t.startswith("eval/") for t in tags)
    bleu, nll = tags["valid/bleu2_exact"], tags["valid/nll_gen_mc2_tok"]
    assert len(bleu) == 3 + 2  # three MLE epochs, adversarial steps 2 and 4
    assert "hparam/valid_bleu2_exact" in tags
    # mle.patience kept the epoch of lowest validation NLL_gen
    mle_steps = sorted(nll)[:3]
    best_mle = checkpoint.load(run_dir / "checkpoints" / "mle_best.pt")
    assert best_mle["progress"]["mle_best"] == pytest.approx(min(nll[s] for s in mle_steps), rel=1e-6)
    # best.pt holds the evaluation of highest validation BLEU-2
    best = checkpoint.load(run_dir / "checkpoints" / "best.pt")
    assert best["metrics_split"] == "valid"
    assert best["metrics"]["bleu2_exact"] == pytest.approx(max(bleu.values()), rel=1e-6)
    last = checkpoint.load(checkpoint.newest(run_dir / "checkpoints"))
    seed = 0 + 13  # run.seed + 13: the training evaluation's seed
    out_valid, out_test = tmp_path / "ev", tmp_path / "et"
    for split, out in (("valid", out_valid), ("test", out_test)):
        ev = run_cli("eval", str(run_dir), "--split", split, "--seed", str(seed), "--num", "40", "--out", str(out))
        assert ev.returncode == 0, ev.stderr
    valid = json.loads((out_valid / "metrics.json").read_text())
    test = json.loads((out_test / "metrics.json").read_text())
    assert valid["settings"]["split"] == "valid" and "validation split of" in valid["settings"]["test"]
    assert test["settings"]["split"] == "test" and test["settings"]["test"].endswith("tiny/test.txt")
    for name in ("bleu2_exact", "nll_gen_mc2_tok", "self_bleu2_loo"):
        assert valid["metrics"][name] == pytest.approx(last["metrics"][name], rel=1e-6), name
    assert test["metrics"]["nll_gen_mc2_tok"] != pytest.approx(valid["metrics"]["nll_gen_mc2_tok"], rel=1e-3)
    assert test["metrics"]["bleu2_exact"] != pytest.approx(valid["metrics"]["bleu2_exact"], rel=1e-3)


def test_eval_split_errors_are_one_line(tmp_path, data_root):
    res = run_cli("train", CONFIG, *FAST, f"log.dir={tmp_path}", "log.name=plain", "adversarial.steps=0")
    assert res.returncode == 0, res.stderr
    run_dir = tmp_path / "plain"
    cases = [(["--split", "valid"], "trained without a validation split"),
             (["--split", "valid", "--data", str(data_root / "tiny" / "test.txt")], "cannot be scored with --split valid"),
             (["--split", "dev"], "invalid choice")]
    for args, message in cases:
        ev = run_cli("eval", str(run_dir), "--num", "8", "--out", str(tmp_path / "e"), *args)
        assert ev.returncode != 0 and message in ev.stderr, ev.stderr
        assert len([line for line in ev.stderr.splitlines() if line.strip()]) <= 2  # argparse adds its usage line
    assert not (tmp_path / "e").exists()  # nothing written


def test_warm_start_from_another_split_warns(tmp_path, data_root):
    """A GAN phase scoring a validation split its source run trained on would flatter itself."""
    src = run_cli("train", CONFIG, *FAST, f"log.dir={tmp_path}", "log.name=src", "adversarial.steps=0")
    assert src.returncode == 0, src.stderr
    warm = ["mle.epochs=0", f"generator.init_from={tmp_path / 'src'}", "adversarial.steps=1", *VALID]
    res = run_cli("train", CONFIG, *FAST, f"log.dir={tmp_path}", "log.name=gan", *warm)
    assert res.returncode == 0, res.stderr
    assert "warning: generator.init_from" in res.stderr and "data.valid_frac=0.0" in res.stderr
    same = run_cli("train", CONFIG, *FAST, f"log.dir={tmp_path}", "log.name=src2", "adversarial.steps=0", *VALID)
    assert same.returncode == 0, same.stderr
    warm[1] = f"generator.init_from={tmp_path / 'src2'}"
    res = run_cli("train", CONFIG, *FAST, f"log.dir={tmp_path}", "log.name=gan2", *warm)
    assert res.returncode == 0, res.stderr
    assert "warning: generator.init_from" not in res.stderr


def test_a_validation_file_of_its_own(tmp_path, data_root):
    """data.valid names a file: the training sentences stay whole, evaluations score the file."""
    lines = read_lines(data_root / "tiny" / "train.txt")
    (tmp_path / "valid.txt").write_text("\n".join(lines[:30]) + "\n", encoding="utf-8")
    cfg = _tiny(data_root, valid=str(tmp_path / "valid.txt"))
    corpus = prepare(cfg, seed=0)
    assert corpus.train.tokens.shape[0] == 500 and corpus.valid.tokens.shape[0] == 30
    assert corpus.eval_split == "valid" and len(corpus.vocab) == len(prepare(_tiny(data_root), seed=0).vocab)
    res = run_cli("train", CONFIG, *FAST, f"log.dir={tmp_path}", "log.name=f", f"data.valid={tmp_path / 'valid.txt'}",
                  "adversarial.steps=0", "eval.sample_every=0")
    assert res.returncode == 0, res.stderr
    assert "500 train / 30 validation / 100 test sentences" in res.stderr
    assert "valid/bleu2_exact" in _scalars(tmp_path / "f")
    ev = run_cli("eval", str(tmp_path / "f"), "--split", "valid", "--num", "8", "--out", str(tmp_path / "e"))
    assert ev.returncode == 0, ev.stderr
    assert json.loads((tmp_path / "e" / "metrics.json").read_text())["settings"]["test"].endswith("valid.txt")


@pytest.mark.parametrize("overrides,message", [
    (["data.valid=tiny/test.txt", "data.valid_frac=0.1"], "set one of them"),
    (["data.source=grammar", "data.valid=tiny/test.txt"], "needs source: files"),
    (["data.valid=no/such/file.txt"], "no/such/file.txt"),
])
def test_validation_config_errors_are_one_line(tmp_path, data_root, overrides, message):
    res = run_cli("train", CONFIG, *FAST, f"log.dir={tmp_path}", "log.name=bad", *overrides)
    assert res.returncode != 0 and message in res.stderr, res.stderr
    assert len(res.stderr.strip().splitlines()) == 1
    assert not (tmp_path / "bad").exists()
