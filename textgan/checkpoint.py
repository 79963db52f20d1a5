"""Self-describing checkpoints: the one schema (every key is written and read here only),
atomic writes, bounded history, safe loading.

A checkpoint is a dict of tensors, numbers, strings and lists only, so it loads
with `torch.load(weights_only=True)`: a file carrying pickled code is refused and
nothing in it runs. The keys are those of format v1 since it began, so every checkpoint
written before still loads.
"""
from __future__ import annotations

import io
import os
import pickle
from dataclasses import dataclass
from pathlib import Path

import torch
import yaml

from textgan.config import Config, from_dict
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


# ---- the schema: every key of a checkpoint is written and read below, nowhere else ----------
# A run checkpoint holds the trainer's state (what `--resume` restores: weights, optimizers,
# progress counters, RNG streams, last metrics) and what makes it self-describing (the resolved
# config as YAML, the vocabulary, max_len), so `textgan sample/eval` need nothing else.


@dataclass
class RankStreams:
    """One rank's own random streams: the noise generator (z, Gumbel), torch's global generator
    (dropout) and CUDA's (an empty list on CPU)."""

    noise: torch.Tensor
    torch: torch.Tensor
    cuda: list


@dataclass
class SharedStreams:
    """The streams every rank shares: the data generator and its state at the start of the
    current MLE epoch (to redraw that epoch's order on a resume part-way)."""

    data: torch.Tensor
    epoch: torch.Tensor


@dataclass
class Optimizers:
    """The `state_dict()`s of the run's three optimizers."""

    mle: dict  # the generator's MLE Adam
    g: dict  # the generator's adversarial Adam
    d: dict  # the discriminator's Adam


LATENT_PARTS = ("encoder", "info_head")  # mle.objective elbo's q(z | x); adversarial.info_weight's head


# adversarial.algorithm seqgan's rollout network (a generator's weights); scratchgan's per-step
# baseline ({"values": (T,) tensor})
ALGORITHM_PARTS = ("rollout", "baseline")


@dataclass
class LatentPart:
    """A latent network's weights and its optimizer's state_dict()."""

    weights: dict
    optimizer: dict


@dataclass
class Average:
    """adversarial.g_ema's weight average: its weights and the updates it has had."""

    weights: dict
    updates: int


def write_training(*, generator: dict, discriminator: dict, optimizers: Optimizers, progress: dict,
                   shared: SharedStreams, own: RankStreams, ranks: list[RankStreams] | None,
                   metrics: dict[str, float], metrics_split: str, generator_avg: Average | None,
                   latent_parts: dict[str, LatentPart] | None = None,
                   algorithm_parts: dict[str, dict] | None = None) -> dict:
    """The trainer's state as a checkpoint dict. `own`: this process's streams, stored at the top
    level (rank 0's); `ranks`: under torchrun every rank's, in rank order, else None.
    `latent_parts`: the encoder / reconstruction head by LATENT_PARTS name (runs with them only).
    `algorithm_parts`: the adversarial algorithm's own networks' weights by ALGORITHM_PARTS name."""
    rng = {"data": shared.data, "noise": own.noise, "epoch": shared.epoch, "torch": own.torch, "cuda": own.cuda}
    if ranks is not None:
        rng["ranks"] = [{"noise": r.noise, "torch": r.torch, "cuda": r.cuda} for r in ranks]
    state = {"generator": generator, "discriminator": discriminator,
             "opt_mle": optimizers.mle, "opt_g": optimizers.g, "opt_d": optimizers.d, "progress": progress, "rng": rng,
             "metrics": dict(metrics), "metrics_split": metrics_split}
    if generator_avg is not None:
        state["generator_avg"] = {"weights": generator_avg.weights, "updates": generator_avg.updates}
    for name, part in (latent_parts or {}).items():
        if name not in LATENT_PARTS:
            raise ValueError(f"unknown latent part {name!r}; one of {LATENT_PARTS}")
        state[name] = {"weights": part.weights, "optimizer": part.optimizer}
    for name, weights in (algorithm_parts or {}).items():
        if name not in ALGORITHM_PARTS:
            raise ValueError(f"unknown algorithm part {name!r}; one of {ALGORITHM_PARTS}")
        state[name] = weights
    return state


