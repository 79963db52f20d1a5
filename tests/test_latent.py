"""Training generators whose z matters: the ELBO's pieces against references, short real trainings
with mle.objective elbo and adversarial.info_weight, and an exact resume of an elbo run."""
from __future__ import annotations

import math

import pytest
import torch
from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

from conftest import FAST
from textgan import checkpoint, config, latent
from textgan.config import ConfigError
from textgan.corpus import prepare
from textgan.models import build_generator
from textgan.models.encoder import SentenceEncoder
from textgan.monitor import Monitor
from textgan.schedule import run
from textgan.train import Trainer

GRAMMAR = ["data.source=grammar", "data.num_train=600", "data.num_test=100", "generator.latent_dim=8",
           "eval.num_samples=40", "eval.latent_draws=4", "eval.latent_samples=16", "eval.latent_mi_k=8",
           "eval.interp_pairs=2", "eval.interp_steps=4", "log.progress=false"]


def _trainer(tmp_path, *overrides: str, monitor: bool = False) -> Trainer:
    cfg = config.load(None, list(overrides))
    corpus = prepare(cfg.data, cfg.run.seed)
    return Trainer(cfg, corpus, tmp_path, Monitor(tmp_path, progress=False, enabled=monitor))


def _scalars(run_dir) -> dict[str, list[float]]:
    acc = EventAccumulator(str(run_dir), size_guidance={"scalars": 0})
    acc.Reload()
    return {tag: [e.value for e in acc.Scalars(tag)] for tag in acc.Tags()["scalars"]}


def test_kl_matches_torch_distributions():
    mean, log_var = torch.randn(5, 3), torch.randn(5, 3)
    q = torch.distributions.Normal(mean, (0.5 * log_var).exp())
    p = torch.distributions.Normal(torch.zeros(3), torch.ones(3))
    assert torch.allclose(latent.kl_per_dim(mean, log_var), torch.distributions.kl_divergence(q, p), atol=1e-6)


def test_free_bits_floor_each_dimension_and_stop_its_gradient():
    kl = torch.tensor([[0.1, 2.0], [0.3, 4.0]], requires_grad=True)  # batch means 0.2 and 3.0
    charged = latent.free_bits_kl(kl, free_bits=0.5)
    assert float(charged.detach()) == pytest.approx(0.5 + 3.0)
    charged.backward()
    assert torch.equal(kl.grad[:, 0], torch.zeros(2))  # below the floor: no pull towards the prior
    assert float(latent.free_bits_kl(kl.detach(), 0.0)) == pytest.approx(3.2)


@pytest.mark.parametrize("step, steps, weight", [(0, 100, 0.0), (25, 100, 0.25), (100, 100, 1.0), (500, 100, 1.0),
                                                 (0, 0, 1.0)])
def test_kl_weight_rises_linearly(step, steps, weight):
    assert latent.kl_weight(step, steps) == weight


def test_encoder_reads_each_sentence_to_its_length_only():
    enc = SentenceEncoder(10, 4, 6, 3).eval()
    tokens = torch.tensor([[4, 5, 2, 0, 0], [4, 5, 2, 7, 9]])
    lengths = torch.tensor([3, 3])
    mean, _ = enc.encode_ids(tokens, lengths)  # the padding/garbage after length 3 never enters
    assert torch.allclose(mean[0], mean[1], atol=1e-6)
    dists = torch.nn.functional.one_hot(tokens, 10).float()
    assert torch.allclose(enc.encode_dists(dists, lengths)[0], mean, atol=1e-6)


def test_importance_sampled_nll_equals_the_brute_force_sum():
    torch.manual_seed(0)
    G = build_generator(config.GeneratorConfig(emb_dim=4, hidden_dim=5, latent_dim=2), 7, [0, 1]).eval()
    enc = SentenceEncoder(7, 3, 4, 2).eval()
    tokens, lengths = torch.tensor([[3, 4, 2, 0], [5, 2, 0, 0]]), torch.tensor([3, 2])
    out = latent.posterior_stats(G, enc, tokens, lengths, draws=3, rng=torch.Generator().manual_seed(5))
    rng = torch.Generator().manual_seed(5)
    with torch.no_grad():
        total = _brute_force_log_px(G, enc, tokens, lengths, rng, draws=3)
    assert out["nll_gen_is3_tok"] == pytest.approx(-total / 5, rel=1e-5)


