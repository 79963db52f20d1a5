"""LM score and reverse-LM score (Zhao et al. 2018, ARAE; Caccia et al. 2020, "Language GANs
falling short").

Shapes: N sentences, T max_len.
The LM score is the per-token NLL (EOS included) of the generated samples under a language model
trained on the real training data: quality, lower is better. The reverse-LM score is the per-token
NLL of the real test set under a language model trained on the generated samples: coverage, lower
is better; a generator that drops modes leaves its LM unable to explain part of the test set.
The reference for both is the real-data LM on the test set.

Both LMs are this toolkit's own generator (prior none: a plain LSTM LM) trained by its own MLE
trainer (textgan.mle, through textgan.train.Trainer) with one fixed small recipe and seed, so two
evaluations differ by their samples alone. The real-data LM depends only on the corpus and the
recipe: it is trained once and cached in $TEXTGAN_LM_CACHE, else $TEXTGAN_CACHE_DIR/lm (default
~/.cache/textgan/lm),
in a file named by a hash of the vocabulary, the encoded training set and the recipe, so another
corpus, vocabulary, sequence length or recipe never reuses it.
"""
from __future__ import annotations

import dataclasses
import hashlib
import os
import pickle
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path

import torch

from textgan.cache import cache_dir, keep
from textgan.corpus import Corpus
from textgan.data import Encoded
from textgan.metrics.nll import nll_gen

# The LM recipe: dotted config overrides, part of the cache key. Small enough to train on 10,000
# sentences in seconds on two CPU cores; a fixed LM judges every generator alike.
LM_RECIPE = ("generator.prior=none", "generator.emb_dim=32", "generator.hidden_dim=64", "generator.num_layers=1",
             "generator.io_dropout=0.1", "generator.init_std=0", "mle.epochs=5", "mle.lr=0.01",
             "mle.batch_size=64", "mle.patience=0", "mle.objective=nll", "adversarial.steps=0", "run.seed=0",
             "run.accel=auto", "data.valid_frac=0", "log.progress=false")
CACHE_VERSION = 1  # bump when a cached file's contents change meaning


@dataclass
class TrainedLM:
    generator: torch.nn.Module  # the LM, in eval mode
    train_nll: float  # per-token NLL of its training set, by the trainer's own loss, in eval mode
    num_train: int  # sentences it was trained on
    cached: bool = False  # loaded from the cache instead of trained now


def cache_root() -> Path:
    """$TEXTGAN_LM_CACHE, else the toolkit's cache folder's lm/ ($TEXTGAN_CACHE_DIR/lm,
    $XDG_CACHE_HOME/textgan/lm or ~/.cache/textgan/lm)."""
    return Path(os.environ["TEXTGAN_LM_CACHE"]) if os.environ.get("TEXTGAN_LM_CACHE") else cache_dir() / "lm"


def cache_key(corpus: Corpus, recipe: tuple[str, ...] = LM_RECIPE) -> str:
    """sha256 of the vocabulary, the encoded training set (ids and lengths) and the recipe."""
    h = hashlib.sha256(f"textgan-lm-v{CACHE_VERSION}\n".encode())
    h.update("\n".join(corpus.vocab.itos).encode("utf-8") + b"\0")
    h.update("\n".join(recipe).encode("utf-8") + b"\0")
    h.update(str(tuple(corpus.train.tokens.shape)).encode())
    h.update(corpus.train.tokens.cpu().to(torch.int64).numpy().tobytes())
    h.update(corpus.train.lengths.cpu().to(torch.int64).numpy().tobytes())
    return h.hexdigest()[:32]


def lm_config(recipe: tuple[str, ...] = LM_RECIPE, device: str = "cpu"):
    from textgan import config

    return config.load(None, [*recipe, f"run.device={device}"])


@torch.inference_mode()
def training_nll(generator, data: Encoded, pad_id: int, batch_size: int = 256) -> float:
    """Per-token NLL of `data` by the MLE trainer's loss (generator.mle_loss), in eval mode."""
    was_training = generator.training
    generator.eval()
    total, count = 0.0, 0
    mean_z = generator.prior_mean(1)  # (1, Z): the pool's mean reading is one pass, made once
    for s in range(0, data.tokens.shape[0], batch_size):
        x = data.tokens[s:s + batch_size].to(generator.out.weight.device)
        n = int((x != pad_id).sum())
        total += float(generator.mle_loss(x, mean_z.expand(x.shape[0], -1), pad_id=pad_id)) * n
        count += n
    generator.train(was_training)
    return total / count


