"""Self-describing checkpoints: atomic writes, bounded history, safe loading.

A checkpoint is a dict of tensors, numbers, strings and lists only, so it loads
with `torch.load(weights_only=True)`: a file carrying pickled code is refused and
nothing in it runs.
"""
from __future__ import annotations

import io
import os
import pickle
from pathlib import Path

import torch

from textgan.errors import UserError

FORMAT = "textgan-checkpoint-v1"
PATTERN = "step_*.pt"


class CheckpointError(UserError):
    """A checkpoint that cannot be used."""


def save(state: dict, path: str | Path) -> Path:
    """Write to a temporary file, fsync, then rename over `path`."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    buffer = io.BytesIO()  # serialise first: torch.save turns a failed file write into a RuntimeError
    torch.save({"format": FORMAT, **state}, buffer)
    try:
        with open(tmp, "wb") as fh:
            fh.write(buffer.getbuffer())
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    return path


def load(path: str | Path, map_location: str | torch.device = "cpu") -> dict:
    """Load with weights_only=True; any failure is one clear CheckpointError."""
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"checkpoint {path} not found; pass a run folder or a .pt file it holds")
    try:
        state = torch.load(path, map_location=map_location, weights_only=True)
    except pickle.UnpicklingError as err:
        first = str(err).strip().splitlines()[0] if str(err).strip() else "unsafe content"
        raise CheckpointError(f"checkpoint {path} refused: it holds objects a safe load does not allow "
                              f"({first[:120]}); only load checkpoints textgan wrote") from None
    except Exception as err:  # truncated, corrupted, not a torch file
        raise CheckpointError(f"checkpoint {path} is unreadable ({err.__class__.__name__}); "
                              "it may be truncated or corrupted, use an earlier one") from None
    if not isinstance(state, dict) or state.get("format") != FORMAT:
        raise CheckpointError(f"checkpoint {path} is not a textgan checkpoint ({FORMAT})")
    return state


def step_path(ckpt_dir: Path, step: int) -> Path:
    return Path(ckpt_dir) / f"step_{step:08d}.pt"


def history(ckpt_dir: str | Path) -> list[Path]:
    """Step checkpoints, oldest first."""
    return sorted(Path(ckpt_dir).glob(PATTERN))


def prune(ckpt_dir: str | Path, keep: int) -> None:
    for old in history(ckpt_dir)[:-keep]:
        old.unlink(missing_ok=True)


def newest(ckpt_dir: str | Path) -> Path | None:
    found = history(ckpt_dir)
    return found[-1] if found else None


def load_latest_valid(ckpt_dir: str | Path, warn=print) -> tuple[dict, Path]:
    """The newest checkpoint that loads; broken ones are reported and skipped."""
    found = history(ckpt_dir)
    for path in reversed(found):
        try:
            return load(path), path
        except CheckpointError as err:
            warn(f"warning: {err}")
    raise CheckpointError(f"no loadable checkpoint in {ckpt_dir}; start a new run without --resume")
