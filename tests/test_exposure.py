"""Exposure bias on the oracle (textgan.metrics.exposure): zero KL for the oracle against itself,
agreement with a brute-force enumeration of every prefix on a tiny oracle (exact weights and
Monte Carlo), the latent mixture, and `textgan eval --exposure-bias` end to end."""
from __future__ import annotations

import csv
import itertools
import json
import math

import pytest
import torch
from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

from conftest import FAST, REPO, run_cli
from textgan.metrics.exposure import (exposure_bias, kl_per_position, model_log_conditionals, oracle_log_conditionals,
                                      prefix_scores)
from textgan.models.generator import Generator
from textgan.oracle import OracleLSTM

V, T, SPECIAL = 3, 4, 4  # tiny oracle vocabulary and length; the generator's specials come first


def tiny_oracle() -> OracleLSTM:
    return OracleLSTM.random(seq_len=T, seed=3, vocab_size=V, emb_dim=4, hidden_dim=5)


def tiny_generator(prior: str = "none", seed: int = 0) -> Generator:
    torch.manual_seed(seed)
    return Generator(vocab_size=V + SPECIAL, emb_dim=6, hidden_dim=8, num_layers=1, latent_dim=2, prior=prior,
                     banned=list(range(SPECIAL))).eval()


@torch.no_grad()
def oracle_as_generator(oracle: OracleLSTM) -> Generator:
    """A textgan Generator computing the oracle's own distribution: its LSTM's gates reordered
    from the oracle's (i, f, o, c~) to torch's (i, f, c~, o), <bos> reading as the oracle's START."""
    h, e = oracle.hidden_dim, oracle.emb_dim
    g = Generator(vocab_size=oracle.vocab_size + SPECIAL, emb_dim=e, hidden_dim=h, num_layers=1, latent_dim=2,
                  prior="none", banned=list(range(SPECIAL)))
    reorder = lambda w: torch.cat([w[:h], w[h:2 * h], w[3 * h:], w[2 * h:3 * h]])  # noqa: E731
    g.embedding.weight.zero_()
    g.embedding.weight[SPECIAL:] = oracle.emb
    g.embedding.weight[g.bos_id] = oracle.emb[0]
    g.lstm.weight_ih_l0.copy_(reorder(oracle.w_x.t()))
    g.lstm.weight_hh_l0.copy_(reorder(oracle.w_h.t()))
    g.lstm.bias_ih_l0.copy_(reorder(oracle.b))
    g.lstm.bias_hh_l0.zero_()
    g.out.weight.zero_()
    g.out.bias.zero_()
    g.out.weight[SPECIAL:] = oracle.w_out
    g.out.bias[SPECIAL:] = oracle.b_out
    return g.eval()


@torch.no_grad()
def model_step_dists(gen: Generator, prefix: tuple[int, ...], z: torch.Tensor, temperature: float = 1.0):
    """log p(prefix | z) and log p(. | prefix, z) over the oracle ids, one LSTM step at a time in float64."""
    state = gen.init_state(z.view(1, -1))
    inp, total = torch.tensor([[gen.bos_id]]), 0.0
    for t in range(len(prefix) + 1):
        hidden, state = gen.lstm(gen.embedding(inp), state)
        logp = torch.log_softmax(gen.out(hidden[0, 0]).double() / temperature + gen.logit_mask.double(), -1)[SPECIAL:]
        if t == len(prefix):
            return total, logp
        total += float(logp[prefix[t]])
        inp = torch.tensor([[prefix[t] + SPECIAL]])


def oracle_step_dists(oracle: OracleLSTM, prefix: tuple[int, ...]):
    """log O(prefix) and log O(. | prefix), from whole-sequence log-likelihoods (oracle.log_prob)."""
    base = float(oracle.log_prob(torch.tensor([prefix], dtype=torch.long).view(1, len(prefix))))
    ext = oracle.log_prob(torch.tensor([list(prefix) + [v] for v in range(V)]))  # (V,)
    return base, ext - base


def brute_force(oracle, gen, temperature: float = 1.0) -> tuple[list[float], list[float]]:
    """Per position, sum over every prefix of O(prefix) KL and of M(prefix) KL: CGD(M|D), CGD(M|M)."""
    z = torch.zeros(2)
    on_data, on_model = [], []
    for t in range(T):
        d = m = 0.0
        for prefix in itertools.product(range(V), repeat=t):
            lo_prefix, lo = oracle_step_dists(oracle, prefix)
            lm_prefix, lm = model_step_dists(gen, prefix, z, temperature)
            kl = float((lo.exp() * (lo - lm)).sum())
            d += math.exp(lo_prefix) * kl
            m += math.exp(lm_prefix) * kl
        on_data.append(d)
        on_model.append(m)
    return on_data, on_model


