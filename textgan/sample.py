"""Sampling text from a trained generator: from a seed, a given z, or along a latent path,
streamed in chunks; sentence i depends on (seed, i) only (its z and noise: textgan.draws).

Shapes: N sentences, T time, V vocabulary, Z latent.
"""
from __future__ import annotations

import sys
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Union

import numpy as np
import torch

from textgan import accel, checkpoint, draws
from textgan.config import WEIGHTS, Config
from textgan.data import Vocab, banned_ids
from textgan.errors import UserError
from textgan.models import Generator, build_run_generator
from textgan.progress import Progress


Condition = Union[int, torch.Tensor, None]  # a class id, a source sentence's reading (F,), or drawn per sentence


@dataclass
class Loaded:
    generator: Generator
    vocab: Vocab
    config: Config
    max_len: int
    path: Path  # the checkpoint file used
    averaged: bool = False  # the weights are adversarial.g_ema's average, not the trained ones
    labels: list[str] | None = None  # a conditional run's class names, in class-id order

    def class_id(self, name: str | None) -> int | None:
        """The id of class `name` (None for None), with one-line errors for a run without
        classes and a name that is not one of its classes."""
        if name is None:
            return None
        if self.config.generator.paired:
            raise UserError(f"{self.path} is conditioned on source sentences (generator.condition=sentence), not "
                            "classes; give a source sentence (--source TEXT) instead of --class")
        if self.labels is None:
            raise UserError(f"{self.path} is not a conditional run (generator.conditional=false): it has no "
                            "classes; leave out --class")
        if name not in self.labels:
            raise UserError(f"unknown class {name!r}; this run's classes are: {', '.join(self.labels)}")
        return self.labels.index(name)

    def condition(self, name: str | None = None, source: str | None = None) -> Condition:
        """What every sentence is conditioned on: class `name`'s id, or the reading (F,) of the
        source sentence `source` (a paired run); None for neither (drawn per sentence)."""
        if source is None:
            return self.class_id(name)
        if name is not None:
            raise UserError("a class and a source sentence both condition the sentences; give one of them")
        if not self.config.generator.paired:
            raise UserError(f"{self.path} is not conditioned on source sentences (generator.condition=sentence); "
                            "leave out the source")
        from textgan.encoding import sentence_ids  # (encoding imports this module)

        tokens, lengths = sentence_ids(self, [source])
        g = self.generator
        with torch.no_grad():
            return g.source_reader(tokens.to(g.source_pool.device), lengths.to(g.source_pool.device))[0].cpu()


def load_generator(path: str | Path, device: str = "cpu", warn=print, weights: str = "auto") -> Loaded:
    """From a run folder (its newest loadable checkpoint) or a checkpoint file. `weights`: "auto"
    takes adversarial.g_ema's average where the checkpoint has one (what the run reported), else the
    trained weights; "average" or "trained" picks one, so both can be scored from the same run."""
    if weights not in WEIGHTS:
        raise UserError(f"unknown --weights {weights!r}; choose one of {', '.join(WEIGHTS)}")
    path = Path(path)
    if path.is_dir():
        try:
            state, path = checkpoint.load_latest_valid(path / "checkpoints", warn=warn)
        except checkpoint.CheckpointError:  # its own message ends "start a new run without --resume"
            raise UserError(f"no loadable checkpoint in {path / 'checkpoints'}; pass a .pt file that loads, "
                            "or train the run until it writes one") from None
    else:
        state = checkpoint.load(path)
    cfg = checkpoint.read_config(state)
    vocab = Vocab(checkpoint.read_vocab(state))
    labels = checkpoint.read_labels(state)
    averaged = checkpoint.has_average(state) and weights != "trained"
    if weights == "average" and not averaged:
        raise UserError(f"checkpoint {path} has no weight average (its run had adversarial.g_ema=0 or had not "
                        "reached an adversarial step); use --weights trained")
    try:
        weights_of = checkpoint.read_generator(state, averaged=averaged)
        # a paired run's classes are its training sources, held in the generator (its pool)
        classes = len(labels) if labels else weights_of["source_pool"].shape[0] if cfg.generator.paired else 0
        gen = build_run_generator(cfg, len(vocab), banned_ids(vocab, cfg.data.source != "oracle"),
                                  checkpoint.read_max_len(state), num_classes=classes)
        gen.load_state_dict(weights_of)
    except (RuntimeError, KeyError, TypeError):
        raise UserError(f"checkpoint {path} does not match its own config (generator shapes); "
                        "the file is damaged or was edited") from None
    gen = gen.to(device).eval()
    # the run's accel (faster ops, same results); native's kernels may not build on this machine
    accel.apply(gen, None, "auto" if cfg.run.accel == "native" else cfg.run.accel)
    return Loaded(gen, vocab, cfg, checkpoint.read_max_len(state), path, averaged, labels)


