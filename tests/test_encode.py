"""`textgan encode` and the latent options of `textgan sample`, as a user runs them (real
subprocesses on real runs of the tiny corpus), with every bad input a one-line error, exit 2,
nothing written."""
from __future__ import annotations

import json
import subprocess
import sys

import numpy as np
import pytest
import torch

from conftest import FAST, REPO, run_cli
from textgan import checkpoint

pytestmark = pytest.mark.slow  # whole trainings and the CLI in subprocesses

CONFIG = str(REPO / "configs" / "coco_rsgan.yaml")
QUICK = [*FAST, "adversarial.d_steps=1", "eval.every=0", "log.checkpoint_every=0"]
A, B = "a man riding a bike down a street .", "a plate of food on a table ."


def _train(runs, name: str, *overrides: str):
    res = run_cli("train", CONFIG, *QUICK, f"log.dir={runs}", f"log.name={name}", *overrides, timeout=1200)
    assert res.returncode == 0, res.stderr
    return runs / name, res


@pytest.fixture(scope="module")
def runs(data_root, tmp_path_factory):
    root = tmp_path_factory.mktemp("runs")
    latent, out = _train(root, "latent", "mle.objective=elbo", "latent.free_bits=0.5", "adversarial.steps=2",
                         "adversarial.info_weight=1.0")
    plain, _ = _train(root, "plain", "adversarial.steps=0")
    none, _ = _train(root, "none", "adversarial.steps=0", "generator.prior=none")
    return {"latent": latent, "plain": plain, "none": none, "train_stdout": out.stdout}


def _one_line_error(res, *words: str) -> None:
    assert res.returncode == 2, res.stderr
    lines = res.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("textgan: error:"), res.stderr
    for word in words:
        assert word in lines[0], lines[0]


def test_train_prints_an_interpolation_after_the_samples(runs):
    out = runs["train_stdout"].splitlines()
    at = next(i for i, line in enumerate(out) if line.startswith("interpolation from"))
    assert out.index("samples (fixed z):") < at and len(out[at + 1:]) == 8


@pytest.mark.parametrize("which", ["auto", "variational", "info"])
def test_encode_text_then_decode_it(runs, tmp_path, which):
    out = tmp_path / "z.npy"
    res = run_cli("encode", str(runs["latent"]), "--text", A, "--out", str(out), "--encoder", which)
    assert res.returncode == 0, res.stderr
    z = np.load(out)
    assert z.shape == (1, 8) and z.dtype == np.float32 and np.isfinite(z).all()
    res = run_cli("sample", str(runs["latent"]), "--z", str(out), "--greedy")
    assert res.returncode == 0, res.stderr
    assert len(res.stdout.strip().splitlines()) == 1
    again = run_cli("sample", str(runs["latent"]), "--z", str(out), "--greedy")
    assert again.stdout == res.stdout  # greedy: no noise, the same sentence every time


def test_api_encode_matches_the_cli(runs, tmp_path):
    from textgan import api
    from textgan.errors import UserError

    res = run_cli("encode", str(runs["latent"]), "--text", A, "--out", str(tmp_path / "z.npy"))
    assert res.returncode == 0, res.stderr
    model = api.load(runs["latent"])
    z = model.encode([A, B])
    assert z.shape == (2, 8) and z.dtype == np.float32
    assert np.allclose(z[:1], np.load(tmp_path / "z.npy"), atol=1e-6)
    with pytest.raises(UserError, match="list of strings"):
        model.encode(A)
    with pytest.raises(UserError, match="encoder must be one of"):
        model.encode([A], encoder="pca")
    with pytest.raises(UserError, match="no sentence encoder"):
        api.load(runs["plain"]).encode([A])


