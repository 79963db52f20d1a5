"""ScratchGAN's dense REINFORCE (adversarial.algorithm scratchgan): the loss, returns and baseline
against hand computations, the per-step discriminator and its BCE at every step, the gradient into
every generator weight, the recipes through the CLI, a bitwise resume, and bad options as one line."""
from __future__ import annotations

import itertools
import math
from pathlib import Path

import pytest
import torch

from conftest import FAST, QUICK_EVAL, REPO, assert_resume_ends_as_reference, run_cli, run_scalars, trained_and_cut
from textgan import checkpoint, config
from textgan.algorithms import check_distributed
from textgan.algorithms.policy import token_log_probs
from textgan.algorithms.scratchgan import (ScratchGAN, discounted_returns, per_step_bce, reinforce_loss,
                                           step_rewards, steps_alive, updated_baseline)
from textgan.config import ConfigError
from textgan.corpus import prepare
from textgan.errors import UserError
from textgan.models import Generator
from textgan.models.discriminator import LSTMDiscriminator
from textgan.monitor import Monitor
from textgan.train import Trainer

SCRATCH = ["adversarial.algorithm=scratchgan", "adversarial.loss=standard", "discriminator.kind=lstm",
           "discriminator.hidden_dim=16", "adversarial.batch_size=8", "adversarial.d_steps=1"]
BASE = str(REPO / "configs" / "coco_mle.yaml")  # a config without settings of any algorithm
LN3 = math.log(3.0)  # sigmoid(ln 3) = 0.75: reward 2 * 0.75 - 1 = 0.5


def test_loss_returns_and_baseline_match_a_hand_computation():
    """Two sentences of lengths 3 and 2 in T = 4: rewards 2 D - 1, returns discounted at 0.5,
    the baseline subtracted, the objective summed over each sentence's steps and averaged over
    the batch, and the baseline's update (decay 0.25), all worked out by hand."""
    logits = torch.tensor([[LN3, 0.0, -LN3, 5.0], [-LN3, LN3, 7.0, 5.0]], dtype=torch.float64)
    alive = steps_alive(torch.tensor([3, 2]), 4).double()
    rewards = step_rewards(logits, alive)
    torch.testing.assert_close(rewards, torch.tensor([[0.5, 0.0, -0.5, 0.0], [-0.5, 0.5, 0.0, 0.0]],
                                                     dtype=torch.float64))
    returns = discounted_returns(rewards, 0.5)  # row 0: 0.5 + 0.5 * (0 + 0.5 * -0.5); row 1: -0.5 + 0.5 * 0.5
    torch.testing.assert_close(returns, torch.tensor([[0.375, -0.25, -0.5, 0.0], [-0.25, 0.5, 0.0, 0.0]],
                                                     dtype=torch.float64))
    baseline = torch.tensor([0.125, -0.25, 0.5, 0.7], dtype=torch.float64)
    log_probs = torch.tensor([[-1.0, -2.0, -3.0, -4.0], [-0.5, -1.5, -9.0, -4.0]], dtype=torch.float64,
                             requires_grad=True)
    loss = reinforce_loss(log_probs, returns, baseline, alive)
    # advantages: row 0 [0.25, 0, -1], row 1 [-0.375, 0.75]; -(2.75 + (0.1875 - 1.125)) / 2
    assert loss.item() == pytest.approx(-0.90625, abs=1e-15)
    loss.backward()
    torch.testing.assert_close(log_probs.grad, -torch.tensor([[0.25, 0.0, -1.0, 0.0], [-0.375, 0.75, 0.0, 0.0]],
                                                             dtype=torch.float64) / 2)
    new = updated_baseline(baseline, returns, alive, 0.25)
    # 0.25 * b_t + 0.75 * the mean return of the sentences at step t; step 3, which none reaches, keeps b_3
    torch.testing.assert_close(new, torch.tensor([0.078125, 0.03125, -0.25, 0.7], dtype=torch.float64))


@pytest.mark.parametrize("discount", [0.0, 0.23, 1.0])
def test_discounted_returns_are_the_power_sums(discount):
    rewards = torch.randn(3, 6, generator=torch.Generator().manual_seed(0), dtype=torch.float64)
    want = [[sum(discount ** (s - t) * float(rewards[b, s]) for s in range(t, 6)) for t in range(6)] for b in range(3)]
    torch.testing.assert_close(discounted_returns(rewards, discount), torch.tensor(want, dtype=torch.float64))