def sample_text(loaded: Loaded, num: int, seed: int, temperature: float = 1.0,
                z: torch.Tensor | None = None, condition: Condition = None) -> list[str]:
    """`num` sentences; sentence i from z_i (the prior draw of (seed, i) unless z (N, Z) is given)
    and the Gumbel noise of (seed, i), whatever `num` (textgan.draws); of `condition` in a
    conditional run (default: drawn for each sentence, see `with_classes`)."""
    return [line for lines in stream_text(loaded, num, seed, temperature, z=z, condition=condition) for line in lines]


def with_classes(g: Generator, z: torch.Tensor, latent_keys: list[int], condition: Condition,
                 uniforms: draws.KeyedUniforms) -> torch.Tensor:
    """A conditional generator's codes (N, Z + C) of z (N, Z): `condition` for every row (a class
    id, or a source sentence's reading (F,), `Loaded.condition`), or else row i's class (a paired
    run: training source) drawn from the class prior with uniform 2Z of its latent key's stream
    (after the 2Z behind z), so it too depends on (seed, i) only. Unconditional: z itself."""
    if not g.num_classes:
        return z
    if isinstance(condition, torch.Tensor):
        return torch.cat([z, condition.to(z.dtype).expand(z.shape[0], -1)], dim=1)
    if condition is not None:
        classes = torch.full((z.shape[0],), condition, dtype=torch.long)
    else:
        u = uniforms(draws.key_tensor(latent_keys), 2 * g.latent_dim, 1)[:, 0]  # (N,): element 2Z of each stream
        cdf = g.class_prior.detach().cpu().double().cumsum(0)
        classes = torch.searchsorted(cdf, u.double().unsqueeze(1), right=True)[:, 0].clamp(max=g.num_classes - 1)
    return g.with_class(z, classes)


def latent_from_seed(loaded: Loaded, seed: int, num: int = 1) -> torch.Tensor:
    """The prior draws z (num, Z) of samples 0 .. num - 1 under `seed`: what sample_text uses."""
    g = loaded.generator
    return draws.latents(g.prior, g.latent_dim, draws.sample_keys(seed, 0, num)[1], draws.uniform_source(g))


def refuse_greedy_without_latent(g: Generator) -> None:
    """The one-line error for greedy decoding (`--greedy`, `greedy=True`) of a generator without z."""
    if g.prior == "none":
        raise UserError("--greedy leaves z as the only noise, but this run has generator.prior=none (no z): "
                        "every sample would be the same sentence; drop --greedy")


def load_latent(path: str | Path) -> np.ndarray:
    """A finite float array of shape (N, Z) or (Z,) from a .npy file (no pickles allowed), as (N, Z)."""
    try:
        arr = np.load(path, allow_pickle=False)
    except (OSError, ValueError, EOFError) as err:
        raise UserError(f"cannot read latent file {path} ({err.__class__.__name__}); "
                        "give a .npy float array of shape (N, Z)") from None
    if not isinstance(arr, np.ndarray) or not np.issubdtype(arr.dtype, np.floating) or arr.ndim not in (1, 2):
        shape, dtype = getattr(arr, "shape", "?"), getattr(arr, "dtype", type(arr).__name__)
        raise UserError(f"latent file {path} has shape {shape} and dtype {dtype}; give floats of shape (N, Z)")
    arr = arr[None] if arr.ndim == 1 else arr
    if arr.shape[0] == 0 or arr.shape[1] == 0:
        raise UserError(f"latent file {path} has shape {arr.shape}: no latent vectors in it")
    finite = np.isfinite(arr).all(axis=1)
    if not finite.all():
        raise UserError(f"latent file {path}: row {int(np.argmin(finite))} holds NaN or infinity "
                        f"({int((~finite).sum())} of {arr.shape[0]} rows); give finite values")
    return arr


def check_latent(arr: np.ndarray, latent_dim: int, path: str | Path = "the latent") -> torch.Tensor:
    """`arr` (N, Z) as a float32 tensor, if Z is the generator's latent size."""
    if arr.shape[1] != latent_dim:
        raise UserError(f"latent file {path} has shape {arr.shape}; the generator needs floats of shape "
                        f"(N, {latent_dim})")
    return torch.from_numpy(arr.astype(np.float32))