def test_api_greedy_and_interpolation_match_the_cli(runs, tmp_path):
    """Model.sample(greedy=True) of an encoded z is `sample --z --greedy`; Model.interpolate is
    `sample --interpolate` (prior draws under one noise) and `--from-text/--to-text`; the same
    refusals as the CLI's, as UserError."""
    from textgan import api
    from textgan.errors import UserError

    model = api.load(runs["latent"])
    np.save(tmp_path / "z.npy", model.encode([A, B]))
    cli = run_cli("sample", str(runs["latent"]), "--z", str(tmp_path / "z.npy"), "--greedy")
    assert cli.returncode == 0, cli.stderr
    assert model.sample(z=np.load(tmp_path / "z.npy"), greedy=True) == cli.stdout.splitlines()
    assert model.sample(4, seed=3, greedy=True) == model.sample(4, seed=3, greedy=True)
    cli = run_cli("sample", str(runs["latent"]), "--interpolate", "5", "--seed", "3", "--seed-to", "4")
    assert model.interpolate(5, seed=3, seed_to=4) == cli.stdout.splitlines()
    cli = run_cli("sample", str(runs["latent"]), "--interpolate", "5", "--from-text", A, "--to-text", B)
    assert model.interpolate(5, from_text=A, to_text=B) == cli.stdout.splitlines()
    for kwargs, words in [({"steps": 0}, "positive integer"), ({"from_text": A}, "go together"),
                          ({"temperature": 0}, "> 0"), ({"from_text": A, "to_text": B, "encoder": "pca"}, "one of")]:
        with pytest.raises(UserError, match=words):
            model.interpolate(**kwargs)
    with pytest.raises(UserError, match="no temperature"):
        model.sample(3, greedy=True, temperature=0.5)
    none = api.load(runs["none"])
    with pytest.raises(UserError, match="prior=none"):
        none.sample(3, greedy=True)
    with pytest.raises(UserError, match="prior=none"):
        none.interpolate(4)


def test_encode_file_gives_one_row_per_line_and_the_encoder_mean_is_deterministic(runs, tmp_path):
    text = tmp_path / "s.txt"
    text.write_text(f"{A}\n{B}\n{A}\n", encoding="utf-8")
    res = run_cli("encode", str(runs["latent"]), "--file", str(text), "--out", str(tmp_path / "z.npy"))
    assert res.returncode == 0, res.stderr
    z = np.load(tmp_path / "z.npy")
    assert z.shape == (3, 8) and np.array_equal(z[0], z[2]) and not np.array_equal(z[0], z[1])


def test_interpolation_between_two_sentences(runs):
    res = run_cli("sample", str(runs["latent"]), "--interpolate", "6", "--from-text", A, "--to-text", B)
    assert res.returncode == 0, res.stderr
    assert len(res.stdout.strip().splitlines()) == 6


def test_encode_never_overwrites_without_force(runs, tmp_path):
    out = tmp_path / "z.npy"
    out.write_bytes(b"keep me")
    _one_line_error(run_cli("encode", str(runs["latent"]), "--text", A, "--out", str(out)), "--force")
    assert out.read_bytes() == b"keep me"
    res = run_cli("encode", str(runs["latent"]), "--text", A, "--out", str(out), "--force")
    assert res.returncode == 0 and np.load(out).shape == (1, 8)


@pytest.mark.parametrize("run, text, words", [
    ("plain", A, ["no sentence encoder", "elbo"]),
    ("none", A, ["prior=none"]),
    ("latent", "", ["empty"]),
    ("latent", "   ", ["empty"]),
    ("latent", "qqqzz xxyyq", ["no word of the run's vocabulary"]),
    ("latent", " ".join(["a"] * 200), ["200 tokens", "max_len"]),
])
def test_encode_bad_input_is_one_line_and_writes_nothing(runs, tmp_path, run, text, words):
    out = tmp_path / "z.npy"
    _one_line_error(run_cli("encode", str(runs[run]), "--text", text, "--out", str(out)), *words)
    assert not out.exists() and not list(tmp_path.iterdir())


def test_encode_file_with_an_empty_line_names_it(runs, tmp_path):
    text = tmp_path / "s.txt"
    text.write_text(f"{A}\n\n{B}\n", encoding="utf-8")
    out = tmp_path / "z.npy"
    _one_line_error(run_cli("encode", str(runs["latent"]), "--file", str(text), "--out", str(out)), "line 2")
    assert not out.exists()