def test_undiscounted_its_expected_gradient_is_that_of_the_expected_total_reward():
    """Over every string of a 3-token vocabulary (EOS included) and length 3, each weighted by its
    probability, the loss with discount 1 and any baseline has the gradient of -E[sum_t r_t]
    computed by enumeration: REINFORCE with per-step rewards and a baseline that depends on the
    step only is unbiased."""
    torch.manual_seed(0)
    gen = Generator(vocab_size=5, emb_dim=4, hidden_dim=6, num_layers=1, latent_dim=3, prior="normal",
                    banned=[0, 1]).double().eval()
    d = LSTMDiscriminator(5, emb_dim=4, hidden_dim=5, dropout=0.0).double().eval()
    for param in [*gen.parameters(), *d.parameters()]:
        param.data.mul_(3.0)  # spread probabilities and rewards
    raw = torch.tensor(list(itertools.product([2, 3, 4], repeat=3)))  # (27, 3) raw strings, cut after EOS below
    z = torch.randn(1, 3, generator=torch.Generator().manual_seed(1), dtype=torch.float64).expand(len(raw), -1)
    prob = torch.log_softmax(gen(raw, z), -1).gather(-1, raw.unsqueeze(-1)).sum((1, 2)).exp()  # (27,)
    done = gen._finish(raw, None)
    alive = steps_alive(done.lengths, 3).double()
    with torch.no_grad():
        rewards = step_rewards(d.step_logits(done.tokens), alive)  # (27, 3)
    params = list(gen.parameters())
    expected = torch.autograd.grad(-(prob * rewards.sum(1)).sum(), params)
    returns, baseline = discounted_returns(rewards, 1.0), torch.tensor([0.3, -0.7, 0.2], dtype=torch.float64)
    logp = token_log_probs(gen, done.tokens, done.lengths, z)
    surrogate = sum(prob[s].detach() * reinforce_loss(logp[s:s + 1], returns[s:s + 1], baseline, alive[s:s + 1])
                    for s in range(len(raw)))
    got = torch.autograd.grad(surrogate, params)
    assert rewards.abs().max() > 0.3 and max(e.abs().max() for e in expected) > 1e-3  # something to compare
    for g, e in zip(got, expected):
        torch.testing.assert_close(g, e, rtol=1e-9, atol=1e-12)


def _discriminator() -> LSTMDiscriminator:
    torch.manual_seed(3)
    d = LSTMDiscriminator(7, emb_dim=5, hidden_dim=6, dropout=0.0).double().eval()
    for param in d.parameters():
        param.data.mul_(3.0)  # logits far from 0
    return d


def test_step_logits_score_each_prefix_alone_and_end_in_the_sentence_logit():
    d = _discriminator()
    tokens = torch.tensor([[3, 4, 5, 2, 0], [6, 2, 0, 0, 0]])
    with torch.no_grad():
        logits = d.step_logits(tokens)  # (2, 5)
        changed = tokens.clone()
        changed[0, 2:4] = torch.tensor([6, 3])
        again = d.step_logits(changed)
        assert torch.equal(logits[0, :2], again[0, :2]) and not torch.equal(logits[0, 2], again[0, 2])
        assert (logits[:, 4] == 0).all() and (logits[1, 2:] == 0).all() and (logits[1, :2] != 0).all()  # 0 at pads
        last = d.forward_tokens(tokens)[:, 0]  # the sentence's logit: its last token's state
        torch.testing.assert_close(logits[[0, 1], [3, 1]], last, rtol=1e-12, atol=1e-12)


def test_the_discriminator_loss_is_the_bce_at_every_step():
    d = _discriminator()
    real, fake = torch.tensor([[3, 4, 2, 0], [5, 6, 4, 2]]), torch.tensor([[6, 2, 0, 0], [4, 4, 4, 4]])
    lr, lf = torch.tensor([3, 4]), torch.tensor([2, 4])
    with torch.no_grad():
        logits_r, logits_f = d.step_logits(real), d.step_logits(fake)
    got = per_step_bce(logits_r, steps_alive(lr, 4).double(), logits_f, steps_alive(lf, 4).double()).item()

    def mean_bce(logits, lengths, target):
        """-log P(label) of every step of every sentence, P(real) = 1 / (1 + exp(-logit)), averaged."""
        sign = -1.0 if target else 1.0
        terms = [math.log(1.0 + math.exp(sign * float(logits[b, t]))) for b in range(2) for t in range(int(lengths[b]))]
        return sum(terms) / len(terms)
    assert got == pytest.approx(0.5 * mean_bce(logits_r, lr, 1) + 0.5 * mean_bce(logits_f, lf, 0), rel=1e-12)


def _trainer(tmp_path: Path, *overrides: str) -> Trainer:
    cfg = config.load(None, [*FAST, *SCRATCH, *overrides])
    return Trainer(cfg, prepare(cfg.data, cfg.run.seed), tmp_path, Monitor(tmp_path, progress=False, enabled=False))


