"""The relational memory core (RelGAN's generator cell): one step equals Santoro et al.'s equations
written out by hand from the module's weights, and a generator built on it keeps every contract of
the LSTM one: causal teacher forcing, free running that equals teacher forcing on its own tokens,
z that shifts the initial memory, the fused MLE loss, gradients to every parameter."""
from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F

from conftest import FAST, REPO, run_cli
from textgan.config import ConfigError, load
from textgan.gumbel import gumbel_noise
from textgan.models.generator import Generator
from textgan.models.relational_memory import RelationalMemory

V, PAD, BOS, EOS = 12, 0, 1, 2


def make_gen(prior: str = "normal", feedback: str = "hard", mem_slots: int = 2, seed: int = 0) -> Generator:
    torch.manual_seed(seed)
    gen = Generator(vocab_size=V, emb_dim=8, hidden_dim=16, num_layers=1, latent_dim=5, prior=prior,
                    feedback=feedback, banned=[PAD, BOS], pad_id=PAD, bos_id=BOS, eos_id=EOS,
                    core="relational_memory", mem_slots=mem_slots, num_heads=2, head_size=3)
    with torch.no_grad():
        gen.out.bias[EOS] += 0.5  # so that some, not all, sequences end early
    return gen


def latent(gen: Generator, num: int, seed: int) -> torch.Tensor:
    return gen.sample_latent(num, torch.Generator().manual_seed(seed))


def reference_step(rm: RelationalMemory, x: torch.Tensor, memory: torch.Tensor) -> torch.Tensor:
    """One memory update by hand: attention head by head with an explicit softmax, then the
    residual MLP and the input and forget gates (Santoro et al. 2018, section 2; the layer norm
    of q, k, v and the (3K)^-1/2 scale as in RelGAN's code)."""
    rows = torch.cat([memory, x[:, None]], 1)  # (B, S + 1, D)
    qkv = F.layer_norm(rows @ rm.qkv.weight.T, (3 * rm.width,), rm.norm_qkv.weight, rm.norm_qkv.bias)
    heads = []
    for h in range(rm.num_heads):  # head h's columns: [q | k | v], each head_size wide
        q, k, v = qkv[..., 3 * h * rm.head_size:3 * (h + 1) * rm.head_size].chunk(3, dim=-1)
        weights = torch.softmax(q @ k.transpose(1, 2) / math.sqrt(3 * rm.head_size), -1)
        heads.append(weights @ v)
    rows = F.layer_norm(rows + torch.cat(heads, -1), (rm.width,), rm.norm_attention.weight, rm.norm_attention.bias)
    hidden = torch.relu(rows @ rm.mlp[0].weight.T + rm.mlp[0].bias) @ rm.mlp[2].weight.T + rm.mlp[2].bias
    rows = F.layer_norm(rows + hidden, (rm.width,), rm.norm_mlp.weight, rm.norm_mlp.bias)
    gates = (x @ rm.gate_input.weight.T)[:, None] + torch.tanh(memory) @ rm.gate_memory.weight.T
    i, f = gates.chunk(2, -1)
    return torch.sigmoid(i) * torch.tanh(rows[:, :-1]) + torch.sigmoid(f + 1.0) * memory


@pytest.mark.parametrize("mem_slots", [1, 3])
def test_step_equals_the_equations_by_hand(mem_slots):
    torch.manual_seed(0)
    rm = RelationalMemory(input_dim=5, mem_slots=mem_slots, num_heads=2, head_size=4)
    x = rm.input_proj(torch.randn(3, 5))
    memory = rm.initial_memory(3, "cpu", torch.float32) + 0.3 * torch.randn(3, mem_slots, 8)
    torch.testing.assert_close(rm.step(x, memory), reference_step(rm, x, memory), atol=1e-5, rtol=1e-5)
    outputs, last = rm(torch.randn(3, 4, 5), memory)
    assert outputs.shape == (3, 4, mem_slots * 8) and torch.equal(outputs[:, -1], last.flatten(1))


def test_forward_equals_stepping_with_gradients():
    """forward computes the input's projections for all steps at once; step one at a time."""
    torch.manual_seed(1)
    rm = RelationalMemory(input_dim=5, mem_slots=2, num_heads=2, head_size=4)
    inputs = torch.randn(3, 6, 5, requires_grad=True)
    memory = rm.initial_memory(3, "cpu", torch.float32) + 0.3 * torch.randn(3, 2, 8)
    outputs, _ = rm(inputs, memory)
    grads = torch.autograd.grad(outputs.square().sum(), [inputs, *rm.parameters()])
    stepped, m = [], memory
    for t in range(6):
        m = rm.step(rm.input_proj(inputs[:, t]), m)
        stepped.append(m.flatten(1))
    stepped = torch.stack(stepped, 1)
    torch.testing.assert_close(outputs, stepped, atol=1e-6, rtol=1e-5)
    for got, want in zip(grads, torch.autograd.grad(stepped.square().sum(), [inputs, *rm.parameters()])):
        torch.testing.assert_close(got, want, atol=1e-5, rtol=1e-5)


def test_initial_memory_is_unit_vectors_and_z_shifts_it():
    gen = make_gen(prior="none", mem_slots=2)
    memory = gen.init_state(torch.zeros(4, 5))
    assert torch.equal(memory, torch.eye(2, 6).expand(4, 2, 6))
    tokens = torch.randint(3, V, (4, 6), generator=torch.Generator().manual_seed(0))
    with torch.no_grad():  # prior none ignores z: the plain language model
        assert torch.equal(gen(tokens, torch.zeros(4, 5)), gen(tokens, torch.randn(4, 5)))
    gen = make_gen(prior="normal")
    z = latent(gen, 4, 1)
    with torch.no_grad():
        shift = gen.init_state(z) - torch.eye(2, 6)
        torch.testing.assert_close(shift, gen.latent_proj(z).view(4, 2, 6))
        assert not torch.allclose(gen(tokens, z), gen(tokens, latent(gen, 4, 2)))


