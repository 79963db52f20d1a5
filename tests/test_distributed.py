"""Data-parallel training on CPU with gloo, 2 processes on 127.0.0.1: both models are DDP-wrapped
and DDP alone averages gradients, which equal one process on the union batch (MLE) or the rank mean
of local gradients (D step, wgan_gp's double backward included), parameters stay identical on every
rank (skips included), per-rank RNG streams resume exactly, and `torchrun -m textgan train` writes
one run folder and resumes."""
from __future__ import annotations

import copy
import os
import socket
import subprocess
from contextlib import contextmanager
import sys
from pathlib import Path

import pytest
import torch
import torch.distributed as tdist
import torch.multiprocessing as mp
from torch.nn.parallel import DistributedDataParallel

from conftest import FAST, REPO
from textgan import checkpoint, config, distributed
from textgan.corpus import prepare
from textgan.cli import exit_process
from textgan.distributed import Dist
from textgan.errors import UserError
from textgan.losses import gradient_penalty
from textgan.monitor import Monitor
from textgan.train import Trainer

pytestmark = pytest.mark.slow  # torchrun process groups

CONFIG = str(REPO / "configs" / "coco_rsgan.yaml")
LOCAL = {"MASTER_ADDR": "127.0.0.1", "GLOO_SOCKET_IFNAME": "lo", "OMP_NUM_THREADS": "1"}


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _trainer(run_dir: Path, data_root: str, dist: Dist, *overrides: str) -> Trainer:
    cfg = config.load(CONFIG, [*FAST, f"data.root={data_root}", *overrides])
    return Trainer(cfg, prepare(cfg.data, cfg.run.seed), run_dir, Monitor(run_dir, enabled=False), dist=dist)


def _flat(module: torch.nn.Module) -> torch.Tensor:
    return torch.cat([p.detach().reshape(-1) for p in module.parameters()])


@contextmanager
def _explicit_all_reduces():
    """The sizes of the tensors passed to torch.distributed.all_reduce meanwhile (DDP's reducer
    communicates in C++, not through it)."""
    sizes: list[int] = []
    all_reduce = tdist.all_reduce
    tdist.all_reduce = lambda t, *a, **k: sizes.append(t.numel()) or all_reduce(t, *a, **k)
    try:
        yield sizes
    finally:
        tdist.all_reduce = all_reduce


def _check_mle_gradients(tmp: Path, data_root: str, dist: Dist) -> None:
    """Per-rank batch 8 on 2 ranks == batch 16 on one process (deterministic: no z, no dropout)."""
    same = ["generator.prior=none", "mle.grad_clip=0"]
    tr = _trainer(tmp / f"a{dist.rank}", data_root, dist, *same, "mle.batch_size=8")
    assert all(isinstance(m, DistributedDataParallel) for m in (tr.g.replica, tr.d.replica))
    idx = torch.arange(16) * 31 % 500  # sentences of different lengths: unequal token counts per rank
    with _explicit_all_reduces() as sizes:
        tr.mle_batch(idx)
    assert sizes == [1], "only the finite flag is all-reduced explicitly; DDP averages the gradients"
    grads = [p.grad.clone() for p in tr.G.parameters()]
    if dist.is_main:
        ref = _trainer(tmp / "ref", data_root, Dist(), *same, "mle.batch_size=16")
        ref.mle_batch(idx)
        for g, r in zip(grads, (p.grad for p in ref.G.parameters())):
            assert r.abs().max() > 0 and torch.allclose(g, r, rtol=0, atol=1e-6), (g - r).abs().max()
    assert distributed.parameters_equal(dist, [tr.G])
    with _explicit_all_reduces() as sizes:
        tr.adversarial_step()  # a D step and a G step
    assert sizes == [1] * (tr.cfg.adversarial.d_steps + tr.cfg.adversarial.g_steps)  # the finite flags