def train_lm(corpus: Corpus, recipe: tuple[str, ...] = LM_RECIPE, device: str = "cpu") -> TrainedLM:
    """An LM on corpus.train by the toolkit's MLE trainer (`recipe`'s epochs), nothing written."""
    from textgan.monitor import Monitor
    from textgan.train import Trainer

    cfg = lm_config(recipe, device)
    corpus = dataclasses.replace(corpus, valid=None, valid_sentences=None)
    with tempfile.TemporaryDirectory(prefix="textgan-lm-") as tmp:
        trainer = Trainer(cfg, corpus, Path(tmp), Monitor(Path(tmp), enabled=False))
        for _ in range(cfg.mle.epochs):
            trainer.mle_epoch()
    lm = trainer.G.eval()
    return TrainedLM(lm, training_nll(lm, corpus.train, corpus.vocab.pad_id), corpus.train.tokens.shape[0])


def _load_cached(path: Path, corpus: Corpus, recipe, device: str) -> TrainedLM | None:
    """The cached LM at `path`, or None when there is none or it does not load (then retrained)."""
    if not path.is_file():
        return None
    from textgan.models import build_generator

    from textgan import accel

    try:
        state = torch.load(path, map_location=device, weights_only=True)
        cfg = lm_config(recipe, device)
        lm = build_generator(cfg.generator, len(corpus.vocab), corpus.banned).to(device)
        lm.load_state_dict(state["generator"])
        accel.apply(lm, None, cfg.run.accel)  # the ops the trainer gave it: the same scores as when trained
        return TrainedLM(lm.eval(), float(state["train_nll"]), int(state["num_train"]), cached=True)
    except (OSError, RuntimeError, KeyError, TypeError, ValueError, EOFError, pickle.UnpicklingError) as err:
        print(f"warning: cached LM {path} does not load ({str(err).splitlines()[0] if str(err) else err!r}); "
              "training it again", file=sys.stderr)
        return None


def real_lm(corpus: Corpus, recipe: tuple[str, ...] = LM_RECIPE, device: str = "cpu",
            cache: Path | None = None) -> TrainedLM:
    """The real-data LM of this corpus and recipe: from the cache, else trained and cached
    (written to a temporary file and renamed, so a reader never sees half a file)."""
    root = cache or cache_root()
    path = root / f"{cache_key(corpus, recipe)}.pt"
    found = _load_cached(path, corpus, recipe, device)
    if found is not None:
        return found
    lm = train_lm(corpus, recipe, device)
    state = {"generator": lm.generator.state_dict(), "train_nll": lm.train_nll, "num_train": lm.num_train,
             "recipe": list(recipe)}
    err = keep(path, lambda fh: torch.save(state, fh), binary=True)
    if err is not None:
        print(f"warning: could not cache the real-data LM in {root} ({err.strerror or err}); "
              "it will be trained again next time", file=sys.stderr)
    return lm


def sample_lengths(ids: torch.Tensor, eos_id: int | None) -> torch.Tensor:
    """Tokens up to and including the first EOS of each row of ids (N, T); T without one."""
    lengths = torch.full((ids.shape[0],), ids.shape[1], dtype=torch.long)
    if eos_id is not None:
        is_eos = ids == eos_id
        lengths = torch.where(is_eos.any(1), is_eos.long().argmax(1) + 1, lengths)
    return lengths


def lm_nll(lm, data: Encoded) -> float:
    """Per-token NLL (EOS included) of `data` under a plain LM."""
    return nll_gen(lm, data.tokens, data.lengths, draws=1).per_token


@dataclass
class LMScores:
    lm_score: float  # real LM on the samples (quality, lower is better)
    reverse_lm_score: float  # samples' LM on the test set (coverage, lower is better)
    real_reference: float  # real LM on the test set: where both would be for real text
    num_samples: int
    num_train: int  # sentences the real LM trained on
    cached: bool  # the real LM came from the cache

    def metrics(self) -> dict[str, float]:
        return {"lm_score": self.lm_score, "reverse_lm_score": self.reverse_lm_score,
                "lm_real_reference": self.real_reference}


def lm_scores(corpus: Corpus, ids: torch.Tensor, recipe: tuple[str, ...] = LM_RECIPE, device: str = "cpu",
              cache: Path | None = None) -> LMScores:
    """Both scores for generated ids (N, T) of this corpus's vocabulary, and the reference."""
    eos = corpus.vocab.eos_id if corpus.add_eos else None
    samples = Encoded(tokens=ids.cpu(), lengths=sample_lengths(ids.cpu(), eos), truncated=0, dropped=0)
    real = real_lm(corpus, recipe, device, cache)
    own = train_lm(dataclasses.replace(corpus, train=samples), recipe, device)
    return LMScores(lm_score=lm_nll(real.generator, samples), reverse_lm_score=lm_nll(own.generator, corpus.test),
                    real_reference=lm_nll(real.generator, corpus.test), num_samples=ids.shape[0],
                    num_train=real.num_train, cached=real.cached)