def read_algorithm_part(state: dict, name: str) -> dict | None:
    """The saved weights of the algorithm's `name` (an ALGORITHM_PARTS entry) network; None in a
    checkpoint without it (another algorithm, or one saved before the network was made)."""
    return state.get(name)


def read_latent_part(state: dict, name: str) -> LatentPart | None:
    """The saved `name` (a LATENT_PARTS entry) network and its optimizer; None in a checkpoint
    without it (a run without it, or one from before it existed)."""
    part = state.get(name)
    return None if part is None else LatentPart(part["weights"], part["optimizer"])


def with_description(state: dict, *, config: str, vocab: list[str], max_len: int,
                     labels: list[str] | None = None) -> dict:
    """`state` plus what makes the file usable alone: the config YAML, vocabulary and max_len,
    and a conditional run's class names (in class-id order)."""
    described = {**state, "config": config, "vocab": list(vocab), "max_len": int(max_len)}
    return described if labels is None else {**described, "labels": list(labels)}


def read_generator(state: dict, averaged: bool = False) -> dict:
    """The generator's trained weights, or (averaged) adversarial.g_ema's average of them."""
    return state["generator_avg"]["weights"] if averaged else state["generator"]


def has_average(state: dict) -> bool:
    return "generator_avg" in state


def read_average(state: dict) -> Average | None:
    """The saved weight average, or None without one."""
    saved = state.get("generator_avg")
    return None if saved is None else Average(weights=saved["weights"], updates=saved["updates"])


def read_discriminator(state: dict) -> dict:
    return state["discriminator"]


def read_optimizers(state: dict) -> Optimizers:
    return Optimizers(mle=state["opt_mle"], g=state["opt_g"], d=state["opt_d"])


def read_progress(state: dict) -> dict:
    """The trainer's progress counters (`run_state.Progress` as a dict; older files may lack
    fields added later, which then keep their defaults)."""
    return state["progress"]


def read_metrics(state: dict) -> dict[str, float]:
    """The last training-time evaluation's metrics ({} before the first)."""
    return dict(state.get("metrics", {}))


def read_metrics_split(state: dict) -> str:
    return state.get("metrics_split", "test")


def read_shared_streams(state: dict) -> SharedStreams:
    rng = state["rng"]
    return SharedStreams(data=rng["data"], epoch=rng["epoch"])


def read_rank_streams(state: dict, rank: int = 0, world_size: int = 1) -> RankStreams | None:
    """Rank `rank`'s saved streams: its entry of a torchrun checkpoint when that one had the same
    number of ranks, else (a single-process file, another world size) rank 0 takes the top level
    and the others None: they keep their own fresh streams."""
    rng = state["rng"]
    ranks = rng.get("ranks")
    if world_size > 1 and ranks is not None and len(ranks) == world_size:
        entry = ranks[rank]
    elif world_size == 1 or rank == 0:
        entry = rng
    else:
        return None
    return RankStreams(noise=entry["noise"], torch=entry["torch"], cuda=entry["cuda"])


def read_config_text(state: dict) -> str:
    """The run's resolved config, as the YAML `config.dump` wrote."""
    return state["config"]


def read_config(state: dict) -> Config:
    """The run's resolved config, parsed and checked like a config file; settings an older
    textgan wrote and this one replaced (the kernel knobs) are dropped with a note."""
    return from_dict(yaml.safe_load(read_config_text(state)), saved=True)


def read_vocab(state: dict) -> list[str]:
    return list(state["vocab"])


def read_max_len(state: dict) -> int:
    return int(state["max_len"])


def read_labels(state: dict) -> list[str] | None:
    """A conditional run's class names, in class-id order; None for an unconditional run."""
    labels = state.get("labels")
    return None if labels is None else [str(name) for name in labels]
