"""Evaluation: NLL_gen against a step-by-step teacher-forced reference (plain and latent
generators), the temperature-sweep helpers, and `textgan eval` end to end in subprocesses."""
from __future__ import annotations

import json
import math
import subprocess
import sys
import time

import pytest
import torch
from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

from conftest import FAST, REPO, run_cli, tiny_mle_run
from textgan.data import read_lines, tokenize
from textgan.errors import UserError
from textgan.metrics.nll import nll_gen, sequence_nll
from textgan.models.generator import Generator
from textgan.sweep import parse_spec, sample_entropy

V, T, N, EOS = 11, 7, 9, 2


def make_generator(prior: str) -> Generator:
    torch.manual_seed(0)
    return Generator(vocab_size=V, emb_dim=8, hidden_dim=12, num_layers=2, latent_dim=4, prior=prior,
                     banned=[0, 1]).eval()


def make_data() -> tuple[torch.Tensor, torch.Tensor]:
    """Token rows ending in EOS then padding, one row cut without EOS, (N, T) and lengths (N,)."""
    g = torch.Generator().manual_seed(1)
    lengths = torch.randint(1, T + 1, (N,), generator=g)
    lengths[0] = T
    tokens = torch.zeros(N, T, dtype=torch.long)
    for i, n in enumerate(lengths.tolist()):
        tokens[i, :n] = torch.randint(3, V, (n,), generator=g)
        if i > 0:
            tokens[i, n - 1] = EOS
    return tokens, lengths


@torch.no_grad()
def stepwise_log_prob(gen: Generator, tokens: torch.Tensor, lengths: torch.Tensor, z: torch.Tensor,
                      temperature: float = 1.0) -> list[float]:
    """log p(x | z) of each row, one LSTM step at a time: BOS first, then the gold tokens; at a
    temperature, under the distribution sample() draws from (logits / T, banned ids kept out)."""
    state = gen.init_state(z)
    inp = torch.full((tokens.shape[0], 1), gen.bos_id, dtype=torch.long)
    out = [0.0] * tokens.shape[0]
    for t in range(tokens.shape[1]):
        hidden, state = gen.lstm(gen.embedding(inp), state)  # (B, 1, H)
        logits = gen.out(hidden[:, 0]).double() / temperature + gen.logit_mask.double()
        logp = torch.log_softmax(logits, dim=-1)  # (B, V)
        for i in range(tokens.shape[0]):
            if t < lengths[i]:
                out[i] += float(logp[i, tokens[i, t]])
        inp = tokens[:, t:t + 1]
    return out


def log_mean_exp(values: list[float]) -> float:
    top = max(values)
    return top + math.log(sum(math.exp(v - top) for v in values) / len(values))


def test_nll_gen_without_latent_is_teacher_forced_cross_entropy():
    gen, (tokens, lengths) = make_generator("none"), make_data()
    res = nll_gen(gen, tokens, lengths, draws=5, batch_size=4)
    total = -sum(stepwise_log_prob(gen, tokens, lengths, gen.prior_mean(N)))
    assert res.draws == 1  # draws are ignored without a latent
    assert res.per_token == pytest.approx(total / float(lengths.sum()), rel=1e-5)  # EOS counted
    assert res.per_token_prior_mean == pytest.approx(res.per_token, rel=1e-6)
    assert res.per_position == pytest.approx(total / (N * T), rel=1e-5)


@pytest.mark.parametrize("prior", ["normal", "uniform"])
@pytest.mark.parametrize("draws", [1, 3])
def test_nll_gen_with_latent_is_log_mean_exp(prior, draws):
    gen, (tokens, lengths) = make_generator(prior), make_data()
    batch = 4
    res = nll_gen(gen, tokens, lengths, draws=draws, batch_size=batch, rng=torch.Generator().manual_seed(5))
    rng, total, at_mean = torch.Generator().manual_seed(5), 0.0, 0.0
    for start in range(0, N, batch):  # the same draws in the same order: K per batch
        x, n = tokens[start:start + batch], lengths[start:start + batch]
        per_draw = [stepwise_log_prob(gen, x, n, gen.sample_latent(x.shape[0], rng)) for _ in range(draws)]
        total -= sum(log_mean_exp([d[i] for d in per_draw]) for i in range(x.shape[0]))
        at_mean -= sum(stepwise_log_prob(gen, x, n, gen.prior_mean(x.shape[0])))
    assert res.draws == draws
    assert res.per_token == pytest.approx(total / float(lengths.sum()), rel=1e-5)
    assert res.per_token_prior_mean == pytest.approx(at_mean / float(lengths.sum()), rel=1e-5)
    assert res.per_position == pytest.approx(total / (N * T), rel=1e-5)