def _objective(tr: Trainer, discount: float):
    """The G step's pieces recomputed from the trainer's streams: loss (under tr's baseline), returns, alive."""
    alg = tr.algorithm
    z, fake = alg.sample(8)
    alive = steps_alive(fake.lengths, fake.tokens.shape[1])
    tr.D.eval()
    with torch.no_grad():
        returns = discounted_returns(step_rewards(tr.D.step_logits(fake.tokens), alive), discount)
    tr.D.train()
    tr.G.eval()
    loss = reinforce_loss(token_log_probs(tr.G, fake.tokens, fake.lengths, z), returns, alg.baseline, alive)
    tr.G.train()
    return loss, returns, alive


def test_the_gradient_reaches_every_generator_weight_and_the_g_step_follows_it(tmp_path, data_root):
    """The REINFORCE loss differentiates into every generator weight (z's projection included) and
    none of D's; the G step computes that loss from the same draws under the baseline before its
    update, then updates the baseline with the batch's returns and leaves D as it was."""
    tr = _trainer(tmp_path, "scratchgan.discount=0.5", "scratchgan.baseline_decay=0.3")
    alg = tr.algorithm
    assert isinstance(alg, ScratchGAN) and alg.baseline.shape == (tr.corpus.max_len,)
    alg.baseline = torch.linspace(-0.2, 0.2, tr.corpus.max_len)
    noise = tr.noise_rng.get_state()
    loss, returns, alive = _objective(tr, 0.5)
    loss.backward()
    for name, param in tr.G.named_parameters():
        assert param.grad is not None and param.grad.abs().sum() > 0, name
    assert all(p.grad is None for p in tr.D.parameters())
    tr.G.zero_grad()
    tr.noise_rng.set_state(noise)
    before, d_before = alg.baseline.clone(), {k: v.clone() for k, v in tr.D.state_dict().items()}
    g_before = tr.G.latent_proj.weight.detach().clone()
    stats = alg.g_step(1.0)
    assert stats["adv/g_loss"] == pytest.approx(loss.item(), rel=1e-5)
    torch.testing.assert_close(alg.baseline, updated_baseline(before, returns, alive, 0.3))
    assert 0 < stats["adv/reward"] < 1 and {"adv/return", "adv/baseline", "adv/fake_tokens"} <= set(stats)
    assert all(torch.equal(v, tr.D.state_dict()[k]) for k, v in d_before.items())
    assert not torch.equal(g_before, tr.G.latent_proj.weight)
    assert tr.D.training and tr.G.training


def test_the_d_step_minimises_the_per_step_bce_plus_the_l2_penalty(tmp_path, data_root):
    """adv/d_loss is per_step_bce of that step's real and fake batches (the same draws, recomputed)
    plus d_l2 * 0.5 * |weights|^2; the D step leaves the generator as it was."""
    tr = _trainer(tmp_path, "discriminator.dropout=0", "scratchgan.d_l2=0.01")
    data, noise = tr.streams.data.get_state(), tr.noise_rng.get_state()
    fake = tr.algorithm.sample(8)[1]
    idx = tr.batches.draw(8)
    real, real_len = tr.batches.tokens[idx], tr.batches.lengths[idx]
    t = real.shape[1]
    with torch.no_grad():
        bce = per_step_bce(tr.D.step_logits(real), steps_alive(real_len, t), tr.D.step_logits(fake.tokens),
                           steps_alive(fake.lengths, t))
        l2 = 0.5 * sum(float(w.pow(2).sum()) for w in tr.D.parameters())
    tr.streams.data.set_state(data)
    tr.noise_rng.set_state(noise)
    g_before = {k: v.clone() for k, v in tr.G.state_dict().items()}
    stats = tr.algorithm.d_step(1.0)
    assert stats["adv/d_loss"] == pytest.approx(bce.item() + 0.01 * l2, rel=1e-5)
    assert all(torch.equal(v, tr.G.state_dict()[k]) for k, v in g_before.items())
    assert {"adv/d_real", "adv/d_fake"} <= set(stats)