@pytest.mark.parametrize("k", [0, 3, 5])
def test_teacher_forcing_is_causal(k):
    gen = make_gen().eval()
    tokens = torch.randint(3, V, (3, 7), generator=torch.Generator().manual_seed(4))
    z = latent(gen, 3, 5)
    changed = tokens.clone()
    changed[:, k] = (tokens[:, k] - 3 + 1) % (V - 3) + 3
    with torch.no_grad():
        before, after = gen(tokens, z), gen(changed, z)
    assert torch.equal(before[:, : k + 1], after[:, : k + 1])
    if k + 1 < 7:
        assert not torch.allclose(before[:, k + 1], after[:, k + 1])


def test_hard_feedback_equals_teacher_forcing_on_own_output():
    gen = make_gen(feedback="hard").eval()
    z = latent(gen, 8, 0)
    with torch.no_grad():
        out = gen.sample(z, 9, generator=torch.Generator().manual_seed(5), need_dists=False)
        logits = gen(out.tokens, z)  # (B, T, V)
    noise = gumbel_noise((9, 8, V), torch.Generator().manual_seed(5)).transpose(0, 1)
    again = (logits + noise).argmax(-1)
    for row in range(8):
        n = out.lengths[row]
        assert torch.equal(again[row, :n], out.tokens[row, :n])
    assert (out.lengths < 9).any()  # some sequences ended: the padding path ran too


@pytest.mark.parametrize("prior", ["none", "normal"])
def test_fused_mle_loss_equals_cross_entropy_of_the_logits(prior):
    gen = make_gen(prior=prior)
    tokens = torch.randint(3, V, (4, 6), generator=torch.Generator().manual_seed(2))
    tokens[0, 4:] = PAD
    z = latent(gen, 4, 3)
    ref = F.cross_entropy(gen(tokens, z).reshape(-1, V), tokens.reshape(-1), ignore_index=PAD)
    loss = gen.mle_loss(tokens, z, pad_id=PAD)
    torch.testing.assert_close(loss, ref, atol=1e-5, rtol=1e-5)
    params = [p for p in gen.parameters() if p.requires_grad]
    for got, want in zip(torch.autograd.grad(loss, params, allow_unused=True),
                         torch.autograd.grad(ref, params, allow_unused=True)):
        if want is None:
            assert got is None or not got.any()
        else:
            torch.testing.assert_close(got, want, atol=1e-5, rtol=1e-5)


@pytest.mark.parametrize("feedback", ["hard", "soft", "straight_through"])
def test_discriminator_gradient_reaches_every_generator_parameter(feedback):
    from textgan.models.discriminator import RelGANCNN

    gen = make_gen(feedback=feedback)
    torch.manual_seed(1)
    disc = RelGANCNN(V, emb_dim=16, num_rep=4, filter_sizes=[2, 3], num_filters=[6, 6], dropout=0.0)
    out = gen.sample(latent(gen, 8, 0), 8, tau=1.0, generator=torch.Generator().manual_seed(0))
    disc(out.dists).mean().backward()
    names = [name for name, _ in gen.named_parameters()]
    assert not any(name.startswith("lstm.") for name in names)
    assert {"memory.qkv.weight", "memory.gate_memory.weight", "memory.norm_mlp.bias", "latent_proj.weight"} <= set(names)
    for name, param in gen.named_parameters():
        assert param.grad is not None and torch.isfinite(param.grad).all() and param.grad.abs().sum() > 0, name


def test_config_checks_and_relgan_config_loads():
    with pytest.raises(ConfigError, match="num_layers"):
        load(str(REPO / "configs" / "coco_relgan.yaml"), ["generator.num_layers=2"])
    with pytest.raises(ConfigError, match="generator.core"):
        load(str(REPO / "configs" / "coco_relgan.yaml"), ["generator.core=transformer"])
    cfg = load(str(REPO / "configs" / "coco_relgan.yaml"), [])
    g = cfg.generator
    assert (g.core, g.mem_slots, g.num_heads, g.head_size) == ("relational_memory", 1, 2, 256)


@pytest.mark.slow
def test_cli_trains_samples_and_refuses_an_lstm_source(data_root, tmp_path):
    """The real CLI on the tiny corpus: MLE then adversarial steps with a relational memory, then
    sampling from the run; a GAN may not start from it with an LSTM config (one-line error)."""
    tiny = [*FAST, f"log.dir={tmp_path}", "generator.head_size=8", "adversarial.steps=2"]
    res = run_cli("train", str(REPO / "configs" / "coco_relgan.yaml"), *tiny)
    assert res.returncode == 0, res.stderr
    run = tmp_path / "coco_relgan"
    sample = run_cli("sample", str(run), "--num", "3", "--seed", "1")
    assert sample.returncode == 0 and len(sample.stdout.splitlines()) == 3, sample.stderr
    bad = run_cli("train", str(REPO / "configs" / "coco_rsgan.yaml"), *FAST, f"log.dir={tmp_path / 'gan'}",
                  f"generator.init_from={run}")
    assert bad.returncode == 2 and bad.stderr.strip().count("\n") == 0
    assert "generator.init_from" in bad.stderr and "core=relational_memory" in bad.stderr
    assert not (tmp_path / "gan").exists()
