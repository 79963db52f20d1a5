"""The trainer with real torch on the tiny corpus: MLE lowers NLL, the D step leaves the generator
alone, the G step moves it, and the fast discriminator path matches the plain one."""
from __future__ import annotations

import copy

import pytest
import torch

from conftest import FAST
from textgan import config
from textgan.corpus import prepare
from textgan.metrics.nll import nll_gen
from textgan.monitor import Monitor
from textgan.train import Trainer


def _trainer(tmp_path, *overrides: str) -> Trainer:
    cfg = config.load(None, [o for o in FAST if not o.startswith("data.root")] + list(overrides))
    corpus = prepare(cfg.data, cfg.run.seed)
    return Trainer(cfg, corpus, tmp_path, Monitor(tmp_path, progress=False, enabled=False))


@pytest.fixture
def root_override(data_root):
    return f"data.root={data_root}"


@pytest.mark.slow
def test_mle_lowers_test_nll(tmp_path, root_override):
    tr = _trainer(tmp_path, root_override, "generator.prior=none")
    test = tr.corpus.test
    before = nll_gen(tr.G, test.tokens, test.lengths).per_token
    for _ in range(6):
        assert tr.mle_epoch()
    after = nll_gen(tr.G, test.tokens, test.lengths).per_token
    assert after < before - 1.0, (before, after)


def test_d_step_does_not_touch_generator(tmp_path, root_override):
    tr = _trainer(tmp_path, root_override)
    g_before = copy.deepcopy(tr.G.state_dict())
    d_before = copy.deepcopy(tr.D.state_dict())
    tr.d_step(tau=1.0)
    assert all(p.grad is None for p in tr.G.parameters())
    assert all(torch.equal(v, tr.G.state_dict()[k]) for k, v in g_before.items())
    assert any(not torch.equal(v, tr.D.state_dict()[k]) for k, v in d_before.items())


@pytest.mark.slow
@pytest.mark.parametrize("loss", ["standard", "rsgan", "hinge", "lsgan", "wgan_gp"])
def test_g_step_moves_generator_only(tmp_path, root_override, loss):
    tr = _trainer(tmp_path, root_override, f"adversarial.loss={loss}")
    tr.d_step(tau=0.5)  # wgan_gp exercises the double backward through the fast conv
    g_before = copy.deepcopy(tr.G.state_dict())
    d_before = copy.deepcopy(tr.D.state_dict())
    stats = tr.g_step(tau=0.5)
    assert torch.isfinite(torch.tensor(stats["adv/g_loss"]))
    changed = [k for k, v in g_before.items() if not torch.equal(v, tr.G.state_dict()[k])]
    assert {"embedding.weight", "out.weight", "latent_proj.weight"} <= set(changed)
    assert all(torch.equal(v, tr.D.state_dict()[k]) for k, v in d_before.items())


def test_adversarial_step_counts_and_logs(tmp_path, root_override):
    tr = _trainer(tmp_path, root_override, "adversarial.steps=4", "adversarial.d_steps=2")
    stats = tr.adversarial_step()
    assert tr.progress.step == 1
    for key in ("adv/d_loss", "adv/g_loss", "adv/tau", "adv/tokens_per_s", "adv/d_real", "adv/d_fake"):
        assert key in stats


@pytest.mark.slow
def test_order_g_first_updates_generator_before_discriminator(tmp_path, root_override):
    """adversarial.order=g_first is the G update against the untrained D, then the D updates:
    the same state as calling them in that order by hand, and not the d_first state."""
    overrides = (root_override, "adversarial.steps=4", "adversarial.d_steps=2")
    tr = _trainer(tmp_path, *overrides, "adversarial.order=g_first")
    by_hand = _trainer(tmp_path, *overrides)
    d_first = _trainer(tmp_path, *overrides)
    torch.manual_seed(0)  # the discriminator's dropout draws from the global generator
    tr.adversarial_step()
    torch.manual_seed(0)
    tau = float(by_hand.cfg.gumbel.tau_start)
    by_hand.g_step(tau)
    by_hand.d_step(tau)
    by_hand.d_step(tau)
    torch.manual_seed(0)
    d_first.adversarial_step()
    for k, v in tr.G.state_dict().items():
        assert torch.equal(v, by_hand.G.state_dict()[k]), k
    for k, v in tr.D.state_dict().items():
        assert torch.equal(v, by_hand.D.state_dict()[k]), k
    assert any(not torch.equal(v, d_first.G.state_dict()[k]) for k, v in tr.G.state_dict().items())


