"""The Python API a notebook uses: train a config, load a run, sample it, score it.

    import textgan.api as tg
    run = tg.train("configs/quickstart.yaml", ["adversarial.steps=50"])
    model = tg.load(run)
    model.sample(5, seed=7)            # sentence i depends on (seed, i) only
    model.sample(5, cls="thing_object")  # a conditional run: sentences of one class (model.classes)
    model.sample(5, source="the clever girl sang .")  # a run conditioned on sentences: from that source
    model.latents(5, seed=7)           # the z behind them
    model.sample(z=model.encode(["a man rides a horse"]), greedy=True)  # a sentence back from its z
    model.interpolate(8, seed=1, seed_to=2)  # a path between two prior draws, one noise throughout
    model.interpolate(8, from_text="a man rides a horse", to_text="a dog runs")  # between two sentences
    model.evaluate(num=200)
    tg.score(["a man rides a horse", "a dog runs"], references=["a man rides a brown horse"])

The same functions as the CLI, the same checks: a mistake raises textgan.errors.UserError with
the CLI's one-line message.
"""
from __future__ import annotations

import sys
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from textgan import config as config_mod
from textgan.errors import UserError


@dataclass
class Model:
    """A trained generator with its vocabulary and config (textgan.sample.Loaded inside)."""
    loaded: object  # textgan.sample.Loaded
    run: Path  # the run folder or checkpoint it came from
    device: str = "cpu"
    weights: str = "auto"

    @property
    def config(self) -> config_mod.Config:
        return self.loaded.config

    @property
    def classes(self) -> list[str] | None:
        """A conditional run's class names (None for an unconditional run)."""
        return self.loaded.labels

    def sample(self, num: int = 10, seed: int = 0, temperature: float = 1.0, z=None,
               cls: str | None = None, greedy: bool = False, source: str | None = None) -> list[str]:
        """`num` sentences (or one per row of z, an (N, Z) array or tensor), as `textgan sample`;
        `cls`: every sentence of that class (a conditional run; `textgan sample --class`);
        `source`: every sentence from that source sentence (generator.condition=sentence; `--source`);
        `greedy`: the most likely token at each step, z the only noise (`textgan sample --greedy`)."""
        import numpy as np
        import torch

        from textgan import sample

        if not temperature > 0:
            raise UserError(f"temperature must be > 0, got {temperature}")
        _check_greedy(greedy, temperature)
        if greedy:
            sample.refuse_greedy_without_latent(self.loaded.generator)
        _check_count_seed(num if z is None else 1, seed)
        for name, value in (("cls", cls), ("source", source)):
            if value is not None and not isinstance(value, str):
                raise UserError(f"{name} must be a string, got {value!r}")
        condition = self.loaded.condition(cls, source)
        if z is not None:
            arr = z.detach().cpu().numpy() if isinstance(z, torch.Tensor) else np.asarray(z)
            arr = np.atleast_2d(arr)
            if arr.ndim != 2 or not np.issubdtype(arr.dtype, np.floating) or not np.isfinite(arr).all():
                raise UserError(f"z must be a finite float array of shape (N, Z), got shape {arr.shape} "
                                f"and dtype {arr.dtype}")
            z = sample.check_latent(arr, self.loaded.generator.latent_dim)
            num = z.shape[0]
        return [line for chunk in sample.stream_samples(self.loaded, num, seed, temperature, z=z, greedy=greedy,
                                                        condition=condition)
                for line in chunk.lines]

    def interpolate(self, steps: int = 8, seed: int = 0, seed_to: int = 1, temperature: float = 1.0,
                    from_text: str | None = None, to_text: str | None = None, cls: str | None = None,
                    encoder: str = "auto") -> list[str]:
        """`steps` sentences along a path in z, as `textgan sample --interpolate`: between the prior
        draws of sample 0 under `seed` and under `seed_to`, every point under sample 0's noise; or,
        with `from_text` and `to_text`, between two sentences' encoded z, decoded greedily."""
        from textgan import sample

        if isinstance(steps, bool) or not isinstance(steps, int) or steps < 1:
            raise UserError(f"steps must be a positive integer, got {steps!r}")
        if not temperature > 0:
            raise UserError(f"temperature must be > 0, got {temperature}")
        if (from_text is None) != (to_text is None):
            raise UserError("from_text and to_text go together: give both sentences, or neither")
        if from_text is not None:  # (a generator without z: the encoder's and the path's own errors below)
            if cls is not None:
                raise UserError("from_text paths come from an encoder, without classes; drop cls")
            _check_encoder(encoder)
            return sample.text_path_samples(self.loaded, from_text, to_text, steps, encoder).lines
        _check_count_seed(1, seed)
        _check_count_seed(1, seed_to)
        return sample.interpolation_text(self.loaded, seed, seed_to, steps, temperature, self.loaded.condition(cls))

    def latents(self, num: int = 10, seed: int = 0):
        """The z (num, Z) float32 numpy array behind `sample(num, seed)`: row i depends on (seed, i)
        only, and `sample(z=..., seed=seed)` of it gives the same sentences."""
        from textgan import sample

        _check_count_seed(num, seed)
        if self.loaded.generator.prior == "none":
            raise UserError("this generator has prior=none: it has no latent")
        return sample.latent_from_seed(self.loaded, seed, num).numpy()

    def encode(self, sentences: Sequence[str], encoder: str = "auto"):
        """z (N, Z) float32 numpy array of each sentence, as `textgan encode`: the variational
        encoder's mean or the reconstruction head's output (encoder: auto, variational or info)."""
        from textgan import encoding

        if isinstance(sentences, str) or not all(isinstance(s, str) for s in sentences):
            raise UserError("sentences must be a list of strings, one sentence each")
        _check_encoder(encoder)
        return encoding.encode_text(self.loaded, list(sentences), encoder).cpu().numpy().astype("float32")

    def evaluate(self, num: int | None = None, seed: int | None = None, temperature: float = 1.0,
                 protocol: str = "exact", split: str = "test", data: str | None = None,
                 greedy: bool = False) -> dict[str, float]:
        """The metrics `textgan eval` prints, on `num` samples (default eval.num_samples of the run);
        `greedy`: of the noise-off decoding, as `textgan eval --greedy`."""
        from textgan.evaluation_cli import eval_metrics, greedy_decoding, load_run

        _check_greedy(greedy, temperature)
        loaded, corpus = load_run(self.run, data=data, device=self.device, weights=self.weights, split=split)
        if greedy:
            greedy_decoding(loaded)
        return eval_metrics(loaded, corpus, num=num or self.config.eval.num_samples,
                            seed=self.config.run.seed if seed is None else seed,
                            temperature=temperature, protocol=protocol)