@pytest.mark.parametrize("temperature", [0.3, 2.0])
def test_nll_gen_at_a_temperature_scores_the_tempered_distribution(temperature):
    """nll_gen(temperature=T) is the NLL under softmax(logits / T), the distribution the sweep's
    samples come from at T; at T != 1 it differs from the plain NLL_gen."""
    gen, (tokens, lengths) = make_generator("normal"), make_data()
    res = nll_gen(gen, tokens, lengths, draws=1, batch_size=4, rng=torch.Generator().manual_seed(5),
                  temperature=temperature)
    rng, total = torch.Generator().manual_seed(5), 0.0
    for start in range(0, N, 4):
        x, n = tokens[start:start + 4], lengths[start:start + 4]
        total -= sum(stepwise_log_prob(gen, x, n, gen.sample_latent(x.shape[0], rng), temperature))
    assert res.per_token == pytest.approx(total / float(lengths.sum()), rel=1e-5)
    plain = nll_gen(gen, tokens, lengths, draws=1, batch_size=4, rng=torch.Generator().manual_seed(5))
    assert res.per_token != pytest.approx(plain.per_token, rel=1e-3)


def test_sample_entropy_at_temperature_one_is_own_nll():
    gen, (tokens, lengths) = make_generator("normal"), make_data()
    z = gen.sample_latent(N, torch.Generator().manual_seed(2))
    expected = float(sequence_nll(gen, tokens, lengths, z).sum()) / float(lengths.sum())
    assert sample_entropy(gen, tokens, z, temperature=1.0, eos_id=EOS) == pytest.approx(expected, rel=1e-5)
    sharp = sample_entropy(gen, tokens, z, temperature=0.5, eos_id=EOS, batch_size=4)
    assert sharp != pytest.approx(expected, rel=1e-3)
    ends = [(row == EOS).nonzero()[0].item() + 1 if (row == EOS).any() else T for row in tokens]
    stepwise = -sum(stepwise_log_prob(gen, tokens, torch.tensor(ends), z, temperature=0.5))
    assert sharp == pytest.approx(stepwise / sum(ends), rel=1e-5)  # up to and including the first EOS


@pytest.mark.parametrize("spec, expected", [("0.5:1.5:3", [0.5, 1.0, 1.5]), ("1:2:2", [1.0, 2.0]),
                                            ("0.1:1.0:10", [0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9, 1.0])])
def test_parse_spec(spec, expected):
    assert parse_spec(spec) == expected  # exactly: the values written to the CSV


@pytest.mark.parametrize("spec", ["2:1:0", "1:2:1", "0:1:3", "1:2", "a:b:c", "1:2:3:4", "1:inf:3", "1:2:2.5"])
def test_parse_spec_rejects(spec):
    with pytest.raises(UserError, match="sweep-temperature"):
        parse_spec(spec)


@pytest.fixture(scope="module")
def run(data_root, tmp_path_factory):
    """One epoch of MLE on the tiny corpus: a real run folder to evaluate."""
    return tiny_mle_run(tmp_path_factory.mktemp("runs"))


@pytest.mark.slow
def test_seed_spread_pools_what_eval_draws_per_seed(run, tmp_path):
    """benchmarks/seed_spread.py scores, per seed, the very samples `textgan eval --seed` scores,
    and pools them: the mean of the seed means, with standard error sqrt(sum se^2) / k."""
    out = tmp_path / "spread.json"
    cmd = [sys.executable, str(REPO / "benchmarks" / "seed_spread.py"), str(run), "--seeds", "3,4", "--num", "30",
           "--out", str(out)]
    res = subprocess.run(cmd, capture_output=True, text=True, timeout=300)
    assert res.returncode == 0, res.stderr
    (record,) = json.loads(out.read_text())["checkpoints"].values()
    per_seed = record["seeds"]
    for seed in ("3", "4"):
        assert run_cli("eval", str(run), "--num", "30", "--seed", seed, "--out", str(tmp_path / seed)).returncode == 0
        metrics = json.loads((tmp_path / seed / "metrics.json").read_text())["metrics"]
        for name in ("bleu2_exact", "bleu2_exact_se", "self_bleu3_loo"):
            assert per_seed[seed][name] == metrics[name]
    a, b = per_seed["3"], per_seed["4"]
    assert a["bleu2_exact"] != b["bleu2_exact"]  # two seeds, two sample sets
    assert record["pooled"]["bleu2_exact"] == pytest.approx((a["bleu2_exact"] + b["bleu2_exact"]) / 2, abs=1e-12)
    assert record["pooled"]["bleu2_exact_se"] == pytest.approx(
        math.hypot(a["bleu2_exact_se"], b["bleu2_exact_se"]) / 2, abs=1e-12)
    before = out.read_bytes()
    again = subprocess.run(cmd, capture_output=True, text=True, timeout=300)
    assert again.returncode == 2 and "exists" in again.stderr and out.read_bytes() == before
    bad = subprocess.run([*cmd[:2], str(run), str(tmp_path / "nowhere"), "--out", str(tmp_path / "bad.json")],
                         capture_output=True, text=True, timeout=300)
    assert bad.returncode != 0 and "nowhere not found" in bad.stderr and len(bad.stderr.strip().splitlines()) == 1
    assert not (tmp_path / "bad.json").exists()


