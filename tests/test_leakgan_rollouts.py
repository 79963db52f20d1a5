"""LeakGAN's rollouts (LeakGANGenerator.complete, leak_rollout_rewards): all prefixes' completions
in one batched pass give the numbers of a loop over the prefixes, one at a time, that draws the
same Philox noise, and the generator's other noise (a draw a step) the same distribution."""
from __future__ import annotations

import pytest
import torch

from textgan import philox
from textgan.algorithms.leakgan import alive_mask, leak_rollout_rewards
from textgan.algorithms.policy import d_probability
from textgan.gumbel import gumbel_noise
from textgan.models.discriminator import RelGANCNN
from textgan.models.leakgan import LeakGANGenerator

V, T = 7, 6
TOKENS = torch.tensor([[3, 4, 5, 2, 0, 0], [6, 6, 3, 4, 5, 2], [5, 2, 0, 0, 0, 0], [4, 3, 3, 6, 5, 4]])
LENGTHS = torch.tensor([4, 6, 2, 6])


@pytest.fixture(autouse=True)
def _one_thread():
    torch.set_num_threads(1)


def tiny() -> tuple[LeakGANGenerator, RelGANCNN]:
    """A generator whose distributions are far from uniform (weights ~ N(0, 1)) and a discriminator."""
    torch.manual_seed(0)
    leak = RelGANCNN(V, emb_dim=4, num_rep=1, filter_sizes=[1, 2], num_filters=[3, 3], dropout=0.0)
    gen = LeakGANGenerator(vocab_size=V, emb_dim=3, hidden_dim=4, manager_dim=5, latent_dim=2, prior="normal",
                           leak=leak, max_len=T, goal_steps=2, goal_dim=3, banned=[0, 1])
    gen.init_normal_(1.0)
    d = RelGANCNN(V, emb_dim=4, num_rep=2, filter_sizes=[1, 2, 3], num_filters=[4, 4, 4], dropout=0.0)
    return gen.eval(), d.eval()


def looped(gen: LeakGANGenerator, z, tokens, lengths, num: int, generator: torch.Generator, d):
    """The loop the batched pass replaced: for each prefix length k < the longest, `num` copies of
    the state after it, each step's (B num, V) noise drawn then; D scores each prefix's completions.
    Returns the rewards (B, T) and the completions of prefix k at [k]."""
    b, t = tokens.shape
    q, completions = torch.zeros(b, t), {}
    cur = gen.start(z, t)
    for k in range(1, int(lengths.max())):
        gen.step(cur, k - 1)
        gen.advance(cur, k - 1, tokens[:, k - 1])
        branch = cur.take(torch.arange(b).repeat_interleave(num))
        for s in range(k, t):
            logits = gen.step(branch, s)
            noise = gumbel_noise(tuple(logits.shape), generator, logits.device, uniform=gen.ops.uniform)
            gen.advance(branch, s, (logits + noise).argmax(dim=-1))
        completions[k] = gen._finish(branch.written[:, :t], None).tokens
        q[:, k - 1] = d_probability(d, completions[k]).view(b, num).mean(1)
    q[torch.arange(b), lengths - 1] = d_probability(d, tokens)
    return q * alive_mask(lengths, t), completions


@torch.no_grad()
def test_the_batched_rollouts_are_the_loops_numbers_under_the_same_noise():
    gen, d = tiny()
    z = torch.randn(4, 2)
    a, b = torch.Generator().manual_seed(5), torch.Generator().manual_seed(5)
    want, completions = looped(gen, z, TOKENS, LENGTHS, 3, a, d)
    done = gen.complete(z, TOKENS, LENGTHS, 3, torch.Generator().manual_seed(5))
    for k, rows in completions.items():  # the completions of the prefixes inside their sentences
        mine = done.tokens[done.prefix == k].view(-1, 3, T)
        assert torch.equal(mine, rows.view(4, 3, T)[LENGTHS > k]), k
    got = leak_rollout_rewards(gen, z, TOKENS, LENGTHS, 3, b, d)
    torch.testing.assert_close(got, want, rtol=0, atol=1e-6)  # D on other batch shapes: rounding only
    assert torch.equal(a.get_state(), b.get_state())  # the generator left where the loop left it
    alive = alive_mask(LENGTHS, T)
    assert ((got > 0) & (got < 1) == alive).all()  # a probability up to each sentence's end, 0 after