def _check_greedy(greedy: bool, temperature: float) -> None:
    if greedy and temperature != 1.0:
        raise UserError("greedy takes the most likely token, which no temperature changes; drop one of them")


def _check_encoder(encoder) -> None:
    from textgan.encoding import ENCODERS

    if encoder not in ENCODERS:
        raise UserError(f"encoder must be one of {', '.join(ENCODERS)}, got {encoder!r}")


def _check_count_seed(num, seed) -> None:
    from textgan.arguments import SEED_MAX

    if not isinstance(num, int) or num < 1:
        raise UserError(f"num must be a whole number >= 1, got {num!r}")
    if not isinstance(seed, int) or not 0 <= seed <= SEED_MAX:
        raise UserError(f"seed must be a whole number from 0 to 2**63-1, got {seed!r}")


def load(run: str | Path, device: str = "cpu", weights: str = "auto") -> Model:
    """A run folder (its newest loadable checkpoint) or a checkpoint file."""
    from textgan import arguments, sample

    path = arguments.run_or_checkpoint(str(run))
    loaded = sample.load_generator(path, arguments.device(device), warn=lambda m: print(m, file=sys.stderr),
                                   weights=weights)
    return Model(loaded, path, device, weights)


def train(config: str | Path | None = None, overrides: Sequence[str] | dict = (), force: bool = False) -> Path:
    """Train a new run from a YAML config (None: the defaults) and dotted overrides, given as
    ["key=value", ...] or {"key": value}; returns its run folder."""
    from textgan.accel import fpenv
    from textgan.experiment import train_command
    from textgan.runs import run_name

    if isinstance(overrides, dict):
        overrides = [f"{key}={value}" for key, value in overrides.items()]
    overrides = list(overrides)
    cfg = config_mod.load(config, overrides)
    path = str(config) if config is not None else None
    with fpenv.preserved():  # the run's floating-point settings and threads, not the caller's
        code = train_command(path, overrides, force=force, cfg=cfg)
    run_dir = Path(cfg.log.dir) / run_name(cfg, path)
    if code != 0:
        raise UserError(f"training stopped (exit {code}); continue it with textgan.api.resume({str(run_dir)!r})")
    return run_dir


def resume(run: str | Path, overrides: Sequence[str] = ()) -> Path:
    """Continue a run folder from its newest loadable checkpoint, as `textgan train --resume`."""
    from textgan.accel import fpenv
    from textgan.experiment import train_command

    with fpenv.preserved():
        code = train_command(None, list(overrides), resume=str(run))
    if code != 0:
        raise UserError(f"training stopped (exit {code}); continue it with textgan.api.resume({str(run)!r})")
    return Path(run)


def score(samples: Sequence[str], references: Sequence[str], tokenizer: str = "whitespace", lowercase: bool = True,
          orders: Sequence[int] = (2, 3, 4, 5), protocol: str = "exact") -> dict[str, float]:
    """BLEU-n, Self-BLEU-n, ref_unseen_frac and mean_length of sentences against references, as
    `textgan score` (tokenized as data.tokenizer / data.lowercase of the run being compared)."""
    from textgan.data import tokenize
    from textgan.score_cli import score_text

    hyps = [tokenize(s, tokenizer, lowercase) for s in samples]
    refs = [tokenize(s, tokenizer, lowercase) for s in references]
    if len(hyps) < 2 and protocol != "texygen":
        raise UserError("leave-one-out Self-BLEU needs at least 2 samples")
    if not refs:
        raise UserError("score needs at least one reference sentence")
    return score_text(hyps, refs, list(orders), protocol)
