"""The GAN objectives in textgan/algorithms/: every adversarial.algorithm value names one, and the
trainer's adversarial step is nothing but the chosen algorithm's D updates, then its G updates."""
from __future__ import annotations

from pathlib import Path

import pytest
import torch

from conftest import (FAST, QUICK_EVAL, REPO, assert_resume_ends_as_reference, run_cli, run_scalars, torchrun,
                      trained_and_cut)
from textgan import checkpoint, config
from textgan.algorithms import ALGORITHMS
from textgan.algorithms.gumbel_gan import GumbelGAN
from textgan.config import AdversarialConfig, ConfigError
from textgan.corpus import prepare
from textgan.monitor import Monitor
from textgan.train import Trainer


def test_every_config_value_names_an_algorithm():
    assert set(config.choices(AdversarialConfig, "algorithm")) == set(ALGORITHMS)
    assert AdversarialConfig().algorithm == "gumbel" and ALGORITHMS["gumbel"] is GumbelGAN
    names = "gumbel, seqgan, maligan, textgan_mmd, scratchgan, leakgan"
    with pytest.raises(ConfigError, match=f"adversarial.algorithm.*{names}"):
        config.load(None, ["adversarial.algorithm=rankgan"])


class _Recorded(GumbelGAN):
    """The Gumbel objective, noting the order of its updates."""

    calls: list[str] = []

    def d_step(self, tau: float) -> dict[str, float]:
        self.calls.append("d")
        return super().d_step(tau)

    def g_step(self, tau: float) -> dict[str, float]:
        self.calls.append("g")
        return super().g_step(tau)


@pytest.mark.parametrize("order, want", [("d_first", "ddg"), ("g_first", "gdd")])
def test_the_adversarial_step_runs_the_configured_algorithm(tmp_path, data_root, monkeypatch, order, want):
    """An algorithm registered under a config value is what the trainer runs, in adversarial.order,
    d_steps and g_steps times: adding one is a file and a dict entry, not an edit to the trainer."""
    monkeypatch.setitem(ALGORITHMS, "gumbel", _Recorded)
    monkeypatch.setattr(_Recorded, "calls", [])
    cfg = config.load(None, [*FAST, "adversarial.d_steps=2", f"adversarial.order={order}"])
    tr = Trainer(cfg, prepare(cfg.data, cfg.run.seed), tmp_path, Monitor(tmp_path, progress=False, enabled=False))
    assert isinstance(tr.algorithm, _Recorded)
    stats = tr.adversarial_step()
    assert "".join(_Recorded.calls) == want and {"adv/d_loss", "adv/g_loss"} <= set(stats)


POLICY = ["adversarial.loss=standard", "adversarial.batch_size=8", "adversarial.d_steps=1",
          "policy_gradient.d_samples=12", "policy_gradient.d_epochs=2"]
SEQGAN = ["adversarial.algorithm=seqgan", *POLICY, "policy_gradient.rollouts=3"]
MALIGAN = ["adversarial.algorithm=maligan", *POLICY]
BASE = str(REPO / "configs" / "coco_mle.yaml")  # a config without settings of any algorithm


@pytest.mark.parametrize("overrides, message", [
    (["adversarial.algorithm=seqgan", "adversarial.loss=standard", "gumbel.tau_end=0.001"],
     "gumbel.tau_end: an option of adversarial.algorithm gumbel, not seqgan"),
    (["adversarial.algorithm=maligan", "adversarial.loss=standard", "gumbel.schedule=linear"],
     "gumbel.schedule: an option of adversarial.algorithm gumbel, not maligan"),
    (["adversarial.algorithm=seqgan", "adversarial.loss=standard", "adversarial.mle_weight=0.5"],
     "adversarial.mle_weight: an option of adversarial.algorithm gumbel"),
    (["adversarial.algorithm=maligan", "adversarial.loss=standard", "policy_gradient.rollouts=4"],
     "policy_gradient.rollouts: an option of adversarial.algorithm seqgan, not maligan"),
    (["policy_gradient.rollouts=4"], "policy_gradient.rollouts: an option of adversarial.algorithm seqgan, not gumbel"),
    (["policy_gradient.d_epochs=3"], "policy_gradient.d_epochs: an option of adversarial.algorithm seqgan and maligan"),
    (["adversarial.algorithm=seqgan"], "adversarial.loss: seqgan trains its discriminator with binary cross-entropy"),
    (["adversarial.algorithm=seqgan", "adversarial.loss=standard", "generator.feedback=soft"],
     "generator.feedback: seqgan samples discrete sentences"),
])
def test_an_option_of_another_algorithm_is_a_config_error(overrides, message):
    with pytest.raises(ConfigError, match=message):
        config.load(None, overrides)


def test_an_option_of_another_algorithm_stops_the_cli_before_writing(tmp_path, data_root):
    res = run_cli("train", BASE, *FAST, f"log.dir={tmp_path}", *SEQGAN, "gumbel.tau_end=0.001")
    assert res.returncode == 2 and len(res.stderr.strip().splitlines()) == 1, res.stderr
    assert "gumbel.tau_end" in res.stderr and list(tmp_path.iterdir()) == []


