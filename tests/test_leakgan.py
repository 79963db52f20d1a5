"""LeakGAN (textgan/models/leakgan.py, textgan/algorithms/leakgan.py): the generator's logits,
goals and leaked features against their definitions on tiny models, the manager's and worker's
losses and the rescaled rewards against hand computations, and the algorithm through the CLI."""
from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F

from conftest import REPO, assert_same_training_state, run_cli, run_scalars, trained_and_cut
from textgan import algorithms, checkpoint, config
from textgan.algorithms.leakgan import (feature_change_cos, intrinsic_rewards, manager_loss, rescaled_ranks,
                                        worker_loss)
from textgan.config import ConfigError
from textgan.errors import UserError
from textgan.models.discriminator import RelGANCNN
from textgan.models.generator import sequence_log_probs
from textgan.models.leakgan import LeakedRun, LeakGANGenerator, goal_windows

V, T, C = 7, 6, 2  # vocabulary, max_len, goal_steps


@pytest.fixture(autouse=True)
def _one_thread():
    """Tiny tensors: one thread (conftest puts the thread count back), never a pool's wake-ups."""
    torch.set_num_threads(1)


def tiny(prior: str = "normal") -> LeakGANGenerator:
    torch.manual_seed(0)
    d = RelGANCNN(V, emb_dim=4, num_rep=2, filter_sizes=[1, 2], num_filters=[3, 3], dropout=0.0)
    return LeakGANGenerator(vocab_size=V, emb_dim=3, hidden_dim=4, manager_dim=5, latent_dim=2, prior=prior,
                            leak=d, max_len=T, goal_steps=C, goal_dim=3, banned=[0, 1])


TOKENS = torch.tensor([[3, 4, 5, 2, 0, 0], [6, 6, 3, 4, 5, 2]])
LENGTHS = torch.tensor([4, 6])


def test_the_logits_are_O_t_times_w_t():
    """Step by step with the model's own cells: g_t = goal(M(F[t])) / |.|, w_t = W_psi (g_t + g_{t-1}),
    logits_t = O_t w_t with O_t the worker's output viewed (V, K), banned tokens at -1e9."""
    gen, z = tiny(), torch.randn(2, 2)
    got = gen.run(TOKENS, z).logits
    hw, cw, hm, cm = gen.init_state(z)
    prev, goals = torch.full((2,), gen.bos_id), []
    for t in range(T):
        onehots = F.one_hot(TOKENS[:, :t], V).float()
        prefix = torch.cat([onehots, F.one_hot(torch.zeros(2, T - t, dtype=torch.long), V).float()], 1)
        hm, cm = gen.manager(gen.leak.features_and_logits(prefix)[0], (hm, cm))
        goals.append(gen.goal(hm) / gen.goal(hm).norm(dim=1, keepdim=True))
        w = gen.psi(sum(goals[-C:]))  # (B, K)
        hw, cw = gen.worker(gen.embedding(prev), (hw, cw))
        for b in range(2):
            o_t = gen.out(hw[b]).view(V, 3)  # (V, K)
            want = o_t @ w[b] + torch.tensor([-1e9, -1e9, 0, 0, 0, 0, 0])
            torch.testing.assert_close(got[b, t], want, rtol=1e-5, atol=1e-5)
        prev = TOKENS[:, t]


def test_goals_are_summed_over_the_last_c_steps():
    goals = torch.randn(2, 5, 3)
    for c in (1, 2, 3, 7):
        got = goal_windows(goals, c)
        for t in range(5):
            want = sum(goals[:, j] for j in range(max(0, t - c + 1), t + 1))
            torch.testing.assert_close(got[:, t], want)


def test_the_leaked_features_are_the_discriminators_on_each_prefix():
    """F[s] is D's feature layer (features_and_logits) on the first s tokens padded to max_len,
    in eval mode, whatever mode the generator is in."""
    gen = tiny()
    gen.train()
    got = gen.prefix_features(TOKENS[:, :5])  # shorter than max_len: padded as D scores it
    for s in range(6):
        prefix = torch.cat([TOKENS[:, :s], torch.zeros(2, T - s, dtype=torch.long)], 1)
        want = gen.leak.features_and_logits(F.one_hot(prefix, V).float())[0]
        torch.testing.assert_close(got[:, s], want)
    d = RelGANCNN(V, emb_dim=4, num_rep=2, filter_sizes=[1, 2], num_filters=[3, 3], dropout=0.0)
    gen.copy_features_from(d)  # the algorithm keeps the copy equal to the trained D
    torch.testing.assert_close(gen.features(TOKENS), d.features_and_logits(F.one_hot(TOKENS, V).float())[0])