def _brute_force_log_px(G, enc, tokens, lengths, rng, draws: int) -> float:
    """sum_x log (1/K) sum_k p(x | z_k) p(z_k) / q(z_k | x) from full logits and torch.distributions."""
    mean, log_var = enc.encode_ids(tokens, lengths)
    weights = []
    for _ in range(draws):
        q = torch.distributions.Normal(mean, (0.5 * log_var).exp())
        z = mean + (0.5 * log_var).exp() * torch.randn(mean.shape, generator=rng)
        logits = G(tokens, z).log_softmax(-1)
        log_px_z = torch.tensor([sum(float(logits[b, t, tokens[b, t]]) for t in range(int(lengths[b])))
                                 for b in range(2)])
        prior = torch.distributions.Normal(0.0, 1.0).log_prob(z).sum(1)
        weights.append(log_px_z + prior - q.log_prob(z).sum(1))
    return float((torch.logsumexp(torch.stack(weights), 0) - math.log(draws)).sum())


def test_info_term_reaches_the_generator_through_the_relaxed_one_hots(tmp_path, data_root):
    tr = _trainer(tmp_path, *FAST, f"data.root={data_root}", "adversarial.info_weight=1.0")
    head_before = [p.detach().clone() for p in tr.latent.head.parameters()]
    stats = tr.g_step(tau=0.5)
    assert math.isfinite(stats["adv/info_loss"]) and stats["adv/info_r2"] <= 1.0
    assert tr.G.latent_proj.weight.grad is not None and float(tr.G.latent_proj.weight.grad.abs().sum()) > 0
    assert any(not torch.equal(a, b) for a, b in zip(head_before, tr.latent.head.parameters()))


def test_info_weight_alone_changes_the_generator_update(tmp_path, data_root):
    """The same step with and without the term: only the term differs, so the weights must."""
    results = []
    for weight in ("0.0", "5.0"):
        tr = _trainer(tmp_path / weight, *FAST, f"data.root={data_root}", f"adversarial.info_weight={weight}")
        tr.g_step(tau=0.5)
        results.append(tr.G.latent_proj.weight.detach().clone())
    assert not torch.allclose(results[0], results[1])


def test_a_g_steps_mle_term_is_the_elbo_when_the_run_has_an_encoder(tmp_path, data_root):
    """adversarial.mle_weight with mle.objective elbo: the real batch's z comes from q(z | x) (the
    NLL under prior draws would teach G to ignore z), so the encoder learns in the G step too."""
    tr = _trainer(tmp_path, *FAST, f"data.root={data_root}", "mle.objective=elbo", "adversarial.mle_weight=1.0")
    before = [p.detach().clone() for p in tr.latent.encoder.parameters()]
    stats = tr.g_step(tau=0.5)
    assert stats["mle/kl"] > 0 and math.isfinite(stats["adv/g_mle_loss"])
    assert any(not torch.equal(a, b) for a, b in zip(before, tr.latent.encoder.parameters()))
    plain = _trainer(tmp_path / "plain", *FAST, f"data.root={data_root}", "mle.objective=elbo")
    before = [p.detach().clone() for p in plain.latent.encoder.parameters()]
    assert "mle/kl" not in plain.g_step(tau=0.5)  # without the term the encoder has no part in the step
    assert all(torch.equal(a, b) for a, b in zip(before, plain.latent.encoder.parameters()))


def test_elbo_training_logs_kl_and_active_units(tmp_path):
    tr = _trainer(tmp_path, *GRAMMAR, "mle.objective=elbo", "mle.epochs=3", "latent.kl_anneal_steps=10",
                  "latent.free_bits=0.5", "latent.word_dropout=0.3", "adversarial.steps=0", monitor=True)
    metrics = run(tr)
    tr.monitor.close()
    tb = _scalars(tmp_path)
    assert tb["mle/kl_weight"][0] == 0.0 and tb["mle/kl_weight"][-1] == 1.0
    assert all(v > 0 for v in tb["mle/kl"])
    assert metrics["latent_kl"] > 0 and metrics["latent_active_units"] >= 1
    assert "eval/nll_gen_is4_tok" in tb and "eval/nll_gen_mc4_tok" in tb and "eval/latent_active_units" in tb
    assert math.isfinite(metrics["nll_gen_is4_tok"])


def test_info_training_logs_recovery_r2(tmp_path):
    tr = _trainer(tmp_path, *GRAMMAR, "mle.epochs=1", "adversarial.steps=6", "adversarial.d_steps=1",
                  "adversarial.info_weight=1.0", "discriminator.num_filters=[16, 16, 16, 16]", monitor=True)
    metrics = run(tr)
    tr.monitor.close()
    tb = _scalars(tmp_path)
    assert len(tb["adv/info_r2"]) == 6 and len(tb["adv/info_loss"]) == 6
    assert -10 < metrics["latent_info_r2"] <= 1.0


