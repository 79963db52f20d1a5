"""`textgan score`: a text file's metrics equal the library's on the same tokens, named as
`textgan eval` names them; real corpora end to end; bad input is one line and exit 2."""
from __future__ import annotations

import json

import pytest

from conftest import run_cli
from textgan.data import read_lines, tokenize
from textgan.metrics import bleu, self_bleu, unseen_fraction
from textgan.score_cli import score_text

pytestmark = pytest.mark.slow  # the score CLI in subprocesses on the real corpora


def tokens(path) -> list[list[str]]:
    return [tokenize(line, "nltk") for line in read_lines(path)]


def test_score_text_names_and_values_follow_the_protocols():
    refs = [["a", "cat", "sat", "."], ["a", "dog", "ran", "home", "."], ["the", "cat", "ran", "."]]
    hyps = [["a", "cat", "ran", "."], ["a", "dog", "sat", "."], ["a", "toilet", "."]]
    second = [["the", "dog", "sat", "."], ["a", "cat", "."]]
    m = score_text(hyps, refs, [2, 3], protocol="both", train=[["a", "dog", "sat", "."]], second=second)
    assert list(m) == ["bleu2_exact", "bleu2_exact_se", "self_bleu2_loo", "bleu3_exact", "bleu3_exact_se",
                       "self_bleu3_loo", "bleu2_texygen", "bleu2_texygen_se", "self_bleu2_texygen",
                       "bleu3_texygen", "bleu3_texygen_se", "self_bleu3_texygen",
                       "train_copy_frac", "ref_unseen_frac", "mean_length"]
    assert m["bleu3_exact"] == bleu(hyps, refs, max_n=3)
    assert m["self_bleu2_loo"] == self_bleu(hyps, max_n=2)
    assert m["self_bleu2_texygen"] == self_bleu(hyps, max_n=2, protocol="texygen", second=second)
    assert m["train_copy_frac"] == pytest.approx(1 / 3)
    assert m["ref_unseen_frac"] == pytest.approx(1 / 3)  # "toilet" is in no reference
    assert m["mean_length"] == pytest.approx(11 / 3)
    only = score_text(hyps, refs, [2], protocol="texygen")  # no second set: no texygen Self-BLEU
    assert list(only) == ["bleu2_texygen", "bleu2_texygen_se", "ref_unseen_frac", "mean_length"]


def test_unseen_fraction_counts_samples_not_tokens():
    assert unseen_fraction([["x", "y"], ["a"], ["b", "z"]], [["a", "b"]]) == pytest.approx(2 / 3)


def test_score_cli_on_real_files_matches_the_library(data_root, tmp_path):
    """Three training captions, one test caption and one made-up sentence, scored as a file against
    the tiny test set: values in the JSON equal the library's on the same nltk tokens."""
    train_lines, test_lines = read_lines(data_root / "tiny/train.txt"), read_lines(data_root / "tiny/test.txt")
    samples = tmp_path / "samples.txt"
    samples.write_text("\n".join(train_lines[:3] + [test_lines[0], "zebra zebra quantum toaster ."]) + "\n")
    out = tmp_path / "m.json"
    res = run_cli("score", str(samples), "--refs", str(data_root / "tiny/test.txt"), "--train",
                  str(data_root / "tiny/train.txt"), "--tokenizer", "nltk", "--orders", "2,4", "--out", str(out))
    assert res.returncode == 0, res.stderr
    record = json.loads(out.read_text())
    m, hyps, refs = record["metrics"], tokens(samples), tokens(data_root / "tiny/test.txt")
    assert m["bleu2_exact"] == bleu(hyps, refs, max_n=2) and m["bleu4_exact"] == bleu(hyps, refs, max_n=4)
    assert m["self_bleu4_loo"] == self_bleu(hyps, max_n=4)
    assert m["train_copy_frac"] == pytest.approx(3 / 5)
    assert m["ref_unseen_frac"] == unseen_fraction(hyps, refs) > 0
    assert record["settings"]["num"] == 5 and record["settings"]["tokenizer"] == "nltk"
    printed = dict(line.split() for line in res.stdout.splitlines())
    assert set(printed) == set(m) and float(printed["bleu2_exact"]) == pytest.approx(m["bleu2_exact"], rel=1e-5)


