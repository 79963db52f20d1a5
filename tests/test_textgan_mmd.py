"""textGAN's feature matching (adversarial.algorithm textgan_mmd): the MMD^2 against a direct
computation, the generator's gradient through its soft-argmax, the CLI end to end, a bitwise
resume, torchrun, the recipes, and bad options as one-line errors; and the same feature matching as
a term of the gumbel algorithm's generator loss (adversarial.mmd_weight)."""
from __future__ import annotations

import math
from pathlib import Path

import pytest
import torch

from conftest import (FAST, QUICK_EVAL, REPO, assert_resume_ends_as_reference, run_cli, run_scalars, tiny_mle_run,
                      torchrun, trained_and_cut)
from textgan import checkpoint, config
from textgan.algorithms.base import frozen
from textgan.algorithms.textgan_mmd import TextGANMMD, discriminator_mmd2, gaussian_kernel, kernel_bandwidths, mmd2
from textgan.config import ConfigError
from textgan.corpus import prepare
from textgan.monitor import Monitor
from textgan.train import Trainer

MMD = ["adversarial.algorithm=textgan_mmd", "adversarial.loss=standard", "generator.prior=normal",
       "generator.noise=none", "generator.feedback=soft", "adversarial.batch_size=8", "adversarial.d_steps=1",
       "mmd.bandwidths=[1.0, 4.0]"]
BASE = str(REPO / "configs" / "coco_mle.yaml")  # a config without settings of any algorithm


def _direct_mmd2(x: torch.Tensor, y: torch.Tensor, bandwidths: list[float], unbiased: bool) -> float:
    """MMD^2 by the definition, one kernel evaluation per pair in Python loops."""
    def k(a: torch.Tensor, b: torch.Tensor) -> float:
        d2 = sum((float(a[i]) - float(b[i])) ** 2 for i in range(len(a)))
        return sum(math.exp(-d2 / (2 * s * s)) for s in bandwidths)

    def within(s: torch.Tensor) -> float:
        n = len(s)
        pairs = [(i, j) for i in range(n) for j in range(n) if i != j or not unbiased]
        return sum(k(s[i], s[j]) for i, j in pairs) / len(pairs)
    across = sum(k(a, b) for a in x for b in y) / (len(x) * len(y))
    return within(x) + within(y) - 2 * across


@pytest.mark.parametrize("unbiased", [True, False])
@pytest.mark.parametrize("bandwidths", [[1.0], [0.5, 2.0, 8.0]])
def test_mmd2_equals_the_double_loop_definition(unbiased, bandwidths):
    gen = torch.Generator().manual_seed(3)
    x = torch.randn(5, 3, generator=gen, dtype=torch.float64)
    y = torch.randn(4, 3, generator=gen, dtype=torch.float64) + 0.7
    got = mmd2(x, y, bandwidths, unbiased=unbiased).item()
    assert got == pytest.approx(_direct_mmd2(x, y, bandwidths, unbiased), rel=1e-12, abs=1e-14)
    same = mmd2(x, x.clone(), bandwidths, unbiased=unbiased).item()
    assert (same < 0) if unbiased else same == pytest.approx(0.0, abs=1e-12)  # U-statistic: -2 k_ii / n terms


def test_median_bandwidths_are_in_units_of_the_median_pairwise_distance():
    """bandwidth_unit median: the kernel of features scaled by c is the kernel of the unscaled
    ones (MMD^2 unchanged), and the unit is the median over distinct pairs by a direct loop."""
    gen = torch.Generator().manual_seed(5)
    x = torch.randn(4, 3, generator=gen, dtype=torch.float64)
    y = torch.randn(3, 3, generator=gen, dtype=torch.float64) + 1.0
    cfg = config.MMDConfig(bandwidths=[0.5, 2.0], bandwidth_unit="median")
    pooled = torch.cat([x, y])
    pairs = sorted(float((pooled[i] - pooled[j]).norm()) for i in range(7) for j in range(7) if i != j)
    assert kernel_bandwidths(x, y, cfg) == pytest.approx([0.5 * pairs[20], 2.0 * pairs[20]])  # 42 pairs: lower median
    unit = mmd2(x, y, kernel_bandwidths(x, y, cfg)).item()
    assert mmd2(30 * x, 30 * y, kernel_bandwidths(30 * x, 30 * y, cfg)).item() == pytest.approx(unit, rel=1e-9)
    assert kernel_bandwidths(x, y, config.MMDConfig(bandwidths=[0.5, 2.0])) == [0.5, 2.0]


