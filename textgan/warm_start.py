"""Start a run's generator from another run's weights (`generator.init_from`).

The usual GAN workflow pretrains once with MLE and then runs many adversarial variants from
that generator. The source run's vocabulary is reused, so token ids keep their meaning; the
architecture must match. The source's sentence encoder (mle.objective elbo) and reconstruction
head (adversarial.info_weight) come along where this run has them too, so it can still encode text. A plain language model (prior none) may seed a latent generator: its
new z -> (h0, c0) projection starts at zero, so the run begins exactly at the pretrained model
and the adversarial phase learns how to use z.
"""
from __future__ import annotations

from pathlib import Path

import torch

from textgan import checkpoint
from textgan.config import Config, DataConfig, GeneratorConfig
from textgan.errors import UserError
from textgan.latent_training import ENCODER, HEAD, LatentParts
from textgan.models.generator import Generator
from textgan.sample import Loaded, load_generator

# what fixes the latent networks' shapes (beside generator.latent_dim): the switch that makes this
# run keep one, and its latent.* keys
LATENT_SHAPES = {ENCODER: ("variational encoder", "mle.objective=elbo",
                           ("encoder_emb_dim", "encoder_hidden_dim", "encoder_bidirectional")),
                 HEAD: ("reconstruction head", "adversarial.info_weight > 0", ("info_emb_dim", "info_hidden_dim"))}
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
    """Copy the source weights into `generator`; a latent projection or class embedding the source
    lacks starts at 0 (so the run starts as the source model; a conditional run keeps its class prior)."""
    state = source.generator.state_dict()
    missing, unexpected = generator.load_state_dict(state, strict=False)
    own = ("latent_proj.", "class_embedding.", "class_prior")
    assert not unexpected and all(k.startswith(own) for k in missing), (missing, unexpected)
    if any(k.startswith("latent_proj.") for k in missing):
        generator.latent_proj.weight.zero_()
        generator.latent_proj.bias.zero_()
    if "class_embedding.weight" in missing:
        generator.class_embedding.weight.zero_()


def check_classes(conditional: bool, labels: list[str] | None, source: Loaded) -> None:
    """A conditional source only starts a conditional run on the same classes; a sentence-conditioned
    one starts none yet."""
    if source.config.generator.paired:
        raise UserError(f"generator.init_from: {source.path} is conditioned on source sentences (generator.condition="
                        "sentence); starting another run from it is not supported yet")
    if source.labels is None:
        return
    if not conditional:
        raise UserError(f"generator.init_from: {source.path} is a conditional run (classes "
                        f"{', '.join(source.labels)}); set generator.conditional=true with its labels")
    if labels != source.labels:
        raise UserError(f"generator.init_from: {source.path} has the classes {', '.join(source.labels)}, this "
                        f"run's labels give {', '.join(labels or [])}; use the same labels")


def latent_weights(cfg: Config, source: Loaded, log) -> dict[str, dict]:
    """The source's variational encoder and reconstruction head weights, by checkpoint entry, for
    those this run has as well (their shapes checked before the run folder is made); a part this
    run has no place for is named in a log line."""
    state = checkpoint.load(source.path)
    theirs, ours = source.config.latent, cfg.latent
    wanted = {ENCODER: cfg.mle.objective == "elbo", HEAD: cfg.adversarial.info_weight > 0}
    out = {}
    for name, (label, switch, keys) in LATENT_SHAPES.items():
        part = checkpoint.read_latent_part(state, name)
        if part is None:
            continue
        if not wanted[name]:
            log(f"generator.init_from: {source.path}'s {label} is left behind (this run has none); set {switch} "
                "to keep it")
            continue
        for key in keys:
            if getattr(theirs, key) != getattr(ours, key):
                raise UserError(f"generator.init_from: {source.path}'s {label} has latent.{key}={getattr(theirs, key)} "
                                f"but this config has {getattr(ours, key)}; set latent.{key}={getattr(theirs, key)}")
        out[name] = part.weights
    return out


def apply_latent(parts: LatentParts, weights: dict[str, dict]) -> None:
    """Copy `latent_weights`' result into this run's encoder and head (their optimizers start afresh)."""
    for name, module in ((ENCODER, parts.encoder), (HEAD, parts.head)):
        if name in weights:
            module.load_state_dict(weights[name])