def test_kl_of_a_distribution_against_itself_is_zero():
    logp = torch.log_softmax(torch.randn(5, 7, 11, generator=torch.Generator().manual_seed(0)), -1)
    assert torch.equal(kl_per_position(logp, logp), torch.zeros(5, 7, dtype=torch.float64))
    other = torch.log_softmax(torch.randn(5, 7, 11), -1)
    assert bool((kl_per_position(logp, other) > 0).all())


def test_the_oracle_against_itself_has_zero_kl_on_either_source():
    """The oracle written as a textgan Generator: KL ~0 at every position (float32 rounding of two
    LSTM implementations), and its free-running NLL_oracle is the oracle's own entropy."""
    oracle = OracleLSTM.random(seq_len=10, seed=1, vocab_size=50, emb_dim=8, hidden_dim=16)
    gen = oracle_as_generator(oracle)
    ids = oracle.sample(64, generator=torch.Generator().manual_seed(0))
    log_o = oracle_log_conditionals(oracle, ids)
    log_m = model_log_conditionals(gen, ids, torch.zeros(1, 64, 2))
    assert torch.allclose(log_o, log_m, atol=1e-5)
    eb = exposure_bias(oracle, gen, num=400, seed=5)
    assert max(eb.kl_oracle_prefix + eb.kl_model_prefix) < 1e-6
    for mine, theirs, t in zip(eb.nll_oracle_model, eb.nll_oracle_data, range(10)):
        assert abs(mine - theirs) < 0.5, t  # two samples of 400 from one distribution: the same entropy


@pytest.mark.parametrize("temperature", [1.0, 0.7])
def test_prefix_kl_weighted_by_exact_probabilities_is_the_brute_force_sum(temperature):
    """Every sequence of the tiny oracle scored at once and weighted by its exact probability under
    the oracle (or the model) gives, at each position, the enumeration over every prefix."""
    oracle, gen = tiny_oracle(), tiny_generator()
    seqs = torch.tensor(list(itertools.product(range(V), repeat=T)))  # (V^T, T)
    scores = prefix_scores(oracle, gen, seqs, temperature=temperature)
    w_data = oracle.log_prob(seqs).exp()  # (V^T,)
    w_model = torch.tensor([model_step_dists(gen, tuple(s), torch.zeros(2), temperature)[0] for s in seqs.tolist()],
                           dtype=torch.float64).exp()
    assert float(w_data.sum()) == pytest.approx(1.0, abs=1e-6) and float(w_model.sum()) == pytest.approx(1.0, abs=1e-6)
    on_data, on_model = brute_force(oracle, gen, temperature)
    assert (w_data @ scores.kl).tolist() == pytest.approx(on_data, rel=1e-4, abs=1e-7)
    assert (w_model @ scores.kl).tolist() == pytest.approx(on_model, rel=1e-4, abs=1e-7)
    assert on_data[0] == pytest.approx(on_model[0])  # the empty prefix: one distribution either way
    assert on_data != pytest.approx(on_model)


def test_sampled_exposure_bias_agrees_with_the_brute_force_sums():
    """exposure_bias draws prefixes from the oracle and from the model (not the other way round):
    each curve lies within 4 standard errors of its exact value, and the ratio is their quotient."""
    oracle, gen = tiny_oracle(), tiny_generator()
    on_data, on_model = brute_force(oracle, gen)
    eb = exposure_bias(oracle, gen, num=4000, seed=0)
    for t in range(T):
        assert abs(eb.kl_oracle_prefix[t] - on_data[t]) < 4 * eb.kl_oracle_prefix_se[t] + 1e-6, t  # + float32
        assert abs(eb.kl_model_prefix[t] - on_model[t]) < 4 * eb.kl_model_prefix_se[t] + 1e-6, t
        assert eb.ratio[t] == pytest.approx(eb.kl_model_prefix[t] / eb.kl_oracle_prefix[t])
    assert [r["position"] for r in eb.rows()] == [1, 2, 3, 4]
    assert eb.summary()["eb_ratio"] == pytest.approx(sum(eb.kl_model_prefix) / sum(eb.kl_oracle_prefix))


def test_latent_model_conditional_is_the_posterior_weighted_mixture():
    """For K given draws: M(. | x_<t) = sum_k p(x_<t | z_k) p(. | x_<t, z_k) / sum_k p(x_<t | z_k)."""
    gen = tiny_generator("normal", seed=2)
    ids = torch.tensor([[0, 2, 1, 1], [2, 2, 0, 1]])
    z = torch.randn(3, 2, 2, generator=torch.Generator().manual_seed(4))  # (K, N, Z)
    got = model_log_conditionals(gen, ids, z)
    for n in range(2):
        for t in range(T):
            parts = [model_step_dists(gen, tuple(ids[n, :t].tolist()), z[k, n]) for k in range(3)]
            weights = torch.softmax(torch.tensor([p for p, _ in parts]), 0)
            mix = sum(w * d.exp() for w, (_, d) in zip(weights, parts))
            assert torch.allclose(got[n, t].double().exp(), mix, atol=1e-5), (n, t)