def test_the_kernel_has_a_finite_gradient_where_points_coincide():
    x = torch.randn(4, 6, dtype=torch.float64, requires_grad=True)
    gaussian_kernel(x, x, [1.0, 2.0]).sum().backward()
    assert torch.isfinite(x.grad).all()


def _trainer(tmp_path: Path, *overrides: str, algorithm: list[str] = MMD) -> Trainer:
    cfg = config.load(None, [*FAST, *algorithm, *overrides])
    return Trainer(cfg, prepare(cfg.data, cfg.run.seed), tmp_path, Monitor(tmp_path, progress=False, enabled=False))


def test_the_mmd_gradient_reaches_every_generator_weight_through_the_soft_argmax(tmp_path, data_root):
    """The G loss differentiates through D's features of the soft one-hots and through the fed-back
    soft-argmax (the embedding rows of tokens never input as hard ids), into z's projection; the
    G step moves G and leaves D as it was."""
    tr = _trainer(tmp_path)
    assert isinstance(tr.algorithm, TextGANMMD) and tr.G.noise == "none" and tr.G.feedback == "soft"
    alg = tr.algorithm
    fake = alg.fake(tau=0.5)
    real = tr.batches.real_dists(8)
    with torch.no_grad():
        real_feats = tr.D.features_and_logits(real)[0]
    loss = mmd2(tr.D.features_and_logits(fake.dists)[0], real_feats, [1.0, 4.0])
    loss.backward()
    for name, param in tr.G.named_parameters():
        assert param.grad is not None and param.grad.abs().sum() > 0, name
    fed = tr.G.embedding.weight.grad.clone()
    fed[tr.G.bos_id] = 0  # BOS is the one hard input; every other row's gradient came through the feedback
    assert (fed.abs().sum(1) > 0).sum() > len(tr.corpus.vocab) // 2
    tr.G.zero_grad()
    g_before = {k: v.clone() for k, v in tr.G.state_dict().items()}
    d_before = {k: v.clone() for k, v in tr.D.state_dict().items()}
    stats = tr.algorithm.g_step(0.5)
    assert math.isfinite(stats["adv/g_loss"]) and stats["adv/fake_tokens"] > 0
    assert all(torch.equal(v, tr.D.state_dict()[k]) for k, v in d_before.items())
    assert not torch.equal(g_before["latent_proj.weight"], tr.G.latent_proj.weight)


def test_the_g_loss_is_the_mmd2_of_the_discriminators_features(tmp_path, data_root):
    """adv/g_loss is mmd2 of dropout-free D features of that step's fake and real batches: the
    same draws from the same streams, recomputed."""
    tr = _trainer(tmp_path, "mmd.estimator=biased")
    data, noise = tr.streams.data.get_state(), tr.noise_rng.get_state()
    tr.D.eval()
    real = tr.batches.real_dists(8)
    with torch.no_grad():
        want = mmd2(tr.D.features_and_logits(tr.algorithm.fake(1.0).dists)[0], tr.D.features_and_logits(real)[0],
                    [1.0, 4.0], unbiased=False).item()
    tr.D.train()
    tr.streams.data.set_state(data)
    tr.noise_rng.set_state(noise)
    assert tr.algorithm.g_step(1.0)["adv/g_loss"] == pytest.approx(want, rel=1e-5)
    assert tr.D.training  # evaluation mode only for the step


@pytest.mark.parametrize("d_weight", [0.0, 0.5])
def test_the_d_step_is_a_classifier_that_can_also_maximise_the_mmd(tmp_path, data_root, d_weight):
    tr = _trainer(tmp_path, f"mmd.d_weight={d_weight}")
    g_before = {k: v.clone() for k, v in tr.G.state_dict().items()}
    stats = tr.algorithm.d_step(1.0)
    assert all(torch.equal(v, tr.G.state_dict()[k]) for k, v in g_before.items())
    assert ("adv/d_mmd2" in stats) == (d_weight > 0) and math.isfinite(stats["adv/d_loss"])
    step = tr.adversarial_step()
    assert {"adv/tau", "adv/d_real", "adv/d_fake", "adv/g_loss"} <= set(step)