@pytest.mark.slow
def test_training_seeds_summarizes_runs_scored_alike(run, tmp_path):
    """benchmarks/training_seeds.py: per metric over runs of one recipe (here two training seeds),
    mean, sample sd, sd / sqrt(k), min and max of what `textgan eval` wrote, and the runs reaching
    each published BLEU; files scored differently, one file, or an existing --out are refused."""
    other = run_cli("train", str(REPO / "configs" / "coco_mle.yaml"), *FAST, f"log.dir={tmp_path / 'runs'}",
                    "mle.epochs=1", "run.seed=1")
    assert other.returncode == 0, other.stderr
    files = []
    for name, folder in (("s0", run), ("s1", tmp_path / "runs" / "coco_mle")):
        res = run_cli("eval", str(folder), "--num", "30", "--protocol", "both", "--out", str(tmp_path / name))
        assert res.returncode == 0, res.stderr
        files.append(tmp_path / name / "metrics.json")
    metrics = [json.loads(f.read_text())["metrics"] for f in files]
    assert metrics[0]["bleu2_exact"] != metrics[1]["bleu2_exact"]
    out = tmp_path / "seeds.json"
    cmd = [sys.executable, str(REPO / "benchmarks" / "training_seeds.py"), *map(str, files), "--out", str(out)]
    res = subprocess.run(cmd, capture_output=True, text=True, timeout=120)
    assert res.returncode == 0, res.stderr
    result = json.loads(out.read_text())
    assert result["runs"] == 2 and result["settings"]["num"] == 30 and "checkpoint" not in result["settings"]
    for name in ("bleu2_exact", "bleu3_texygen", "nll_gen_pos_train"):
        a, b = metrics[0][name], metrics[1][name]
        s = result["summary"][name]
        assert s["mean"] == pytest.approx((a + b) / 2, abs=1e-12) and (s["min"], s["max"]) == (min(a, b), max(a, b))
        assert s["sd"] == pytest.approx(abs(a - b) / math.sqrt(2), abs=1e-12)
        assert s["se"] == pytest.approx(abs(a - b) / 2, abs=1e-12)
    relgan = result["published"]["coco:RelGAN(100)"]
    for order, figure in (("bleu2", 0.849), ("bleu3", 0.687)):  # FAST scores orders 2 and 3
        c = relgan[f"{order}_exact"]
        assert c["published"] == figure and c["runs_reaching"] == sum(m[f"{order}_exact"] >= figure for m in metrics)
    before = out.read_bytes()
    again = subprocess.run(cmd, capture_output=True, text=True, timeout=120)
    assert again.returncode == 2 and "exists" in again.stderr and out.read_bytes() == before
    unknown = subprocess.run([*cmd[:-2], "--published", "coco:SeqGAN", "--out", str(tmp_path / "bad.json")],
                             capture_output=True, text=True, timeout=120)
    assert unknown.returncode == 2 and "coco:RelGAN(100)" in unknown.stderr.splitlines()[-1]
    alone = subprocess.run([*cmd[:-2], "--published", "none", "--out", str(tmp_path / "alone.json")],
                           capture_output=True, text=True, timeout=120)  # a corpus without published figures
    assert alone.returncode == 0, alone.stderr
    alone_result = json.loads((tmp_path / "alone.json").read_text())
    assert alone_result["published"] == {} and alone_result["summary"] == result["summary"]
    hot = run_cli("eval", str(tmp_path / "runs" / "coco_mle"), "--num", "30", "--protocol", "both",
                  "--temperature", "0.5", "--out", str(tmp_path / "hot"))
    assert hot.returncode == 0, hot.stderr
    mixed = subprocess.run([*cmd[:-3], str(tmp_path / "hot" / "metrics.json"), "--per-run-temperature",
                            "--out", str(tmp_path / "mixed.json")], capture_output=True, text=True, timeout=120)
    assert mixed.returncode == 0, mixed.stderr  # each run at its own rule's temperature: said per file
    mixed_files = json.loads((tmp_path / "mixed.json").read_text())["files"]
    assert sorted(f["temperature"] for f in mixed_files.values()) == [0.5, 1.0]
    (tmp_path / "junk.json").write_text('{"metrics": {}}')
    for bad_files, message in (([files[0], tmp_path / "hot" / "metrics.json"], "temperature=0.5"),
                               ([files[0], tmp_path / "junk.json"], "junk.json is not a `textgan eval` metrics.json"),
                               ([files[0]], "at least two"), ([files[0], files[0]], "same checkpoint"),
                               ([files[0], tmp_path / "nowhere.json"], "nowhere.json not found")):
        bad = subprocess.run([*cmd[:2], *map(str, bad_files), "--out", str(tmp_path / "bad.json")],
                             capture_output=True, text=True, timeout=120)
        assert bad.returncode == 1 and message in bad.stderr and len(bad.stderr.strip().splitlines()) == 1
        assert not (tmp_path / "bad.json").exists()


