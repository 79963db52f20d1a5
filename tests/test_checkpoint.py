"""Checkpoints: atomic writes, bounded history, and loads that never run code."""
from __future__ import annotations

import pickle

import pytest
import torch

from textgan import checkpoint
from textgan.checkpoint import CheckpointError


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