class _Stop(Exception):
    pass


def test_elbo_run_resumes_exactly(tmp_path):
    schedule = [*GRAMMAR, "mle.objective=elbo", "mle.epochs=2", "latent.kl_anneal_steps=5", "latent.free_bits=0.2",
                "latent.word_dropout=0.2", "adversarial.steps=3", "adversarial.d_steps=1", "adversarial.info_weight=0.5",
                "discriminator.num_filters=[16, 16, 16, 16]", "log.checkpoint_every=1", "log.keep_last=20"]
    whole = _trainer(tmp_path / "whole", *schedule)
    run(whole)
    reference = whole.state_dict()
    part = _trainer(tmp_path / "part", *schedule)

    def stop_after_first(path):
        raise _Stop
    with pytest.raises(_Stop):
        run(part, on_checkpoint=stop_after_first)  # after the first MLE epoch
    state, _ = checkpoint.load_latest_valid(tmp_path / "part" / "checkpoints")
    assert "encoder" in state and "info_head" in state
    resumed = _trainer(tmp_path / "part", *schedule)
    resumed.load_state_dict(state)
    run(resumed)
    final = resumed.state_dict()
    assert final["progress"] == reference["progress"]
    for part_name in ("generator", "discriminator"):
        for key, value in reference[part_name].items():
            assert torch.equal(value, final[part_name][key]), (part_name, key)
    for part_name in ("encoder", "info_head"):
        for key, value in reference[part_name]["weights"].items():
            assert torch.equal(value, final[part_name]["weights"][key]), (part_name, key)
    assert final["metrics"] == reference["metrics"]


def test_a_checkpoint_without_the_encoder_still_loads(tmp_path):
    plain = _trainer(tmp_path / "plain", *GRAMMAR, "mle.epochs=1")
    state = plain.state_dict()
    elbo = _trainer(tmp_path / "elbo", *GRAMMAR, "mle.epochs=1", "mle.objective=elbo")
    elbo.load_state_dict(state)  # the encoder keeps its fresh weights
    assert "encoder" in elbo.state_dict()


@pytest.mark.parametrize("overrides, key", [
    (["mle.objective=elbo", "generator.prior=uniform"], "mle.objective"),
    (["mle.objective=elbo", "generator.prior=none"], "mle.objective"),
    (["adversarial.info_weight=1", "generator.prior=none"], "adversarial.info_weight"),
    (["adversarial.info_weight=-1"], "adversarial.info_weight"),
    (["latent.free_bits=-0.1"], "latent.free_bits"),
    (["latent.word_dropout=1.0"], "latent.word_dropout"),
    (["latent.kl_anneal_steps=-1"], "latent.kl_anneal_steps"),
    (["latent.encoder_hidden_dim=0"], "latent.encoder_hidden_dim"),
    (["mle.objective=vae"], "mle.objective"),
])
def test_bad_latent_settings_are_one_line_errors(overrides, key):
    with pytest.raises(ConfigError) as err:
        config.load(None, overrides)
    assert str(err.value).startswith(key) and "\n" not in str(err.value)


def _old_dropped_word_nll(G, tokens, z, pad_id, unk_id, rate, rng):
    """The reference: word dropout written out over full (B, T, V) logits, as it was before it went
    through the generator's own teacher-forced path (the core run through `ops.core_run`: under
    accel its output's memory layout, which orders the dropout mask's draws, is the C kernel's)."""
    drop = torch.rand(tokens.shape, generator=rng) < rate
    kept = tokens.masked_fill(drop & (tokens != pad_id), unk_id)
    inputs = torch.cat([torch.full_like(tokens[:, :1], G.bos_id), kept[:, :-1]], dim=1)
    dropout = (lambda x: torch.nn.functional.dropout(x, G.io_dropout, training=True)) if G.io_dropout else (lambda x: x)
    hidden = G.ops.core_run(G.core, dropout(G.embedding(inputs)), G.init_state(z))
    logits = G.out(dropout(hidden)) + G.logit_mask  # (B, T, V)
    return torch.nn.functional.cross_entropy(logits.reshape(-1, logits.shape[-1]), tokens.reshape(-1),
                                             ignore_index=pad_id)