def test_non_finite_loss_skips_update(tmp_path, root_override):
    tr = _trainer(tmp_path, root_override)
    with torch.no_grad():
        tr.D.logit.bias.fill_(float("nan"))
    g_before = copy.deepcopy(tr.G.state_dict())
    tr.g_step(tau=1.0)
    assert tr.progress.skipped == 1
    assert all(torch.equal(v, tr.G.state_dict()[k]) for k, v in g_before.items())


def test_best_checkpoint_skips_evaluations_above_the_ceiling(tmp_path, root_override):
    """log.best_ceiling: an evaluation with a better best_metric but its ceiling metric above the
    bound (or missing, or NaN) leaves best.pt and the best value alone."""
    from textgan import checkpoint

    tr = _trainer(tmp_path, root_override, "log.best_metric=bleu2_exact",
                  "log.best_ceiling_metric=nll_gen_mc8_tok", "log.best_ceiling=5.0")
    best = tmp_path / "checkpoints" / "best.pt"
    tr.keep_best({"bleu2_exact": 0.70, "nll_gen_mc8_tok": 6.0})
    assert tr.progress.best is None and not best.exists()
    tr.keep_best({"bleu2_exact": 0.60, "nll_gen_mc8_tok": 4.9})
    assert tr.progress.best == 0.60 and checkpoint.load(best)["progress"]["best"] == 0.60
    for above in ({"bleu2_exact": 0.90, "nll_gen_mc8_tok": 5.01}, {"bleu2_exact": 0.90},
                  {"bleu2_exact": 0.90, "nll_gen_mc8_tok": float("nan")}):
        tr.keep_best(above)
        assert tr.progress.best == 0.60
    tr.keep_best({"bleu2_exact": 0.65, "nll_gen_mc8_tok": 5.0})  # at the bound counts
    assert tr.progress.best == 0.65 and checkpoint.load(best)["progress"]["best"] == 0.65


def test_resumed_run_with_other_best_settings_starts_its_best_afresh(tmp_path, root_override):
    """A run resumed with a changed log.best_* setting compares new evaluations among themselves,
    not with a best found under the old rule (which may not even be the same metric)."""
    from textgan import checkpoint

    strict = _trainer(tmp_path, root_override, "log.best_metric=bleu2_exact",
                      "log.best_ceiling_metric=nll_gen_mc8_tok", "log.best_ceiling=5.0")
    strict.keep_best({"bleu2_exact": 0.60, "nll_gen_mc8_tok": 4.9})
    best = tmp_path / "checkpoints" / "best.pt"
    state = checkpoint.load(best)
    same = _trainer(tmp_path / "same", root_override, "log.best_metric=bleu2_exact",
                    "log.best_ceiling_metric=nll_gen_mc8_tok", "log.best_ceiling=5.0")
    same.load_state_dict(state)
    same.keep_best({"bleu2_exact": 0.55, "nll_gen_mc8_tok": 4.0})  # same rule: 0.60 stays the best
    assert same.progress.best == 0.60 and not (tmp_path / "same" / "checkpoints" / "best.pt").exists()
    looser = _trainer(tmp_path / "looser", root_override, "log.best_metric=bleu2_exact",
                      "log.best_ceiling_metric=nll_gen_mc8_tok", "log.best_ceiling=6.0")
    looser.load_state_dict(state)
    looser.keep_best({"bleu2_exact": 0.55, "nll_gen_mc8_tok": 5.5})  # new rule: the first counts
    assert looser.progress.best == 0.55
    assert checkpoint.load(tmp_path / "looser" / "checkpoints" / "best.pt")["progress"]["best"] == 0.55
    other = _trainer(tmp_path / "other", root_override, "log.best_metric=nll_gen_mc8_tok", "log.best_mode=min")
    other.load_state_dict(state)
    other.keep_best({"bleu2_exact": 0.9, "nll_gen_mc8_tok": 7.0})  # another metric: 0.60 is no NLL
    assert other.progress.best == 7.0