def _check_adversarial(tmp: Path, data_root: str, dist: Dist) -> None:
    overrides = ["adversarial.batch_size=8", "adversarial.d_steps=2", "adversarial.steps=10",
                 "discriminator.dropout=0.25"]
    tr = _trainer(tmp / "b", data_root, dist, *overrides)
    for start in (0, 8):
        tr.mle_batch(torch.arange(start, start + 16))
    losses = [tr.adversarial_step()["adv/d_loss"] for _ in range(3)]
    assert distributed.parameters_equal(dist, [tr.G, tr.D])
    per_rank = dist.gather(losses)
    assert per_rank[0] != per_rank[1], "ranks saw the same data and noise"
    real_loss, g_before = tr.algorithm.loss_g, _flat(tr.G)
    if dist.rank == 1:  # a NaN loss with finite gradients on one rank only: both ranks skip
        tr.algorithm.loss_g = lambda d_real, d_fake: real_loss(d_real, d_fake) + float("nan")
    tr.adversarial_step()
    assert tr.progress.skipped == 1 and torch.equal(_flat(tr.G), g_before)
    tr.algorithm.loss_g = real_loss
    assert distributed.parameters_equal(dist, [tr.G, tr.D])
    # exact resume: every rank restores its own noise and dropout streams
    path = tr.save(tmp / "b" / "mid.pt")
    for _ in range(2):
        tr.adversarial_step()
    resumed = _trainer(tmp / "b", data_root, dist, *overrides)
    resumed.load_state_dict(checkpoint.load(path))
    for _ in range(2):
        resumed.adversarial_step()
    assert torch.equal(_flat(resumed.G), _flat(tr.G)) and torch.equal(_flat(resumed.D), _flat(tr.D))
    assert torch.equal(resumed.noise_rng.get_state(), tr.noise_rng.get_state())


def _check_d_step_gradients(tmp: Path, data_root: str, dist: Dist, loss: str) -> None:
    """A D step under DDP (one concatenated forward; wgan_gp: with its double backward) averages
    exactly each rank's own gradients on its batch; then a few full steps keep the ranks equal."""
    tr = _trainer(tmp / f"d{dist.rank}", data_root, dist, f"adversarial.loss={loss}",
                  "discriminator.dropout=0", "adversarial.batch_size=4", "adversarial.grad_clip=0")
    before, data, noise = copy.deepcopy(tr.D), tr.data_rng.get_state(), tr.noise_rng.get_state()
    tr.d_step(tau=1.0)
    tr.data_rng.set_state(data)
    tr.noise_rng.set_state(noise)
    real = tr.batches.real_dists(4)
    with torch.no_grad():
        fake = tr.algorithm.fake(4, tau=1.0).dists
    local = tr.algorithm.loss_d(before(real), before(fake))
    if loss == "wgan_gp":
        local = local + tr.cfg.adversarial.gp_weight * gradient_penalty(before, real, fake, tr.noise_rng)
    grads = torch.autograd.grad(local, list(before.parameters()))
    for p, *per_rank in zip(tr.D.parameters(), *dist.gather(grads)):
        assert torch.allclose(p.grad, sum(per_rank) / dist.world_size, rtol=1e-5, atol=1e-6)
    for _ in range(3):
        tr.adversarial_step()
    assert tr.progress.skipped == 0 and distributed.parameters_equal(dist, [tr.G, tr.D])


def _worker(rank: int, port: int, tmp: str, data_root: str) -> None:
    os.environ.update({**LOCAL, "MASTER_PORT": str(port), "WORLD_SIZE": "2", "RANK": str(rank),
                       "LOCAL_RANK": str(rank)})
    torch.set_num_threads(1)
    with distributed.launched("cpu") as dist:
        assert (dist.rank, dist.world_size, dist.enabled) == (rank, 2, True)
        _check_mle_gradients(Path(tmp), data_root, dist)
        _check_adversarial(Path(tmp), data_root, dist)
        for loss in ("rsgan", "wgan_gp"):
            _check_d_step_gradients(Path(tmp), data_root, dist, loss)
    # every check passed: leave as a torchrun rank does, without interpreter finalisation, where
    # gloo's worker threads can abort the process (SIGABRT, seen once in CI on 2026-12-02)
    exit_process(0)