def hand_run() -> LeakedRun:
    """Features in two dimensions with easy cosines, unit goals, B = 1, T = 3."""
    feats = torch.tensor([[[0., 0.], [1., 0.], [1., 1.], [0., 1.]]])  # F[0..3]
    goals = torch.tensor([[[1., 0.], [0., 1.], [-1., 0.]]], requires_grad=True)
    return LeakedRun(logits=torch.zeros(1, 3, 4), goals=goals, features=feats)


def test_the_manager_loss_is_the_reward_weighted_cosine_of_goal_and_feature_change():
    run, c = hand_run(), 2
    cos = feature_change_cos(run, torch.tensor([3]), c)
    # t=0: F[2]-F[0]=(1,1) vs (1,0): 1/sqrt2; t=1: F[3]-F[1]=(-1,1) vs (0,1): 1/sqrt2;
    # t=2: F[min(4,3)]-F[2]=(-1,0) vs (-1,0): 1
    r = 1 / math.sqrt(2)
    torch.testing.assert_close(cos, torch.tensor([[r, r, 1.0]]))
    rewards = torch.tensor([[0.5, 0.25, 2.0]])
    loss = manager_loss(cos, rewards)
    torch.testing.assert_close(loss, torch.tensor(-(0.5 * r + 0.25 * r + 2.0)))
    loss.backward()
    assert run.goals.grad.abs().sum() > 0


def test_the_worker_loss_is_reinforce_with_the_intrinsic_reward():
    run, c = hand_run(), 2
    r = intrinsic_rewards(run, c)
    # r_t = (1/c) sum_{i=1..c} cos(F[t+1] - F[t+1-i], g_{t+1-i})
    # t=0: i=1: F1-F0=(1,0) vs g0=(1,0): 1           -> 1/2
    # t=1: i=1: F2-F1=(0,1) vs g1=(0,1): 1; i=2: F2-F0=(1,1) vs g0: 1/sqrt2
    # t=2: i=1: F3-F2=(-1,0) vs g2=(-1,0): 1; i=2: F3-F1=(-1,1) vs g1=(0,1): 1/sqrt2
    s = 1 / math.sqrt(2)
    torch.testing.assert_close(r, torch.tensor([[0.5, (1 + s) / 2, (1 + s) / 2]]))
    assert not r.requires_grad
    logp = torch.log(torch.tensor([[0.5, 0.25, 0.125]]))
    alive = torch.tensor([[True, True, False]])
    want = -(math.log(0.5) * 0.5 + math.log(0.25) * (1 + s) / 2)
    torch.testing.assert_close(worker_loss(logp, r, alive), torch.tensor(want))


def test_the_rescaled_rewards_are_sigmoids_of_the_batch_rank():
    q = torch.tensor([[0.1, 0.5], [0.9, 0.2], [0.3, 0.7]])
    alive = torch.tensor([[True, True], [True, True], [True, False]])
    got = rescaled_ranks(q, alive, delta=16.0)

    def act(rank, count):
        return 1 / (1 + math.exp(-16.0 * (0.5 - rank / count)))
    # column 0: 0.9 rank 1, 0.3 rank 2, 0.1 rank 3 of 3; column 1 (row 2 dead): 0.5 rank 1, 0.2 rank 2 of 2
    want = torch.tensor([[act(3, 3), act(1, 2)], [act(1, 3), act(2, 2)], [act(2, 3), 0.0]])
    torch.testing.assert_close(got, want)


