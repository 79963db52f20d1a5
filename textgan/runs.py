"""Run folders: created once, never overwritten without --force, resumed with --resume.

A run folder holds config.yaml (resolved), command.txt, vocab.json, TensorBoard
events, samples.txt and checkpoints/.
"""
from __future__ import annotations

import shutil
import sys
from pathlib import Path

from textgan import config as config_mod
from textgan.data import atomic_write_text
from textgan.errors import UserError


def run_name(cfg: config_mod.Config, config_path: str | None) -> str:
    return cfg.log.name or (Path(config_path).stem if config_path else "default")


def create(cfg: config_mod.Config, config_path: str | None, force: bool) -> Path:
    """Make a fresh run folder; an existing one is an error unless `force`."""
    run_dir = Path(cfg.log.dir) / run_name(cfg, config_path)
    if run_dir.exists() and any(run_dir.iterdir()):
        if not force:
            raise UserError(f"run folder {run_dir} already exists; continue it with --resume {run_dir}, "
                            "replace it with --force, or pick another log.name=...")
        if not (run_dir / "config.yaml").is_file():
            raise UserError(f"{run_dir} is not a textgan run folder (no config.yaml); refusing to delete it "
                            "with --force, pick another log.name=...")
        shutil.rmtree(run_dir)
    try:
        run_dir.mkdir(parents=True, exist_ok=True)
        probe = run_dir / ".write_test"
        probe.write_text("ok")
        probe.unlink()
    except OSError as err:
        raise UserError(f"cannot write the run folder {run_dir} ({err.strerror or err}); "
                        "set log.dir to a writable folder") from None
    return run_dir


def write_metadata(run_dir: Path, cfg: config_mod.Config, vocab) -> None:
    atomic_write_text(run_dir / "config.yaml", config_mod.dump(cfg))
    atomic_write_text(run_dir / "command.txt", " ".join(sys.argv) + "\n")
    vocab.save(run_dir / "vocab.json")


def load_config(run_dir: Path, overrides: list[str] = ()) -> config_mod.Config:
    path = Path(run_dir) / "config.yaml"
    if not path.is_file():
        raise UserError(f"{run_dir} is not a run folder (no config.yaml); pass the folder `textgan train` made")
    return config_mod.load(path, overrides, saved=True)