def test_two_ranks_average_gradients_stay_in_sync_and_resume_exactly(tmp_path, data_root):
    mp.spawn(_worker, args=(_free_port(), str(tmp_path), str(data_root)), nprocs=2, join=True)


def test_single_process_helpers_are_no_ops():
    single = Dist()
    idx = torch.arange(6)
    assert single.shard(idx) is idx and single.token_weight(idx, idx) == 1.0
    assert single.local_device("cuda") == "cuda" and single.rank_seed(7) == 7
    assert single.on_main(lambda: 3) == 3 and single.gather(1) is None and single.any(True)
    two = Dist(rank=1, world_size=2)
    assert two.shard(idx).tolist() == [1, 3, 5] and two.rank_seed(7) == 1007
    assert two.per_rank_batch(64, is_global=True) == 32 and two.per_rank_batch(64, is_global=False) == 64
    with pytest.raises(UserError, match="divisible"):
        two.per_rank_batch(63, is_global=True)


def _torchrun(*args: str) -> subprocess.CompletedProcess:
    path = os.pathsep.join(p for p in (str(REPO), os.environ.get("PYTHONPATH", "")) if p)
    env = {**os.environ, **LOCAL, "PYTHONPATH": path}
    cmd = [sys.executable, "-m", "torch.distributed.run", "--nproc_per_node", "2",
           "--master_addr", "127.0.0.1", "--master_port", str(_free_port()), "-m", "textgan", "train", *args]
    return subprocess.run(cmd, cwd=REPO, env=env, capture_output=True, text=True, timeout=300)


def _writers(run_dir: Path) -> set[str]:
    """Process ids that wrote TensorBoard events (events.out.tfevents.TIME.HOST.PID.N)."""
    return {p.name.rsplit(".", 2)[1] for p in run_dir.glob("events.out.tfevents.*")}


def test_torchrun_cli_writes_one_run_and_resumes(tmp_path, data_root):
    res = _torchrun(CONFIG, *FAST, f"data.root={data_root}", f"log.dir={tmp_path}", "adversarial.steps=6",
                    "log.checkpoint_every=3", "eval.every=3", "eval.sample_every=3")
    assert res.returncode == 0, res.stderr[-3000:]
    assert [p.name for p in tmp_path.iterdir()] == ["coco_rsgan"]
    run_dir = tmp_path / "coco_rsgan"
    assert res.stdout.count("run folder:") == 1 and res.stderr.count("final metrics (test split):") == 1
    assert len(_writers(run_dir)) == 1  # rank 0 alone logs
    state = checkpoint.load(checkpoint.newest(run_dir / "checkpoints"))
    assert state["progress"]["step"] == 6 and len(checkpoint.history(run_dir / "checkpoints")) == 3
    ranks = state["rng"]["ranks"]
    assert torch.equal(ranks[0]["noise"], state["rng"]["noise"])
    assert not torch.equal(ranks[1]["noise"], ranks[0]["noise"])

    res = _torchrun("--resume", str(run_dir), "adversarial.steps=8")
    assert res.returncode == 0, res.stderr[-3000:]
    assert "resuming" in res.stderr and res.stdout.count("run folder:") == 1
    assert checkpoint.load(checkpoint.newest(run_dir / "checkpoints"))["progress"]["step"] == 8
    assert len(_writers(run_dir)) == 2 and [p.name for p in tmp_path.iterdir()] == ["coco_rsgan"]


def test_torchrun_refuses_the_latent_networks_before_writing_anything(tmp_path, data_root):
    res = _torchrun(CONFIG, *FAST, f"data.root={data_root}", f"log.dir={tmp_path}", "mle.objective=elbo")
    assert res.returncode != 0
    errors = [line for line in res.stderr.splitlines() if line.startswith("textgan: error:")]
    assert errors and all("one process only" in line for line in errors), res.stderr[-3000:]
    assert list(tmp_path.iterdir()) == []