@pytest.mark.parametrize("overrides, message", [
    (["adversarial.algorithm=scratchgan"], "adversarial.loss: scratchgan trains its discriminator with binary"),
    ([*SCRATCH, "discriminator.kind=relgan_cnn"], "discriminator.kind: scratchgan rewards every prefix with an LSTM"),
    ([*SCRATCH, "policy_gradient.rollouts=4"], "policy_gradient.rollouts: an option of adversarial.algorithm seqgan, "
                                              "not scratchgan"),
    ([*SCRATCH, "gumbel.tau_end=0.1"], "gumbel.tau_end: an option of adversarial.algorithm gumbel, not scratchgan"),
    ([*SCRATCH, "mmd.d_weight=0.5"], "mmd.d_weight: an option of adversarial.algorithm textgan_mmd, not scratchgan"),
    ([*SCRATCH, "generator.feedback=soft"], "generator.feedback: scratchgan samples discrete sentences"),
    (["scratchgan.discount=0.5"], "scratchgan.discount: an option of adversarial.algorithm scratchgan, not gumbel; "
                                  "remove it, or set adversarial.algorithm=scratchgan"),
    (["adversarial.algorithm=seqgan", "adversarial.loss=standard", "scratchgan.d_l2=0.1"],
     "scratchgan.d_l2: an option of adversarial.algorithm scratchgan, not seqgan"),
    ([*SCRATCH, "scratchgan.discount=1.5"], r"scratchgan.discount: must be in \[0, 1\]"),
    ([*SCRATCH, "scratchgan.baseline_decay=1"], r"scratchgan.baseline_decay: must be in \[0, 1\)"),
    ([*SCRATCH, "scratchgan.d_l2=-1"], "scratchgan.d_l2: must be >= 0"),
    ([*SCRATCH, "generator.conditional=true", "data.source=grammar"],
     "adversarial.algorithm: scratchgan is not supported with generator.conditional"),
])
def test_bad_scratchgan_settings_are_config_errors(overrides, message):
    with pytest.raises(ConfigError, match=message):
        config.load(None, overrides)


def test_torchrun_is_refused_in_one_line():
    with pytest.raises(UserError, match="adversarial.algorithm=scratchgan trains in one process only"):
        check_distributed("scratchgan", 2)
    check_distributed("scratchgan", 1)


def test_a_bad_option_stops_the_cli_before_writing(tmp_path, data_root):
    res = run_cli("train", BASE, *FAST, f"log.dir={tmp_path}", *SCRATCH, "policy_gradient.d_epochs=2")
    assert res.returncode == 2 and len(res.stderr.strip().splitlines()) == 1, res.stderr
    assert "policy_gradient.d_epochs" in res.stderr and list(tmp_path.iterdir()) == []


TINY = ["generator.emb_dim=16", "generator.hidden_dim=32", "generator.latent_dim=8",
        "discriminator.hidden_dim=16", "adversarial.batch_size=8", "eval.num_samples=20", "eval.bleu_n=[2]",
        "log.progress=false", "run.threads=1", *QUICK_EVAL]  # one thread: tiny models, a busy machine


def test_the_coco_recipe_trains_from_the_cli_on_the_tiny_corpus(tmp_path, data_root):
    """configs/coco_scratchgan.yaml from scratch (no MLE), sizes cut: its scalars reach
    TensorBoard, its checkpoint holds the baseline, and `textgan sample` reads the run."""
    res = run_cli("train", str(REPO / "configs" / "coco_scratchgan.yaml"), f"data.root={data_root}",
                  "data.train=tiny/train.txt", "data.test=tiny/test.txt", *TINY, f"log.dir={tmp_path}",
                  "adversarial.steps=4", "eval.every=0", "eval.sample_every=2", "log.checkpoint_every=2")
    assert res.returncode == 0, res.stderr[-3000:]
    run_dir = tmp_path / "coco_scratchgan"
    scalars = run_scalars(run_dir)
    assert not any(tag.startswith("mle/") for tag in scalars)  # from scratch
    assert len(scalars["adv/g_loss"]) == 4 and len(scalars["adv/d_loss"]) == 4
    assert all(0 < r < 1 for r in scalars["adv/reward"]) and len(scalars["adv/baseline"]) == 4
    assert all(-1 / (1 - 0.23) <= r <= 1 / (1 - 0.23) for r in scalars["adv/return"]) and "adv/tau" not in scalars
    state = checkpoint.load(checkpoint.newest(run_dir / "checkpoints"))
    assert state["progress"]["step"] == 4 and state["baseline"]["values"].abs().sum() > 0
    res = run_cli("sample", str(run_dir), "--num", "3")
    assert res.returncode == 0 and len(res.stdout.splitlines()) == 3, res.stderr


@pytest.mark.slow
def test_the_oracle_recipe_resumed_from_a_checkpoint_ends_bitwise_identical(tmp_path, data_root):
    """configs/oracle20_scratchgan.yaml, sizes cut, resumed from its step 2 checkpoint, ends where
    the uninterrupted run did: the baseline, D's dropout and every stream continue exactly."""
    schedule = [f"data.root={data_root}", "data.num_train=200", "data.num_test=50", *TINY, "adversarial.steps=5",
                "log.checkpoint_every=1", "log.keep_last=20", "eval.every=3", "eval.sample_every=3",
                "discriminator.dropout=0.25", "generator.num_layers=2", "generator.dropout=0.1"]
    reference, resumed = trained_and_cut(tmp_path, str(REPO / "configs" / "oracle20_scratchgan.yaml"), schedule)
    assert checkpoint.load(checkpoint.newest(resumed / "checkpoints"))["baseline"]["values"].abs().sum() > 0
    assert_resume_ends_as_reference(reference, resumed, 5, ("generator", "discriminator", "baseline"))
