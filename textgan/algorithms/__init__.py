"""GAN objectives, one file each: the discriminator and generator updates of one adversarial
step. `adversarial.algorithm` names one of ALGORITHMS; the trainer calls only its `d_step(tau)`
and `g_step(tau)`, so a new objective (SeqGAN's REINFORCE, MaliGAN, ...) is a new file here, an
entry below and a config value, with no edit to the trainer.
"""
from __future__ import annotations

from textgan.algorithms.base import Algorithm, Players
from textgan.algorithms.gumbel_gan import GumbelGAN
from textgan.config import AdversarialConfig, GumbelConfig

ALGORITHMS: dict[str, type] = {  # adversarial.algorithm -> its class
    "gumbel": GumbelGAN,
}


def build_algorithm(players: Players, adv: AdversarialConfig, gumbel: GumbelConfig) -> Algorithm:
    return ALGORITHMS[adv.algorithm](players, adv, gumbel)