def read_latent(path: str | Path, latent_dim: int) -> torch.Tensor:
    """An (N, Z) or (Z,) finite float array from a .npy file, checked against the generator's Z."""
    return check_latent(load_latent(path), latent_dim, path)


@dataclass
class Samples:
    """One chunk of sentences and the latents behind them."""
    lines: list[str]
    z: torch.Tensor  # (N, Z) on CPU; zeros for prior=none


@dataclass
class Drawn:
    """One chunk of sampled ids and the latents behind them."""
    ids: torch.Tensor  # (N, T) on CPU, pad after the first EOS
    z: torch.Tensor  # (N, Z) on CPU; zeros for prior=none


@torch.inference_mode()
def _ids(g: Generator, z: torch.Tensor, max_len: int, temperature: float, noise_keys: list[int] | None) -> torch.Tensor:
    """Ids (N, T) on CPU of z (N, Z) under the Gumbel noise of `noise_keys` (N,), or greedy (None)."""
    device = g.out.weight.device
    if noise_keys is None:
        from textgan.encoding import greedy_decode  # (encoding imports this module)

        return greedy_decode(g, z.to(device), max_len).cpu()
    return g.sample(z.to(device), max_len, temperature=temperature, need_dists=False,
                    noise_keys=draws.key_tensor(noise_keys)).tokens.cpu()


def draw_ids(generator: Generator, num: int, max_len: int, seed: int, temperature: float = 1.0,
             z: torch.Tensor | None = None, chunk: int = 512, greedy: bool = False,
             progress: Progress | None = None, condition: Condition = None) -> Iterator[Drawn]:
    """The one sampler of `textgan sample`, evaluation and sweeps: `num` samples a chunk at a time,
    sample i from z_i (the prior draw of (seed, i), or row i of z (N, Z)) and the Gumbel noise of
    (seed, i) (none with `greedy`), so it is the same whatever `num` and `chunk` (textgan.draws).
    A conditional generator's sample i has `condition`, or the class drawn for (seed, i), unless
    z is already a code with its class columns (N, Z + C). In eval mode (no dropout) throughout;
    `progress` counts the samples."""
    g, was_training = generator, generator.training
    g.eval()
    uniforms = draws.uniform_source(g)
    try:
        for start in range(0, num, chunk):
            b = min(chunk, num - start)
            noise_keys, latent_keys = draws.sample_keys(seed, start, b)
            zb = draws.latents(g.prior, g.latent_dim, latent_keys, uniforms) if z is None else z[start:start + b].cpu()
            code = zb if zb.shape[1] > g.latent_dim else with_classes(g, zb, latent_keys, condition, uniforms)
            yield Drawn(_ids(g, code, max_len, temperature, None if greedy else noise_keys), zb[:, :g.latent_dim])
            if progress is not None:
                progress.advance(b)
    finally:
        g.train(was_training)


def _lines(loaded: Loaded, ids: torch.Tensor) -> list[str]:
    return [" ".join(loaded.vocab.decode(row)) for row in ids.tolist()]


def stream_samples(loaded: Loaded, num: int, seed: int, temperature: float = 1.0, z: torch.Tensor | None = None,
                   chunk: int | None = None, greedy: bool = False, condition: Condition = None) -> Iterator[Samples]:
    """`num` sentences a chunk at a time, so memory stays bounded whatever `num`: `draw_ids`' samples."""
    size = chunk or draws.chunk_size(loaded.max_len, loaded.generator.vocab_size)
    for drawn in draw_ids(loaded.generator, num, loaded.max_len, seed, temperature, z=z, chunk=size, greedy=greedy,
                          condition=condition):
        yield Samples(_lines(loaded, drawn.ids), drawn.z)


def stream_text(loaded: Loaded, num: int, seed: int, temperature: float = 1.0, z: torch.Tensor | None = None,
                chunk: int | None = None, condition: Condition = None) -> Iterator[list[str]]:
    """`stream_samples`' sentences only."""
    for samples in stream_samples(loaded, num, seed, temperature, z=z, chunk=chunk, condition=condition):
        yield samples.lines


