"""The latent LSTM generator: z sets every layer's state, teacher forcing is causal, free running
feeds back its own Gumbel-max tokens (checked against a hand-written LSTM loop), and the
discriminator's gradient reaches every generator parameter through the relaxed one-hots."""
from __future__ import annotations

import pytest
import torch

from textgan import accel
from textgan.config import GeneratorConfig
from textgan.gumbel import gumbel_noise
from textgan.models import build_generator
from textgan.models.discriminator import LSTMDiscriminator, RelGANCNN
from textgan.models.generator import Generator

V, PAD, BOS, EOS = 12, 0, 1, 2
FEEDBACKS = ["hard", "soft", "straight_through"]


def make_gen(num_layers: int = 1, prior: str = "normal", feedback: str = "hard", seed: int = 0,
             eos_bias: float = 0.0, vocab_size: int = V) -> Generator:
    torch.manual_seed(seed)
    gen = Generator(vocab_size=vocab_size, emb_dim=8, hidden_dim=16, num_layers=num_layers, latent_dim=5,
                    prior=prior, feedback=feedback, banned=[PAD, BOS], pad_id=PAD, bos_id=BOS, eos_id=EOS)
    with torch.no_grad():
        gen.out.bias[EOS] += eos_bias  # so that some, not all, sequences end early
    return gen


def latent(gen: Generator, num: int, seed: int) -> torch.Tensor:
    return gen.sample_latent(num, torch.Generator().manual_seed(seed))


# ---------------------------------------------------------------------------- latent initial state

@pytest.mark.parametrize("num_layers", [1, 2, 3])
@pytest.mark.parametrize("prior", ["normal", "uniform"])
def test_z_sets_h0_and_c0_of_every_layer(num_layers, prior):
    gen = make_gen(num_layers, prior)
    z1, z2 = latent(gen, 4, 1), latent(gen, 4, 2)
    assert not torch.equal(z1, z2)
    h1, c1 = gen.init_state(z1)
    h2, c2 = gen.init_state(z2)
    assert h1.shape == c1.shape == (num_layers, 4, 16)
    for layer in range(num_layers):
        for row in range(4):
            assert not torch.allclose(h1[layer, row], h2[layer, row]), (layer, row)
            assert not torch.allclose(c1[layer, row], c2[layer, row]), (layer, row)
        assert not torch.allclose(h1[layer], c1[layer])  # h and c are separate projections
    # Each row's state is a function of that row's z only.
    z3 = z1.clone()
    z3[0] = z2[0]
    h3, c3 = gen.init_state(z3)
    torch.testing.assert_close(h3[:, 0], h2[:, 0])
    torch.testing.assert_close(c3[:, 1:], c1[:, 1:])
    # And the state reaches the outputs.
    tokens = torch.randint(3, V, (4, 6), generator=torch.Generator().manual_seed(0))
    assert not torch.allclose(gen(tokens, z1), gen(tokens, z2))


@pytest.mark.parametrize("prior", ["normal", "uniform"])
def test_prior_ranges(prior):
    gen = make_gen(prior=prior)
    z = latent(gen, 2000, 0)
    assert z.shape == (2000, 5)
    if prior == "uniform":
        assert z.min() >= -1 and z.max() <= 1
        assert abs(z.mean()) < 0.05
    else:
        assert abs(z.mean()) < 0.05 and abs(z.std() - 1) < 0.05


@pytest.mark.parametrize("num_layers", [1, 2, 3])
def test_prior_none_is_zero_state_and_ignores_z(num_layers):
    gen = make_gen(num_layers, prior="none")
    assert gen.latent_proj is None
    assert not any("latent_proj" in name for name, _ in gen.named_parameters())
    z = torch.randn(3, 5)
    h, c = gen.init_state(z)
    assert h.shape == c.shape == (num_layers, 3, 16)
    assert torch.count_nonzero(h) == 0 and torch.count_nonzero(c) == 0
    assert h.data_ptr() != c.data_ptr()  # not aliased
    assert torch.count_nonzero(gen.sample_latent(3)) == 0
    tokens = torch.randint(3, V, (3, 5), generator=torch.Generator().manual_seed(0))
    assert torch.equal(gen(tokens, z), gen(tokens, torch.zeros_like(z)))


# ---------------------------------------------------------------------------- teacher forcing