def test_features_and_logits_match_forward_for_both_discriminators(data_root):
    from textgan.models import build_discriminator
    for kind in ("relgan_cnn", "lstm"):
        cfg = config.load(None, [*FAST, f"discriminator.kind={kind}"])
        d = build_discriminator(cfg.discriminator, 30).eval()
        dists = torch.softmax(torch.randn(3, 7, 30), -1)
        feats, logits = d.features_and_logits(dists)
        assert feats.dim() == 2 and feats.shape[0] == 3
        assert torch.equal(logits, d(dists)), kind


@pytest.mark.parametrize("overrides, message", [
    (["mmd.bandwidths=[]"], "mmd.bandwidths: needs at least one bandwidth"),
    (["mmd.bandwidths=[1.0, 0.0]"], "mmd.bandwidths: needs at least one bandwidth, each > 0"),
    (["mmd.bandwidths=[1.0, .inf]"], "mmd.bandwidths: needs at least one bandwidth, each > 0"),
    (["mmd.estimator=median"], "mmd.estimator: expected one of unbiased, biased"),
    (["mmd.d_weight=-1"], "mmd.d_weight: must be >= 0"),
    (["mmd.bandwidth_unit=mean"], "mmd.bandwidth_unit: expected one of fixed, median"),
    (["adversarial.batch_size=1"], "adversarial.batch_size: textgan_mmd's MMD"),
    (["generator.noise=gumbel"], "generator.noise: textgan_mmd's generator has z as its only noise"),
    (["generator.feedback=hard"], "generator.feedback: textgan_mmd feeds back the soft-argmax"),
    (["gumbel.mode=straight_through"], "gumbel.mode: textgan_mmd shows D the soft-argmax"),
    (["adversarial.loss=rsgan"], "adversarial.loss: textgan_mmd trains its discriminator with binary"),
    (["policy_gradient.rollouts=4"],
     "policy_gradient.rollouts: an option of adversarial.algorithm seqgan, not textgan_mmd"),
    (["adversarial.info_weight=1.0"],
     "adversarial.info_weight: an option of adversarial.algorithm gumbel, not textgan_mmd"),
    (["adversarial.gp_weight=5.0"], "adversarial.gp_weight: an option of adversarial.algorithm gumbel"),
])
def test_bad_textgan_mmd_settings_are_config_errors(overrides, message):
    with pytest.raises(ConfigError, match=message):
        config.load(None, [*MMD, *overrides])


@pytest.mark.parametrize("algorithm", ["gumbel", "seqgan", "maligan"])
def test_an_mmd_option_with_another_algorithm_is_a_config_error(algorithm):
    base = [] if algorithm == "gumbel" else [f"adversarial.algorithm={algorithm}", "adversarial.loss=standard"]
    with pytest.raises(ConfigError, match=f"mmd.d_weight: an option of adversarial.algorithm textgan_mmd, "
                                          f"not {algorithm}; remove it, or set adversarial.algorithm=textgan_mmd"):
        config.load(None, [*base, "mmd.d_weight=0.5"])


def test_the_tau_schedule_is_textgan_mmds_own_setting():
    cfg = config.load(None, [*MMD, "gumbel.tau_end=0.1", "gumbel.schedule=linear"])
    assert cfg.gumbel.tau_end == 0.1 and cfg.adversarial.algorithm == "textgan_mmd"


def test_a_bad_option_stops_the_cli_before_writing(tmp_path, data_root):
    res = run_cli("train", BASE, *FAST, f"log.dir={tmp_path}", *MMD, "policy_gradient.d_epochs=2")
    assert res.returncode == 2 and len(res.stderr.strip().splitlines()) == 1, res.stderr
    assert "policy_gradient.d_epochs" in res.stderr and list(tmp_path.iterdir()) == []


@pytest.mark.slow
def test_a_textgan_mmd_run_trains_end_to_end_from_the_cli(tmp_path, data_root):
    res = run_cli("train", BASE, *FAST, f"log.dir={tmp_path}", "log.name=mmd", *MMD, "mmd.d_weight=0.1",
                  "adversarial.steps=4", "adversarial.d_pretrain_steps=1", "eval.every=2", "eval.sample_every=2",
                  "log.checkpoint_every=2", "gumbel.tau_end=0.1")
    assert res.returncode == 0, res.stderr[-3000:]
    run_dir = tmp_path / "mmd"
    scalars = run_scalars(run_dir)
    assert len(scalars["adv/g_loss"]) == 4 and len(scalars["dpre/d_loss"]) == 1
    assert len(scalars["adv/d_mmd2"]) == 4 and all(math.isfinite(v) for v in scalars["adv/g_loss"])
    assert scalars["adv/tau"][0] == pytest.approx(1.0) and scalars["adv/tau"][-1] < 1.0
    state = checkpoint.load(checkpoint.newest(run_dir / "checkpoints"))
    assert state["progress"]["step"] == 4
    res = run_cli("sample", str(run_dir), "--num", "3")
    assert res.returncode == 0 and len(res.stdout.splitlines()) == 3, res.stderr


