"""Checks of command-line values made before any work starts: argparse types (numbers and their
ranges) and path, output and device checks, each a one-line UserError naming the flag and the fix.

Kept apart from cli.py so the parser stays a list of flags, and free of torch so a mistake is
reported before torch loads.
"""
from __future__ import annotations

import argparse
import math
import os
import re
from pathlib import Path

from textgan.errors import UserError

SEED_MAX = 2**63 - 1  # torch.Generator.manual_seed takes a signed 64-bit value
DEVICE = re.compile(r"cpu|cuda(:\d+)?")


def _number(text: str, kind: type, what: str):
    try:
        value = kind(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected {what}, got {text!r}") from None
    return value


def positive(text: str) -> int:
    """A whole number >= 1 (counts: --num, --interpolate)."""
    value = _number(text, int, "a whole number")
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be >= 1, got {value}")
    return value


def at_least_two(text: str) -> int:
    """A sample count Self-BLEU can use: leave-one-out needs two samples."""
    value = _number(text, int, "a whole number")
    if value < 2:
        raise argparse.ArgumentTypeError(f"must be >= 2 (Self-BLEU needs two samples), got {value}")
    return value


def seed(text: str) -> int:
    value = _number(text, int, "a whole number")
    if not 0 <= value <= SEED_MAX:
        raise argparse.ArgumentTypeError(f"must be a whole number from 0 to 2**63-1, got {value}")
    return value


def tau(text: str) -> float:
    """A sampling temperature: finite and > 0 (it divides the logits)."""
    value = _number(text, float, "a number")
    if not 0 < value < math.inf:
        raise argparse.ArgumentTypeError(f"must be a finite number > 0, got {text}")
    return value


def seconds(text: str) -> float:
    """A finite number of seconds >= 0 (--interval-s; 0 turns the progress lines off)."""
    value = _number(text, float, "a number of seconds")
    if not 0 <= value < math.inf:
        raise argparse.ArgumentTypeError(f"must be a finite number of seconds >= 0, got {text}")
    return value


def fraction(text: str) -> float:
    value = _number(text, float, "a number")
    if not 0 <= value <= 1:
        raise argparse.ArgumentTypeError(f"must be a number from 0 to 1, got {text}")
    return value


def device(name: str) -> str:
    """cpu, cuda or cuda:N, where this machine has that device (torch is imported only for cuda)."""
    if not DEVICE.fullmatch(name):
        raise UserError(f"--device {name!r} is not a device; use cpu, cuda or cuda:N")
    if name.startswith("cuda"):
        import torch

        if not torch.cuda.is_available():
            raise UserError(f"--device {name} requested but CUDA is not available here; use --device cpu")
        index = int(name.partition(":")[2] or 0)
        if index >= torch.cuda.device_count():
            raise UserError(f"--device {name}: this machine has {torch.cuda.device_count()} CUDA device(s); "
                            "use cuda:0 .. cuda:N-1")
    return name


def existing_file(path: str, flag: str) -> Path:
    p = Path(path)
    if not p.exists():
        raise UserError(f"{flag} {path} not found; check the path")
    if not p.is_file():
        raise UserError(f"{flag} {path} is not a file")
    if not os.access(p, os.R_OK):
        raise UserError(f"{flag} {path} cannot be read (permission denied)")
    return p


def run_or_checkpoint(path: str) -> Path:
    p = Path(path)
    if not p.exists():
        raise UserError(f"run or checkpoint {path} not found; pass a run folder or a .pt file in it")
    if p.is_dir() and not (p / "checkpoints").is_dir():
        raise UserError(f"{path} is not a run folder (no checkpoints/); pass the folder `textgan train` made "
                        "or a .pt checkpoint")
    return p


def _writable_dir(folder: Path, flag: str, path: str) -> None:
    """`folder` exists (or can be made: its nearest existing parent) and can be written."""
    probe = folder
    while not probe.exists():
        probe = probe.parent
    if not probe.is_dir():
        raise UserError(f"{flag} {path}: {probe} is a file, not a folder; choose another path")
    if not os.access(probe, os.W_OK | os.X_OK):
        raise UserError(f"{flag} {path}: cannot write in {probe} (permission denied); choose another path")


def new_file(path: str, flag: str, force: bool) -> Path:
    """An output file: not there yet (or `force`), in a folder that exists and can be written."""
    p = Path(path)
    if p.is_dir():
        raise UserError(f"{flag} {path} is a folder; give a file name")
    if p.exists() and not force:
        raise UserError(f"{flag} {path} already exists; choose a new file name, or add --force to replace it")
    if not p.parent.is_dir():
        raise UserError(f"{flag} {path}: folder {p.parent} does not exist; give a path in an existing folder")
    _writable_dir(p.parent, flag, path)
    return p


def output_dir(path: str, flag: str, targets: tuple[str, ...], force: bool) -> Path:
    """An output folder none of whose `targets` (file names or glob patterns) exists yet, unless `force`."""
    p = Path(path)
    if p.exists() and not p.is_dir():
        raise UserError(f"{flag} {path} is a file; give a folder")
    taken = [hit.name for pattern in targets for hit in sorted(p.glob(pattern))] if p.is_dir() else []
    if taken and not force:
        raise UserError(f"{flag} {path} already exists with {', '.join(taken)} in it; choose another folder, "
                        "or add --force to replace them")
    _writable_dir(p, flag, path)
    return p


def numbered_dir(base: Path, targets: tuple[str, ...]) -> Path:
    """`base` if none of `targets` is in it yet, else the first free base-2, base-3, ...: a default
    output folder that never replaces an earlier result."""
    candidate, n = base, 1
    while candidate.is_dir() and any(next(candidate.glob(t), None) for t in targets):
        n += 1
        candidate = base.with_name(f"{base.name}-{n}")
    _writable_dir(candidate, "output folder", str(candidate))
    return candidate