def test_eval_prints_and_writes_metrics(run, tmp_path):
    res = run_cli("eval", str(run), "--protocol", "both", "--num", "30", "--seed", "3", "--out", str(tmp_path))
    assert res.returncode == 0, res.stderr
    printed = dict(line.split() for line in res.stdout.splitlines())
    saved = json.loads((tmp_path / "metrics.json").read_text())
    for name in ("bleu2_exact", "self_bleu3_loo", "bleu3_texygen", "self_bleu2_texygen", "nll_gen_mc1_tok",
                 "nll_gen_pos", "nll_gen_pos_train", "mean_length"):
        assert name in printed, (name, printed)
        assert float(printed[name]) == pytest.approx(saved["metrics"][name], rel=1e-5)
    assert set(printed) == set(saved["metrics"])
    assert saved["settings"]["num"] == 30 and saved["settings"]["protocol"] == "both"
    assert saved["settings"]["weights"] == "trained"  # no adversarial.g_ema average in that run


def test_eval_profile_times_every_phase_and_keeps_the_metrics(run, tmp_path):
    """--profile's rows sum to the wall time since the process started: the start-up (interpreter,
    torch's import) and what fell between the phases are rows too, so no time goes unaccounted."""
    plain = run_cli("eval", str(run), "--protocol", "both", "--num", "30", "--seed", "3", "--out", str(tmp_path / "a"))
    launched = time.monotonic()
    res = run_cli("eval", str(run), "--protocol", "both", "--num", "30", "--seed", "3", "--out", str(tmp_path / "b"),
                  "--profile")
    wall = time.monotonic() - launched
    assert res.returncode == 0 and plain.returncode == 0, res.stderr
    assert res.stdout == plain.stdout  # timing changes nothing it measures, to the last bit written:
    for name in ("metrics.json", "samples.txt"):
        assert (tmp_path / "b" / name).read_bytes() == (tmp_path / "a" / name).read_bytes()
    head = "time by phase (30 samples, protocol both; wall time since the process started):\n"
    table = res.stderr.split(head, 1)[1].splitlines()
    seconds = {line.rsplit(None, 3)[0].strip(): float(line.rsplit(None, 3)[1]) for line in table[:-1]}
    assert list(seconds) == ["start-up: Python, imports, arguments", "loading: checkpoint",
                             "loading: corpus (tokens, vocabulary ids)", "sampling", "BLEU and Self-BLEU",
                             "NLL_gen of the test set", "latent metrics", "NLL_gen of the training set",
                             "texygen protocol: second sample set", "texygen protocol: BLEU and Self-BLEU",
                             "other: between phases, output files"]
    assert all(s >= 0 for s in seconds.values()) and seconds["start-up: Python, imports, arguments"] > 0
    total = float(table[-1].split()[1])
    # each line is rounded to 0.01 s: the printed total and the sum of the printed lines differ by that much each
    assert table[-1].startswith("total") and total == pytest.approx(sum(seconds.values()), abs=0.005 * (len(seconds) + 1))
    assert total <= wall + 0.02  # the process's own age (to a 0.01 s clock tick) within the time around it
    assert "time by phase" not in plain.stderr


LATENT = ("latent_mi_8", "latent_mi_8_max", "latent_sensitivity", "latent_token_change", "interp_distinct",
          "interp_edit")


def test_eval_reports_latent_usage(run, tmp_path):
    """`textgan eval` prints and saves the latent metrics (FAST: K = 8), latent_mi_8_max = log 8
    on the line after latent_mi_8. The run is coco_mle's prior=none model: z cannot matter, so the
    bound is 0, nothing changes when z is redrawn and every path is one sentence."""
    res = run_cli("eval", str(run), "--num", "20", "--out", str(tmp_path))
    assert res.returncode == 0, res.stderr
    lines = res.stdout.splitlines()
    printed = dict(line.split() for line in lines)
    saved = json.loads((tmp_path / "metrics.json").read_text())["metrics"]
    for name in LATENT:
        assert float(printed[name]) == pytest.approx(saved[name], rel=1e-5, abs=1e-9), name
    mi_line = next(i for i, line in enumerate(lines) if line.startswith("latent_mi_8 "))
    assert lines[mi_line + 1].startswith("latent_mi_8_max ")
    assert saved["latent_mi_8_max"] == pytest.approx(math.log(8))
    assert saved["latent_mi_8"] == pytest.approx(0.0, abs=1e-6)
    assert saved["latent_sensitivity"] == saved["latent_token_change"] == 0.0
    assert saved["interp_distinct"] == 1.0 and saved["interp_edit"] == 0.0


