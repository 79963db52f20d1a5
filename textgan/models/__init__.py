"""Model registry: a plain name -> class dict, and builders from the config tree."""
from __future__ import annotations

from torch import nn

from textgan.config import Config, DiscriminatorConfig, GeneratorConfig
from textgan.models.discriminator import LSTMDiscriminator, RelGANCNN
from textgan.models.generator import Generator, SampleOutput
from textgan.models.leakgan import LeakGANGenerator

DISCRIMINATORS = {"relgan_cnn": RelGANCNN, "lstm": LSTMDiscriminator}

__all__ = ["DISCRIMINATORS", "Generator", "LeakGANGenerator", "SampleOutput", "build_discriminator",
           "build_generator", "build_run_generator"]


def build_generator(cfg: GeneratorConfig, vocab_size: int, banned: list[int], num_classes: int = 0,
                    source_len: int = 0) -> Generator:
    """The configured generator; `num_classes` > 0 (a conditional run's classes, or with condition
    sentence its training sources, `source_len` tokens long) conditions it."""
    gen = Generator(vocab_size=vocab_size, emb_dim=cfg.emb_dim, hidden_dim=cfg.hidden_dim,
                    num_layers=cfg.num_layers, latent_dim=cfg.latent_dim, prior=cfg.prior,
                    feedback=cfg.feedback, dropout=cfg.dropout, banned=banned, core=cfg.core,
                    mem_slots=cfg.mem_slots, num_heads=cfg.num_heads, head_size=cfg.head_size,
                    io_dropout=cfg.io_dropout, tie_embeddings=cfg.tie_embeddings, noise=cfg.noise,
                    num_classes=num_classes, condition=cfg.condition, source_len=source_len)
    if cfg.init_std > 0:
        gen.init_normal_(cfg.init_std)
    return gen


def build_run_generator(cfg: Config, vocab_size: int, banned: list[int], max_len: int,
                        num_classes: int = 0) -> nn.Module:
    """The generator a run trains and its checkpoints hold: LeakGAN's manager-worker generator for
    adversarial.algorithm leakgan (reading a copy of a discriminator of the run's kind, with
    sentences `max_len` long), else `build_generator`'s."""
    if cfg.adversarial.algorithm != "leakgan":
        return build_generator(cfg.generator, vocab_size, banned, num_classes=num_classes, source_len=max_len)
    g, lk = cfg.generator, cfg.leakgan
    gen = LeakGANGenerator(vocab_size=vocab_size, emb_dim=g.emb_dim, hidden_dim=g.hidden_dim,
                           manager_dim=lk.manager_hidden_dim or g.hidden_dim, latent_dim=g.latent_dim,
                           prior=g.prior, leak=build_discriminator(cfg.discriminator, vocab_size),
                           max_len=max_len, goal_steps=lk.goal_steps, goal_dim=lk.goal_dim, banned=banned)
    if g.init_std > 0:
        gen.init_normal_(g.init_std)
    return gen


def build_discriminator(cfg: DiscriminatorConfig, vocab_size: int, num_classes: int = 0, condition_dim: int = 0):
    """The configured discriminator; `num_classes` > 0 makes it conditional (`cfg.conditioning`:
    a projection discriminator or an auxiliary classifier); `condition_dim` > 0 instead, a
    projection discriminator of condition vectors that wide (a source sentence's reading)."""
    conditioning = "vector" if condition_dim else cfg.conditioning
    num_classes = condition_dim or num_classes
    if cfg.kind == "relgan_cnn":
        disc = RelGANCNN(vocab_size, emb_dim=cfg.emb_dim, num_rep=cfg.num_rep,
                         filter_sizes=cfg.filter_sizes, num_filters=cfg.num_filters, dropout=cfg.dropout,
                         highway=cfg.highway, num_classes=num_classes, conditioning=conditioning)
    else:
        disc = DISCRIMINATORS[cfg.kind](vocab_size, emb_dim=cfg.emb_dim, hidden_dim=cfg.hidden_dim,
                                        dropout=cfg.dropout, num_classes=num_classes,
                                        conditioning=conditioning)
    return spectral_normalize(disc) if cfg.spectral_norm else disc


def spectral_normalize(module: nn.Module) -> nn.Module:
    """Every Linear and Conv2d weight divided by its largest singular value (one power iteration
    per forward in training, as Miyato et al. 2018). An LSTM discriminator's recurrent weights are
    left as they are."""
    for layer in list(module.modules()):
        if isinstance(layer, (nn.Linear, nn.Conv2d)):
            nn.utils.parametrizations.spectral_norm(layer)
    return module