@torch.no_grad()
def test_noise_drawn_a_step_at_a_time_gives_the_loops_distribution():
    """Off Philox (other devices) each step's noise is one draw for all its rows. Against the loop,
    over 2,000 completions of each prefix: every token's frequency at every position differs by
    less than 5 standard errors of a difference of two frequencies (sqrt(2 p (1 - p) / n))."""
    gen, _ = tiny()
    z, n = torch.randn(4, 2), 2000
    d = RelGANCNN(V, emb_dim=4, num_rep=1, filter_sizes=[1], num_filters=[1]).eval()  # scores unused here
    _, completions = looped(gen, z, TOKENS, LENGTHS, n, torch.Generator().manual_seed(1), d)
    done = gen.complete(z, TOKENS, LENGTHS, n, torch.Generator().manual_seed(2), keyed=False)
    worst = 0.0
    for k, rows in completions.items():
        theirs = rows.view(4, n, T)[LENGTHS > k]  # (P, n, T)
        mine = done.tokens[done.prefix == k].view(-1, n, T)
        f_theirs = torch.nn.functional.one_hot(theirs[:, :, k:], V).double().mean(1)  # (P, T - k, V)
        f_mine = torch.nn.functional.one_hot(mine[:, :, k:], V).double().mean(1)
        p = (f_theirs + f_mine) / 2
        se = (2 * p * (1 - p) / n).sqrt().clamp(min=1e-3)
        worst = max(worst, float(((f_mine - f_theirs).abs() / se).max()))
    assert worst < 5.0, worst


@torch.no_grad()
def test_accel_speeds_the_rollouts_noise_and_leaked_features_up_without_changing_them():
    """run.accel swaps the generator's noise (the same bits) and its leaked copy's conv + max and
    highway as the discriminator's (float rounding); off puts the plain ops back."""
    from textgan import accel
    from textgan.models.discriminator import conv_relu_max

    gen, d = tiny()
    z = torch.randn(4, 2)
    runs = {}
    for mode in ("auto", "off"):
        line = accel.apply(gen, d, mode)
        runs[mode] = (gen.complete(z, TOKENS, LENGTHS, 3, torch.Generator().manual_seed(5)).tokens,
                      leak_rollout_rewards(gen, z, TOKENS, LENGTHS, 3, torch.Generator().manual_seed(5), d))
        assert (gen.leak.conv_relu_max is conv_relu_max) == (mode == "off")
        assert (gen.ops.uniform is not philox.uniform) == (mode == "auto" and "noise" in line), line
    assert torch.equal(runs["auto"][0], runs["off"][0])
    torch.testing.assert_close(runs["auto"][1], runs["off"][1], rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("reps, widths, length", [(1, [1, 2, 3, 8], T), (2, [1, 4, 7], T + 3), (1, [2, 9], 3)])
@torch.no_grad()
def test_the_incremental_leaked_features_are_the_recomputed_ones(reps, widths, length):
    """While sampling, the leaked features of each prefix come from a state a token updates
    (textgan.models.leaked_cnn): the discriminator's features of the padded prefix recomputed
    (`features`), to float rounding, at every step of sentences that end (EOS, then pad) or not,
    filters wider than the sentence and several representations included."""
    torch.manual_seed(1)
    leak = RelGANCNN(V, emb_dim=4, num_rep=reps, filter_sizes=widths, num_filters=[3] * len(widths), dropout=0.0)
    for param in leak.parameters():
        param.normal_()
    gen = LeakGANGenerator(vocab_size=V, emb_dim=3, hidden_dim=4, manager_dim=5, latent_dim=2, prior="normal",
                           leak=leak, max_len=T, goal_steps=2, goal_dim=3, banned=[0, 1]).eval()
    tokens = torch.randint(2, V, (12, length))  # 2 is EOS: most rows end somewhere
    cur = gen.start(torch.randn(12, 2), length)
    for t in range(length):
        want = gen.features(cur.written)  # (12, F) recomputed over the padded prefix
        torch.testing.assert_close(gen.prefix_leak(cur, t), want, rtol=1e-4, atol=1e-4)  # sums grouped by token
        gen.advance(cur, t, tokens[:, t])
    assert cur.ended.any() and not cur.ended.all()