def test_sweep_has_latent_columns_as_eval_reports_them(run, tmp_path):
    """The sweep's latent columns at T = 1 are `textgan eval`'s (same draws), here for a latent
    generator: the run's weights under prior=normal with a random z projection."""
    from textgan.evaluation_cli import eval_metrics, load_run
    from textgan.models import build_generator
    from textgan.sweep import temperature_sweep, write_sweep, axes

    loaded, corpus = load_run(run)
    loaded.config.generator.prior = "normal"
    torch.manual_seed(0)
    latent_gen = build_generator(loaded.config.generator, len(corpus.vocab), corpus.banned)
    latent_gen.load_state_dict(loaded.generator.state_dict(), strict=False)  # all but latent_proj
    with torch.no_grad():
        latent_gen.latent_proj.weight.mul_(10.0)
    loaded.generator = latent_gen.eval()
    rows = temperature_sweep(loaded, corpus, [0.5, 1.0], num=20, seed=3)
    write_sweep(rows, tmp_path, axes(corpus, loaded.config.eval.bleu_n))
    header = (tmp_path / "sweep.csv").read_text().splitlines()[0].split(",")
    assert set(LATENT) <= set(header)
    at_one = eval_metrics(loaded, corpus, num=20, seed=3)
    for name in LATENT:
        assert rows[1][name] == pytest.approx(at_one[name], rel=1e-9), name
    assert rows[1]["latent_mi_8"] <= math.log(8) and rows[1]["latent_sensitivity"] > 0  # z matters here


def test_relgan_nll_gen_is_per_position_on_the_training_set(run):
    """nll_gen_pos_train (texygen/both protocols) scores the training sentences, as RelGAN's code
    does, and is absent from the exact protocol."""
    from textgan.evaluation_cli import eval_metrics, load_run

    loaded, corpus = load_run(run)
    both = eval_metrics(loaded, corpus, num=20, seed=3, protocol="both")
    draws = loaded.config.eval.latent_draws
    on_train = nll_gen(loaded.generator, corpus.train.tokens, corpus.train.lengths, draws=draws,
                       rng=torch.Generator().manual_seed(3 + 3))
    assert both["nll_gen_pos_train"] == pytest.approx(on_train.per_position, rel=1e-6)
    assert both["nll_gen_pos_train"] != pytest.approx(both["nll_gen_pos"], rel=1e-3)  # not the test set
    assert "nll_gen_pos_train" not in eval_metrics(loaded, corpus, num=20, seed=3, protocol="exact")


def test_sweep_nll_gen_is_evals_at_the_same_temperature(run):
    """The sweep's NLL_gen column at T = 1 is `textgan eval`'s NLL_gen (same draws), and at
    another temperature nll_gen's under that temperature, as `textgan eval --temperature` gives."""
    from textgan.evaluation_cli import eval_metrics, load_run
    from textgan.sweep import temperature_sweep

    loaded, corpus = load_run(run)
    cold, one = temperature_sweep(loaded, corpus, [0.3, 1.0], num=20, seed=3)
    draws = loaded.generator.prior != "none" and loaded.config.eval.latent_draws or 1
    assert one["nll_gen_tok"] == pytest.approx(
        eval_metrics(loaded, corpus, num=20, seed=3, protocol="exact")[f"nll_gen_mc{draws}_tok"], rel=1e-6)
    at_cold = nll_gen(loaded.generator, corpus.test.tokens, corpus.test.lengths, draws=draws,
                      rng=torch.Generator().manual_seed(3 + 1), temperature=0.3)
    assert cold["nll_gen_tok"] == pytest.approx(at_cold.per_token, rel=1e-6)
    # `textgan eval --temperature` scores NLL_gen under the distribution its samples come from
    eval_cold = eval_metrics(loaded, corpus, num=20, seed=3, temperature=0.3, protocol="exact")
    assert eval_cold[f"nll_gen_mc{draws}_tok"] == pytest.approx(cold["nll_gen_tok"], rel=1e-6)
    assert cold["nll_gen_tok"] != pytest.approx(one["nll_gen_tok"], rel=1e-3)


def test_eval_data_replaces_test_file(run, data_root):
    from textgan.evaluation_cli import load_run

    loaded, corpus = load_run(run, data=str(data_root / "tiny" / "train.txt"))
    expected = [tokenize(s, "nltk") for s in read_lines(data_root / "tiny" / "train.txt")]
    assert corpus.test_sentences == expected
    assert corpus.max_len == loaded.max_len and corpus.vocab.itos == loaded.vocab.itos