@pytest.mark.parametrize("run, args, words", [
    ("latent", ["--interpolate", "4", "--from-text", A], ["--to-text"]),
    ("latent", ["--from-text", A, "--to-text", B], ["--interpolate"]),
    ("none", ["--interpolate", "4"], ["prior=none"]),
    ("none", ["--interpolate", "4", "--from-text", A, "--to-text", B], ["prior=none"]),
    ("plain", ["--interpolate", "4", "--from-text", A, "--to-text", B], ["no sentence encoder"]),
    ("latent", ["--interpolate", "4", "--from-text", "", "--to-text", B], ["empty"]),
    ("latent", ["--interpolate", "4", "--from-text", " ".join(["a"] * 200), "--to-text", B], ["200 tokens", "max_len"]),
    ("none", ["--greedy"], ["prior=none", "--greedy"]),
])
def test_sample_latent_option_errors(runs, tmp_path, run, args, words):
    out = tmp_path / "s.txt"
    _one_line_error(run_cli("sample", str(runs[run]), *args, "--out", str(out)), *words)
    assert not out.exists()


@pytest.mark.parametrize("overrides, key", [
    (["mle.objective=elbo"], "mle.objective"),
    (["adversarial.info_weight=1"], "adversarial.info_weight"),
    (["generator.noise=none"], "generator.noise"),
])
def test_train_with_a_latent_option_and_no_latent_is_refused_before_a_folder(tmp_path, overrides, key):
    res = run_cli("train", CONFIG, *QUICK, f"log.dir={tmp_path}", "log.name=x", "generator.prior=none", *overrides)
    _one_line_error(res, key, "prior")
    assert list(tmp_path.iterdir()) == []


def test_sample_z_on_a_prior_none_run_is_an_error(runs, tmp_path):
    np.save(tmp_path / "z.npy", np.zeros((2, 8), np.float32))
    _one_line_error(run_cli("sample", str(runs["none"]), "--z", str(tmp_path / "z.npy")), "prior=none")


def test_init_from_an_elbo_run_starts_the_gan_from_its_decoder(runs, tmp_path):
    """generator.init_from takes the elbo run's decoder (a run without an encoder of its own): the
    interpolation printed after training walks between two prior draws instead."""
    run_dir, res = _train(tmp_path, "gan", f"generator.init_from={runs['latent']}", "mle.epochs=0",
                          "adversarial.steps=1")
    assert "generator initialised from" in res.stderr
    out = res.stdout.splitlines()
    at = out.index("interpolation between two prior draws of z (one Gumbel noise for every point):")
    assert len(out[at + 1:]) == 8


def test_init_from_carries_the_encoder_and_the_reconstruction_head(runs, tmp_path):
    """A run that has them too starts its encoder and head from the source's: the same weights, so
    the same z for a sentence; the generator's too."""
    run_dir, res = _train(tmp_path, "gan", f"generator.init_from={runs['latent']}", "mle.epochs=0",
                          "adversarial.steps=0", "mle.objective=elbo", "latent.free_bits=0.5",
                          "adversarial.info_weight=1.0")
    assert "(with its variational encoder and reconstruction head)" in res.stderr
    theirs = checkpoint.load(checkpoint.newest(runs["latent"] / "checkpoints"))
    ours = checkpoint.load(checkpoint.newest(run_dir / "checkpoints"))
    for part in checkpoint.LATENT_PARTS:
        a, b = checkpoint.read_latent_part(theirs, part).weights, checkpoint.read_latent_part(ours, part).weights
        assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a), part
    zs = []
    for run in (runs["latent"], run_dir):
        out = tmp_path / f"{run.name}.npy"
        assert run_cli("encode", str(run), "--text", A, "--out", str(out)).returncode == 0
        zs.append(np.load(out))
    assert np.array_equal(zs[0], zs[1])