@pytest.mark.parametrize("num_layers", [1, 2])
@pytest.mark.parametrize("k", [0, 3, 6])
def test_teacher_forcing_is_causal(num_layers, k):
    gen = make_gen(num_layers).eval()
    rng = torch.Generator().manual_seed(4)
    tokens = torch.randint(3, V, (3, 8), generator=rng)
    z = latent(gen, 3, 5)
    changed = tokens.clone()
    changed[:, k] = (tokens[:, k] - 3 + 1) % (V - 3) + 3  # a different real token
    with torch.no_grad():
        before, after = gen(tokens, z), gen(changed, z)
    assert before.shape == (3, 8, V)
    assert torch.equal(before[:, : k + 1], after[:, : k + 1])  # positions <= k never see token k
    assert not torch.allclose(before[:, k + 1], after[:, k + 1])  # k + 1 is predicted from it


def test_teacher_forcing_starts_from_bos_and_masks_banned():
    gen = make_gen().eval()
    z = latent(gen, 2, 0)
    tokens = torch.randint(3, V, (2, 5), generator=torch.Generator().manual_seed(1))
    with torch.no_grad():
        logits = gen(tokens, z)
        hidden, _ = gen.lstm(gen.embedding(torch.full((2, 1), BOS)), gen.init_state(z))
    torch.testing.assert_close(logits[:, 0], gen.out(hidden[:, 0]) + gen.logit_mask)
    assert (logits[..., PAD] < -1e8).all() and (logits[..., BOS] < -1e8).all()


@pytest.mark.parametrize("mode", ["off", "auto"])
def test_io_dropout_drops_teacher_forced_inputs_and_outputs_only_while_training(mode):
    """generator.io_dropout: in training the teacher-forced logits and MLE loss change from draw
    to draw and every parameter still gets a gradient (the fused all-in-forward MLE path steps
    aside); in eval mode, and for free-running samples in any mode, the model is the same as
    without it."""
    cfg = dict(emb_dim=8, hidden_dim=16, latent_dim=5)
    torch.manual_seed(0)
    plain = build_generator(GeneratorConfig(**cfg), V, [PAD, BOS])
    drop = build_generator(GeneratorConfig(**cfg, io_dropout=0.5), V, [PAD, BOS])
    drop.load_state_dict(plain.state_dict())
    accel.apply(plain, None, mode)
    accel.apply(drop, None, mode)
    tokens = torch.randint(3, V, (6, 7), generator=torch.Generator().manual_seed(1))
    z = latent(plain, 6, 2)
    assert not accel.mle_fused(drop)  # training, gradients on: the layered path, which can drop
    first, second = drop.mle_loss(tokens, z, PAD), drop.mle_loss(tokens, z, PAD)
    assert not torch.allclose(first, second)
    assert not torch.allclose(first, plain.mle_loss(tokens, z, PAD))
    first.backward()
    assert all(p.grad is not None and p.grad.abs().sum() > 0 for p in drop.parameters())
    with torch.no_grad():
        assert not torch.allclose(drop(tokens, z), plain(tokens, z))
        for mode in (True, False):
            a = plain.train(mode).sample(z, 9, generator=torch.Generator().manual_seed(3))
            b = drop.train(mode).sample(z, 9, generator=torch.Generator().manual_seed(3))
            assert torch.equal(a.tokens, b.tokens) and torch.equal(a.dists, b.dists)
        plain.eval(), drop.eval()
        torch.testing.assert_close(drop(tokens, z), plain(tokens, z), rtol=0, atol=0)
        torch.testing.assert_close(drop.mle_loss(tokens, z, PAD), plain.mle_loss(tokens, z, PAD), rtol=0, atol=0)


@pytest.mark.parametrize("mode", ["off", "auto"])
def test_tied_embeddings_share_one_matrix_whose_gradient_sums_both_roles(mode):
    """generator.tie_embeddings: the embedding and the output layer are one parameter (V * E
    fewer), its MLE gradient is the untied model's embedding gradient plus its output-weight
    gradient (also through the fused all-in-forward kernels, where `auto` takes them), and a
    state-dict round trip keeps it one tensor."""
    cfg = dict(emb_dim=16, hidden_dim=16, latent_dim=5)
    torch.manual_seed(0)
    tied = build_generator(GeneratorConfig(**cfg, tie_embeddings=True), V, [PAD, BOS])
    untied = build_generator(GeneratorConfig(**cfg), V, [PAD, BOS])
    untied.load_state_dict(tied.state_dict())
    accel.apply(tied, None, mode)
    accel.apply(untied, None, mode)
    assert tied.embedding.weight is tied.out.weight
    assert torch.equal(untied.embedding.weight, untied.out.weight)  # same values, two tensors
    n_tied, n_untied = (sum(p.numel() for p in g.parameters()) for g in (tied, untied))
    assert n_untied - n_tied == V * 16
    tokens = torch.randint(3, V, (6, 7), generator=torch.Generator().manual_seed(1))
    z = latent(tied, 6, 2)
    tied.mle_loss(tokens, z, PAD).backward()
    untied.mle_loss(tokens, z, PAD).backward()
    torch.testing.assert_close(tied.out.weight.grad, untied.embedding.weight.grad + untied.out.weight.grad)
    assert untied.embedding.weight.grad.abs().sum() > 0 and untied.out.weight.grad.abs().sum() > 0
    reloaded = build_generator(GeneratorConfig(**cfg, tie_embeddings=True), V, [PAD, BOS])
    reloaded.load_state_dict(tied.state_dict())
    assert reloaded.embedding.weight is reloaded.out.weight
    assert torch.equal(reloaded.out.weight, tied.out.weight)