class LatentFile:
    """--save-z: the (N, Z) float32 latents behind the sentences, filled chunk by chunk into a
    memory-mapped .npy beside the target and renamed onto it once every row is in, so a stopped
    run leaves no file that looks complete; an existing file is replaced only with `force`."""

    def __init__(self, path: str | Path, rows: int, dim: int, force: bool = False):
        self.path, self.force, self.filled = Path(path), force, 0
        self.tmp = self.path.with_name(self.path.name + ".partial")
        try:
            self.array = np.lib.format.open_memmap(self.tmp, mode="w+", dtype=np.float32, shape=(rows, dim))
        except OSError as err:
            raise UserError(f"cannot write --save-z {path} ({err.strerror or err}); choose a writable path") from None

    def write(self, z: torch.Tensor) -> None:
        self.array[self.filled:self.filled + z.shape[0]] = z.detach().numpy()
        self.filled += z.shape[0]

    def finish(self) -> Path:
        self.array.flush()
        del self.array
        if self.path.exists() and not self.force:
            self.abandon()
            raise UserError(f"--save-z {self.path} appeared while sampling; nothing overwritten, rerun with "
                            "another name or --force")
        self.tmp.replace(self.path)
        return self.path

    def abandon(self) -> None:
        self.__dict__.pop("array", None)
        self.tmp.unlink(missing_ok=True)


def write_lines(chunks: Iterable[Samples], out: Path | None, force: bool = False,
                save_z: LatentFile | None = None) -> None:
    """Print each chunk of sentences as it comes, append it to `out` (a new file unless `force`),
    and its latents to `save_z`, which is completed when every chunk is written."""
    fh = None
    try:
        fh = open(out, "w" if force else "x", encoding="utf-8") if out else None
        for chunk in chunks:
            text = "".join(f"{line}\n" for line in chunk.lines)
            sys.stdout.write(text)
            sys.stdout.flush()
            if fh:
                fh.write(text)
                fh.flush()
            if save_z:
                save_z.write(chunk.z)
        if save_z:
            print(f"wrote {save_z.finish()} ({save_z.filled} latents)", file=sys.stderr)
    finally:
        if fh:
            fh.close()
        if save_z and save_z.tmp.exists():
            save_z.abandon()


def interpolate(z0: torch.Tensor, z1: torch.Tensor, steps: int, spherical: bool = True) -> torch.Tensor:
    """`steps` points from z0 to z1, (steps, Z); spherical keeps Gaussian norms typical (White 2016)."""
    t = torch.linspace(0, 1, steps, device=z0.device).unsqueeze(1)  # (steps, 1)
    a, b = z0.reshape(1, -1), z1.reshape(1, -1)
    if not spherical:
        return (1 - t) * a + t * b
    cos = (a / a.norm()).mul(b / b.norm()).sum().clamp(-1, 1)
    omega = torch.arccos(cos)
    if omega.abs() < 1e-6:
        return (1 - t) * a + t * b
    return (torch.sin((1 - t) * omega) * a + torch.sin(t * omega) * b) / torch.sin(omega)


def interpolation_samples(loaded: Loaded, seed: int, seed_to: int, steps: int,
                          temperature: float = 1.0, condition: Condition = None) -> Iterator[Samples]:
    """Walk the latent from sample 0's prior draw under `seed` to that under `seed_to`; every point
    sees sample 0's Gumbel noise under `seed`, so the text changes only because z does (and the
    first point is `textgan sample --seed SEED --num 1`'s sentence)."""
    g = loaded.generator
    if g.prior == "none":
        raise UserError("this generator has prior=none: there is no latent to interpolate")
    path = interpolate(latent_from_seed(loaded, seed)[0], latent_from_seed(loaded, seed_to)[0], steps,
                       spherical=g.prior == "normal")  # (steps, Z)
    key, class_key = draws.sample_keys(seed, 0, 1)  # [sample 0's noise key]: the noise of every point
    uniforms = draws.uniform_source(g)
    size = draws.chunk_size(loaded.max_len, g.vocab_size)
    for start in range(0, steps, size):
        zb = path[start:start + size].cpu()
        code = with_classes(g, zb, class_key * zb.shape[0], condition, uniforms)  # sample 0's class (or condition)
        yield Samples(_lines(loaded, _ids(g, code, loaded.max_len, temperature, key * zb.shape[0])), zb)


def interpolation_text(loaded: Loaded, seed: int, seed_to: int, steps: int, temperature: float = 1.0,
                       condition: Condition = None) -> list[str]:
    return [line for chunk in interpolation_samples(loaded, seed, seed_to, steps, temperature, condition)
            for line in chunk.lines]


def text_path_samples(loaded: Loaded, start: str, end: str, steps: int, which: str = "auto") -> Samples:
    """The greedy sentences on the straight line between two sentences' z (`--from-text`), and that line."""
    from textgan import encoding  # (encoding imports this module)

    z = encoding.encode_text(loaded, [start, end], which)
    path = interpolate(z[0], z[1], steps, spherical=False)
    return Samples(encoding.decode_text(loaded, path), path.cpu())
