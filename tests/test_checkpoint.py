"""Checkpoints: atomic writes, bounded history, and loads that never run code."""
from __future__ import annotations

import math
import pickle
from dataclasses import asdict
from pathlib import Path

import pytest
import torch

from textgan import checkpoint
from textgan.checkpoint import CheckpointError
from textgan.corpus import prepare
from textgan.data import Vocab
from textgan.monitor import Monitor
from textgan.sample import load_generator
from textgan.train import Trainer


class _Payload:
    """Unpickling this runs a command that would create a marker file."""

    def __init__(self, marker):
        self.marker = marker

    def __reduce__(self):
        import os

        return (os.system, (f"touch {self.marker}",))


def test_save_load_roundtrip(tmp_path):
    path = checkpoint.save({"w": torch.arange(3.0), "step": 4, "cfg": "a: 1"}, tmp_path / "c.pt")
    state = checkpoint.load(path)
    assert torch.equal(state["w"], torch.arange(3.0)) and state["step"] == 4
    assert not list(tmp_path.glob("*.tmp"))


def test_code_payload_is_refused_and_not_executed(tmp_path):
    marker = tmp_path / "pwned"
    evil = tmp_path / "evil.pt"
    torch.save({"format": checkpoint.FORMAT, "x": _Payload(marker)}, evil, pickle_protocol=2)
    with pytest.raises(CheckpointError, match="refused"):
        checkpoint.load(evil)
    assert not marker.exists()
    raw = tmp_path / "raw.pt"
    raw.write_bytes(pickle.dumps(_Payload(marker)))
    with pytest.raises(CheckpointError):
        checkpoint.load(raw)
    assert not marker.exists()


def test_truncated_checkpoint_falls_back_to_previous(tmp_path):
    for step in (1, 2, 3):
        checkpoint.save({"step": step}, checkpoint.step_path(tmp_path, step))
    newest = checkpoint.step_path(tmp_path, 3)
    newest.write_bytes(newest.read_bytes()[:50])
    warnings = []
    state, path = checkpoint.load_latest_valid(tmp_path, warn=warnings.append)
    assert state["step"] == 2 and path.name == "step_00000002.pt"
    assert len(warnings) == 1 and "unreadable" in warnings[0]


def test_prune_keeps_last(tmp_path):
    for step in range(6):
        checkpoint.save({"step": step}, checkpoint.step_path(tmp_path, step))
    checkpoint.prune(tmp_path, keep=2)
    assert [p.name for p in checkpoint.history(tmp_path)] == ["step_00000004.pt", "step_00000005.pt"]


def test_foreign_file_rejected(tmp_path):
    torch.save({"weights": torch.zeros(2)}, tmp_path / "other.pt")
    with pytest.raises(CheckpointError, match="not a textgan checkpoint"):
        checkpoint.load(tmp_path / "other.pt")


FIXTURE = Path(__file__).parent / "fixtures" / "checkpoint_v1.pt"  # written by the code before the schema module


def _entries(tree, prefix: str = "") -> dict:
    """Every leaf of a nested checkpoint dict by its path of keys."""
    if isinstance(tree, dict):
        return {k: v for key, value in tree.items() for k, v in _entries(value, f"{prefix}/{key}").items()}
    return {prefix: tree}


def test_checkpoint_from_before_the_schema_module_still_loads(tmp_path):
    """tests/fixtures/checkpoint_v1.pt was written by the trainer before checkpoint.py held the
    schema (grammar corpus, one adversarial step, g_ema on). Its config, vocabulary, max_len and
    both sets of generator weights read back as stored; a trainer resumes from it, and saves a
    file with the same keys, nested keys included, so files on disk look as they always did."""
    raw = torch.load(FIXTURE, weights_only=True)
    state = checkpoint.load(FIXTURE)
    cfg = checkpoint.read_config(state)
    assert cfg.data.source == "grammar" and cfg.adversarial.g_ema == 0.5 and cfg.generator.hidden_dim == 8
    assert checkpoint.read_vocab(state) == raw["vocab"] and checkpoint.read_max_len(state) == raw["max_len"] == 34
    for weights, want in (("trained", raw["generator"]), ("auto", raw["generator_avg"]["weights"])):
        loaded = load_generator(FIXTURE, weights=weights)
        assert loaded.averaged == (weights == "auto") and loaded.max_len == 34
        got = loaded.generator.state_dict()
        assert got.keys() == want.keys() and all(torch.equal(got[k], want[k]) for k in want)

    corpus = prepare(cfg.data, cfg.run.seed, vocab=Vocab(checkpoint.read_vocab(state)))
    tr = Trainer(cfg, corpus, tmp_path, Monitor(tmp_path, progress=False, enabled=False))
    tr.load_state_dict(state)
    assert asdict(tr.progress) == raw["progress"] and tr.G_avg.updates == raw["generator_avg"]["updates"]
    assert torch.equal(tr.data_rng.get_state(), raw["rng"]["data"])
    assert torch.equal(tr.noise_rng.get_state(), raw["rng"]["noise"])
    again = torch.load(tr.save(tmp_path / "again.pt"), weights_only=True)
    old, new = _entries(raw), _entries(again)
    assert new.keys() == old.keys()
    for key in old:
        if key.startswith(("/generator", "/discriminator", "/rng/data", "/rng/epoch", "/progress", "/metrics")):
            assert torch.equal(new[key], old[key]) if torch.is_tensor(old[key]) else new[key] == old[key], key
    stats = tr.adversarial_step()  # and training goes on from it
    assert tr.progress.step == 2 and math.isfinite(stats["adv/g_loss"])


def test_schema_reads_what_it_writes():
    own = checkpoint.RankStreams(noise=torch.tensor([1]), torch=torch.tensor([2]), cuda=[])
    other = checkpoint.RankStreams(noise=torch.tensor([3]), torch=torch.tensor([4]), cuda=[])
    shared = checkpoint.SharedStreams(data=torch.tensor([5]), epoch=torch.tensor([6]))
    state = checkpoint.write_training(
        generator={"w": torch.zeros(1)}, discriminator={"v": torch.ones(1)},
        optimizers=checkpoint.Optimizers(*({"state": {}, "param_groups": [{"lr": lr}]} for lr in range(3))),
        progress={"step": 3}, shared=shared, own=own, ranks=[own, other], metrics={"m": 1.0},
        metrics_split="valid", generator_avg=checkpoint.Average({"w": torch.ones(1)}, 7))
    state = checkpoint.with_description(state, config="run:\n  seed: 4\n", vocab=["a"], max_len=9)
    assert checkpoint.read_config(state).run.seed == 4 and checkpoint.read_max_len(state) == 9
    assert checkpoint.read_progress(state) == {"step": 3} and checkpoint.read_metrics(state) == {"m": 1.0}
    assert checkpoint.read_metrics_split(state) == "valid"
    assert checkpoint.read_optimizers(state).d["param_groups"][0]["lr"] == 2
    assert torch.equal(checkpoint.read_generator(state, averaged=True)["w"], torch.ones(1))
    assert checkpoint.read_average(state).updates == 7 and checkpoint.has_average(state)
    assert checkpoint.read_shared_streams(state) == shared
    assert checkpoint.read_rank_streams(state) == own  # one process: the top level
    assert checkpoint.read_rank_streams(state, rank=1, world_size=2) == other
    assert checkpoint.read_rank_streams(state, rank=1, world_size=3) is None  # another world size: fresh streams
    assert checkpoint.read_rank_streams(state, rank=0, world_size=3) == own
