"""SeqGAN (textgan/algorithms/seqgan.py): its policy gradient is the gradient of E[D] by brute
force over every sentence of a tiny vocabulary and length, its Monte Carlo rollouts keep each
prefix and estimate the exact rewards, the rollout network follows the generator at rate 0.8, and
the trainer saves and resumes it."""
from __future__ import annotations

import itertools

import pytest
import torch

from conftest import FAST
from textgan import checkpoint, config
from textgan.algorithms.policy import token_log_probs
from textgan.algorithms.seqgan import SeqGAN, complete, policy_gradient_loss, rollout_rewards
from textgan.corpus import prepare
from textgan.models import Generator
from textgan.monitor import Monitor
from textgan.train import Trainer

T = 3  # sentence length
WORDS = [2, 3, 4]  # EOS and two words; pad 0 and bos 1 are banned


def _tiny_generator(seed: int = 0, layers: int = 1) -> Generator:
    torch.manual_seed(seed)
    gen = Generator(vocab_size=5, emb_dim=4, hidden_dim=6, num_layers=layers, latent_dim=3, prior="normal",
                    banned=[0, 1]).double()
    for param in gen.parameters():  # spread the probabilities, so every check has something to see
        param.data.mul_(3.0)
    return gen.eval()


def _score(seed: int = 1):
    """A discriminator-like function of sentences (N, T) -> probabilities (N,), far from constant."""
    w = torch.randn(T, 5, generator=torch.Generator().manual_seed(seed), dtype=torch.float64) * 2
    return lambda tokens: torch.sigmoid(w[torch.arange(tokens.shape[1]), tokens].sum(1))


def _every_string(gen: Generator, z: torch.Tensor):
    """All V^T raw strings with their probabilities under gen given z (1, Z) (differentiable) and
    the sentences they finish as (cut after EOS)."""
    raw = torch.tensor(list(itertools.product(WORDS, repeat=T)))  # (S, T)
    zs = z.expand(len(raw), -1)
    logp = torch.log_softmax(gen(raw, zs), -1).gather(-1, raw.unsqueeze(-1))[..., 0]  # (S, T)
    return raw, zs, logp.sum(1).exp(), gen._finish(raw, None)


def _exact_rewards(raw: torch.Tensor, prob: torch.Tensor, scores: torch.Tensor) -> torch.Tensor:
    """Q[s, i] = E[D | the first i + 1 tokens of raw string s], by enumeration, (S, T)."""
    q = torch.zeros(raw.shape, dtype=torch.float64)
    for i in range(T):
        for s, prefix in enumerate(raw[:, :i + 1].tolist()):
            same = (raw[:, :i + 1] == torch.tensor(prefix)).all(1)
            q[s, i] = (prob[same] * scores[same]).sum() / prob[same].sum()
    return q


def test_policy_gradient_equals_the_brute_force_gradient_of_expected_reward():
    """Summed over every sentence with its probability, SeqGAN's surrogate (log-probabilities
    times exact rewards Q) has the gradient of -E[D(Y)], Y ~ G, computed by enumeration."""
    gen, score = _tiny_generator(), _score()
    z = torch.randn(1, 3, generator=torch.Generator().manual_seed(2), dtype=torch.float64)
    params = list(gen.parameters())
    raw, zs, prob, done = _every_string(gen, z)
    expected = torch.autograd.grad((prob * score(done.tokens)).sum(), params)
    q = _exact_rewards(raw, prob.detach(), score(done.tokens))
    logp = token_log_probs(gen, done.tokens, done.lengths, zs)
    surrogate = sum(prob[s].detach() * policy_gradient_loss(logp[s:s + 1], q[s:s + 1]) for s in range(len(raw)))
    got = torch.autograd.grad(surrogate, params)
    assert max(e.abs().max() for e in expected) > 1e-3  # a real gradient to compare
    for g, e in zip(got, expected):
        torch.testing.assert_close(g, -e, rtol=1e-9, atol=1e-12)


@pytest.mark.parametrize("layers", [1, 2])
def test_rollout_rewards_estimate_the_exact_expectation(layers):
    """Each token's Monte Carlo reward (8,000 rollouts) is within 5 standard errors of the exact
    E[D | prefix], for every sentence under two different latents (the rollouts use each row's z)."""
    gen, score = _tiny_generator(layers=layers), _score()
    rows, exact = [], []
    for seed in (3, 4):
        z = torch.randn(1, 3, generator=torch.Generator().manual_seed(seed), dtype=torch.float64)
        with torch.no_grad():
            raw, zs, prob, done = _every_string(gen, z)
        rows.append((zs, done))
        exact.append(_exact_rewards(raw, prob, score(done.tokens)))
    zs = torch.cat([r[0] for r in rows])
    tokens, lengths = torch.cat([r[1].tokens for r in rows]), torch.cat([r[1].lengths for r in rows])
    n = 8000
    q = rollout_rewards(gen, zs, tokens, lengths, n, torch.Generator().manual_seed(5), score, chunk=1 << 14)
    exact = torch.cat(exact)
    alive = torch.arange(T) < lengths.unsqueeze(1)
    assert torch.equal(q[~alive], torch.zeros_like(q[~alive]))
    tolerance = 5 * 0.5 / n ** 0.5  # a probability's standard deviation is at most 0.5
    assert (q - exact)[alive].abs().max() < tolerance
    assert exact[alive].std() > 3 * tolerance  # the rewards differ by far more than the tolerance


