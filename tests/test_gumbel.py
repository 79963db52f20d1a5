"""Gumbel noise and Gumbel-softmax (the argmax is an exact draw from softmax(logits); tau only
sets softness), and tau schedules as pure functions of the step, against their formulas."""
from __future__ import annotations

import math

import pytest
import torch

from textgan.config import GumbelConfig
from textgan.gumbel import gumbel_noise, gumbel_softmax, tau_at


def cfg(schedule: str, tau_start: float = 1.0, tau_end: float = 0.01, anneal_steps: int = 100,
        **kwargs) -> GumbelConfig:
    return GumbelConfig(schedule=schedule, tau_start=tau_start, tau_end=tau_end,
                        anneal_steps=anneal_steps, **kwargs)


# ---------------------------------------------------------------------------- schedules

@pytest.mark.parametrize("step", [0, 1, 50, 100, 10_000])
def test_constant(step):
    assert tau_at(step, cfg("constant", tau_start=0.7, tau_end=0.1), total_steps=100) == 0.7


@pytest.mark.parametrize(("start", "end"), [(1.0, 0.01), (2.0, 0.5), (0.1, 1.0)])
def test_linear_endpoints_and_midpoint(start, end):
    c = cfg("linear", start, end, anneal_steps=200)
    assert tau_at(0, c, 1) == start
    assert tau_at(200, c, 1) == pytest.approx(end, rel=1e-12)
    assert tau_at(100, c, 1) == pytest.approx((start + end) / 2, rel=1e-12)
    assert tau_at(50, c, 1) == pytest.approx(start + (end - start) / 4, rel=1e-12)


@pytest.mark.parametrize(("start", "end"), [(1.0, 0.01), (1.0, 0.001), (2.0, 0.5), (0.5, 3.0)])
@pytest.mark.parametrize("step", [0, 1, 17, 50, 99, 100])
def test_exponential(start, end, step):
    c = cfg("exponential", start, end, anneal_steps=100)
    assert tau_at(step, c, 1) == pytest.approx(start * (end / start) ** (step / 100), rel=1e-12)


@pytest.mark.parametrize("beta_max", [100.0, 1000.0])
@pytest.mark.parametrize("step", [0, 10, 250, 999, 1000])
def test_exponential_is_relgan_beta(beta_max, step):
    """RelGAN (Nie et al. 2019): beta = beta_max ** (step / N), tau = 1 / beta."""
    c = cfg("exponential", 1.0, 1.0 / beta_max, anneal_steps=1000)
    assert tau_at(step, c, 1) == pytest.approx(1.0 / beta_max ** (step / 1000), rel=1e-12)


@pytest.mark.parametrize(("start", "end"), [(1.0, 0.01), (0.2, 2.0)])
def test_sigmoid(start, end):
    c = cfg("sigmoid", start, end, anneal_steps=100)
    assert tau_at(0, c, 1) == pytest.approx(start, abs=1e-3 * abs(end - start))
    assert tau_at(100, c, 1) == pytest.approx(end, abs=1e-3 * abs(end - start))
    assert math.isclose(tau_at(50, c, 1), (start + end) / 2, rel_tol=1e-12)
    values = [tau_at(s, c, 1) for s in range(101)]
    pairs = list(zip(values, values[1:]))
    assert all((b <= a) if end < start else (b >= a) for a, b in pairs)  # monotone
    assert abs(values[40] - values[60]) > 0.7 * abs(end - start)  # steep around the middle


def test_list_schedule_with_milestones():
    c = cfg("list", values=[1.0, 0.5, 0.1], milestones=[0, 10, 25])
    expected = {0: 1.0, 9: 1.0, 10: 0.5, 24: 0.5, 25: 0.1, 1000: 0.1}
    assert {s: tau_at(s, c, total_steps=30) for s in expected} == expected


@pytest.mark.parametrize("schedule", ["linear", "exponential", "sigmoid"])
def test_anneal_steps_zero_uses_total_steps(schedule):
    by_total = cfg(schedule, 1.0, 0.1, anneal_steps=0)
    explicit = cfg(schedule, 1.0, 0.1, anneal_steps=400)
    for step in (0, 100, 200, 399, 400, 800):
        assert tau_at(step, by_total, total_steps=400) == tau_at(step, explicit, total_steps=7)
    assert tau_at(200, by_total, 400) != tau_at(200, by_total, 4000)
    assert tau_at(0, by_total, total_steps=0) == pytest.approx(0.1, abs=1e-4)  # nothing to anneal


@pytest.mark.parametrize("schedule", ["linear", "exponential", "sigmoid"])
def test_stays_at_tau_end_after_anneal(schedule):
    c = cfg(schedule, 1.0, 0.05, anneal_steps=100)
    at_end = tau_at(100, c, 1)
    assert at_end == pytest.approx(0.05, abs=1e-4)  # the logistic is within 5e-5 of its end
    assert all(tau_at(s, c, 1) == at_end for s in (101, 150, 10**6))


