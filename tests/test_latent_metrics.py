"""Latent-usage metrics (textgan/metrics/latent.py) and the noise-free generator (generator.noise).

The mutual-information bound is checked against explicit loops over a tiny random model, is 0
where z cannot matter, and matches the exact expectation of a hand-built generator whose one
token is the angular sector of z; sensitivity and interpolation are checked on the same models.
"""
from __future__ import annotations

import math

import pytest
import torch

from textgan.config import ConfigError, GeneratorConfig
from textgan.metrics import latent
from textgan.models import build_generator
from textgan.models.generator import Generator
from textgan.sample import interpolate

PAD, BOS, EOS = 0, 1, 2


def tiny(prior: str = "normal", seed: int = 0, noise: str = "gumbel", vocab: int = 7) -> Generator:
    torch.manual_seed(seed)
    gen = Generator(vocab_size=vocab, emb_dim=6, hidden_dim=5, num_layers=1, latent_dim=3, prior=prior,
                    banned=[PAD, BOS], noise=noise)
    with torch.no_grad():
        gen.latent_proj.weight.mul_(4.0) if gen.latent_proj is not None else None  # z matters, somewhat
        gen.out.bias[EOS] += 1.0  # some sentences end before max_len
    return gen.eval()


SECTORS = 256  # words of the hand-built generator: one per angular sector of (z0, z1)


def sector_generator(noise: str = "gumbel") -> Generator:
    """Writes the angular sector of z = (z0, z1) ~ N(0, I) into its only token, near
    deterministically: c0 = 1e-3 z (forget gate 1, input gate 0, output gate 1, so h1 = tanh(c0),
    a hair from 1e-3 z), logit_j = 1e10 * (cos phi_j, sin phi_j) . h1, phi_j the sector centres.
    Under a standard normal the angle is uniform: every token has probability 1 / SECTORS."""
    gen = Generator(vocab_size=3 + SECTORS, emb_dim=2, hidden_dim=2, num_layers=1, latent_dim=2,
                    prior="normal", banned=[PAD, BOS, EOS], noise=noise)
    with torch.no_grad():
        for p in gen.parameters():
            p.zero_()
        gen.lstm.bias_ih_l0[0:2] = -30.0  # input gate: 0
        gen.lstm.bias_ih_l0[2:4] = 30.0  # forget gate: 1
        gen.lstm.bias_ih_l0[6:8] = 30.0  # output gate: 1
        gen.latent_proj.weight[2:4] = 1e-3 * torch.eye(2)  # state vector = (h0, c0): c0 = 1e-3 z
        phi = (torch.arange(SECTORS, dtype=torch.float64) + 0.5) * 2 * math.pi / SECTORS
        gen.out.weight[3:] = (1e10 * torch.stack([phi.cos(), phi.sin()], 1)).float()
    return gen.eval()


def sector_of(z: torch.Tensor) -> torch.Tensor:
    """The token sector_generator writes for z (N, 2)."""
    angle = torch.atan2(z[:, 1].double(), z[:, 0].double()) % (2 * math.pi)
    return 3 + (angle / (2 * math.pi / SECTORS)).floor().long()


def exact_sector_mi(k: int) -> float:
    """E[log K - log(1 + B)], B ~ Binomial(K - 1, 1 / SECTORS): the bound of a generator whose
    sentence is one of SECTORS equally likely values of z, deterministically."""
    p = 1 / SECTORS
    return sum(math.comb(k - 1, b) * p ** b * (1 - p) ** (k - 1 - b) * (math.log(k) - math.log(1 + b))
               for b in range(k))


def rng(seed: int) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


# ---------------------------------------------------------------------------- mutual information

def brute_log_lik(gen: Generator, tokens, lengths, zs, temperature: float) -> torch.Tensor:
    """log p(x_i | z_ik) by explicit loops over sentences, latents and positions, from the full
    teacher-forced logits."""
    n, k, _ = zs.shape
    out = torch.zeros(n, k, dtype=torch.float64)
    with torch.no_grad():
        for i in range(n):
            for j in range(k):
                hidden = gen.hidden_states(tokens[i:i + 1], zs[i, j:j + 1])[0]  # (T, H)
                logp = torch.log_softmax(gen.out(hidden) / temperature + gen.logit_mask, -1).double()
                out[i, j] = sum(logp[t, tokens[i, t]] for t in range(int(lengths[i])))
    return out