@pytest.mark.slow
@pytest.mark.parametrize("name, overrides", [("seqgan", SEQGAN), ("maligan", MALIGAN)])
def test_a_policy_gradient_run_trains_end_to_end_from_the_cli(tmp_path, data_root, name, overrides):
    res = run_cli("train", BASE, *FAST, f"log.dir={tmp_path}", f"log.name={name}", *overrides, "adversarial.steps=4",
                  "adversarial.d_pretrain_steps=1", "eval.every=2", "eval.sample_every=2", "log.checkpoint_every=2")
    assert res.returncode == 0, res.stderr[-3000:]
    run_dir = tmp_path / name
    scalars = run_scalars(run_dir)
    assert len(scalars["adv/g_loss"]) == 4 and len(scalars["dpre/d_loss"]) == 1
    assert len(scalars["adv/reward"]) == 4 and all(0 < r < 1 for r in scalars["adv/reward"])
    assert "adv/tau" not in scalars and "tau " not in res.stderr
    state = checkpoint.load(checkpoint.newest(run_dir / "checkpoints"))
    assert state["progress"]["step"] == 4
    assert (checkpoint.read_algorithm_part(state, "rollout") is not None) == (name == "seqgan")
    res = run_cli("sample", str(run_dir), "--num", "3")
    assert res.returncode == 0 and len(res.stdout.splitlines()) == 3, res.stderr


@pytest.mark.slow
def test_a_seqgan_run_resumed_from_a_checkpoint_ends_bitwise_identical(tmp_path, data_root):
    """Resumed from its adversarial step 2 checkpoint, a run ends where the uninterrupted one did:
    the rollout network, D's dropout and every stream continue exactly."""
    schedule = [*FAST, *SEQGAN, "adversarial.steps=5", "adversarial.d_pretrain_steps=1", "log.checkpoint_every=1",
                "log.keep_last=20", "eval.every=3", "eval.sample_every=3", "discriminator.dropout=0.25",
                "generator.num_layers=2", "generator.dropout=0.1", "run.threads=1"]
    reference, resumed = trained_and_cut(tmp_path, BASE, schedule)
    assert checkpoint.load(checkpoint.newest(resumed / "checkpoints"))["rollout"]  # mid-run: a rollout network
    assert_resume_ends_as_reference(reference, resumed, 5, ("generator", "discriminator", "rollout"))


@pytest.mark.slow
def test_torchrun_refuses_a_policy_gradient_algorithm_before_writing(tmp_path, data_root):
    res = torchrun("train", BASE, *FAST, f"log.dir={tmp_path}", *SEQGAN)
    assert res.returncode != 0
    assert "adversarial.algorithm=seqgan trains in one process only" in res.stderr
    assert list(tmp_path.iterdir()) == []


@pytest.fixture(scope="module")
def coco_mle_run(data_root, tmp_path_factory) -> Path:
    """configs/coco_mle.yaml's model, one epoch on the tiny corpus: the start the COCO recipes name."""
    runs = tmp_path_factory.mktemp("mle")
    res = run_cli("train", str(REPO / "configs" / "coco_mle.yaml"), f"data.root={data_root}",
                  "data.train=tiny/train.txt", "data.test=tiny/test.txt", "mle.epochs=1", "eval.num_samples=20",
                  "eval.bleu_n=[2]", "log.progress=false", f"log.dir={runs}")
    assert res.returncode == 0, res.stderr[-3000:]
    return runs / "coco_mle"


@pytest.mark.slow
@pytest.mark.parametrize("recipe", ["coco_seqgan", "coco_maligan"])
def test_the_coco_recipes_train_from_the_mle_run(coco_mle_run, data_root, tmp_path, recipe):
    """The recipe as shipped (its generator from generator.init_from), on the tiny corpus, its
    discriminator schedule and sizes cut so the test is quick."""
    res = run_cli("train", str(REPO / "configs" / f"{recipe}.yaml"), f"data.root={data_root}",
                  "data.train=tiny/train.txt", "data.test=tiny/test.txt", f"generator.init_from={coco_mle_run}",
                  f"log.dir={tmp_path}", "log.progress=false", "adversarial.steps=2", "adversarial.d_pretrain_steps=1",
                  "adversarial.batch_size=8", "policy_gradient.d_samples=8", "policy_gradient.d_epochs=1",
                  "discriminator.filter_sizes=[1, 2, 3]", "discriminator.num_filters=[8, 8, 8]",
                  *(["policy_gradient.rollouts=2"] if recipe == "coco_seqgan" else []),
                  "eval.num_samples=20", "eval.bleu_n=[2]", "eval.every=0", *QUICK_EVAL)
    assert res.returncode == 0, res.stderr[-3000:]
    assert "generator initialised from" in res.stderr
    assert checkpoint.load(checkpoint.newest(tmp_path / recipe / "checkpoints"))["progress"]["step"] == 2
