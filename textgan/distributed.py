"""Data-parallel training under torchrun: process group, rank helpers, DistributedDataParallel.

`torchrun --nproc_per_node N -m textgan train CONFIG` sets WORLD_SIZE, RANK and LOCAL_RANK; a
plain process (or WORLD_SIZE=1) gets `Dist()`, whose every helper is a no-op, so single-process
training is bitwise what it was.

The training steps call the models through `ParallelGenerator` (`g.mle_loss(...)`,
`g.sample(...)`) and `ParallelDiscriminator` (`d.score(real, fake)`), under torchrun wrapped in
DistributedDataParallel, whose reducer averages the gradients during backward. DDP syncs the
backward of a call of its `forward`, so each method is one such call, and each update makes one
(the D step scores real, fake and the gradient penalty's interpolates in one concatenated batch;
the frozen D of the G step is called unwrapped). The non-finite verdict of the local loss is
shared with `Dist.any`, so every rank takes the same skip decision and parameters stay identical.
"""
from __future__ import annotations

import inspect
import os
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Callable, Iterable, Iterator, TypeVar

import torch
import torch.distributed as tdist
from torch.nn.parallel import DistributedDataParallel

from textgan.errors import UserError
from textgan.losses import gradient_penalty

T = TypeVar("T")
RANK_STRIDE = 1000  # rank r's noise and dropout seeds are the single-process ones + 1000 * r
TIMEOUT = timedelta(minutes=60)  # followers wait in a collective while rank 0 evaluates


@dataclass(frozen=True)
class Dist:
    """Where this process stands in the job; `Dist()` is a plain single process."""

    rank: int = 0
    world_size: int = 1
    local_rank: int = 0
    comm_device: torch.device = field(default_factory=lambda: torch.device("cpu"))  # gloo: cpu, nccl: cuda

    @property
    def enabled(self) -> bool:
        return self.world_size > 1

    @property
    def is_main(self) -> bool:
        return self.rank == 0

    # ---- configuration -----------------------------------------------------------------------
    def local_device(self, name: str) -> str:
        """run.device for this rank: under torchrun, CUDA rank r uses cuda:LOCAL_RANK."""
        return f"cuda:{self.local_rank}" if self.enabled and name.startswith("cuda") else name

    def rank_seed(self, seed: int) -> int:
        """Per-rank seed of the noise and dropout streams: distinct across ranks, rank 0 unchanged."""
        return seed + RANK_STRIDE * self.rank

    def per_rank_batch(self, batch_size: int, is_global: bool) -> int:
        """The batch one rank draws; the global batch is this times world_size."""
        if not is_global:
            return batch_size
        if batch_size % self.world_size:
            raise UserError(f"run.batch_is_global=true needs batch sizes divisible by the {self.world_size} "
                            f"processes, got {batch_size}; change the batch size or --nproc_per_node")
        return batch_size // self.world_size

    def check_corpus(self, num_train: int) -> None:
        if num_train < self.world_size:
            raise UserError(f"{num_train} training sentences cannot be split over {self.world_size} "
                            "processes; use fewer processes")

    # ---- data --------------------------------------------------------------------------------
    def shard(self, idx: torch.Tensor) -> torch.Tensor:
        """This rank's strided slice of a draw shared by all ranks, as DistributedSampler takes."""
        return idx if not self.enabled else idx[self.rank::self.world_size]

    def token_weight(self, local_lengths: torch.Tensor, global_lengths: torch.Tensor) -> float:
        """Factor turning this rank's per-token mean loss into its share of the global batch's
        mean, so that averaging gradients over ranks equals one process on the global batch."""
        if not self.enabled:
            return 1.0
        return float(local_lengths.sum()) * self.world_size / float(global_lengths.sum())

    # ---- collectives -------------------------------------------------------------------------
    def any(self, flag: bool) -> bool:
        """True on every rank if it is true on any (a stop request, for one)."""
        if not self.enabled:
            return flag
        t = torch.tensor([1.0 if flag else 0.0], device=self.comm_device)
        tdist.all_reduce(t)
        return bool(t.item() > 0)

    def gather(self, obj: T) -> list[T] | None:
        """Every rank's `obj`, in rank order; None in a single process."""
        if not self.enabled:
            return None
        out: list = [None] * self.world_size
        tdist.all_gather_object(out, obj)
        return out

    def on_main(self, fn: Callable[[], T]) -> T:
        """Run `fn` on rank 0 alone (a write, an evaluation) and hand its result to every rank.

        Doubles as a barrier. If rank 0 fails, it raises its error and the others exit quietly
        with status 2 instead of hanging."""
        if not self.enabled:
            return fn()
        box: list = [None]
        if self.is_main:
            try:
                box[0] = ("ok", fn())
            except Exception:
                box[0] = ("error", None)
                tdist.broadcast_object_list(box, src=0, device=self.comm_device)
                raise
        tdist.broadcast_object_list(box, src=0, device=self.comm_device)
        status, value = box[0]
        if status == "error":
            raise SystemExit(2)
        return value

    def replicate(self, module: torch.nn.Module) -> torch.nn.Module:
        """`_Methods(module)`, under torchrun wrapped in DistributedDataParallel (which also
        starts every rank from rank 0's weights)."""
        methods = _Methods(module)
        if not self.enabled:
            return methods
        # buffers (the generator's logit mask) are constant: no per-forward broadcast (the
        # keyword torch >= 2.13 names forward_sync_buffers; older ones broadcast_buffers)
        names = inspect.signature(DistributedDataParallel).parameters
        key = "forward_sync_buffers" if "forward_sync_buffers" in names else "broadcast_buffers"
        return DistributedDataParallel(methods, **{key: False})