@pytest.mark.parametrize("temperature", [1.0, 0.7])
@pytest.mark.parametrize("chunk", [latent.SCORE_ELEMENTS, 7])
def test_mi_equals_explicit_loops_on_a_tiny_model(temperature, chunk, monkeypatch):
    monkeypatch.setattr(latent, "SCORE_ELEMENTS", chunk)  # 7: one row per chunk
    gen, n, k, max_len = tiny(), 6, 5, 4
    got = latent.latent_mi(gen, n, k, max_len, rng(3), temperature=temperature)
    # the same draws, in latent_mi's documented order
    r = rng(3)
    z = gen.sample_latent(n, r)
    out = gen.sample(z, max_len, temperature=temperature, generator=r, need_dists=False)
    zs = torch.cat([z.unsqueeze(1), gen.sample_latent(n * (k - 1), r).view(n, k - 1, -1)], 1)
    assert bool((out.lengths < max_len).any())  # EOS inside: lengths matter
    ll = brute_log_lik(gen, out.tokens, out.lengths, zs, temperature)
    torch.testing.assert_close(latent.pair_log_likelihoods(gen, out.tokens, out.lengths, zs, temperature), ll,
                               rtol=1e-5, atol=1e-5)
    want = sum(ll[i, 0].item() - math.log(sum(math.exp(ll[i, j].item()) for j in range(k)) / k)
               for i in range(n)) / n
    assert got.nats == pytest.approx(want, abs=1e-5)
    assert got.k == k and got.log_k == pytest.approx(math.log(k))
    assert got.nats <= math.log(k)  # (a mean over 6 sentences may fall below 0; its expectation cannot)


def test_mi_is_zero_without_a_prior():
    mi = latent.latent_mi(tiny(prior="none"), 20, 8, 5, rng(0))
    assert mi.nats == pytest.approx(0.0, abs=1e-6) and mi.k == 8


@pytest.mark.parametrize("prior", ["normal", "uniform"])
def test_mi_is_zero_when_the_latent_projection_is_zero(prior):
    gen = tiny(prior)
    assert latent.latent_mi(gen, 20, 8, 5, rng(0)).nats > 0.01  # before: z matters
    with torch.no_grad():
        gen.latent_proj.weight.zero_()
        gen.latent_proj.bias.zero_()
    assert latent.latent_mi(gen, 20, 8, 5, rng(0)).nats == pytest.approx(0.0, abs=1e-6)


@pytest.mark.parametrize("noise", ["gumbel", "none"])
def test_mi_of_a_generator_writing_z_into_its_token_is_the_exact_value(noise):
    """Near log K: 3.94 of 4.16 nats at K = 64 and 256 equally likely sentences (two of 64 draws
    share a sector now and then). Tolerance: 0.06 nats, about 4.5 Monte Carlo standard errors
    at N = 512 (the per-sentence terms have sd ~0.3)."""
    k = 64
    mi = latent.latent_mi(sector_generator(noise), 512, k, 1, rng(5))
    assert mi.nats == pytest.approx(exact_sector_mi(k), abs=0.06)
    assert exact_sector_mi(k) > math.log(k) - 0.25


def test_sector_generator_writes_the_sector():
    gen = sector_generator()
    z = gen.sample_latent(300, rng(1))
    out = gen.sample(z, 1, generator=rng(2), need_dists=False)
    agree = (out.tokens[:, 0] == sector_of(z)).float().mean()
    assert agree > 0.98  # the rest lie within ~1e-4 rad of a sector boundary


def test_mi_needs_two_draws():
    with pytest.raises(ValueError, match="K >= 2"):
        latent.latent_mi(tiny(), 4, 1, 5, rng(0))


# ---------------------------------------------------------------------------- sensitivity

def test_sensitivity_is_zero_without_a_prior():
    sens = latent.latent_sensitivity(tiny(prior="none"), 50, 5, rng(0))
    assert sens.sentences == 0.0 and sens.tokens == 0.0


def test_sensitivity_is_near_one_when_z_is_the_sentence():
    """Two independent z share a sector with probability 1 / SECTORS."""
    sens = latent.latent_sensitivity(sector_generator(), 400, 1, rng(0))
    assert sens.sentences > 0.97 and sens.tokens == pytest.approx(sens.sentences)  # one token per sentence


def test_sensitivity_holds_the_noise_fixed(monkeypatch):
    """Redrawing z changes some tokens of the tiny model; with the chunked sampling (3 rows at a
    time) the numbers are the same, as every row keeps its noise. Counted by hand from the draws."""
    gen, n, max_len = tiny(), 10, 5
    sens = latent.latent_sensitivity(gen, n, max_len, rng(4))
    monkeypatch.setattr(latent, "SAMPLE_ROWS", 3)
    assert latent.latent_sensitivity(gen, n, max_len, rng(4)) == sens
    r = rng(4)
    za, zb = gen.sample_latent(n, r), gen.sample_latent(n, r)
    noise = latent.gumbel_noise((max_len, n, gen.vocab_size), r)
    changed, positions, sentences = _count_changes(gen.sample(za, max_len, noise=noise, need_dists=False),
                                                   gen.sample(zb, max_len, noise=noise, need_dists=False))
    assert sens.tokens == pytest.approx(changed / positions) and sens.sentences == pytest.approx(sentences / n)
    assert 0 < sens.tokens < 1


