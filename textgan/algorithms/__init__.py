"""GAN objectives, one file each: the discriminator and generator updates of one adversarial
step. `adversarial.algorithm` names one of ALGORITHMS; the trainer calls only its `d_step(tau)`
and `g_step(tau)` (and saves and loads its `state_dict`), so a new objective is a new file here,
an entry below and a config value, with no edit to the trainer.
"""
from __future__ import annotations

from textgan.algorithms.base import Algorithm, Players
from textgan.algorithms.gumbel_gan import GumbelGAN
from textgan.algorithms.leakgan import LeakGAN
from textgan.algorithms.maligan import MaliGAN
from textgan.algorithms.policy import one_process_only
from textgan.algorithms.scratchgan import ScratchGAN
from textgan.algorithms.seqgan import SeqGAN
from textgan.algorithms.textgan_mmd import TextGANMMD
from textgan.config import Config
from textgan.errors import UserError

ALGORITHMS: dict[str, type] = {  # adversarial.algorithm -> its class
    "gumbel": GumbelGAN,
    "seqgan": SeqGAN,
    "maligan": MaliGAN,
    "textgan_mmd": TextGANMMD,
    "scratchgan": ScratchGAN,
    "leakgan": LeakGAN,
}
ONE_PROCESS = ("seqgan", "maligan", "scratchgan", "leakgan")  # refused under torchrun


def build_algorithm(players: Players, cfg: Config) -> Algorithm:
    """The configured objective; each takes its own settings section."""
    adv = cfg.adversarial
    own = {"gumbel": (cfg.gumbel, cfg.mmd), "textgan_mmd": (cfg.mmd,), "scratchgan": (cfg.scratchgan,),
           "leakgan": (cfg.policy_gradient, cfg.leakgan)}.get(adv.algorithm, (cfg.policy_gradient,))
    return ALGORITHMS[adv.algorithm](players, adv, *own)


def check_distributed(algorithm: str, world_size: int) -> None:
    """A one-line error for an algorithm that cannot run under torchrun, before anything is written."""
    if world_size > 1 and algorithm in ONE_PROCESS:
        raise UserError(one_process_only(algorithm))
