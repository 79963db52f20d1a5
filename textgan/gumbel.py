"""Gumbel noise, soft and straight-through Gumbel-softmax, and tau schedules.

tau divides the logits (larger is softer). The sampled token is the argmax of
logits + Gumbel noise, an exact draw from softmax(logits) whatever tau is
(Jang et al. 2017; Maddison et al. 2017). Schedules are pure functions of the step.
"""
from __future__ import annotations

import math
from typing import Callable

import torch

from textgan import philox
from textgan.config import GumbelConfig

_TINY = 1e-10


def gumbel_noise(shape: tuple[int, ...], generator: torch.Generator | None = None,
                 device: torch.device | str = "cpu", dtype: torch.dtype = torch.float32,
                 uniform: Callable = philox.uniform) -> torch.Tensor:
    """-log(-log U), U ~ Uniform(0, 1), drawn from `generator` so runs are reproducible.
    On CPU in float32, U is the Philox stream of textgan.philox (`uniform`: it or a faster
    function giving the same numbers), in the open interval, so both logs are finite without
    the offsets; elsewhere torch's generator draws U."""
    if philox.applies(device, dtype):
        return uniform(shape, generator).log_().neg_().log_().neg_()
    u = torch.rand(shape, generator=generator, device=device, dtype=dtype)
    return u.add_(_TINY).log_().neg_().add_(_TINY).log_().neg_()  # in place: half the memory traffic


def gumbel_softmax(logits: torch.Tensor, tau: float, noise: torch.Tensor,
                   straight_through: bool = False) -> tuple[torch.Tensor, torch.Tensor]:
    """Return (token ids, relaxed one-hot); straight-through is exactly one-hot forward,
    with the soft sample's gradient backward."""
    perturbed = logits + noise
    ids = perturbed.argmax(dim=-1)
    soft = torch.softmax(perturbed.div_(tau), dim=-1)  # in place: the add's backward keeps nothing
    if not straight_through:
        return ids, soft
    hard = torch.zeros_like(soft).scatter_(-1, ids.unsqueeze(-1), 1.0)
    # soft - soft.detach() is exactly zero forward, so the result is exactly one-hot.
    return ids, hard + (soft - soft.detach())


def tau_at(step: int, cfg: GumbelConfig, total_steps: int) -> float:
    """tau after `step` adversarial steps; anneal_steps=0 anneals over `total_steps`."""
    n = cfg.anneal_steps or total_steps
    frac = min(step / n, 1.0) if n > 0 else 1.0
    a, b = cfg.tau_start, cfg.tau_end
    if cfg.schedule == "constant":
        return a
    if cfg.schedule == "linear":
        return a + (b - a) * frac
    if cfg.schedule == "exponential":
        # RelGAN's beta = beta_max ** (step / N) is this with tau = 1 / beta.
        return a * (b / a) ** frac
    if cfg.schedule == "sigmoid":
        # RelGAN's 'sigmoid' adaptation: a steep logistic centred at N / 2.
        return a + (b - a) / (1.0 + math.exp(-20.0 * (frac - 0.5)))
    if cfg.schedule == "list":
        tau = cfg.values[0]
        for value, start in zip(cfg.values, cfg.milestones):
            if step >= start:
                tau = value
        return tau
    raise ValueError(f"unknown tau schedule {cfg.schedule!r}")