def test_score_cli_test_set_against_itself_is_perfect(data_root):
    """Every test caption is one of the references, so BLEU-n is exactly 1 for each of them."""
    test = str(data_root / "tiny/test.txt")
    res = run_cli("score", test, "--refs", test, "--tokenizer", "nltk", "--protocol", "texygen", "--orders", "3")
    assert res.returncode == 0, res.stderr
    printed = dict(line.split() for line in res.stdout.splitlines())
    assert float(printed["bleu3_texygen"]) == 1.0 and float(printed["ref_unseen_frac"]) == 0.0
    assert "needs --second" in res.stderr


@pytest.mark.parametrize("args, message", [
    (["missing.txt", "--refs", "{test}"], "not found"),
    (["{test}", "--refs", "{test}", "--orders", "2,x"], "--orders"),
    (["{test}", "--refs", "{test}", "--orders", "0"], ">= 1"),
    (["{one}", "--refs", "{test}"], "at least 2"),
    (["{test}", "--refs", "{test}", "--protocol", "nltk"], "invalid choice"),
    (["{test}", "--refs", "{test}", "--num", "0"], ">= 1"),
    (["{test}", "--refs", "{test}", "--out", "{nodir}/m.json"], "existing folder"),
])
def test_score_cli_bad_input_is_one_line_and_exit_2(data_root, tmp_path, args, message):
    one = tmp_path / "one.txt"
    one.write_text("a cat .\n")
    fill = {"test": str(data_root / "tiny/test.txt"), "one": str(one), "nodir": str(tmp_path / "no" / "dir")}
    res = run_cli("score", *[a.format(**fill) for a in args], cwd=tmp_path)
    assert res.returncode == 2
    lines = res.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("textgan: error:") and message in lines[0], res.stderr


def test_score_cli_never_replaces_an_existing_out_file(data_root, tmp_path):
    out = tmp_path / "m.json"
    out.write_text("keep me\n")
    test = str(data_root / "tiny/test.txt")
    res = run_cli("score", test, "--refs", test, "--out", str(out))
    assert res.returncode == 2 and "already exists" in res.stderr
    assert out.read_text() == "keep me\n"


def test_score_cli_oracle_ids_give_the_oracles_nll(data_root, tmp_path):
    """A file of oracle samples (ids, SeqGAN's format) scores NLL_oracle equal to the oracle's own
    nll on the same ids; the file used as its own training set is copied entirely."""
    import torch

    from textgan.oracle import OracleLSTM

    params = data_root / "oracle" / "seqgan_target_params.npz"
    ids = OracleLSTM.from_npz(params).sample(60, generator=torch.Generator().manual_seed(3))
    samples = tmp_path / "ids.txt"
    samples.write_text("\n".join(" ".join(map(str, row)) for row in ids.tolist()) + "\n")
    out = tmp_path / "m.json"
    res = run_cli("score", str(samples), "--oracle", str(params), "--train", str(samples), "--out", str(out))
    assert res.returncode == 0, res.stderr
    m = json.loads(out.read_text())["metrics"]
    assert m == {"nll_oracle": OracleLSTM.from_npz(params).nll(ids), "train_copy_frac": 1.0}
    assert 5.0 < m["nll_oracle"] < 6.5  # the oracle's entropy per token is about 5.75


@pytest.mark.parametrize("content, message", [
    ("1 2 3\n4 five 6\n", "sentence 2 is not token ids"),
    ("1 2 3\n4 5\n", "sentence 2 has 2 ids"),
    ("1 2 3\n4 5 5000\n", "0..4999"),
])
def test_score_cli_oracle_bad_id_files(data_root, tmp_path, content, message):
    samples = tmp_path / "ids.txt"
    samples.write_text(content)
    res = run_cli("score", str(samples), "--oracle", str(data_root / "oracle" / "seqgan_target_params.npz"))
    lines = res.stderr.strip().splitlines()
    assert res.returncode == 2 and len(lines) == 1 and message in lines[0], res.stderr


def test_score_cli_needs_exactly_one_of_refs_and_oracle(data_root):
    test, params = str(data_root / "tiny/test.txt"), str(data_root / "oracle" / "seqgan_target_params.npz")
    for args in ([test], [test, "--refs", test, "--oracle", params]):
        res = run_cli("score", *args)
        assert res.returncode == 2 and "one of the two" in res.stderr
    for option in (["--protocol", "both"], ["--orders", "2"]):  # text options with ids
        res = run_cli("score", test, "--oracle", params, *option)
        assert res.returncode == 2 and "apply to text" in res.stderr
