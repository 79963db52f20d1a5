"""Start a run's generator from another run's weights (`generator.init_from`).

The usual GAN workflow pretrains once with MLE and then runs many adversarial variants from
that generator. The source run's vocabulary is reused, so token ids keep their meaning; the
architecture must match. A plain language model (prior none) may seed a latent generator: its
new z -> (h0, c0) projection starts at zero, so the run begins exactly at the pretrained model
and the adversarial phase learns how to use z.
"""
from __future__ import annotations

from pathlib import Path

import torch

from textgan.config import DataConfig, GeneratorConfig
from textgan.errors import UserError
from textgan.models.generator import Generator
from textgan.sample import Loaded, load_generator

# what fixes the weights' shapes, and which of them are one tensor
SHAPES = {"lstm": ("core", "emb_dim", "hidden_dim", "num_layers", "tie_embeddings"),
          "relational_memory": ("core", "emb_dim", "mem_slots", "num_heads", "head_size", "tie_embeddings")}


def load_source(cfg: GeneratorConfig) -> Loaded:
    """The run or checkpoint named by `cfg.init_from`, checked against this run's generator."""
    path = Path(cfg.init_from)
    if not path.exists():
        raise UserError(f"generator.init_from: {path} does not exist; give a run folder or a .pt checkpoint")
    try:
        source = load_generator(path, warn=lambda message: None)
    except (OSError, ValueError, RuntimeError) as err:  # UserError (damaged file) passes through as is
        raise UserError(f"generator.init_from: cannot load {path} ({err})") from None
    theirs = source.config.generator
    for name in SHAPES[cfg.core]:
        if getattr(theirs, name) != getattr(cfg, name):
            raise UserError(f"generator.init_from: {path} has {name}={getattr(theirs, name)} but this "
                            f"config has {getattr(cfg, name)}; set generator.{name}={getattr(theirs, name)}")
    if theirs.prior != "none" and (cfg.prior == "none" or theirs.latent_dim != cfg.latent_dim):
        raise UserError(f"generator.init_from: {path} has a latent of {theirs.latent_dim} ({theirs.prior} "
                        f"prior); set generator.latent_dim={theirs.latent_dim} and a prior other than none")
    return source


def split_mismatch(data: DataConfig, source: Loaded) -> str | None:
    """A warning when this run scores a validation split the source run may have trained on
    (another training file, fraction or seed): its validation numbers would flatter the model."""
    if data.valid_frac == 0:  # (a validation file of its own: the user knows what it holds)
        return None

    def split_of(cfg: DataConfig) -> dict:
        train = str((Path(cfg.root) / cfg.train).resolve()) if cfg.source == "files" else ""
        return {"source": cfg.source, "train": train, "valid_frac": cfg.valid_frac, "valid_seed": cfg.valid_seed}
    theirs, ours = split_of(source.config.data), split_of(data)
    if theirs == ours:
        return None
    differ = ", ".join(f"data.{k}={v}" for k, v in theirs.items() if v != ours[k])
    return (f"warning: generator.init_from: {source.path} trained with {differ}, so this run's validation "
            "sentences may be in its training set; use the source's data settings for an unbiased validation split")


def check_vocabulary(share: float, max_oov: float, source: Loaded, log) -> None:
    """Report the share of this run's training tokens outside the source's vocabulary (they train
    as <unk>); above data.max_oov it is an error: the source was trained on another corpus."""
    log(f"vocabulary: {share:.1%} of the training tokens are outside {source.path}'s vocabulary (read as <unk>)")
    if share > max_oov:
        raise UserError(f"generator.init_from: {share:.1%} of this run's training tokens are outside the "
                        f"vocabulary of {source.path} (data.max_oov={max_oov:g}); was it trained on another corpus "
                        "or tokenizer? Set data.max_oov=1 to go ahead")


@torch.no_grad()
def apply(generator: Generator, source: Loaded) -> None:
    """Copy the source weights into `generator`; a latent projection the source lacks starts at 0."""
    state = source.generator.state_dict()
    missing, unexpected = generator.load_state_dict(state, strict=False)
    assert not unexpected and all(k.startswith("latent_proj.") for k in missing), (missing, unexpected)
    if missing:
        generator.latent_proj.weight.zero_()
        generator.latent_proj.bias.zero_()