@pytest.mark.parametrize("prior,protocol", [("none", "exact"), ("normal", "exact"), ("normal", "both"),
                                            ("none", "texygen")])
def test_metric_names_are_what_evaluate_returns(tmp_path, root_override, prior, protocol):
    """log.best_metric is checked against metric_names before training; it must match evaluate."""
    from textgan.evaluate import metric_names

    tr = _trainer(tmp_path, root_override, f"generator.prior={prior}", f"eval.protocol={protocol}")
    assert set(tr.evaluate()) == set(metric_names(tr.cfg.eval, tr.corpus, prior))


@pytest.mark.slow
def test_training_logs_the_published_protocol_as_textgan_eval_scores_it(tmp_path, root_override):
    """eval.protocol=both: the in-training evaluation logs the texygen BLEU and RelGAN's NLL_gen
    (training set, per position) to TensorBoard, with the same values `textgan eval --protocol
    both` gives for the same generator and seed."""
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    from textgan.evaluation_cli import eval_metrics
    from textgan.sample import Loaded

    cfg = config.load(None, [o for o in FAST if not o.startswith("data.root")]
                      + [root_override, "eval.protocol=both", "eval.num_samples=40"])
    corpus = prepare(cfg.data, cfg.run.seed)
    monitor = Monitor(tmp_path, progress=False)
    tr = Trainer(cfg, corpus, tmp_path, monitor)
    tr.mle_epoch()
    logged = tr.evaluate()
    monitor.close()
    assert {"bleu2_exact", "self_bleu2_loo", "bleu2_texygen", "self_bleu2_texygen", "nll_gen_pos_train"} <= set(logged)
    loaded = Loaded(tr.G, corpus.vocab, cfg, corpus.max_len, tmp_path)
    again = eval_metrics(loaded, corpus, num=40, seed=cfg.run.seed + 13, protocol="both")
    assert again == pytest.approx(logged, rel=1e-6)
    acc = EventAccumulator(str(next(tmp_path.rglob("events.out.tfevents.*"))), size_guidance={"scalars": 0})
    acc.Reload()
    for name in ("bleu2_texygen", "self_bleu2_texygen", "nll_gen_pos_train", "bleu2_exact"):
        assert acc.Scalars(f"eval/{name}")[-1].value == pytest.approx(logged[name], rel=1e-6), name


@pytest.mark.parametrize("clip", [0.0, 0.05, 1e6])
def test_step_clips_exactly_as_clip_grad_norm(clip):
    """finite_step's update equals torch's clip_grad_norm_ then Adam, whether the norm is above
    the clip (scaled), below it (left as is, no multiply by 1.0) or clipping is off."""
    from textgan.guard import finite_step
    torch.manual_seed(0)
    model = torch.nn.Sequential(torch.nn.Linear(6, 5), torch.nn.Tanh(), torch.nn.Linear(5, 3))
    twin = copy.deepcopy(model)
    x = torch.randn(8, 6)
    opt, opt_twin = torch.optim.Adam(model.parameters(), 0.1), torch.optim.Adam(twin.parameters(), 0.1)
    norm = finite_step(opt, model.parameters(), model(x).square().sum(), clip)
    opt_twin.zero_grad()
    twin(x).square().sum().backward()
    want = torch.nn.utils.clip_grad_norm_(twin.parameters(), clip if clip > 0 else float("inf"))
    opt_twin.step()
    assert norm == pytest.approx(float(want), rel=1e-6)
    assert (0 < clip < norm) == (clip == 0.05)  # both branches are exercised
    for a, b in zip(model.parameters(), twin.parameters()):
        assert torch.equal(a, b)