def _count_changes(a, b) -> tuple[int, int, int]:
    """By hand, from two draws' samples: changed tokens, positions compared, changed sentences."""
    changed = positions = sentences = 0
    for i in range(a.tokens.shape[0]):
        span = max(int(a.lengths[i]), int(b.lengths[i]))
        changed += sum(int(a.tokens[i, t] != b.tokens[i, t]) for t in range(span))
        positions += span
        sentences += not torch.equal(a.tokens[i], b.tokens[i])
    return changed, positions, sentences


def test_sensitivity_draws_its_noise_a_block_of_sentences_at_a_time(monkeypatch):
    """Past NOISE_ROWS sentences the fixed noise comes a block at a time (bounded memory): each
    block's figures are those of a call over that block alone, continuing the same draws."""
    gen, n, max_len = tiny(), 10, 5
    monkeypatch.setattr(latent, "NOISE_ROWS", 4)
    sens = latent.latent_sensitivity(gen, n, max_len, rng(4))
    r = rng(4)
    za, zb = gen.sample_latent(n, r), gen.sample_latent(n, r)
    changed = positions = sentences = 0
    for start in range(0, n, 4):
        noise = latent.gumbel_noise((max_len, min(4, n - start), gen.vocab_size), r)
        counts = _count_changes(gen.sample(za[start:start + 4], max_len, noise=noise, need_dists=False),
                                gen.sample(zb[start:start + 4], max_len, noise=noise, need_dists=False))
        changed, positions, sentences = (x + y for x, y in zip((changed, positions, sentences), counts))
    assert sens.tokens == pytest.approx(changed / positions) and sens.sentences == pytest.approx(sentences / n)
    assert latent.latent_sensitivity(gen, 0, max_len, rng(4)).sentences == 0.0


# ---------------------------------------------------------------------------- interpolation

@pytest.mark.parametrize("a,b,dist", [([], [], 0), ([1, 2, 3], [1, 2, 3], 0), ([1, 2, 3], [1, 5, 3], 1),
                                      ([1, 2, 3], [2, 3], 1), ([], [4, 4], 2), ([1, 2, 3, 4], [4, 3, 2, 1], 4),
                                      ([5, 6, 7, 2], [6, 7, 8, 9, 2], 3)])
def test_edit_distance(a, b, dist):
    assert latent.edit_distance(a, b) == dist == latent.edit_distance(b, a)


def test_path_stats():
    assert latent.path_stats([[4, 5, 2], [4, 5, 2], [4, 6, 2], [4, 2], [4, 5, 2]]) == (3, (0 + 1 + 1 + 1) / 4)


def test_interpolation_without_a_prior_is_one_sentence():
    interp = latent.interpolation_stats(tiny(prior="none"), 4, 6, 5, rng(0))
    assert interp.distinct == 1.0 and interp.edit == 0.0 and interp.steps == 6


def test_interpolation_counts_the_sectors_a_path_crosses():
    """On the sector generator a spherical path turns z's angle monotonically, so the distinct
    sentences are the sectors its points fall in, and neighbours differ by 0 or 1 substitution."""
    gen, pairs, steps = sector_generator(), 6, 9
    interp = latent.interpolation_stats(gen, pairs, steps, 1, rng(2))
    r = rng(2)
    z0, z1 = gen.sample_latent(pairs, r), gen.sample_latent(pairs, r)
    distinct = [len(set(sector_of(interpolate(z0[p], z1[p], steps)).tolist())) for p in range(pairs)]
    assert interp.distinct == pytest.approx(sum(distinct) / pairs)
    assert interp.edit == pytest.approx((interp.distinct - 1) / (steps - 1))
    assert interp.distinct > 2


def test_latent_metrics_names_and_switches():
    gen = tiny()
    full = latent.latent_metrics(gen, max_len=5, seed=0, num=10, k=4, pairs=2, steps=3)
    assert list(full) == latent.latent_metric_names(10, 4, 2) == [
        "latent_mi_4", "latent_mi_4_max", "latent_sensitivity", "latent_token_change", "interp_distinct", "interp_edit"]
    assert full["latent_mi_4_max"] == pytest.approx(math.log(4))
    interp_only = latent.latent_metrics(gen, max_len=5, seed=0, num=0, k=4, pairs=2, steps=3)
    assert list(interp_only) == ["interp_distinct", "interp_edit"]
    assert latent.latent_metrics(gen, max_len=5, seed=0, num=0, k=4, pairs=0, steps=3) == {}
    assert latent.latent_metrics(gen, max_len=5, seed=0, num=10, k=4, pairs=2, steps=3) == full  # seeded
    assert gen.training is False
    gen.train()
    latent.latent_metrics(gen, max_len=5, seed=0, num=10, k=4, pairs=2, steps=3)
    assert gen.training  # the caller's mode is kept


