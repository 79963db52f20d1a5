"""Reliability: NaN steps are skipped, counted and rolled back; a full disk, an unwritable folder, a
mismatched vocabulary and bad data files are one-line errors that damage nothing; best.pt is kept."""
from __future__ import annotations

import resource

import pytest
import torch
from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

from conftest import FAST, REPO, run_cli
from textgan import checkpoint, config
from textgan.corpus import prepare
from textgan.monitor import Monitor
from textgan.schedule import run
from textgan.guard import Diverged
from textgan.train import Trainer

pytestmark = pytest.mark.slow  # each test trains real runs through the CLI

CONFIG = str(REPO / "configs" / "coco_rsgan.yaml")
SHORT = ["adversarial.steps=8", "adversarial.d_steps=1", "log.checkpoint_every=2", "eval.every=4",
         "eval.sample_every=4"]


def _trainer(tmp_path, data_root, *overrides: str) -> Trainer:
    cfg = config.load(CONFIG, [*FAST, f"data.root={data_root}", *SHORT, *overrides])
    corpus = prepare(cfg.data, cfg.run.seed)
    return Trainer(cfg, corpus, tmp_path, Monitor(tmp_path, progress=False))


def _poison_g_loss(trainer: Trainer, bad_calls: range) -> None:
    """Make the generator loss NaN on the given calls: a real non-finite loss in the real loop."""
    real, calls = trainer.algorithm.loss_g, [0]

    def poisoned(d_real, d_fake):
        calls[0] += 1
        loss = real(d_real, d_fake)
        return loss * float("nan") if calls[0] in bad_calls else loss

    trainer.algorithm.loss_g = poisoned


def _scalars(run_dir, tag: str) -> list[float]:
    values = []
    for path in sorted(run_dir.rglob("events.out.tfevents.*")):
        acc = EventAccumulator(str(path), size_guidance={"scalars": 0})
        acc.Reload()
        if tag in acc.Tags()["scalars"]:
            values += [e.value for e in acc.Scalars(tag)]
    return values


def test_nan_steps_roll_back_and_lower_learning_rates(tmp_path, data_root):
    tr = _trainer(tmp_path, data_root, "run.nan_patience=2", "run.nan_lr_factor=0.5")
    _poison_g_loss(tr, range(4, 6))  # adversarial steps 4 and 5: two bad steps in a row
    g_lr = tr.cfg.adversarial.g_lr
    run(tr)
    tr.monitor.close()
    p = tr.progress
    assert p.step == 8 and p.rollbacks == 1 and p.lr_scale == 0.5 and p.bad_streak == 0
    assert p.skipped == 2
    assert tr.opt_g.param_groups[0]["lr"] == pytest.approx(g_lr * 0.5)
    assert tr.opt_d.param_groups[0]["lr"] == pytest.approx(tr.cfg.adversarial.d_lr * 0.5)
    assert all(torch.isfinite(v).all() for v in tr.G.state_dict().values())
    assert _scalars(tmp_path, "train/rollbacks") == [1.0]
    assert len(_scalars(tmp_path, "train/skipped_updates")) == 2
    assert _scalars(tmp_path, "adv/g_lr")[-1] == pytest.approx(g_lr * 0.5)


def test_isolated_nan_is_skipped_without_rollback(tmp_path, data_root):
    tr = _trainer(tmp_path, data_root, "run.nan_patience=2")
    _poison_g_loss(tr, range(3, 4))
    run(tr)
    tr.monitor.close()
    assert tr.progress.skipped == 1 and tr.progress.rollbacks == 0 and tr.progress.lr_scale == 1.0


def test_repeated_divergence_stops_with_a_message(tmp_path, data_root):
    tr = _trainer(tmp_path, data_root, "run.nan_patience=2", "run.nan_rollbacks=1")
    _poison_g_loss(tr, range(3, 10_000))
    with pytest.raises(Diverged, match="training diverged: 2 non-finite updates in a row after 1 rollback"):
        run(tr)
    tr.monitor.close()
    assert tr.progress.rollbacks == 1
    for path in checkpoint.history(tmp_path / "checkpoints"):  # every checkpoint left is finite
        state = checkpoint.load(path)
        assert all(torch.isfinite(v).all() for v in state["generator"].values())


def _limited(limit_bytes: int):
    def apply() -> None:
        resource.setrlimit(resource.RLIMIT_FSIZE, (limit_bytes, limit_bytes))
    return apply