@pytest.mark.slow
def test_mle_weight_adds_the_teacher_forced_nll_gradient(tmp_path, root_override):
    """adversarial.mle_weight=w: the G step's gradient is that of the adversarial loss plus w times
    the per-token NLL of a real batch, recomputed here from plain teacher-forced logits and the
    same random draws (data RNG: real batch, then the NLL batch; noise RNG: fake z and Gumbel
    noise, then the NLL batch's z)."""
    w = 0.5
    tr = _trainer(tmp_path, root_override, f"adversarial.mle_weight={w}", "adversarial.grad_clip=0",
                  "discriminator.dropout=0")
    G, D = copy.deepcopy(tr.G), copy.deepcopy(tr.D)
    data, noise = torch.Generator(), torch.Generator()
    data.set_state(tr.data_rng.get_state())
    noise.set_state(tr.noise_rng.get_state())
    stats = tr.g_step(tau=0.5)
    got = {name: p.grad for name, p in tr.G.named_parameters()}

    tokens, b = tr.batches.tokens, tr.adv_bs
    v, pad = len(tr.corpus.vocab), tr.corpus.vocab.pad_id
    real = torch.nn.functional.one_hot(tokens[torch.randint(tokens.shape[0], (b,), generator=data)], v).float()
    fake = G.sample(G.sample_latent(b, noise), tr.corpus.max_len, tau=0.5, generator=noise).dists
    adv = tr.algorithm.loss_g(D(real), D(fake))
    gold = tokens[torch.randint(tokens.shape[0], (b,), generator=data)]
    logits = G(gold, G.sample_latent(b, noise))  # (B, T, V)
    nll = torch.nn.functional.cross_entropy(logits.reshape(-1, v), gold.reshape(-1), ignore_index=pad)
    assert stats["adv/g_mle_loss"] == pytest.approx(nll.item(), rel=1e-5)
    adv_only = torch.autograd.grad(adv, list(G.parameters()), retain_graph=True, allow_unused=True)
    want = torch.autograd.grad(adv + w * nll, list(G.parameters()), allow_unused=True)
    for (name, _), g, g_adv in zip(G.named_parameters(), want, adv_only):
        if g is None:
            assert got[name] is None or not got[name].any(), name
            continue
        torch.testing.assert_close(got[name], g, rtol=1e-4, atol=1e-5, msg=name)
    assert not torch.allclose(got["out.weight"], adv_only[list(dict(G.named_parameters())).index("out.weight")])


@pytest.mark.slow
def test_mle_weight_steps_drops_the_nll_term_after_its_steps(tmp_path, root_override):
    """adversarial.mle_weight_steps=2: steps 0 and 1 add the NLL term, later steps do not, and from
    then on the generator's update and the random draws are those of mle_weight=0 (the term's real
    batch and latent are no longer drawn), so a run can switch off the term at a step exactly."""
    common = ("adversarial.d_steps=1", "discriminator.dropout=0")
    tr = _trainer(tmp_path, root_override, "adversarial.mle_weight=0.5", "adversarial.mle_weight_steps=2", *common)
    assert ["adv/g_mle_loss" in tr.adversarial_step() for _ in range(2)] == [True, True]
    plain = _trainer(tmp_path / "plain", root_override, *common)
    # the checkpoint's state (models, optimizers, progress, every RNG), deep-copied: a loaded Adam
    # state would otherwise share its moment tensors with tr's
    state = copy.deepcopy(tr.state_dict())
    got = tr.adversarial_step()
    plain.load_state_dict(state)
    want = plain.adversarial_step()
    assert "adv/g_mle_loss" not in got
    assert got["adv/g_loss"] == want["adv/g_loss"] and got["adv/d_loss"] == want["adv/d_loss"]
    for a, b in [*zip(tr.G.parameters(), plain.G.parameters()), *zip(tr.D.parameters(), plain.D.parameters())]:
        assert torch.equal(a, b)
    assert torch.equal(tr.data_rng.get_state(), plain.data_rng.get_state())