def test_gradients_reach_manager_and_worker_each_from_its_own_loss():
    gen, z = tiny(), torch.randn(2, 2)
    run = gen.run(TOKENS, z, detach_goals=True)
    alive = torch.arange(T) < LENGTHS.unsqueeze(1)
    m = manager_loss(feature_change_cos(run, LENGTHS, C) * alive, torch.rand(2, T) * alive)
    w = worker_loss(sequence_log_probs(run.logits, TOKENS), intrinsic_rewards(run, C), alive)
    manager = [gen.manager.weight_ih, gen.goal.weight]
    worker = [gen.worker.weight_ih, gen.out.weight, gen.psi.weight, gen.embedding.weight]
    m_grads = torch.autograd.grad(m, manager + worker, allow_unused=True, retain_graph=True)
    assert all(g is not None and g.abs().sum() > 0 for g in m_grads[:2])
    assert all(g is None or g.abs().sum() == 0 for g in m_grads[2:])  # the manager's loss moves no worker weight
    w_grads = torch.autograd.grad(w, manager + worker, allow_unused=True, retain_graph=True)
    assert all(g is None for g in w_grads[:2])  # goals detached: the worker's loss moves no manager weight
    assert all(g is not None and g.abs().sum() > 0 for g in w_grads[2:])
    (m + w).backward()
    assert all(p.grad is None for p in gen.leak.parameters())  # D's copy is frozen
    # MLE trains both through w_t
    gen.zero_grad()
    gen.mle_loss(TOKENS, z, pad_id=0).backward()
    assert gen.manager.weight_ih.grad.abs().sum() > 0 and gen.worker.weight_ih.grad.abs().sum() > 0


def test_log_probs_samples_and_rollouts_agree_with_the_teacher_forced_pass():
    gen = tiny().eval()
    z = torch.randn(2, 2)
    logp = gen.token_log_probs(TOKENS, LENGTHS, z)
    want = torch.log_softmax(gen(TOKENS, z), -1).gather(2, TOKENS.unsqueeze(2)).squeeze(2)
    torch.testing.assert_close(logp, want * (torch.arange(T) < LENGTHS.unsqueeze(1)))
    free = gen.sample(z, T, generator=torch.Generator().manual_seed(1), need_dists=False)
    assert not (free.tokens == gen.bos_id).any()  # banned
    # rollouts: every prefix k < its sentence's length, 3 completions each, each keeping it
    done = gen.complete(z, TOKENS, LENGTHS, 3, torch.Generator().manual_seed(2))
    pairs = [(1, 0), (1, 1), (2, 0), (2, 1), (3, 0), (3, 1), (4, 1), (5, 1)]  # (k, sentence), by k
    assert list(zip(done.prefix.tolist(), done.sample.tolist())) == [pair for pair in pairs for _ in range(3)]
    for k, b, out in zip(done.prefix.tolist(), done.sample.tolist(), done.tokens):
        assert torch.equal(out[:k], TOKENS[b, :k]) and (out[k:] != gen.bos_id).all()
    # the sampler's state after a prefix (what a completion continues from) is the teacher-forced one
    teacher = gen.run(TOKENS, z).logits
    cur = gen.start(z, T)
    for t in range(T):
        torch.testing.assert_close(gen.step(cur, t), teacher[:, t], rtol=1e-5, atol=1e-4)
        gen.advance(cur, t, TOKENS[:, t])
    assert gen.sample_latent(3, torch.Generator().manual_seed(0)).shape == (3, 2)


LEAK = ["adversarial.algorithm=leakgan", "adversarial.loss=standard", "discriminator.num_rep=1"]


@pytest.mark.parametrize("overrides, message", [
    ([*LEAK, "generator.core=relational_memory"], "generator.core: with adversarial.algorithm=leakgan"),
    ([*LEAK, "discriminator.kind=lstm"], "discriminator.kind: with adversarial.algorithm=leakgan"),
    ([*LEAK, "generator.num_layers=2"], "generator.num_layers: with adversarial.algorithm=leakgan"),
    ([*LEAK, "adversarial.g_ema=0.9"], "adversarial.g_ema: with adversarial.algorithm=leakgan"),
    ([*LEAK, "generator.init_from=runs/x"], "generator.init_from: with adversarial.algorithm=leakgan"),
    ([*LEAK, "policy_gradient.rollout_update_rate=0.5"], "rollout_update_rate: an option of adversarial.algorithm seqgan"),
    ([*LEAK, "gumbel.tau_end=0.5"], "gumbel.tau_end: an option of adversarial.algorithm gumbel, not leakgan"),
    (["leakgan.goal_steps=2"], "leakgan.goal_steps: an option of adversarial.algorithm leakgan, not gumbel"),
    (["adversarial.algorithm=seqgan", "adversarial.loss=standard", "leakgan.mle_every=2"],
     "leakgan.mle_every: an option of adversarial.algorithm leakgan, not seqgan"),
    ([*LEAK, "leakgan.goal_dim=0"], "leakgan.goal_dim: must be >= 1"),
    ([*LEAK, "leakgan.rescale_delta=0"], "leakgan.rescale_delta: must be > 0"),
])
def test_a_wrong_leakgan_option_is_a_config_error(overrides, message):
    with pytest.raises(ConfigError, match=message):
        config.load(None, overrides)


