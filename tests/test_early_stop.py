"""mle.patience through the real CLI: pretraining ends once held-out NLL_gen stops falling, the
generator goes back to its best epoch (checkpoints/mle_best.pt), and a resumed run's GAN phase
starts from that generator without pretraining again."""
from __future__ import annotations

import pytest
import torch
from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

from conftest import FAST, REPO, run_cli
from textgan import checkpoint

pytestmark = pytest.mark.slow  # whole MLE runs to their early stop

CONFIG = str(REPO / "configs" / "coco_rsgan.yaml")
# mle.lr 0.1 on the 500 tiny sentences: held-out NLL_gen bottoms out after two epochs
# (5.30, 5.19, 5.27, 5.47 on the AVX-512 EPYC), so patience 2 ends pretraining at epoch 4
OVERFIT = ["mle.lr=0.1", "mle.patience=2", "adversarial.steps=0", "eval.sample_every=0"]


def _eval_nll(run_dir) -> list[float]:
    """Held-out NLL_gen of each MLE evaluation, in order, from the run's TensorBoard events."""
    values: dict[int, float] = {}
    for path in sorted(run_dir.glob("events.out.tfevents.*")):
        acc = EventAccumulator(str(path), size_guidance={"scalars": 0})
        acc.Reload()
        if "eval/nll_gen_mc2_tok" in acc.Tags()["scalars"]:
            values.update({e.step: e.value for e in acc.Scalars("eval/nll_gen_mc2_tok")})
    return [values[step] for step in sorted(values)]


def _same_generator(a: dict, b: dict) -> bool:
    return a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)


@pytest.mark.parametrize("epochs,ran", [(8, 4), (3, 3)])
def test_mle_stops_on_held_out_nll_and_restores_its_best_epoch(tmp_path, data_root, epochs, ran):
    """epochs 8: two evaluations above the best end pretraining at epoch 4. epochs 3: the last
    epoch is not the best one either, and the generator still goes back to it."""
    res = run_cli("train", CONFIG, *FAST, f"data.root={data_root}", f"log.dir={tmp_path}", "log.name=es",
                  *OVERFIT, f"mle.epochs={epochs}")
    assert res.returncode == 0, res.stderr
    run_dir = tmp_path / "es"
    nll = _eval_nll(run_dir)
    best_epoch = nll.index(min(nll)) + 1
    assert len(nll) == ran and best_epoch < ran  # it stopped at `ran`, past its best epoch
    assert f"pretraining ends after epoch {ran}, generator back to epoch {best_epoch}" in res.stderr
    best = checkpoint.load(run_dir / "checkpoints" / "mle_best.pt")
    final = checkpoint.load(checkpoint.newest(run_dir / "checkpoints"))
    assert best["progress"]["epoch"] == best_epoch
    assert best["progress"]["mle_best"] == pytest.approx(min(nll), rel=1e-6)
    assert final["progress"]["epoch"] == ran and final["progress"]["mle_done"]
    assert _same_generator(final["generator"], best["generator"])  # what goes on is the best epoch
    assert final["metrics"]["nll_gen_mc2_tok"] == pytest.approx(min(nll), rel=1e-6)
    assert f"nll_gen_mc2_tok={min(nll):.4g}" in res.stderr  # the final report is the restored model's


def test_plateau_lr_factor_lowers_the_mle_rate_at_each_evaluation_without_a_new_best(tmp_path, data_root):
    res = run_cli("train", CONFIG, *FAST, f"data.root={data_root}", f"log.dir={tmp_path}", "log.name=es",
                  *OVERFIT, "mle.epochs=6", "mle.plateau_lr_factor=0.5")
    assert res.returncode == 0, res.stderr
    nll = _eval_nll(tmp_path / "es")
    misses = sum(value >= min(nll[:i]) for i, value in enumerate(nll) if i)  # evaluations without a new best
    assert misses >= 1
    final = checkpoint.load(checkpoint.newest(tmp_path / "es" / "checkpoints"))
    assert final["progress"]["mle_lr_scale"] == 0.5 ** misses
    assert final["opt_mle"]["param_groups"][0]["lr"] == pytest.approx(0.1 * 0.5 ** misses)


def test_resumed_gan_phase_starts_from_the_restored_generator(tmp_path, data_root):
    res = run_cli("train", CONFIG, *FAST, f"data.root={data_root}", f"log.dir={tmp_path}", "log.name=es",
                  *OVERFIT, "mle.epochs=8")
    assert res.returncode == 0, res.stderr
    run_dir = tmp_path / "es"
    best = checkpoint.load(run_dir / "checkpoints" / "mle_best.pt")
    res = run_cli("train", "--resume", str(run_dir), "adversarial.steps=2", "adversarial.d_steps=1",
                  "log.keep_last=10")
    assert res.returncode == 0, res.stderr
    assert "pretraining ends" not in res.stderr  # no epoch ran again
    final = checkpoint.load(checkpoint.newest(run_dir / "checkpoints"))
    assert final["progress"]["epoch"] == 4 and final["progress"]["step"] == 2
    assert not _same_generator(final["generator"], best["generator"])  # the GAN steps moved it
    end_of_mle = checkpoint.load(checkpoint.history(run_dir / "checkpoints")[-2])  # where the resume began
    assert end_of_mle["progress"]["step"] == 0 and end_of_mle["progress"]["mle_done"]
    assert _same_generator(end_of_mle["generator"], best["generator"])