@pytest.mark.slow
def test_a_textgan_mmd_run_resumed_from_a_checkpoint_ends_bitwise_identical(tmp_path, data_root):
    """Resumed from its adversarial step 2 checkpoint, a run ends where the uninterrupted one did:
    D's dropout, the latent draws and every stream continue exactly."""
    schedule = [*FAST, *MMD, "mmd.d_weight=0.1", "adversarial.steps=5", "adversarial.d_pretrain_steps=1",
                "log.checkpoint_every=1", "log.keep_last=20", "eval.every=3", "eval.sample_every=3",
                "discriminator.dropout=0.25", "generator.num_layers=2", "generator.dropout=0.1", "run.threads=1"]
    reference, resumed = trained_and_cut(tmp_path, BASE, schedule)
    assert_resume_ends_as_reference(reference, resumed, 5, ("generator", "discriminator"))


@pytest.mark.slow
def test_torchrun_trains_textgan_mmd_on_two_ranks(tmp_path, data_root):
    """Both networks' steps go through the DDP replicas: two ranks train one run folder."""
    res = torchrun("train", BASE, *FAST, f"log.dir={tmp_path}", *MMD, "mmd.d_weight=0.1", "adversarial.steps=2",
                   "eval.every=0", "log.checkpoint_every=2")
    assert res.returncode == 0, res.stderr[-3000:]
    assert [p.name for p in tmp_path.iterdir()] == ["coco_mle"]
    state = checkpoint.load(checkpoint.newest(tmp_path / "coco_mle" / "checkpoints"))
    assert state["progress"]["step"] == 2 and len(state["rng"]["ranks"]) == 2


GUMBEL_MMD = ["generator.prior=normal", "adversarial.batch_size=8", "adversarial.mmd_weight=2.0",
              "mmd.bandwidth_unit=median", "mmd.bandwidths=[1.0, 4.0]"]


def test_the_gumbel_g_step_adds_the_feature_mmd2_of_its_own_fakes(tmp_path, data_root):
    """adversarial.mmd_weight: the step logs discriminator_mmd2 of that step's fakes and real batch
    (recomputed from the same streams), leaves the adversarial loss as it was, moves G
    differently than without the term, and leaves D's weights alone."""
    runs = {}
    for weight in (0.0, 2.0):
        tr = _trainer(tmp_path / str(weight), f"adversarial.mmd_weight={weight}", algorithm=GUMBEL_MMD[:3])
        data, noise = tr.streams.data.get_state(), tr.noise_rng.get_state()
        real, _ = tr.batches.real_labelled(8)
        z = tr.G.sample_latent(8, tr.noise_rng)
        with torch.no_grad():
            want = discriminator_mmd2(tr.D, tr.algorithm.fake(8, 0.5, z).dists, real, tr.algorithm.mmd).item()
        tr.streams.data.set_state(data)
        tr.noise_rng.set_state(noise)
        d_before = {k: v.clone() for k, v in tr.D.state_dict().items()}
        stats = tr.algorithm.g_step(0.5)
        assert all(torch.equal(v, tr.D.state_dict()[k]) for k, v in d_before.items()) and tr.D.training
        assert ("adv/g_mmd2" in stats) == (weight > 0)
        if weight > 0:
            assert stats["adv/g_mmd2"] == pytest.approx(want, rel=1e-5) and want > 0
        runs[weight] = (stats["adv/g_loss"], tr.G.latent_proj.weight.detach().clone())
    assert runs[0.0][0] == pytest.approx(runs[2.0][0], rel=1e-6)  # the same draws, the same D score
    assert not torch.allclose(runs[0.0][1], runs[2.0][1])