@pytest.mark.parametrize("mode", ["off", "auto"])
@pytest.mark.parametrize("io_dropout", [0.0, 0.3])
def test_word_dropout_elbo_equals_the_full_logits_reference(mode, io_dropout):
    """The ELBO's word-dropped NLL runs the generator's own (chunked, accel-swappable) loss: the
    same value and gradients as cross-entropy over the full logits, at the same random draws."""
    from textgan import accel

    torch.manual_seed(0)
    G = build_generator(config.GeneratorConfig(emb_dim=6, hidden_dim=8, latent_dim=3, io_dropout=io_dropout),
                        20, [0, 1]).train()
    accel.apply(G, None, mode)
    enc = SentenceEncoder(20, 4, 5, 3)
    tokens = torch.randint(3, 20, (5, 7))
    tokens[1, 4:], tokens[3, 2:] = 0, 0
    lengths = (tokens != 0).sum(1)
    torch.manual_seed(1)
    terms = latent.elbo(G, enc, tokens, lengths, pad_id=0, unk_id=3, weight=0.0, free_bits=0.0, word_dropout=0.4,
                        rng=torch.Generator().manual_seed(2))
    got = torch.autograd.grad(terms.loss, list(G.parameters()))
    torch.manual_seed(1)
    rng = torch.Generator().manual_seed(2)
    mean, log_var = enc.encode_ids(tokens, lengths)
    z = latent.reparameterise(mean, log_var, rng)
    ref = _old_dropped_word_nll(G, tokens, z, 0, 3, 0.4, rng)
    want = torch.autograd.grad(ref, list(G.parameters()))
    assert terms.nll_tok == pytest.approx(ref.item(), rel=1e-5)
    for a, b in zip(got, want):
        torch.testing.assert_close(a, b, rtol=1e-4, atol=1e-6)
    inputs = latent.drop_words(tokens, 0, 3, 0.4, torch.Generator().manual_seed(9))
    assert bool((inputs[tokens == 0] == 0).all()) and bool(((inputs == tokens) | (inputs == 3)).all())
    assert bool((inputs == 3).any()) and bool((inputs != 3).any())


def _old_greedy(G, z, max_len):
    """The reference: argmax decoding written out step by step from full logits."""
    state = G.init_state(z)
    inp = G.embedding(torch.full((z.shape[0], 1), G.bos_id, dtype=torch.long))
    steps = []
    for _ in range(max_len):
        hidden, state = G.core(inp, state)
        ids = (G.out(hidden[:, 0]) + G.logit_mask).argmax(-1)
        steps.append(ids)
        inp = G.embedding(ids).unsqueeze(1)
    ids = torch.stack(steps, 1)
    out = []
    for row in ids.tolist():  # pad after the first EOS
        end = row.index(G.eos_id) + 1 if G.eos_id in row else len(row)
        out.append(row[:end] + [G.pad_id] * (len(row) - end))
    return torch.tensor(out)


@pytest.mark.parametrize("core", ["lstm", "relational_memory"])
@pytest.mark.parametrize("noise", ["gumbel", "none"])
def test_greedy_decode_is_the_generators_sampling_with_the_noise_off(core, noise):
    from textgan.encoding import greedy_decode

    torch.manual_seed(0)
    G = build_generator(config.GeneratorConfig(emb_dim=8, hidden_dim=8, latent_dim=4, core=core, mem_slots=1,
                                               num_heads=2, head_size=4, noise=noise), 12, [0, 1])
    with torch.no_grad():  # a large projection, so the decoded sentences differ with z and reach EOS
        G.latent_proj.weight.mul_(8.0)
        G.out.bias[2] += 0.5
    G.train()
    z = torch.randn(64, 4, generator=torch.Generator().manual_seed(3))
    ids = greedy_decode(G, z, max_len=9)
    assert G.training  # the caller's mode is restored
    with torch.no_grad():
        want = _old_greedy(G.eval(), z, 9)
    assert torch.equal(ids, want)
    assert len({tuple(row) for row in ids.tolist()}) > 1 and bool((ids == G.eos_id).any())


@pytest.mark.parametrize("overrides", [["mle.objective=elbo"], ["adversarial.info_weight=1.0"]])
def test_latent_networks_under_torchrun_are_refused_before_a_run_folder_exists(tmp_path, overrides):
    from textgan.distributed import Dist
    from textgan.errors import UserError
    from textgan.experiment import _train

    cfg = config.load(None, [*GRAMMAR, f"log.dir={tmp_path}", *overrides])
    with pytest.raises(UserError, match="one process only") as err:
        _train(cfg, None, None, False, Dist(rank=0, world_size=2))
    assert "\n" not in str(err.value) and list(tmp_path.iterdir()) == []