def test_schedule_is_a_pure_function_of_the_step():
    c = cfg("exponential", 1.0, 0.01, anneal_steps=100)
    forward = [tau_at(s, c, 1) for s in range(0, 120, 7)]
    backward = [tau_at(s, c, 1) for s in reversed(range(0, 120, 7))]
    assert forward == backward[::-1]


# ---------------------------------------------------------------------------- noise and softmax

def test_gumbel_noise_is_standard_gumbel_and_reproducible():
    a = gumbel_noise((400_000,), torch.Generator().manual_seed(0), dtype=torch.float64)
    b = gumbel_noise((400_000,), torch.Generator().manual_seed(0), dtype=torch.float64)
    c = gumbel_noise((400_000,), torch.Generator().manual_seed(1), dtype=torch.float64)
    assert torch.equal(a, b) and not torch.equal(a, c)
    assert torch.isfinite(a).all()
    assert float(a.mean()) == pytest.approx(0.5772156649, abs=0.01)  # Euler-Mascheroni
    assert float(a.var()) == pytest.approx(math.pi ** 2 / 6, abs=0.02)


def logits_and_noise(seed: int = 0, shape=(64, 10)) -> tuple[torch.Tensor, torch.Tensor]:
    gen = torch.Generator().manual_seed(seed)
    return torch.randn(shape, generator=gen) * 2, gumbel_noise(shape, gen)


@pytest.mark.parametrize("tau", [0.1, 0.5, 1.0, 5.0])
@pytest.mark.parametrize("straight_through", [False, True])
def test_argmax_of_sample_is_ids_and_rows_sum_to_one(tau, straight_through):
    logits, noise = logits_and_noise()
    ids, dist = gumbel_softmax(logits, tau, noise, straight_through=straight_through)
    assert ids.shape == (64,) and dist.shape == (64, 10)
    assert torch.equal(ids, (logits + noise).argmax(-1))
    assert torch.equal(dist.argmax(-1), ids)
    torch.testing.assert_close(dist.sum(-1), torch.ones(64))
    assert (dist >= 0).all()
    if not straight_through:
        torch.testing.assert_close(dist, torch.softmax((logits + noise) / tau, -1))


def test_larger_tau_is_softer():
    logits, noise = logits_and_noise(1)
    entropies = []
    for tau in (0.05, 0.2, 1.0, 3.0, 20.0):
        _, dist = gumbel_softmax(logits.double(), tau, noise.double())
        entropies.append(-(dist * dist.clamp_min(1e-300).log()).sum(-1))  # (B,)
    for low, high in zip(entropies, entropies[1:]):
        assert (high >= low - 1e-12).all()
        assert high.mean() > low.mean() + 1e-3
    assert entropies[-1].mean() > 0.95 * math.log(10)  # nearly uniform
    assert entropies[0].mean() < 0.1  # nearly one-hot


def test_fixed_noise_is_reproducible():
    logits, _ = logits_and_noise(2)
    runs = []
    for _ in range(2):
        noise = gumbel_noise(logits.shape, torch.Generator().manual_seed(7))
        runs.append(gumbel_softmax(logits, 0.5, noise))
    assert torch.equal(runs[0][0], runs[1][0]) and torch.equal(runs[0][1], runs[1][1])


def test_straight_through_forward_exactly_one_hot_backward_soft_gradient():
    logits, noise = logits_and_noise(3, (16, 7))
    weights = torch.randn(16, 7, generator=torch.Generator().manual_seed(0))
    lg_st = logits.clone().requires_grad_(True)
    ids, hard = gumbel_softmax(lg_st, 0.7, noise, straight_through=True)
    assert torch.equal(hard, torch.nn.functional.one_hot(ids, 7).float())
    (hard * weights).sum().backward()
    lg_soft = logits.clone().requires_grad_(True)
    _, soft = gumbel_softmax(lg_soft, 0.7, noise)
    (soft * weights).sum().backward()
    assert lg_st.grad.abs().sum() > 0
    torch.testing.assert_close(lg_st.grad, lg_soft.grad)


@pytest.mark.parametrize("tau", [0.1, 1.0, 10.0])
def test_gumbel_max_draws_follow_softmax(tau):
    """argmax(logits + G) ~ softmax(logits), whatever tau (it only shapes the relaxation)."""
    logits = torch.tensor([1.0, 0.0, -1.0, 2.0, 0.5])
    noise = gumbel_noise((200_000, 5), torch.Generator().manual_seed(123))
    ids, _ = gumbel_softmax(logits.expand(200_000, 5), tau, noise)
    freq = torch.bincount(ids, minlength=5).double() / 200_000
    assert (freq - torch.softmax(logits.double(), 0)).abs().max() < 0.01