class _Methods(torch.nn.Module):
    """`forward(name, *args, **kwargs)` is `module.name(*args, **kwargs)`: DDP synchronises the
    backward of a `forward`, so every method a step differentiates must be one. Only the typed
    wrappers below call it, each with its own method's name."""

    def __init__(self, module: torch.nn.Module):
        super().__init__()
        self.module = module

    def forward(self, name: str, *args, **kwargs):
        return getattr(self.module, name)(*args, **kwargs)


class ParallelGenerator:
    """The generator as the training steps call it. `module` is the plain generator (weights,
    checkpoints, evaluation, forwards that need no gradient sync); `replica` its DDP wrapper
    under torchrun (a `_Methods` in one process)."""

    def __init__(self, module: torch.nn.Module, dist: Dist):
        self.module = module
        self.replica = dist.replicate(module)

    def mle_loss(self, tokens: torch.Tensor, z: torch.Tensor, pad_id: int) -> torch.Tensor:
        """`Generator.mle_loss`, its backward averaging gradients over ranks."""
        return self.replica("mle_loss", tokens, z, pad_id=pad_id)

    def sample(self, z: torch.Tensor, max_len: int, tau: float, generator: torch.Generator,
               straight_through: bool = False):
        """`Generator.sample` (a `SampleOutput`), its backward averaging gradients over ranks."""
        return self.replica("sample", z, max_len, tau=tau, generator=generator,
                            straight_through=straight_through)


@dataclass
class Scores:
    real: torch.Tensor  # (B,) D's logits on the real batch
    fake: torch.Tensor  # (B,) on the fake batch
    penalty: torch.Tensor | None  # WGAN-GP's gradient penalty, when asked for
    class_nll: torch.Tensor | None = None  # an auxiliary classifier's -log p(c | x) (B,) of the real batch