# ---------------------------------------------------------------------------- free running

def lstm_step(gen: Generator, x: torch.Tensor, h: list, c: list) -> torch.Tensor:
    """One step of the stacked LSTM written out from its weights (i, f, g, o gate order)."""
    for layer in range(gen.num_layers):
        w_ih, w_hh = getattr(gen.lstm, f"weight_ih_l{layer}"), getattr(gen.lstm, f"weight_hh_l{layer}")
        b = getattr(gen.lstm, f"bias_ih_l{layer}") + getattr(gen.lstm, f"bias_hh_l{layer}")
        i, f, g, o = (x @ w_ih.T + h[layer] @ w_hh.T + b).chunk(4, dim=-1)
        c[layer] = torch.sigmoid(f) * c[layer] + torch.sigmoid(i) * torch.tanh(g)
        h[layer] = torch.sigmoid(o) * torch.tanh(c[layer])
        x = h[layer]
    return x


def manual_sample(gen: Generator, z: torch.Tensor, max_len: int, tau: float, temperature: float,
                  seed: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Free running by hand: the same (T, B, V) noise, drawn at once, from a same-seeded generator."""
    b = z.shape[0]
    noise = gumbel_noise((max_len, b, gen.vocab_size), torch.Generator().manual_seed(seed))
    h0, c0 = gen.init_state(z)
    h, c = list(h0), list(c0)
    x = gen.embedding.weight[torch.full((b,), BOS)]
    ids_steps, soft_steps = [], []
    for t in range(max_len):
        out = lstm_step(gen, x, h, c)
        logits = gen.out(out) / temperature
        logits[:, [PAD, BOS]] = -1e9
        perturbed = logits + noise[t]
        ids = perturbed.argmax(-1)
        soft = torch.softmax(perturbed / tau, -1)
        ids_steps.append(ids)
        soft_steps.append(soft)
        x = soft @ gen.embedding.weight if gen.feedback == "soft" else gen.embedding.weight[ids]
    ids, soft = torch.stack(ids_steps, 1), torch.stack(soft_steps, 1)
    for row in range(b):  # pad after the first EOS
        eos = (ids[row] == EOS).nonzero()
        if len(eos):
            ids[row, eos[0, 0] + 1:] = PAD
    return ids, soft


@pytest.mark.parametrize("feedback", FEEDBACKS)
@pytest.mark.parametrize("num_layers", [1, 2])
@pytest.mark.parametrize("temperature", [1.0, 0.7])
def test_sample_equals_manual_loop(feedback, num_layers, temperature):
    gen = make_gen(num_layers, feedback=feedback, eos_bias=1.0).eval()
    z = latent(gen, 6, 3)
    with torch.no_grad():
        out = gen.sample(z, 9, tau=0.8, temperature=temperature, generator=torch.Generator().manual_seed(11))
        ids, soft = manual_sample(gen, z, 9, tau=0.8, temperature=temperature, seed=11)
    assert torch.equal(out.tokens, ids)
    alive = torch.arange(9).unsqueeze(0) < out.lengths.unsqueeze(1)
    torch.testing.assert_close(out.dists[alive], soft[alive], atol=1e-5, rtol=1e-5)
    assert (~alive).any() and alive[:, 1:].any()  # the check covered both regions


@pytest.mark.parametrize("num_layers", [1, 2])
def test_hard_feedback_equals_teacher_forcing_on_own_output(num_layers):
    """Free running with hard feedback is teacher forcing on the generator's own tokens."""
    gen = make_gen(num_layers, feedback="hard", eos_bias=0.5).eval()
    z = latent(gen, 8, 0)
    with torch.no_grad():
        out = gen.sample(z, 10, generator=torch.Generator().manual_seed(5), need_dists=False)
        logits = gen(out.tokens, z)  # (B, T, V)
    noise = gumbel_noise((10, 8, V), torch.Generator().manual_seed(5)).transpose(0, 1)  # (B, T, V)
    again = (logits + noise).argmax(-1)
    for row in range(8):
        n = out.lengths[row]
        assert torch.equal(again[row, :n], out.tokens[row, :n])


@pytest.mark.parametrize("feedback", FEEDBACKS)
@pytest.mark.parametrize("straight_through", [False, True])
def test_sample_output_contract(feedback, straight_through):
    gen = make_gen(feedback=feedback, eos_bias=1.5).eval()
    b, t = 16, 7
    with torch.no_grad():
        out = gen.sample(latent(gen, b, 2), t, tau=0.5, straight_through=straight_through,
                         generator=torch.Generator().manual_seed(2))
    assert out.tokens.shape == (b, t) and out.tokens.dtype == torch.long
    assert out.lengths.shape == (b,) and out.dists.shape == (b, t, V)
    assert ((out.lengths >= 1) & (out.lengths <= t)).all()
    assert (out.lengths < t).any() and (out.lengths > 1).any()  # both early ends and longer ones
    pad = torch.zeros(V)
    pad[PAD] = 1.0
    torch.testing.assert_close(out.dists.sum(-1), torch.ones(b, t))
    assert (out.dists >= 0).all()
    for row in range(b):
        n = int(out.lengths[row])
        seq = out.tokens[row]
        assert (seq[n:] == PAD).all() and (seq[:n] != PAD).all()
        assert (seq[: n - 1] != EOS).all()  # the first EOS ends the sequence
        assert seq[n - 1] == EOS or n == t
        assert torch.equal(out.dists[row, n:], pad.expand(t - n, V))  # pad one-hot after the end
        assert torch.equal(out.dists[row, :n].argmax(-1), seq[:n])
        if straight_through:
            assert torch.equal(out.dists[row, :n], torch.nn.functional.one_hot(seq[:n], V).float())


@pytest.mark.parametrize("feedback", FEEDBACKS)
def test_need_dists_false_gives_same_tokens(feedback):
    gen = make_gen(feedback=feedback, eos_bias=1.0).eval()
    z = latent(gen, 6, 0)
    with torch.no_grad():
        a = gen.sample(z, 8, generator=torch.Generator().manual_seed(9), need_dists=True)
        b = gen.sample(z, 8, generator=torch.Generator().manual_seed(9), need_dists=False)
    assert b.dists is None
    assert torch.equal(a.tokens, b.tokens) and torch.equal(a.lengths, b.lengths)


def test_same_seed_same_sample_other_seed_other_sample():
    gen = make_gen().eval()
    z = latent(gen, 8, 0)
    with torch.no_grad():
        a = gen.sample(z, 8, generator=torch.Generator().manual_seed(1))
        b = gen.sample(z, 8, generator=torch.Generator().manual_seed(1))
        c = gen.sample(z, 8, generator=torch.Generator().manual_seed(2))
    assert torch.equal(a.tokens, b.tokens) and torch.equal(a.dists, b.dists)
    assert not torch.equal(a.tokens, c.tokens)


# ---------------------------------------------------------------------------- gradients

def make_disc(kind: str):
    if kind == "relgan_cnn":
        return RelGANCNN(V, emb_dim=16, num_rep=4, filter_sizes=[2, 3], num_filters=[6, 6], dropout=0.0)
    return LSTMDiscriminator(V, emb_dim=8, hidden_dim=8, dropout=0.0)


@pytest.mark.parametrize("feedback", FEEDBACKS)
@pytest.mark.parametrize("straight_through", [False, True])
@pytest.mark.parametrize("disc_kind", ["relgan_cnn", "lstm"])
@pytest.mark.parametrize("num_layers", [1, 2])
def test_discriminator_gradient_reaches_every_generator_parameter(feedback, straight_through, disc_kind,
                                                                   num_layers):
    gen = make_gen(num_layers, feedback=feedback)
    torch.manual_seed(1)
    disc = make_disc(disc_kind)
    out = gen.sample(latent(gen, 8, 0), 8, tau=1.0, straight_through=straight_through,
                     generator=torch.Generator().manual_seed(0), need_dists=True)
    assert (out.lengths > 2).any()
    disc(out.dists).mean().backward()
    names = {name for name, _ in gen.named_parameters()}
    assert {"embedding.weight", "out.weight", "out.bias", "latent_proj.weight", "latent_proj.bias"} <= names
    assert sum(name.startswith("lstm.") for name in names) == 4 * num_layers
    for name, param in gen.named_parameters():
        assert param.grad is not None, name
        assert torch.isfinite(param.grad).all(), name
        assert param.grad.abs().sum() > 0, name


@pytest.mark.parametrize("feedback", FEEDBACKS)
def test_straight_through_is_one_hot_forward_with_gradient(feedback):
    gen = make_gen(feedback=feedback)
    out = gen.sample(latent(gen, 6, 1), 6, tau=0.7, straight_through=True,
                     generator=torch.Generator().manual_seed(3))
    values = out.dists.detach()
    assert set(values.unique().tolist()) <= {0.0, 1.0}
    assert torch.equal(values.sum(-1), torch.ones(6, 6))
    weights = torch.randn(6, 6, V, generator=torch.Generator().manual_seed(0))
    (out.dists * weights).sum().backward()
    assert gen.out.weight.grad is not None and gen.out.weight.grad.abs().sum() > 0


# ---------------------------------------------------------------------------- banned ids, temperature

@pytest.mark.parametrize("feedback", FEEDBACKS)
@pytest.mark.parametrize("need_dists", [True, False])
def test_banned_ids_never_sampled(feedback, need_dists):
    gen = make_gen(feedback=feedback).eval()
    with torch.no_grad():
        gen.out.bias[PAD] += 50.0  # the unmasked model would emit pad and bos almost always
        gen.out.bias[BOS] += 50.0
        for temperature in (1.0, 0.05, 20.0):
            out = gen.sample(latent(gen, 64, 0), 10, temperature=temperature, need_dists=need_dists,
                             generator=torch.Generator().manual_seed(0))
            alive = torch.arange(10).unsqueeze(0) < out.lengths.unsqueeze(1)
            assert not (out.tokens[alive] == PAD).any()
            assert not (out.tokens == BOS).any()
            if need_dists:
                assert out.dists[alive][:, [PAD, BOS]].max() < 1e-6


@pytest.mark.parametrize("feedback", FEEDBACKS)
def test_low_temperature_is_greedy(feedback):
    gen = make_gen(feedback=feedback).eval()
    z = latent(gen, 8, 4)
    with torch.no_grad():
        a = gen.sample(z, 8, temperature=1e-4, generator=torch.Generator().manual_seed(1))
        b = gen.sample(z, 8, temperature=1e-4, generator=torch.Generator().manual_seed(2))
        c = gen.sample(z, 8, temperature=1.0, generator=torch.Generator().manual_seed(1))
        d = gen.sample(z, 8, temperature=1.0, generator=torch.Generator().manual_seed(2))
    assert torch.equal(a.tokens, b.tokens)
    assert not torch.equal(c.tokens, d.tokens)  # at temperature 1 the noise matters
    if feedback != "soft":  # greedy decoding by hand (soft feedback's input also depends on tau)
        with torch.no_grad():
            h0, c0 = gen.init_state(z)
            h, cell = list(h0), list(c0)
            x = gen.embedding.weight[torch.full((8,), BOS)]
            greedy = []
            for _ in range(8):
                ids = (gen.out(lstm_step(gen, x, h, cell)) + gen.logit_mask).argmax(-1)
                greedy.append(ids)
                x = gen.embedding.weight[ids]
        greedy = torch.stack(greedy, 1)
        alive = torch.arange(8).unsqueeze(0) < a.lengths.unsqueeze(1)
        assert torch.equal(a.tokens[alive], greedy[alive])


# ---------------------------------------------------------------------------- initialisation

@pytest.mark.parametrize("core", ["lstm", "relational_memory"])
def test_init_std_draws_every_weight_from_the_normal_and_keeps_layer_norms(core):
    torch.manual_seed(0)
    cfg = GeneratorConfig(emb_dim=64, hidden_dim=64, core=core, head_size=32, init_std=0.1)
    gen = build_generator(cfg, vocab_size=500, banned=[PAD, BOS])
    default = build_generator(GeneratorConfig(emb_dim=64, hidden_dim=64, core=core, head_size=32), 500, [PAD, BOS])
    drawn = [(n, p.detach()) for n, p in gen.named_parameters() if "norm" not in n]
    assert len(drawn) >= 5
    for name, p in drawn:
        assert abs(float(p.std()) - 0.1) < 0.1 * (0.1 + 3 / p.numel() ** 0.5), name
        assert abs(float(p.mean())) < 0.1 * 4 / p.numel() ** 0.5, name
    # torch's default embedding is N(0, 1): the option changes what the model starts from
    assert float(default.embedding.weight.detach().std()) > 0.9
    for name, p in gen.named_parameters():
        if "norm" in name:  # layer norms keep gain 1 and shift 0
            assert torch.all((p == 1) | (p == 0)), name