def test_completions_keep_each_prefix_and_cut_after_eos():
    gen = _tiny_generator()
    rng = torch.Generator().manual_seed(6)
    z = torch.randn(40, 3, generator=rng, dtype=torch.float64)
    sample = gen.sample(z, T + 2, generator=rng, need_dists=False)
    n = 3
    done = complete(gen, z, sample.tokens, sample.lengths, n, rng)
    # one row per rollout of every prefix that stops before its sentence's end
    want = sorted((b, k) for b in range(40) for k in range(1, int(sample.lengths[b])) for _ in range(n))
    assert sorted(zip(done.sample.tolist(), done.prefix.tolist())) == want
    for tokens, k, b in zip(done.tokens, done.prefix.tolist(), done.sample.tolist()):
        assert torch.equal(tokens[:k], sample.tokens[b, :k])  # the prefix kept
        words = tokens.tolist()
        end = words.index(2) + 1 if 2 in words else len(words)
        assert all(w in WORDS for w in words[:end]) and all(w == 0 for w in words[end:])
    assert (done.tokens[:, 1:] != sample.tokens[done.sample, 1:]).any()  # the completions were drawn


def _whole_noise_completions(net: Generator, z, tokens, lengths, rollouts: int, generator) -> torch.Tensor:
    """The rollouts as `complete` drew them before its fused draw: every step's (m, V) Gumbel noise
    made whole (gumbel_noise), added to the logits, argmax; the same loop otherwise."""
    from textgan.algorithms.seqgan import _leading, _select, _stack
    from textgan.gumbel import gumbel_noise

    b, t = tokens.shape
    k_minus_1, row = torch.nonzero(torch.arange(1, t).unsqueeze(1) < lengths, as_tuple=True)
    k_minus_1, row = k_minus_1.repeat_interleave(rollouts), row.repeat_interleave(rollouts)
    inputs = torch.cat([torch.full_like(tokens[:, :1], net.bos_id), tokens[:, :-1]], 1)
    state, states = net.init_state(z), []
    for j in range(t - 1):
        state = net.core(net.embedding(inputs[:, j:j + 1]), state)[1]
        states.append(state)
    out = tokens[row].clone()
    state, inp = _select(_stack(states), k_minus_1, row), tokens[row, k_minus_1]
    still = torch.bincount(t - 1 - k_minus_1, minlength=t).flip(0).cumsum(0).flip(0).tolist()
    for s in range(t - 1):
        m = still[s + 1]
        if m == 0:
            break
        state, inp = _leading(state, m), inp[:m]
        hidden, state = net.core(net.embedding(inp).unsqueeze(1), state)
        logits = net.logits(hidden[:, 0])
        inp = (logits + gumbel_noise(tuple(logits.shape), generator, uniform=net.ops.uniform)).argmax(dim=-1)
        out[torch.arange(m), k_minus_1[:m] + 1 + s] = inp
    return net._finish(out, None).tokens


@pytest.mark.parametrize("mode, dtype", [("auto", torch.float32), ("off", torch.float64)])  # kernel; definition
@torch.no_grad()
def test_the_fused_rollout_draws_are_the_whole_noise_draws(mode, dtype):
    """`complete` picks each step's tokens without making the (m, V) noise (accel's kernel, or
    the definition per stream position with accel off): the tokens of the whole-noise loop under
    the same generator, which it leaves where that loop left it."""
    from textgan import accel

    gen = Generator(vocab_size=37, emb_dim=4, hidden_dim=6, num_layers=1, latent_dim=3, prior="normal",
                    banned=[0, 1]).to(dtype).eval()
    gen.init_normal_(1.0)  # far from uniform: the draws differ by row
    accel.apply(gen, None, mode)
    rng = torch.Generator().manual_seed(3)
    z = torch.randn(9, 3, generator=rng, dtype=dtype)
    sample = gen.sample(z, 7, generator=rng, need_dists=False)
    a, b = torch.Generator().manual_seed(4), torch.Generator().manual_seed(4)
    want = _whole_noise_completions(gen, z, sample.tokens, sample.lengths, 3, a)
    got = complete(gen, z, sample.tokens, sample.lengths, 3, b).tokens
    assert torch.equal(got, want)
    assert torch.equal(a.get_state(), b.get_state())


def _trainer(tmp_path, *extra: str) -> Trainer:
    cfg = config.load(None, [*FAST, "adversarial.algorithm=seqgan", "adversarial.loss=standard",
                             "adversarial.batch_size=8", "adversarial.d_steps=1", "policy_gradient.rollouts=2",
                             *extra])
    return Trainer(cfg, prepare(cfg.data, cfg.run.seed), tmp_path, Monitor(tmp_path, progress=False, enabled=False))


def test_the_rollout_network_follows_the_generator_at_its_rate(tmp_path, data_root):
    tr = _trainer(tmp_path)
    assert isinstance(tr.algorithm, SeqGAN) and tr.algorithm.rollout is None
    before = {k: v.clone() for k, v in tr.G.state_dict().items()}
    stats = tr.adversarial_step()
    assert {"adv/g_loss", "adv/reward", "adv/d_loss"} <= set(stats) and "adv/tau" not in stats
    after, rollout = tr.G.state_dict(), tr.algorithm.rollout.state_dict()
    assert not torch.equal(before["out.weight"], after["out.weight"])
    for key, value in rollout.items():
        if key.startswith("embedding."):  # copied, as SeqGAN's rollout.py does
            assert torch.equal(value, after[key]), key
        else:
            torch.testing.assert_close(value, 0.8 * before[key] + 0.2 * after[key], rtol=1e-6, atol=1e-7)
    state = tr.state_dict()
    assert checkpoint.read_algorithm_part(state, "rollout").keys() == rollout.keys()
    other = _trainer(tmp_path)
    other.load_state_dict(state)
    for key, value in other.algorithm.rollout.state_dict().items():
        assert torch.equal(value, rollout[key]), key