def test_init_from_a_run_whose_encoder_has_other_shapes_is_one_line_exit_2(runs, tmp_path):
    res = run_cli("train", CONFIG, *QUICK, f"log.dir={tmp_path}", f"generator.init_from={runs['latent']}",
                  "mle.objective=elbo", "latent.encoder_hidden_dim=16")
    _one_line_error(res, "latent.encoder_hidden_dim=64", "variational encoder")
    assert list(tmp_path.iterdir()) == []


def test_eval_greedy_scores_the_noise_off_decoding_of_each_z(runs, tmp_path, capsys):
    """`eval --greedy` (in this process): the samples are `sample --greedy`'s at the run's seed, the
    latent figures those of the argmax decoding, the record says so; a prior-none run is refused."""
    from textgan.cli import main

    assert main(["eval", str(runs["latent"]), "--greedy", "--num", "12", "--out", str(tmp_path / "g")]) == 0
    saved = json.loads((tmp_path / "g" / "metrics.json").read_text())
    assert saved["settings"]["decoding"] == "greedy (generator.noise=none)"
    seed = str(saved["settings"]["seed"])
    capsys.readouterr()
    assert main(["sample", str(runs["latent"]), "--greedy", "--num", "12", "--seed", seed]) == 0
    assert (tmp_path / "g" / "samples.txt").read_text().splitlines() == capsys.readouterr().out.splitlines()
    assert main(["eval", str(runs["latent"]), "--num", "12", "--out", str(tmp_path / "s")]) == 0
    sampled = json.loads((tmp_path / "s" / "metrics.json").read_text())
    assert sampled["settings"]["decoding"] == "generator.noise=gumbel"
    assert saved["metrics"]["nll_gen_mc2_tok"] == sampled["metrics"]["nll_gen_mc2_tok"]  # teacher-forced: no noise
    assert saved["metrics"]["bleu2_exact"] != sampled["metrics"]["bleu2_exact"]
    assert main(["eval", str(runs["none"]), "--greedy", "--num", "12", "--out", str(tmp_path / "n")]) == 2
    assert "prior=none" in capsys.readouterr().err and not (tmp_path / "n").exists()


def test_eval_latent_samples_sets_how_many_sentences_measure_z(runs, tmp_path, capsys):
    """`eval --latent-samples N`: latent_mi and the sensitivity over N sentences (recorded in
    metrics.json's settings; the default is the run's eval.latent_samples); refused without a latent."""
    from textgan import api
    from textgan.cli import main

    assert main(["eval", str(runs["latent"]), "--num", "12", "--out", str(tmp_path / "a")]) == 0
    assert main(["eval", str(runs["latent"]), "--num", "12", "--latent-samples", "40", "--out", str(tmp_path / "b")]) == 0
    a, b = (json.loads((tmp_path / x / "metrics.json").read_text()) for x in "ab")
    assert a["settings"]["latent_samples"] == api.load(runs["latent"]).config.eval.latent_samples != 40
    assert b["settings"]["latent_samples"] == 40
    assert a["metrics"]["bleu2_exact"] == b["metrics"]["bleu2_exact"]  # the samples scored are the same
    assert round(b["metrics"]["latent_sensitivity"] * 40) == pytest.approx(b["metrics"]["latent_sensitivity"] * 40)
    mi = next(name for name in a["metrics"] if name.startswith("latent_mi_") and not name.endswith("_max"))
    assert a["metrics"][mi] != b["metrics"][mi]
    capsys.readouterr()
    assert main(["eval", str(runs["none"]), "--latent-samples", "5", "--out", str(tmp_path / "n")]) == 2
    assert "--latent-samples" in capsys.readouterr().err and not (tmp_path / "n").exists()