def test_eval_sweep_writes_csv_png_and_events(run, tmp_path):
    res = run_cli("eval", str(run), "--sweep-temperature", "0.5:1.5:3", "--num", "50", "--out", str(tmp_path))
    assert res.returncode == 0, res.stderr
    rows = (tmp_path / "sweep.csv").read_text().splitlines()
    assert rows[0].split(",")[:4] == ["temperature", "bleu2", "bleu2_se", "self_bleu2"] and len(rows) == 4
    se = [float(r.split(",")[2]) for r in rows[1:]]
    assert all(0 < v < 0.2 for v in se)  # 50 samples: a real spread, a few hundredths
    assert [float(r.split(",")[0]) for r in rows[1:]] == pytest.approx([0.5, 1.0, 1.5])
    assert (tmp_path / "sweep.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    (event_file,) = tmp_path.glob("events.out.tfevents.*")
    acc = EventAccumulator(str(event_file), size_guidance={"scalars": 0})
    acc.Reload()
    tags = set(acc.Tags()["scalars"])
    assert {"sweep/temperature", "sweep/bleu3", "sweep/self_bleu3", "sweep/nll_gen_tok", "sweep/entropy_tok"} <= tags
    nll = [e.value for e in acc.Scalars("sweep/nll_gen_tok")]
    assert len(set(nll)) == 3 and all(math.isfinite(v) and v > 0 for v in nll)  # the test set at each temperature
    temps = acc.Scalars("sweep/temperature")
    assert [e.step for e in temps] == [0, 1, 2]
    assert [e.value for e in temps] == pytest.approx([0.5, 1.0, 1.5])


@pytest.mark.slow
def test_curves_on_two_real_sweeps_reads_the_baseline_where_the_other_curve_is(run, tmp_path):
    """`textgan curves` on sweeps written by `textgan eval`: every gap is the other curve's BLEU
    minus the baseline's, read off linearly (here by numpy) at the same entropy."""
    import csv

    import numpy as np

    for name, spec, seed in (("base", "0.4:1.6:4", "0"), ("other", "0.6:1.2:3", "5")):
        res = run_cli("eval", str(run), "--sweep-temperature", spec, "--num", "40", "--seed", seed,
                      "--out", str(tmp_path / name))
        assert res.returncode == 0, res.stderr
    res = run_cli("curves", str(tmp_path / "base" / "sweep.csv"), str(tmp_path / "other" / "sweep.csv"),
                  "--x", "entropy_tok", "--y", "bleu3", "--out", str(tmp_path / "cmp"))
    assert res.returncode == 0, res.stderr
    read = lambda path: list(csv.DictReader(open(path, newline="")))  # noqa: E731
    base, other = read(tmp_path / "base" / "sweep.csv"), read(tmp_path / "other" / "sweep.csv")
    gaps = read(tmp_path / "cmp" / "curves.csv")
    bx, by = (np.array([float(r[k]) for r in base]) for k in ("entropy_tok", "bleu3"))
    order = np.argsort(bx)
    assert len(gaps) == 3
    for row, src in zip(gaps, other):
        x = float(src["entropy_tok"])
        assert float(row["entropy_tok"]) == pytest.approx(x) and float(row["bleu3"]) == pytest.approx(float(src["bleu3"]))
        if bx.min() <= x <= bx.max():
            expected = float(np.interp(x, bx[order], by[order]))
            assert float(row["base_bleu3"]) == pytest.approx(expected, abs=1e-9)
            assert float(row["gap"]) == pytest.approx(float(src["bleu3"]) - expected, abs=1e-9)
        else:
            assert row["gap"] == ""
    assert (tmp_path / "cmp" / "curves.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


@pytest.mark.slow
@pytest.mark.parametrize("args", [["--sweep-temperature", "2:1:0"], ["--num", "1"], ["--protocol", "corpus"]])
def test_eval_bad_args_one_line_exit_2(run, args):
    res = run_cli("eval", str(run), *args)
    assert res.returncode == 2
    assert len(res.stderr.strip().splitlines()) == 1 and res.stderr.startswith("textgan: error:")


def test_eval_missing_run_exit_2(tmp_path):
    res = run_cli("eval", str(tmp_path / "nope"))
    assert res.returncode == 2 and "not found" in res.stderr
    assert len(res.stderr.strip().splitlines()) == 1


def _fast_corpus(data_root, *extra: str):
    """The FAST config's corpus, with `extra` overrides."""
    from textgan import config
    from textgan.corpus import prepare

    cfg = config.load(None, [o for o in FAST if not o.startswith("data.root")] + [f"data.root={data_root}", *extra])
    return prepare(cfg.data, cfg.run.seed)


def test_copy_fraction_counts_verbatim_training_rows(data_root):
    """A copy is a training row over its whole length: a changed token or a proper prefix is not,
    and every sample counts (duplicates included)."""
    from textgan.metrics import copy_fraction

    train = _fast_corpus(data_root).train
    tokens, lengths = train.tokens[:4].clone(), train.lengths[:4].clone()
    assert copy_fraction(tokens, lengths, train.tokens, train.lengths) == 1.0
    tokens[1, 0] = 3 if int(tokens[1, 0]) != 3 else 4  # one token changed
    lengths[2] -= 1  # a proper prefix of a training row
    assert copy_fraction(tokens, lengths, train.tokens, train.lengths) == 0.5
    dup = torch.cat([tokens[:1]] * 3 + [tokens[1:2]])
    assert copy_fraction(dup, torch.cat([lengths[:1]] * 3 + [lengths[1:2]]), train.tokens, train.lengths) == 0.75


def test_evaluate_returns_the_ids_it_scored(data_root):
    """evaluate's samples are `generate`'s at its seed, returned as tokens and ids, so
    `textgan eval --lm-score / --fed` score them without drawing them again."""
    from textgan import config
    from textgan.evaluate import evaluate, generate
    from textgan.models import build_generator

    corpus = _fast_corpus(data_root)
    cfg = config.load(None, [o for o in FAST if not o.startswith("data.root")] + [f"data.root={data_root}"])
    torch.manual_seed(0)
    gen = build_generator(cfg.generator, len(corpus.vocab), corpus.banned)
    res = evaluate(gen, corpus, cfg.eval, seed=5, nll=False)
    assert res.ids.shape == (cfg.eval.num_samples, corpus.max_len)
    assert torch.equal(res.ids, generate(gen, cfg.eval.num_samples, corpus.max_len, seed=5))
    assert res.samples == [corpus.vocab.decode(row) for row in res.ids.tolist()] and res[0] is res.metrics


def test_evaluate_reports_copies_from_the_training_set(data_root):
    """sample_metrics on the training sequences themselves (oracle and text corpora) says 1.0;
    unique_frac counts distinct samples, halved when each is there twice."""
    from textgan.evaluate import sample_metrics

    for extra in ([], ["data.source=oracle", "data.num_train=50", "data.num_test=20", "data.oracle_params="]):
        corpus = _fast_corpus(data_root, *extra)
        ids = corpus.train.tokens[:30]
        samples = [corpus.vocab.decode(row) for row in ids.tolist()]
        assert sample_metrics(ids, samples, corpus, [2])["train_copy_frac"] == 1.0
        rows = {tuple(row) for row in ids.tolist()}
        assert sample_metrics(ids, samples, corpus, [2])["unique_frac"] == len(rows) / 30
        twice = sample_metrics(torch.cat([ids, ids]), samples + samples, corpus, [2])
        assert twice["unique_frac"] == len(rows) / 60 and twice["train_copy_frac"] == 1.0
        changed = ids.clone()
        changed[:, 0] = torch.where(ids[:, 0] == 4, 5, 4)  # every first token replaced by another word
        assert sample_metrics(changed, samples, corpus, [2])["train_copy_frac"] == 0.0


def test_evaluate_reports_samples_with_tokens_no_test_sentence_holds(data_root):
    """ref_unseen_frac on text: 0 for test sentences (those without <unk>), the library's value for
    training sentences (the tiny test set lacks many of their words), and absent on the oracle."""
    from textgan.evaluate import sample_metrics
    from textgan.metrics import unseen_fraction

    corpus = _fast_corpus(data_root)
    known = corpus.test.tokens[(corpus.test.tokens != corpus.vocab.unk_id).all(1)]  # no <unk>: all in a reference
    assert known.shape[0] >= 3
    got = {}
    for name, tokens in (("test", known), ("train", corpus.train.tokens[:30])):
        samples = [corpus.vocab.decode(row) for row in tokens.tolist()]
        got[name] = sample_metrics(tokens, samples, corpus, [2])["ref_unseen_frac"]
        assert got[name] == unseen_fraction(samples, corpus.test_sentences)
    assert got["test"] == 0 < got["train"]
    oracle = _fast_corpus(data_root, "data.source=oracle", "data.num_train=50", "data.num_test=20", "data.oracle_params=")
    ids = oracle.train.tokens[:10]
    assert "ref_unseen_frac" not in sample_metrics(ids, [oracle.vocab.decode(r) for r in ids.tolist()], oracle, [2])


def test_evaluate_past_the_cap_streams_with_bounded_holding(data_root):
    """100 samples in chunks of 8 with eval.self_bleu_max 20: never more than 8 + 20 samples held;
    BLEU, ref_unseen_frac, train_copy_frac, unique_frac and mean_length are those of all 100 scored at once
    (the mean to the bit, its standard error to rounding); Self-BLEU, both protocols', that of
    the first 20, as computed_on says."""
    import dataclasses

    from textgan import config
    from textgan.evaluate import evaluate, generate
    from textgan.metrics import copy_fraction, unseen_fraction
    from textgan.metrics.bleu import bleu, bleu_scores, self_bleu, standard_error
    from textgan.models import build_generator

    corpus = _fast_corpus(data_root)
    cfg = config.load(None, [o for o in FAST if not o.startswith("data.root")] + [f"data.root={data_root}"])
    torch.manual_seed(0)
    gen = build_generator(cfg.generator, len(corpus.vocab), corpus.banned)
    small = dataclasses.replace(cfg.eval, num_samples=100, self_bleu_max=20, protocol="both", latent_samples=0,
                                interp_pairs=0)
    res = evaluate(gen, corpus, small, seed=5, nll=False, chunk=8)
    assert 20 <= res.peak_held <= 20 + 8 and res.ids is None and res.samples == []
    assert res.computed_on == {f"self_bleu{n}_{p}": 20 for p in ("loo", "texygen") for n in (2, 3)}
    ids = generate(gen, 100, corpus.max_len, seed=5)
    samples = [corpus.vocab.decode(row) for row in ids.tolist()]
    refs, m = corpus.test_sentences, res.metrics
    for n in (2, 3):
        scores = bleu_scores(samples, refs, max_n=n)
        assert m[f"bleu{n}_exact"] == math.fsum(scores) / 100
        assert m[f"bleu{n}_exact_se"] == pytest.approx(standard_error(scores), rel=1e-12)
        assert m[f"self_bleu{n}_loo"] == self_bleu(samples[:20], max_n=n)
        second = [corpus.vocab.decode(row) for row in generate(gen, 20, corpus.max_len, seed=7).tolist()]
        assert m[f"self_bleu{n}_texygen"] == bleu(samples, second, max_n=n, protocol="texygen")
        assert m[f"bleu{n}_texygen"] == bleu(samples, refs, max_n=n, protocol="texygen")
    assert m["ref_unseen_frac"] == unseen_fraction(samples, refs)
    assert m["train_copy_frac"] == copy_fraction(ids, (ids != corpus.vocab.pad_id).sum(1), corpus.train.tokens,
                                                 corpus.train.lengths)
    assert m["mean_length"] == sum(map(len, samples)) / 100
    assert m["unique_frac"] == len({tuple(row) for row in ids.tolist()}) / 100  # over all blocks, not the first
    capped = evaluate(gen, corpus, dataclasses.replace(small, num_samples=20), seed=5, nll=False, chunk=8)
    assert all(capped.metrics[f"self_bleu{n}_loo"] == m[f"self_bleu{n}_loo"] for n in (2, 3))  # the first 20's
    assert torch.equal(capped.ids, ids[:20]) and capped.computed_on == res.computed_on


def test_eval_just_over_the_cap_streams_and_says_on_how_many(run, tmp_path):
    """`textgan eval --num 21 --self-bleu-max 20`: samples.txt holds all 21, written as they come;
    Self-BLEU is that of the first 20 (an evaluation of --num 20), which metrics.json's computed_on
    and stderr say; BLEU covers all 21."""
    from textgan.accel import fpenv
    from textgan.evaluation_cli import eval_metrics, load_run

    res = run_cli("eval", str(run), "--num", "21", "--self-bleu-max", "20", "--seed", "3", "--out", str(tmp_path))
    assert res.returncode == 0, res.stderr
    saved = json.loads((tmp_path / "metrics.json").read_text())
    assert saved["computed_on"] == {"self_bleu2_loo": 20, "self_bleu3_loo": 20} and saved["settings"]["num"] == 21
    assert "self_bleu2_loo, self_bleu3_loo: computed on the first 20 of the 21 samples" in res.stderr
    lines = (tmp_path / "samples.txt").read_text().splitlines()
    assert len(lines) == 21 and not (tmp_path / "samples.txt.partial").exists()
    loaded, corpus = load_run(run)
    fpenv.apply(loaded.config.run)  # as the CLI evaluates (the fixtures restore the process's mode)
    first = eval_metrics(loaded, corpus, num=20, seed=3)
    assert saved["metrics"]["self_bleu2_loo"] == first["self_bleu2_loo"]
    assert saved["metrics"]["self_bleu3_loo"] == first["self_bleu3_loo"]
    from textgan.metrics.bleu import bleu
    assert saved["metrics"]["bleu2_exact"] == bleu([s.split() for s in lines], corpus.test_sentences, max_n=2)