ORACLE_RUN = [o for o in FAST if not o.startswith("data.")] + [
    "data.source=oracle", "data.oracle_params=", "data.num_train=200", "data.num_test=50", "data.oracle_seq_len=8"]


@pytest.fixture(scope="module")
def oracle_run(tmp_path_factory):
    runs = tmp_path_factory.mktemp("runs")
    res = run_cli("train", str(REPO / "configs" / "oracle20_mle.yaml"), *ORACLE_RUN, f"log.dir={runs}")
    assert res.returncode == 0, res.stderr
    return runs / "oracle20_mle"


def test_eval_exposure_bias_writes_csv_json_png_and_events(oracle_run, tmp_path):
    res = run_cli("eval", str(oracle_run), "--exposure-bias", "--num", "60", "--out", str(tmp_path))
    assert res.returncode == 0, res.stderr
    printed = dict(line.split() for line in res.stdout.splitlines())
    saved = json.loads((tmp_path / "metrics.json").read_text())["metrics"]
    for name in ("eb_kl_oracle_prefix", "eb_kl_model_prefix", "eb_ratio", "eb_nll_oracle_model", "nll_oracle"):
        assert float(printed[name]) == pytest.approx(saved[name], rel=1e-5)
    rows = list(csv.DictReader(open(tmp_path / "exposure_bias.csv", newline="")))
    assert [int(r["position"]) for r in rows] == list(range(1, 9))
    kl_d = [float(r["kl_oracle_prefix"]) for r in rows]
    assert all(v > 0 for v in kl_d)  # one epoch of MLE is far from the oracle
    assert sum(kl_d) / 8 == pytest.approx(saved["eb_kl_oracle_prefix"], rel=1e-6)
    report = json.loads((tmp_path / "exposure_bias.json").read_text())
    assert report["settings"]["num"] == 60 and len(report["by_position"]) == 8
    assert (tmp_path / "exposure_bias.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    (event_file,) = tmp_path.glob("events.out.tfevents.*")
    acc = EventAccumulator(str(event_file), size_guidance={"scalars": 0})
    acc.Reload()
    assert {"exposure_bias/kl_oracle_prefix", "exposure_bias/kl_model_prefix", "exposure_bias/ratio",
            "exposure_bias/nll_oracle_model"} <= set(acc.Tags()["scalars"])
    assert [e.step for e in acc.Scalars("exposure_bias/ratio")] == list(range(1, 9))
    again = run_cli("eval", str(oracle_run), "--exposure-bias", "--num", "60", "--out", str(tmp_path))
    assert again.returncode == 2 and len(again.stderr.strip().splitlines()) == 1
    assert list(csv.DictReader(open(tmp_path / "exposure_bias.csv", newline=""))) == rows  # nothing overwritten


@pytest.mark.parametrize("args, says", [(["--exposure-bias", "--sweep-temperature", "0.5:1:2"], "--exposure-bias"),
                                        (["--fed"], "oracle run"), (["--mauve"], "drop --mauve")])
def test_eval_bad_flags_on_an_oracle_run_are_one_line_exit_2(oracle_run, tmp_path, args, says):
    res = run_cli("eval", str(oracle_run), *args, "--out", str(tmp_path))
    assert res.returncode == 2 and says in res.stderr
    assert len(res.stderr.strip().splitlines()) == 1 and not list(tmp_path.iterdir())


def test_eval_exposure_bias_holds_at_most_self_bleu_max_prefixes(oracle_run, tmp_path):
    """Past eval.self_bleu_max samples the curves use that many prefixes from each source (memory
    bounded whatever --num), as exposure_bias.json and metrics.json's computed_on say."""
    res = run_cli("eval", str(oracle_run), "--exposure-bias", "--num", "30", "--self-bleu-max", "20",
                  "--out", str(tmp_path))
    assert res.returncode == 0, res.stderr
    assert json.loads((tmp_path / "exposure_bias.json").read_text())["settings"]["num"] == 20
    saved = json.loads((tmp_path / "metrics.json").read_text())
    assert saved["settings"]["num"] == 30
    assert saved["computed_on"]["eb_ratio"] == 20 and saved["computed_on"]["eb_kl_model_prefix"] == 20
    assert "eb_ratio" in res.stderr  # named among the metrics computed on a subset