class ParallelDiscriminator:
    """The discriminator as the D step calls it: `module` the plain one, `replica` its DDP wrapper
    under torchrun (a `_Methods` in one process)."""

    def __init__(self, module: torch.nn.Module, dist: Dist):
        self.module = module
        self.replica = dist.replicate(module)
        self.dist = dist

    def score(self, real: torch.Tensor, fake: torch.Tensor,
              penalty_rng: torch.Generator | None = None,
              labels: tuple[torch.Tensor, torch.Tensor] | None = None) -> Scores:
        """D's logits on real and fake (B, T, V) batches and, with `penalty_rng`, the gradient
        penalty on interpolates drawn from it. Under DDP in one forward over the concatenated
        batch, as DDP syncs one forward per backward (dropout masks then differ from separate
        calls; the discriminators are otherwise per-row). `labels`: the real and fake sentences'
        classes (B,) each, for a conditional discriminator (no gradient penalty then); an
        auxiliary classifier's class NLL is of the real batch (D learns the classes from real text)."""
        if labels is not None:
            if not self.dist.enabled:
                given = self.module.scores(real, labels[0])
                return Scores(given.logits, self.module(fake, labels=labels[1]), None, given.class_nll)
            both = self.replica("scores", torch.cat([real, fake]), labels=torch.cat(labels))
            b = real.shape[0]
            return Scores(*both.logits.split(b), None, None if both.class_nll is None else both.class_nll[:b])
        if not self.dist.enabled:
            d_real, d_fake = self.module(real), self.module(fake)
            penalty = None if penalty_rng is None else gradient_penalty(self.module, real, fake, penalty_rng)
            return Scores(d_real, d_fake, penalty)
        b = real.shape[0]
        if penalty_rng is None:
            d_real, d_fake = self.replica("__call__", torch.cat([real, fake])).split(b)
            return Scores(d_real, d_fake, None)
        logits: list[torch.Tensor] = []

        def critic(mixed: torch.Tensor) -> torch.Tensor:  # called once, after drawing the interpolation
            logits.extend(self.replica("__call__", torch.cat([real, fake, mixed])).split(b))
            return logits[2]
        penalty = gradient_penalty(critic, real, fake, penalty_rng)
        return Scores(logits[0], logits[1], penalty)


def _env_int(name: str) -> int:
    try:
        return int(os.environ[name])
    except (KeyError, ValueError):
        raise UserError(f"WORLD_SIZE is set but {name} is missing or not a number; "
                        "launch with torchrun") from None


def setup(device: str) -> Dist:
    """A process group from torchrun's environment: gloo on CPU, nccl on CUDA; Dist() without."""
    if int(os.environ.get("WORLD_SIZE", "1") or 1) <= 1:
        return Dist()
    world, rank, local = _env_int("WORLD_SIZE"), _env_int("RANK"), _env_int("LOCAL_RANK")
    comm = torch.device("cpu")
    if device.startswith("cuda"):
        per_node = int(os.environ.get("LOCAL_WORLD_SIZE", local + 1))  # every rank checks, so all stop
        if max(per_node, local + 1) > torch.cuda.device_count():
            raise UserError(f"{per_node} processes on this machine but {torch.cuda.device_count()} GPU(s); "
                            "use --nproc_per_node <= the GPU count (one GPU per process)")
        comm = torch.device(f"cuda:{local}")
        torch.cuda.set_device(comm)
    backend = "nccl" if comm.type == "cuda" else "gloo"
    if not tdist.is_initialized():
        tdist.init_process_group(backend, rank=rank, world_size=world, timeout=TIMEOUT)
        _barrier(comm)  # every rank is up before anything touches the run folder
    return Dist(rank=rank, world_size=world, local_rank=local, comm_device=comm)


def _barrier(comm: torch.device) -> None:
    if comm.type == "cuda":
        tdist.barrier(device_ids=[comm.index])
    else:
        tdist.barrier()


def teardown(comm: torch.device, clean: bool = True) -> None:
    """Leave the process group; after a clean finish, wait for every rank first (gloo aborts the
    process if a peer closes its connections while this one still tears down)."""
    if tdist.is_available() and tdist.is_initialized():
        if clean:
            _barrier(comm)
        tdist.destroy_process_group()


@contextmanager
def launched(device: str) -> Iterator[Dist]:
    """setup() ... teardown(), whatever happens in between."""
    dist = setup(device)
    clean = False
    try:
        yield dist
        clean = True
    finally:
        if dist.enabled:
            teardown(dist.comm_device, clean)


def parameters_equal(dist: Dist, modules: Iterable[torch.nn.Module]) -> bool:
    """True if every rank holds bitwise the same parameters (a check for tests and debugging)."""
    flat = torch.cat([p.detach().reshape(-1).cpu() for m in modules for p in m.parameters()])
    gathered = dist.gather(flat)
    return gathered is None or all(torch.equal(flat, other) for other in gathered)