# ---------------------------------------------------------------------------- z as the only noise

def test_without_noise_the_sample_is_a_function_of_z():
    gen = tiny(noise="none", vocab=12)
    z = gen.sample_latent(16, rng(0))
    a = gen.sample(z, 6, tau=0.5, generator=rng(1))
    b = gen.sample(z, 6, tau=0.5, generator=rng(2))
    assert torch.equal(a.tokens, b.tokens) and torch.equal(a.dists, b.dists)
    c = gen.sample(gen.sample_latent(16, rng(3)), 6, tau=0.5, generator=rng(1))
    assert not torch.equal(a.tokens, c.tokens)
    noisy = tiny(noise="gumbel", vocab=12)
    assert not torch.equal(noisy.sample(z, 6, generator=rng(1)).tokens, noisy.sample(z, 6, generator=rng(2)).tokens)


@pytest.mark.parametrize("tau", [1.0, 0.3])
def test_without_noise_tokens_are_argmax_and_dists_are_softmax_over_tau(tau):
    """Checked against the teacher-forced logits of the sampled tokens (hard feedback feeds them back)."""
    gen = tiny(noise="none", vocab=12)
    z = gen.sample_latent(16, rng(0))
    out = gen.sample(z, 6, tau=tau)
    with torch.no_grad():
        logits = gen(out.tokens, z)  # (B, T, V)
    alive = torch.arange(6) < out.lengths.unsqueeze(1)
    assert torch.equal(logits.argmax(-1)[alive], torch.where(alive, out.tokens, 0)[alive])
    torch.testing.assert_close(out.dists[alive], torch.softmax(logits / tau, -1)[alive], rtol=1e-5, atol=1e-6)


def test_noise_config_switch():
    cfg = GeneratorConfig(emb_dim=6, hidden_dim=5, latent_dim=3, noise="none")
    assert build_generator(cfg, 9, [PAD, BOS]).noise == "none"
    assert build_generator(GeneratorConfig(), 9, [PAD, BOS]).noise == "gumbel"
    with pytest.raises(ConfigError, match="noise: none needs a latent"):
        GeneratorConfig(prior="none", noise="none")


def test_a_noise_free_run_trains_and_samples_without_noise(tmp_path, data_root):
    """generator.noise=none through the trainer: the D and G steps run on noise-free fakes (two
    draws of the same z are the same sentences), and the saved run samples without noise: the
    same z gives the same text whatever the sampling seed, the latent metrics score it
    deterministically (latent_mi_K up to log K)."""
    from conftest import FAST
    from textgan import config
    from textgan.corpus import prepare
    from textgan.monitor import Monitor
    from textgan.sample import load_generator, sample_text
    from textgan.train import Trainer

    cfg = config.load(None, [*FAST, "generator.noise=none", "adversarial.steps=2", "adversarial.d_steps=1"])
    corpus = prepare(cfg.data, cfg.run.seed)
    tr = Trainer(cfg, corpus, tmp_path, Monitor(tmp_path, progress=False, enabled=False))
    stats = tr.adversarial_step()
    assert math.isfinite(stats["adv/d_loss"]) and math.isfinite(stats["adv/g_loss"]) and "adv/g_grad_norm" in stats
    z = tr.G.sample_latent(6, rng(0))
    with torch.no_grad():
        first = tr.G.sample(z, corpus.max_len, tau=0.5, generator=tr.noise_rng)
        again = tr.G.sample(z, corpus.max_len, tau=0.5, generator=tr.noise_rng)
    assert torch.equal(first.tokens, again.tokens)
    tr.save(tmp_path / "checkpoints" / "step_00000001.pt")
    loaded = load_generator(tmp_path)
    assert loaded.generator.noise == "none"
    z = loaded.generator.sample_latent(5, rng(1))
    assert sample_text(loaded, 5, seed=3, z=z) == sample_text(loaded, 5, seed=4, z=z)
    metrics = latent.latent_metrics(loaded.generator, max_len=corpus.max_len, seed=0, num=16, k=8, pairs=2, steps=4)
    assert -1e-9 <= metrics["latent_mi_8"] <= math.log(8) + 1e-9  # deterministic decoding: never below 0
