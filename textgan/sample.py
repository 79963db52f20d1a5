"""Sampling text from a trained generator: from a seed, a given z, or along a latent path.

Shapes: N sentences, Z latent.
"""
from __future__ import annotations

import sys
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from textgan import accel, checkpoint
from textgan.config import WEIGHTS, Config
from textgan.data import Vocab, banned_ids
from textgan.errors import UserError
from textgan.evaluate import generate
from textgan.models import Generator, build_generator


@dataclass
class Loaded:
    generator: Generator
    vocab: Vocab
    config: Config
    max_len: int
    path: Path  # the checkpoint file used
    averaged: bool = False  # the weights are adversarial.g_ema's average, not the trained ones


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
    gen = build_generator(cfg.generator, len(vocab), banned_ids(vocab, cfg.data.source != "oracle"))
    averaged = checkpoint.has_average(state) and weights != "trained"
    if weights == "average" and not averaged:
        raise UserError(f"checkpoint {path} has no weight average (its run had adversarial.g_ema=0 or had not "
                        "reached an adversarial step); use --weights trained")
    try:
        gen.load_state_dict(checkpoint.read_generator(state, averaged=averaged))
    except (RuntimeError, KeyError, TypeError):
        raise UserError(f"checkpoint {path} does not match its own config (generator shapes); "
                        "the file is damaged or was edited") from None
    gen = gen.to(device).eval()
    # the run's accel (faster ops, same results); native's kernels may not build on this machine
    accel.apply(gen, None, "auto" if cfg.run.accel == "native" else cfg.run.accel)
    return Loaded(gen, vocab, cfg, checkpoint.read_max_len(state), path, averaged)


def sample_text(loaded: Loaded, num: int, seed: int, temperature: float = 1.0,
                z: torch.Tensor | None = None) -> list[str]:
    """`num` sentences; z from the prior seeded by `seed` unless given, (N, Z)."""
    g = loaded.generator
    rng = torch.Generator(device=g.out.weight.device).manual_seed(seed)
    if z is not None:
        z = z.to(g.out.weight.device)
    ids = generate(g, num, loaded.max_len, rng, temperature=temperature, z=z)
    return [" ".join(loaded.vocab.decode(row)) for row in ids.tolist()]


def latent_from_seed(loaded: Loaded, seed: int, num: int = 1) -> torch.Tensor:
    g = loaded.generator
    return g.sample_latent(num, torch.Generator(device=g.out.weight.device).manual_seed(seed))


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


def stream_text(loaded: Loaded, num: int, seed: int, temperature: float = 1.0, z: torch.Tensor | None = None,
                chunk: int = 512) -> Iterator[list[str]]:
    """`sample_text`'s sentences, `chunk` at a time: memory stays bounded whatever `num`. One RNG
    runs through the chunks as `generate` runs through its batches, so with chunk 512 (its batch)
    the sentences are sample_text's, line for line."""
    g = loaded.generator
    rng = torch.Generator(device=g.out.weight.device).manual_seed(seed)
    for start in range(0, num, chunk):
        b = min(chunk, num - start)
        zb = None if z is None else z[start:start + b].to(g.out.weight.device)
        ids = generate(g, b, loaded.max_len, rng, temperature=temperature, z=zb)
        yield [" ".join(loaded.vocab.decode(row)) for row in ids.tolist()]


def write_lines(chunks: Iterable[list[str]], out: Path | None, force: bool = False) -> None:
    """Print each chunk of sentences as it comes, and append it to `out` (a new file unless `force`)."""
    fh = open(out, "w" if force else "x", encoding="utf-8") if out else None
    try:
        for lines in chunks:
            text = "".join(f"{line}\n" for line in lines)
            sys.stdout.write(text)
            sys.stdout.flush()
            if fh:
                fh.write(text)
                fh.flush()
    finally:
        if fh:
            fh.close()


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


def interpolation_text(loaded: Loaded, seed: int, seed_to: int, steps: int, temperature: float = 1.0,
                       noise_seed: int = 0) -> list[str]:
    """Walk the latent between the prior draws of two seeds; each point sees the same Gumbel noise,
    so the text changes only because z does."""
    if loaded.generator.prior == "none":
        raise UserError("this generator has prior=none: there is no latent to interpolate")
    path = interpolate(latent_from_seed(loaded, seed)[0], latent_from_seed(loaded, seed_to)[0], steps,
                       spherical=loaded.generator.prior == "normal")
    return [sample_text(loaded, 1, noise_seed, temperature, z=zi.unsqueeze(0))[0] for zi in path]

