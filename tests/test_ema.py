"""adversarial.g_ema: the weight average follows the generator as the EMA it claims to be, never
feeds back into training, is what evaluations, samples and checkpoints report, and resumes exactly."""
from __future__ import annotations

import copy
import json
from dataclasses import replace

import pytest
import torch

from conftest import FAST, REPO, run_cli
from textgan import checkpoint, config, warm_start
from textgan.corpus import prepare
from textgan.ema import WeightAverage
from textgan.errors import UserError
from textgan.evaluate import evaluate
from textgan.monitor import Monitor
from textgan.sample import load_generator
from textgan.train import Trainer

pytestmark = pytest.mark.slow  # whole training runs through the CLI

COMMON = ("adversarial.d_steps=1", "discriminator.dropout=0", "eval.num_samples=8", "eval.bleu_n=[2]")


def _trainer(tmp_path, *overrides: str) -> Trainer:
    cfg = config.load(None, [*FAST, *COMMON, *overrides])
    return Trainer(cfg, prepare(cfg.data, cfg.run.seed), tmp_path, Monitor(tmp_path, progress=False, enabled=False))


def test_weight_average_is_the_warmed_up_ema_and_copies_buffers():
    torch.manual_seed(0)
    net = torch.nn.BatchNorm1d(3)  # two parameters and running-statistics buffers
    avg = WeightAverage(net, decay=0.5)
    want = net.weight.detach().clone()
    for t in range(4):
        with torch.no_grad():
            net.weight.add_(torch.randn(3))
        net(torch.randn(5, 3))  # moves the running mean
        avg.update(net)
        d = min(0.5, (1 + t) / (10 + t))  # 0.1, 0.18, 0.25, 0.5: warm-up, then the decay
        want = d * want + (1 - d) * net.weight.detach()
        torch.testing.assert_close(avg.module.weight, want)
    assert torch.equal(avg.module.running_mean, net.running_mean)
    assert not torch.equal(avg.module.weight, net.weight) and not avg.module.weight.requires_grad


def test_average_never_feeds_back_and_is_what_evaluation_scores(tmp_path, data_root):
    tr = _trainer(tmp_path / "ema", "adversarial.g_ema=0.5")
    plain = _trainer(tmp_path / "plain")
    start = [p.detach().clone() for p in tr.G.parameters()]
    want = [s.clone() for s in start]
    for t in range(3):
        got, ref = tr.adversarial_step(), plain.adversarial_step()
        assert got["adv/g_loss"] == ref["adv/g_loss"]
        d = min(0.5, (1 + t) / (10 + t))
        want = [d * w + (1 - d) * p.detach() for w, p in zip(want, tr.G.parameters())]
    for a, b in zip(tr.G.parameters(), plain.G.parameters()):  # training is the plain run's, bit for bit
        assert torch.equal(a, b)
    for w, p in zip(want, tr.G_avg.module.parameters()):
        torch.testing.assert_close(p, w)
    assert tr.scored_generator() is tr.G_avg.module
    assert not torch.equal(tr.G_avg.module.out.weight, tr.G.out.weight)
    metrics = tr.evaluate()
    seed = tr.cfg.run.seed + 13
    assert metrics == evaluate(tr.G_avg.module, tr.corpus, tr.cfg.eval, seed=seed)[0]
    assert metrics != evaluate(tr.G, tr.corpus, tr.cfg.eval, seed=seed)[0]


def test_average_restarts_at_the_adversarial_phase_and_resumes_exactly(tmp_path, data_root):
    """Made from the generator at the first adversarial step (after MLE); a checkpoint carries it (and its update count),
    so 2 + 2 resumed steps give the 4-step average bit for bit; `textgan sample/eval` load it."""
    whole = _trainer(tmp_path / "whole", "adversarial.g_ema=0.9")
    assert whole.scored_generator() is whole.G  # before the adversarial phase: the generator itself
    assert whole.mle_epoch()
    mle_weights = copy.deepcopy(whole.G.state_dict())
    mle_path = whole.save(tmp_path / "mle.pt")
    first = _trainer(tmp_path / "first", "adversarial.g_ema=0.9")
    first.load_state_dict(copy.deepcopy(whole.state_dict()))
    for _ in range(2):
        whole.adversarial_step()
        first.adversarial_step()
    assert whole.G_avg.updates == 2
    path = first.save(tmp_path / "two.pt")
    second = _trainer(tmp_path / "second", "adversarial.g_ema=0.9")
    second.load_state_dict(torch.load(path, weights_only=True))
    assert second.G_avg.updates == 2
    for _ in range(2):
        whole.adversarial_step()
        second.adversarial_step()
    for a, b in zip(whole.G_avg.module.parameters(), second.G_avg.module.parameters()):
        assert torch.equal(a, b)
    assert not torch.equal(whole.G_avg.module.out.weight, mle_weights["out.weight"])
    loaded = load_generator(second.save(tmp_path / "four.pt"))
    assert loaded.averaged and not load_generator(mle_path).averaged  # no adversarial step there: no average
    assert torch.equal(loaded.generator.out.weight, second.G_avg.module.out.weight)
    assert not torch.equal(loaded.generator.out.weight, second.G.out.weight)
    trained = load_generator(tmp_path / "four.pt", weights="trained")  # the raw weights of the same checkpoint
    assert not trained.averaged and torch.equal(trained.generator.out.weight, second.G.out.weight)
    assert load_generator(tmp_path / "four.pt", weights="average").averaged
    source = warm_start.load_source(replace(second.cfg.generator, init_from=str(tmp_path / "four.pt")))
    assert source.averaged  # generator.init_from starts from the average, as `textgan sample` samples it
    assert torch.equal(source.generator.out.weight, second.G_avg.module.out.weight)
    with pytest.raises(UserError, match="has no weight average.*--weights trained"):
        load_generator(mle_path, weights="average")
    second.load_state_dict(torch.load(mle_path, weights_only=True))  # back to a state without an average
    assert second.scored_generator() is second.G and "generator_avg" not in second.state_dict()