def test_full_disk_is_one_line_and_keeps_old_checkpoints(tmp_path, data_root):
    res = run_cli("train", CONFIG, *FAST, *SHORT, f"log.dir={tmp_path}")
    assert res.returncode == 0, res.stderr
    run_dir = tmp_path / "coco_rsgan"
    before = {p.name: p.read_bytes() for p in checkpoint.history(run_dir / "checkpoints")}
    res = run_cli("train", "--resume", str(run_dir), "adversarial.steps=12",
                  preexec_fn=_limited(64 * 1024))  # a checkpoint is larger than this: "disk full"
    assert res.returncode == 2, res.stderr
    last = res.stderr.strip().splitlines()[-1]
    assert last.startswith("textgan: error: cannot write to") and "--resume" in last
    assert "Traceback" not in res.stderr
    after = checkpoint.history(run_dir / "checkpoints")
    assert {p.name for p in after} == set(before)
    for path in after:
        assert path.read_bytes() == before[path.name]
        checkpoint.load(path)
    assert not list((run_dir / "checkpoints").glob("*.tmp"))


def test_unwritable_run_folder(tmp_path, data_root):
    blocker = tmp_path / "not_a_folder"
    blocker.write_text("a file where the run folder's parent should be")
    res = run_cli("train", CONFIG, *FAST, f"log.dir={blocker}")
    assert res.returncode == 2
    assert res.stderr.strip().splitlines() == [res.stderr.strip()]
    assert "cannot write the run folder" in res.stderr and "log.dir" in res.stderr
    assert blocker.read_text().startswith("a file")


def test_vocabulary_that_does_not_match_the_checkpoint(tmp_path, data_root):
    res = run_cli("train", CONFIG, *FAST, "adversarial.steps=2", f"log.dir={tmp_path}")
    assert res.returncode == 0, res.stderr
    vocab = tmp_path / "coco_rsgan" / "vocab.json"
    vocab.write_text('["<pad>", "<bos>", "<eos>", "<unk>", "a", "dog"]')
    res = run_cli("train", "--resume", str(tmp_path / "coco_rsgan"))
    assert res.returncode == 2
    assert "does not match checkpoint" in res.stderr and len(res.stderr.strip().splitlines()) == 1
    assert vocab.read_text().endswith('"dog"]')


@pytest.mark.parametrize("content, needle", [
    (None, "not found"),
    (b"", "has no sentences"),
    (b"\x00\x01binary\x00", "looks binary"),
    ("café au lait\n".encode("latin-1"), "is not UTF-8"),
])
def test_bad_training_file_via_cli(tmp_path, data_root, content, needle):
    bad = tmp_path / "train.txt"
    if content is not None:
        bad.write_bytes(content)
    res = run_cli("train", CONFIG, *FAST, f"data.train={bad}", f"log.dir={tmp_path / 'runs'}")
    assert res.returncode == 2
    assert res.stderr.startswith("textgan: error: data file") and needle in res.stderr
    assert len(res.stderr.strip().splitlines()) == 1
    assert not (tmp_path / "runs").exists()


def test_best_checkpoint_is_kept(tmp_path, data_root):
    res = run_cli("train", CONFIG, *FAST, *SHORT, f"log.dir={tmp_path}", "log.best_metric=bleu2_exact",
                  "log.keep_last=1")
    assert res.returncode == 0, res.stderr
    best = checkpoint.load(tmp_path / "coco_rsgan" / "checkpoints" / "best.pt")
    assert best["progress"]["best"] == pytest.approx(best["metrics"]["bleu2_exact"])
    assert len(checkpoint.history(tmp_path / "coco_rsgan" / "checkpoints")) == 1


@pytest.mark.parametrize(("overrides", "named"), [
    (["log.best_metric=bleu9"], "log.best_metric=bleu9 is not computed"),
    (["log.best_metric=bleu2_exact", "log.best_ceiling_metric=nll_gen", "log.best_ceiling=4.8"],
     "log.best_ceiling_metric=nll_gen is not computed")])
def test_unknown_best_metric_lists_the_choices(tmp_path, data_root, overrides, named):
    res = run_cli("train", CONFIG, *FAST, f"log.dir={tmp_path}", *overrides)
    assert res.returncode == 2 and "choose one of bleu2_exact" in res.stderr and named in res.stderr
    assert len(res.stderr.strip().splitlines()) == 1
    assert not (tmp_path / "coco_rsgan").exists()