def test_eval_reports_the_importance_sampled_bound_beside_the_prior_monte_carlo_one(runs, tmp_path):
    """`textgan eval` of a run with q(z | x): nll_gen_is2_tok (q as the proposal) beside nll_gen_mc2_tok,
    each named in metrics.json; at the run's seed the figure the training's last evaluation logged."""
    res = run_cli("eval", str(runs["latent"]), "--out", str(tmp_path / "ev"))
    assert res.returncode == 0, res.stderr
    written = json.loads((tmp_path / "ev" / "metrics.json").read_text())
    metrics, bounds = written["metrics"], written["nll_gen_bounds"]
    assert {"nll_gen_is2_tok", "nll_gen_mc2_tok", "latent_kl", "latent_active_units"} <= metrics.keys()
    assert "importance sampling with q(z | x)" in bounds["nll_gen_is2_tok"]
    assert "prior Monte Carlo" in bounds["nll_gen_mc2_tok"]
    assert "nll_gen_is2_tok: importance sampling" in res.stderr and f"nll_gen_is2_tok {metrics['nll_gen_is2_tok']:.6g}" in res.stdout
    logged = checkpoint.load(checkpoint.newest(runs["latent"] / "checkpoints"))["metrics"]
    for key in ("nll_gen_is2_tok", "latent_kl", "latent_active_units"):
        assert metrics[key] == pytest.approx(logged[key], rel=1e-6), key
    res = run_cli("eval", str(runs["plain"]), "--out", str(tmp_path / "plain"))
    plain = json.loads((tmp_path / "plain" / "metrics.json").read_text())
    assert "nll_gen_is2_tok" not in plain["metrics"] and list(plain["nll_gen_bounds"]) == ["nll_gen_mc2_tok"]


def test_latent_quickstart_benchmark_writes_the_targets_and_never_overwrites(runs, tmp_path):
    out = tmp_path / "latent.json"
    script = [sys.executable, str(REPO / "benchmarks" / "latent_quickstart.py"), str(runs["latent"]), "--out", str(out)]
    res = subprocess.run(script, capture_output=True, text=True, timeout=1200)
    assert res.returncode == 0, res.stderr
    result = json.loads(out.read_text())
    metrics = result["metrics"]
    for key in ("latent_mi_64", "latent_sensitivity", "self_bleu4_loo", "reconstruction_exact"):
        assert key in metrics
    assert 0.0 <= metrics["latent_mi_64"] <= metrics["latent_mi_64_max"] + 1e-9
    assert set(result["met"]) == {"latent_mi_64", "latent_sensitivity", "grammaticality"}
    before = out.read_text()
    assert subprocess.run(script, capture_output=True, text=True, timeout=1200).returncode != 0
    assert out.read_text() == before


def test_reconstruction_benchmark_scores_each_decoding_against_its_own_source(runs, tmp_path):
    out = tmp_path / "rec.json"
    script = [sys.executable, str(REPO / "benchmarks" / "reconstruction.py"), str(runs["latent"]), "--num", "30",
              "--out", str(out)]
    res = subprocess.run(script, capture_output=True, text=True, timeout=600)
    assert res.returncode == 0, res.stderr
    result = json.loads(out.read_text())
    metrics = result["metrics"]
    assert result["num"] == 30 and result["encoder"] == "variational"
    assert 0.0 <= metrics["exact_match"] <= 1.0 and 0.0 <= metrics["bleu4_own_source"] <= 1.0
    assert len(result["examples"]) == 10 and all(e["source"] and e["decoded"] is not None for e in result["examples"])
    before = out.read_text()
    assert subprocess.run(script, capture_output=True, text=True, timeout=600).returncode != 0
    assert out.read_text() == before


def test_pair_bleu_is_nltk_sentence_bleu_against_the_own_source_alone():
    from nltk.translate.bleu_score import SmoothingFunction, sentence_bleu

    import importlib.util

    spec = importlib.util.spec_from_file_location("reconstruction", REPO / "benchmarks" / "reconstruction.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    pair_bleu = module.pair_bleu
    hyps = [["a", "man", "rides", "a", "bike", "."], ["a", "plate", "of", "food", "."], []]
    srcs = [["a", "man", "riding", "a", "bike", "."], ["a", "plate", "of", "food", "."], ["x"]]
    got = pair_bleu(hyps, srcs)
    want = [sentence_bleu([s], h, smoothing_function=SmoothingFunction().method1) for h, s in zip(hyps[:2], srcs[:2])]
    assert got[:2] == pytest.approx(want, abs=1e-12) and got[1] == pytest.approx(1.0) and got[2] == 0.0