def test_cli_run_samples_and_scores_the_average(tmp_path, data_root):
    """`textgan train` with g_ema, then `textgan eval` and `textgan sample` on its run folder, as a
    user runs them: metrics.json records which weights it scored."""
    res = run_cli("train", str(REPO / "configs" / "coco_rsgan.yaml"), *FAST, *COMMON, f"log.dir={tmp_path}",
                  "adversarial.steps=3", "adversarial.g_ema=0.99", "eval.every=0")
    assert res.returncode == 0, res.stderr[-2000:]
    run = tmp_path / "coco_rsgan"
    res = run_cli("eval", str(run), "--num", "8", "--out", str(tmp_path / "eval"))
    assert res.returncode == 0, res.stderr[-2000:]
    settings = json.loads((tmp_path / "eval" / "metrics.json").read_text())["settings"]
    assert settings["weights"] == "g_ema average"
    res = run_cli("eval", str(run), "--num", "8", "--weights", "trained", "--out", str(tmp_path / "eval_trained"))
    assert res.returncode == 0, res.stderr[-2000:]
    trained = json.loads((tmp_path / "eval_trained" / "metrics.json").read_text())
    assert trained["settings"]["weights"] == "trained"
    assert trained["metrics"] != json.loads((tmp_path / "eval" / "metrics.json").read_text())["metrics"]
    res = run_cli("sample", str(run), "--num", "3", "--seed", "5")
    assert res.returncode == 0 and len(res.stdout.strip().splitlines()) == 3, res.stderr[-2000:]
    same = run_cli("sample", str(run), "--num", "3", "--seed", "5", "--weights", "average")
    assert same.stdout == res.stdout
    state, _ = checkpoint.load_latest_valid(run / "checkpoints", warn=lambda m: None)
    checkpoint.save({k: v for k, v in state.items() if k != "generator_avg"}, tmp_path / "plain.pt")
    raw = run_cli("sample", str(run), "--num", "3", "--seed", "5", "--weights", "trained")
    plain = run_cli("sample", str(tmp_path / "plain.pt"), "--num", "3", "--seed", "5")  # only the trained weights
    assert raw.returncode == 0 and raw.stdout == plain.stdout, raw.stderr[-2000:]
    res = run_cli("sample", str(tmp_path / "plain.pt"), "--num", "3", "--weights", "average")
    assert res.returncode != 0 and len(res.stderr.strip().splitlines()) == 1 and "no weight average" in res.stderr
    res = run_cli("sample", str(run), "--num", "3", "--weights", "raw")
    assert res.returncode != 0 and len(res.stderr.strip().splitlines()) == 1 and "--weights" in res.stderr
    del state["generator_avg"]["weights"]["out.weight"]  # an average that no longer fits: a damaged file
    checkpoint.save(state, tmp_path / "bad.pt")
    res = run_cli("sample", str(tmp_path / "bad.pt"), "--num", "3")
    assert res.returncode != 0 and len(res.stderr.strip().splitlines()) == 1, res.stderr[-2000:]
    assert "does not match its own config" in res.stderr


@pytest.mark.parametrize("value", ["1.0", "-0.1", ".nan"])
def test_g_ema_out_of_range_is_a_one_line_error(tmp_path, value):
    res = run_cli("train", str(REPO / "configs" / "coco_rsgan.yaml"), *FAST, f"log.dir={tmp_path}", f"adversarial.g_ema={value}")
    assert res.returncode != 0 and "adversarial.g_ema" in res.stderr and "[0, 1)" in res.stderr
    assert len(res.stderr.strip().splitlines()) == 1 and not any(tmp_path.iterdir())