def test_the_feature_mmd2_term_reaches_z_through_the_relaxed_samples(tmp_path, data_root):
    tr = _trainer(tmp_path, algorithm=GUMBEL_MMD)
    real, _ = tr.batches.real_labelled(8)
    with frozen(tr.D) as d:
        discriminator_mmd2(d, tr.algorithm.fake(8, 0.5).dists, real, tr.algorithm.mmd).backward()
    assert tr.G.latent_proj.weight.grad.abs().sum() > 0
    assert all(p.grad is None for p in tr.D.parameters())
    tr.G.zero_grad()


@pytest.mark.parametrize("overrides, message", [
    (["mmd.bandwidths=[1.0]"], r"mmd.bandwidths: an option of adversarial.algorithm textgan_mmd, not gumbel; "
                               r"remove it, or set adversarial.algorithm=textgan_mmd \(or adversarial.mmd_weight > 0\)"),
    (["adversarial.mmd_weight=1", "mmd.d_weight=0.5"], "mmd.d_weight: an option of adversarial.algorithm textgan_mmd"),
    (["adversarial.mmd_weight=-1"], "adversarial.mmd_weight: must be >= 0"),
    (["adversarial.mmd_weight=1", "adversarial.algorithm=seqgan", "adversarial.loss=standard"],
     "adversarial.mmd_weight: an option of adversarial.algorithm gumbel, not seqgan"),
    (["adversarial.mmd_weight=1", "generator.conditional=true", "data.source=grammar", "generator.prior=normal"],
     "adversarial.mmd_weight: mmd_weight > 0 is not supported with generator.conditional"),
])
def test_bad_gumbel_mmd_settings_are_config_errors(overrides, message):
    with pytest.raises(ConfigError, match=message):
        config.load(None, overrides)


def test_gumbel_reads_the_kernel_settings_with_mmd_weight():
    cfg = config.load(None, ["adversarial.mmd_weight=0.5", "mmd.bandwidths=[2.0]", "mmd.estimator=biased",
                             "mmd.bandwidth_unit=median"])
    assert cfg.mmd.bandwidths == [2.0] and cfg.adversarial.mmd_weight == 0.5 and cfg.mmd.bandwidth_unit == "median"


@pytest.mark.slow
def test_a_gumbel_run_with_feature_matching_logs_its_term(tmp_path, data_root):
    res = run_cli("train", BASE, *FAST, f"log.dir={tmp_path}", "log.name=gm", *GUMBEL_MMD, "adversarial.steps=2",
                  "adversarial.d_steps=1", "eval.every=0", "log.checkpoint_every=2", *QUICK_EVAL)
    assert res.returncode == 0, res.stderr[-3000:]
    values = run_scalars(tmp_path / "gm")["adv/g_mmd2"]
    assert len(values) == 2 and all(math.isfinite(v) for v in values)


@pytest.fixture(scope="module")
def coco_mle_run(data_root, tmp_path_factory) -> Path:
    return tiny_mle_run(tmp_path_factory.mktemp("mle"))


@pytest.mark.slow
@pytest.mark.parametrize("recipe", ["coco_textgan", "oracle20_textgan"])
def test_the_recipes_train(coco_mle_run, data_root, tmp_path, recipe):
    """The recipe as shipped, sizes cut so the test is quick: COCO's generator from an MLE run of
    the tiny corpus (generator.init_from), the oracle's from one MLE epoch of its own."""
    start = (["data.train=tiny/train.txt", "data.test=tiny/test.txt", f"generator.init_from={coco_mle_run}",
              "generator.emb_dim=16", "generator.hidden_dim=32"] if recipe == "coco_textgan"
             else ["data.num_train=200", "data.num_test=50", "generator.init_from=", "mle.epochs=1"])
    res = run_cli("train", str(REPO / "configs" / f"{recipe}.yaml"), f"data.root={data_root}", *start,
                  f"log.dir={tmp_path}", "log.progress=false", "adversarial.steps=2",
                  "adversarial.d_pretrain_steps=1", "adversarial.batch_size=8",
                  "discriminator.filter_sizes=[1, 2, 3]", "discriminator.num_filters=[8, 8, 8]",
                  "eval.num_samples=20", "eval.bleu_n=[2]", "eval.every=0", *QUICK_EVAL)
    assert res.returncode == 0, res.stderr[-3000:]
    assert ("generator initialised from" in res.stderr) == (recipe == "coco_textgan")
    assert checkpoint.load(checkpoint.newest(tmp_path / recipe / "checkpoints"))["progress"]["step"] == 2
