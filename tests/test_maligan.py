"""MaliGAN (textgan/algorithms/maligan.py): the generator's gradient is the paper's normalised
importance-weighted likelihood gradient sum_i (r_i / sum_j r_j - 1/m) grad log p(x_i), with
r = D / (1 - D), computed here sample by sample from D's probabilities."""
from __future__ import annotations

import torch

from conftest import FAST
from textgan import config
from textgan.algorithms.maligan import MaliGAN, centred_weights, maligan_loss
from textgan.algorithms.policy import d_log_odds, token_log_probs
from textgan.corpus import prepare
from textgan.models import Generator
from textgan.models.discriminator import RelGANCNN
from textgan.monitor import Monitor
from textgan.train import Trainer


def _models():
    torch.manual_seed(0)
    gen = Generator(vocab_size=6, emb_dim=4, hidden_dim=5, num_layers=1, latent_dim=3, prior="normal",
                    banned=[0, 1]).double().eval()
    disc = RelGANCNN(6, emb_dim=4, num_rep=1, filter_sizes=[1, 2], num_filters=[3, 3], dropout=0.0).double().eval()
    for param in disc.parameters():
        param.data.mul_(4.0)  # odds far from 1
    return gen, disc


def test_gradient_is_the_normalised_importance_weighted_likelihood_gradient():
    gen, disc = _models()
    rng = torch.Generator().manual_seed(1)
    z = torch.randn(5, 3, generator=rng, dtype=torch.float64)
    sample = gen.sample(z, 4, generator=rng, need_dists=False)
    params = list(gen.parameters())
    with torch.no_grad():
        log_odds = d_log_odds(disc, sample.tokens)
    got = torch.autograd.grad(maligan_loss(token_log_probs(gen, sample.tokens, sample.lengths, z), log_odds), params)

    one_hot = torch.nn.functional.one_hot(sample.tokens, 6).double()
    with torch.no_grad():
        d = torch.sigmoid(disc(one_hot)[:, 0])  # D(x_i) on the one-hots, as every discriminator takes them
    r = d / (1 - d)
    coeff = r / r.sum() - 1 / len(r)
    assert r.max() / r.min() > 2  # weights that matter
    expected = [torch.zeros_like(p) for p in params]
    for i in range(len(r)):
        logits = gen(sample.tokens[i:i + 1], z[i:i + 1])[0]  # (T, V)
        n = int(sample.lengths[i])
        log_p = torch.log_softmax(logits, -1)[torch.arange(n), sample.tokens[i, :n]].sum()
        for acc, g in zip(expected, torch.autograd.grad(log_p, params)):
            acc -= coeff[i] * g  # a minimiser's sign
    for g, e in zip(got, expected):
        torch.testing.assert_close(g, e, rtol=1e-7, atol=1e-10)  # float64 rounding of a 1e-9-masked softmax
    torch.testing.assert_close(centred_weights(log_odds), coeff, rtol=1e-8, atol=1e-9)  # 1 - D rounds near D = 1


def test_log_odds_of_several_representations_is_that_of_their_mean_probability():
    torch.manual_seed(2)
    disc = RelGANCNN(6, emb_dim=4, num_rep=2, filter_sizes=[1, 2], num_filters=[3, 3], dropout=0.0).double().eval()
    for param in disc.parameters():
        param.data.mul_(4.0)
    tokens = torch.randint(2, 6, (7, 4))
    with torch.no_grad():
        p = torch.sigmoid(disc(torch.nn.functional.one_hot(tokens, 6).double())).mean(1)
        torch.testing.assert_close(d_log_odds(disc, tokens), torch.log(p / (1 - p)), rtol=1e-10, atol=1e-12)


def test_a_maligan_step_updates_the_generator(tmp_path, data_root):
    cfg = config.load(None, [*FAST, "adversarial.algorithm=maligan", "adversarial.loss=standard",
                             "adversarial.batch_size=8", "adversarial.d_steps=1", "policy_gradient.d_samples=12",
                             "policy_gradient.d_epochs=2"])
    tr = Trainer(cfg, prepare(cfg.data, cfg.run.seed), tmp_path, Monitor(tmp_path, progress=False, enabled=False))
    assert isinstance(tr.algorithm, MaliGAN) and tr.algorithm.state_dict() == {}
    before = tr.G.out.weight.detach().clone()
    stats = tr.adversarial_step()
    assert {"adv/g_loss", "adv/reward", "adv/weight_ess", "adv/d_loss", "adv/d_real", "adv/d_fake"} <= set(stats)
    assert "adv/tau" not in stats and 0 < stats["adv/weight_ess"] <= 1
    assert not torch.equal(before, tr.G.out.weight)
