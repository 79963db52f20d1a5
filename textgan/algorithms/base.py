"""What every GAN objective in this package receives (`Players`) and provides (`Algorithm`)."""
from __future__ import annotations

from contextlib import contextmanager
from dataclasses import dataclass
from typing import Iterator, Protocol

import torch

from textgan.batches import TrainBatches
from textgan.distributed import ParallelDiscriminator, ParallelGenerator
from textgan.guard import Updates
from textgan.latent_training import LatentParts
from textgan.run_state import Progress


@dataclass
class Players:
    """What an algorithm's steps work with, shared with the rest of the trainer."""

    g: ParallelGenerator  # the generator; its methods sync gradients under torchrun
    d: ParallelDiscriminator  # the discriminator, likewise
    opt_g: torch.optim.Optimizer
    opt_d: torch.optim.Optimizer
    batches: TrainBatches  # real sentences
    noise: torch.Generator  # this rank's z and Gumbel noise
    updates: Updates  # backward, skip on non-finite, clip, step
    progress: Progress  # read only: the adversarial step number
    batch_size: int  # real and fake sentences per rank and update
    latent: LatentParts | None = None  # adversarial.info_weight's reconstruction head (G updates add its term)


class Algorithm(Protocol):
    relaxed: bool  # whether its samples are Gumbel-softmax relaxations at a temperature (adv/tau)

    def d_step(self, tau: float) -> dict[str, float]:
        """One discriminator update; its TensorBoard scalars (adv/...)."""

    def g_step(self, tau: float) -> dict[str, float]:
        """One generator update; its scalars, with adv/fake_tokens (the tokens it generated)."""

    def state_dict(self) -> dict[str, dict]:
        """Networks or state of its own by checkpoint.ALGORITHM_PARTS name (SeqGAN's rollout
        network, ScratchGAN's baseline), else {}."""

    def load_state_dict(self, state: dict) -> None:
        """Take them back from a checkpoint, after the generator's weights are loaded."""


@contextmanager
def frozen(module: torch.nn.Module) -> Iterator[torch.nn.Module]:
    """`module` without parameter gradients meanwhile: the G step's D passes gradients to its
    input (the samples) and keeps none of its own."""
    module.requires_grad_(False)
    try:
        yield module
    finally:
        module.requires_grad_(True)