def test_leakgan_is_refused_under_torchrun():
    with pytest.raises(UserError, match="adversarial.algorithm=leakgan trains in one process only"):
        algorithms.check_distributed("leakgan", 2)


RECIPE = str(REPO / "configs" / "coco_leakgan.yaml")


def tiny_recipe(data_root, tmp_path) -> list[str]:
    """configs/coco_leakgan.yaml on the tiny corpus, its sizes and schedule cut to seconds."""
    return [f"data.root={data_root}", "data.train=tiny/train.txt", "data.test=tiny/test.txt", f"log.dir={tmp_path}",
            "data.tokenizer=whitespace", "data.max_len=10",
            "log.progress=false", "generator.emb_dim=8", "generator.hidden_dim=8", "mle.epochs=1",
            "discriminator.emb_dim=8", "discriminator.filter_sizes=[1, 2, 3]", "discriminator.num_filters=[4, 4, 4]",
            "adversarial.batch_size=4", "adversarial.d_pretrain_steps=1", "policy_gradient.d_samples=8",
            "policy_gradient.d_epochs=1", "policy_gradient.rollouts=2", "leakgan.mle_every=2", "leakgan.mle_batches=1",
            "leakgan.pretrain_batches=1", "eval.num_samples=8", "eval.bleu_n=[2]", "eval.latent_draws=1",
            "run.threads=1"]


def test_the_coco_recipe_trains_samples_and_resumes_bitwise_from_the_cli(tmp_path, data_root):
    """One run of the recipe (4 steps, a checkpoint each), its scalars and samples, then a copy cut
    back to step 2 and resumed: it ends bit for bit where the uninterrupted run did."""
    schedule = [*tiny_recipe(data_root, tmp_path), "adversarial.steps=4", "log.checkpoint_every=1", "log.keep_last=20",
                "eval.every=0", "eval.latent_samples=0", "eval.interp_pairs=0"]  # NLL_gen kept: teacher forced
    reference, resumed = trained_and_cut(tmp_path, RECIPE, schedule)
    scalars = run_scalars(reference)
    for tag in ("adv/manager_loss", "adv/worker_loss", "adv/reward", "adv/intrinsic_reward", "adv/d_loss"):
        assert len(scalars[tag]) == 4 and all(math.isfinite(v) for v in scalars[tag]), tag
    assert all(0 < r < 1 for r in scalars["adv/reward"]) and len(scalars["dpre/d_loss"]) == 1
    assert len(scalars["adv/mle_nll"]) == 3  # pretraining (logged with step 0), interleaved after steps 2 and 4
    nll = [tag for tag in scalars if tag.startswith("eval/nll_gen")]
    assert nll and all(math.isfinite(scalars[tag][-1]) for tag in nll)
    a = checkpoint.load(checkpoint.newest(reference / "checkpoints"))
    leaked = {k[len("leak."):]: v for k, v in a["generator"].items() if k.startswith("leak.")}
    assert leaked and all(torch.equal(v, a["discriminator"][k]) for k, v in leaked.items())  # the copy is D
    res = run_cli("sample", str(reference), "--num", "3")
    assert res.returncode == 0 and len(res.stdout.splitlines()) == 3, res.stderr
    res = run_cli("train", "--resume", str(resumed))
    assert res.returncode == 0, res.stderr[-3000:]
    b = checkpoint.load(checkpoint.newest(resumed / "checkpoints"))
    assert a["progress"]["step"] == 4
    assert_same_training_state(a, b)


def test_a_bad_leakgan_option_stops_the_cli_with_one_line(tmp_path, data_root):
    res = run_cli("train", RECIPE, *tiny_recipe(data_root, tmp_path), "generator.core=relational_memory")
    assert res.returncode == 2 and len(res.stderr.strip().splitlines()) == 1, res.stderr
    assert "generator.core" in res.stderr and list(tmp_path.iterdir()) == []
