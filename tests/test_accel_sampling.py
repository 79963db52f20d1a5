"""The fused keyed sampling step (textgan.accel.sampling, csrc/gumbel_max.c) against its definition
(textgan.draws.gumbel_argmax) and the whole-noise path `textgan sample` took before it
(textgan.draws.gumbel, then Generator.sample with that noise): the same tokens for the same
(seed, i), on any thread count, with run.accel=off and without a compiler; and the tokens follow
softmax(logits), checked by a chi-square test."""
from __future__ import annotations

import os
import subprocess
import sys

import numpy as np
import pytest
import torch

from conftest import REPO, run_without_avx512
from textgan import accel, draws, philox
from textgan.accel import random, sampling
from textgan.accel.build import _cpu_flags
from textgan.gumbel import gumbel_noise
from textgan.models.generator import Generator

needs_cc = pytest.mark.skipif(sampling.kernels() is None or random.kernels() is None, reason="no C compiler")


def _logits(rows: int, vocab: int, spread: float, seed: int) -> torch.Tensor:
    """(rows, V) logits: N(0, spread^2), a few banned (-1e9) entries, rows of exact ties."""
    g = torch.Generator().manual_seed(seed)
    logits = torch.randn(rows, vocab, generator=g) * spread
    logits[:, : min(2, vocab - 1)] = -1e9  # banned specials, as Generator.logit_mask makes them
    logits[0] = 0.5  # one row all tied: the noise alone decides
    return logits


@needs_cc
@pytest.mark.parametrize("vocab", [1, 5, 31, 33, 1000, 1001])  # 1001: whole groups of 32 at every offset
@pytest.mark.parametrize("spread", [0.1, 3.0, 30.0])  # flat (nothing pruned) to peaked (nearly all pruned)
def test_kernel_gives_the_definitions_tokens(vocab, spread):
    keys = draws.key_tensor(draws.sample_keys(11, 0, 300)[0])
    logits = _logits(300, vocab, spread, seed=vocab)
    for step in (0, 1, 3, 7):  # step * V at every offset within a Philox block
        expected = draws.gumbel_argmax(logits, keys, step)
        for threads in (1, 2, 3):
            assert torch.equal(sampling.gumbel_argmax(logits, keys, step, threads=threads), expected), (step, threads)


@needs_cc
@pytest.mark.skipif("avx512f" not in _cpu_flags(), reason="the candidate-list scan is the default here")
def test_kernel_without_avx512_gives_the_definitions_tokens(tmp_path):
    """Built without AVX-512 (TEXTGAN_CFLAGS=-mno-avx512f) the kernel scans a candidate list instead
    of whole groups of Philox blocks: the same tokens, in a fresh process."""
    script = f"""
import sys, torch
sys.path.insert(0, {str(REPO / "tests")!r})
from test_accel_sampling import _logits
from textgan import draws
from textgan.accel import sampling
keys = draws.key_tensor(draws.sample_keys(11, 0, 200)[0])
for vocab, spread in [(33, 3.0), (1001, 0.1), (1001, 30.0)]:
    logits = _logits(200, vocab, spread, seed=vocab)
    for step in (0, 1, 3):
        assert torch.equal(sampling.gumbel_argmax(logits, keys, step, threads=2), draws.gumbel_argmax(logits, keys, step))
print("OK")
"""
    run_without_avx512(script, tmp_path, "gumbel_max")


@needs_cc
def test_kernel_reads_strided_rows_and_repeated_keys():
    keys = draws.key_tensor(draws.sample_keys(2, 0, 1)[0] * 7)  # one key for every row (an interpolation)
    wide = _logits(7, 80, 2.0, seed=1)
    logits = wide[:, :50]  # rows 80 floats apart
    assert torch.equal(sampling.gumbel_argmax(logits, keys, 4), draws.gumbel_argmax(logits, keys, 4))


@needs_cc
@pytest.mark.parametrize("vocab", [5, 33, 1001])
def test_kernel_at_stream_positions_gives_the_definitions_tokens(vocab):
    """The rollouts' draw (gumbel_argmax_at): each row its key and first stream element, rows sharing
    a key at r V or anywhere (every offset within a Philox block), strided rows."""
    two = draws.sample_keys(3, 0, 2)[0]
    keys = draws.key_tensor([two[0]] * 40 + [two[1]] * 40)  # two keys, 40 rows each
    starts = torch.cat([torch.arange(40) * vocab, torch.randint(0, 10 ** 6, (40,), generator=torch.Generator().manual_seed(1))])
    for spread in (0.1, 30.0):
        logits = _logits(80, vocab + 7, spread, seed=vocab)[:, :vocab]  # rows V + 7 floats apart
        expected = draws.gumbel_argmax_at(logits, keys, starts)
        for threads in (1, 2):
            assert torch.equal(sampling.gumbel_argmax_at(logits, keys, starts, threads=threads), expected)
    whole = philox.uniform_bits(two[0], 40 * vocab).reshape(40, vocab)  # one key's (40, V) draw
    noise = torch.from_numpy(whole).log_().neg_().log_().neg_()
    assert torch.equal(expected[:40], (logits[:40] + noise).argmax(1))


@needs_cc
def test_kernel_picks_nan_and_ties_as_torch_argmax_does():
    keys = draws.key_tensor(draws.sample_keys(5, 0, 3)[0])
    logits = torch.zeros(3, 40)
    logits[0, 17], logits[0, 30] = float("nan"), float("nan")
    logits[1, 9], logits[1, 25] = float("inf"), float("inf")
    logits[2] = float("-inf")
    expected = draws.gumbel_argmax(logits, keys, 2)
    assert expected.tolist() == [17, 9, 0]
    assert torch.equal(sampling.gumbel_argmax(logits, keys, 2), expected)


@needs_cc
def test_keyed_uniforms_of_the_kernel_are_the_numpy_bits():
    keys = draws.key_tensor(draws.sample_keys(9, 0, 5)[0])
    for start, n in ((0, 13), (3, 64), (4097, 33), (10, 0)):
        for threads in (1, 2):
            fast = random.key_uniforms(keys, start, n, threads=threads)
            assert torch.equal(fast, draws.numpy_key_uniforms(keys, start, n)), (start, n, threads)
    assert np.array_equal(draws.numpy_key_uniforms(keys, 3, 64)[2].numpy(),
                          philox.uniform_bits(draws.sample_keys(9, 0, 5)[0][2], 67)[3:])


def test_one_steps_noise_is_that_step_of_the_whole_noise():
    keys = draws.sample_keys(4, 0, 6)[0]
    whole = draws.gumbel(keys, steps=5, vocab_size=23)  # (T, N, V)
    for step in range(5):
        assert torch.equal(draws.step_gumbel(draws.key_tensor(keys), step, 23), whole[step])


def _generator(feedback: str = "hard") -> Generator:
    torch.manual_seed(0)
    g = Generator(vocab_size=60, emb_dim=8, hidden_dim=16, num_layers=1, latent_dim=4, prior="normal",
                  feedback=feedback, banned=[0, 1])
    g.init_normal_(0.5)  # logits spread over several nats, as a trained model's
    return g.eval()


def _whole_noise_tokens(g: Generator, z: torch.Tensor, keys: list[int], max_len: int, temperature: float):
    """What `textgan sample` drew before the fused step: the (T, N, V) noise, then sample()."""
    noise = draws.gumbel(keys, max_len, g.vocab_size)
    return g.sample(z, max_len, temperature=temperature, need_dists=False, noise=noise).tokens


@pytest.mark.parametrize("mode", ["auto", "off"])
@pytest.mark.parametrize("feedback", ["hard", "straight_through"])
@pytest.mark.parametrize("temperature", [1.0, 0.7])
def test_generator_keyed_sampling_gives_the_whole_noise_tokens(mode, feedback, temperature):
    g = _generator(feedback)
    accel.apply(g, None, mode)
    noise_keys, latent_keys = draws.sample_keys(3, 0, 40)
    z = draws.latents("normal", 4, latent_keys)
    with torch.inference_mode():
        keyed = g.sample(z, 12, temperature=temperature, need_dists=False,
                         noise_keys=draws.key_tensor(noise_keys)).tokens
        expected = _whole_noise_tokens(g, z, noise_keys, 12, temperature)
    assert torch.equal(keyed, expected)
    assert len({tuple(row) for row in keyed.tolist()}) > 30  # real draws, not one sentence


@pytest.mark.parametrize("core, layers", [("lstm", 2), ("relational_memory", 1)])
def test_keyed_tokens_drop_finished_rows_and_keep_every_token(core, layers):
    """Rows leave the keyed sampler's batch at their EOS (each row's noise is its own key's): the
    tokens are still those of the whole-noise sampler, which runs every row to max_len."""
    torch.manual_seed(1)
    g = Generator(vocab_size=30, emb_dim=8, hidden_dim=16, num_layers=layers, latent_dim=4, prior="normal",
                  banned=[0, 1], core=core, mem_slots=2, head_size=4)
    g.init_normal_(0.5)
    g.eval()
    noise_keys, latent_keys = draws.sample_keys(5, 0, 48)
    z = draws.latents("normal", 4, latent_keys)
    with torch.inference_mode():
        keyed = g.sample(z, 15, need_dists=False, noise_keys=draws.key_tensor(noise_keys))
        expected = _whole_noise_tokens(g, z, noise_keys, 15, 1.0)
    assert torch.equal(keyed.tokens, expected) and torch.equal(keyed.lengths, (expected != 0).sum(1))
    assert len(set(keyed.lengths.tolist())) > 3  # rows left the batch at several steps


@pytest.mark.parametrize("mode", ["auto", "off"])
@pytest.mark.parametrize("temperature", [1.0, 0.7])
def test_tokens_drawn_from_a_torch_generator_are_its_whole_noise_draws(mode, temperature):
    """sample(generator=rng, need_dists=False) (the policy-gradient algorithms' sampler, the latent
    metrics') picks each step's tokens by the fused kernel from the one Philox key gumbel_noise
    would take for the (T, B, V) noise: the tokens of that noise, the generator left where it would be."""
    g = _generator()
    accel.apply(g, None, mode)
    z = draws.latents("normal", 4, draws.sample_keys(6, 0, 40)[1])
    rng, again = torch.Generator().manual_seed(11), torch.Generator().manual_seed(11)
    with torch.inference_mode():
        fast = g.sample(z, 12, temperature=temperature, generator=rng, need_dists=False)
        noise = gumbel_noise((12, 40, g.vocab_size), again)  # (T, B, V)
        expected = g.sample(z, 12, temperature=temperature, need_dists=False, noise=noise).tokens
    assert torch.equal(fast.tokens, expected) and torch.equal(rng.get_state(), again.get_state())
    assert len(set(fast.lengths.tolist())) > 3 and len({tuple(r) for r in fast.tokens.tolist()}) > 30


def test_keyed_tokens_with_autograd_on_are_the_inference_mode_ones():
    """The keyed sampler writes each step's logits into one buffer (addmm's out=, which autograd
    refuses): called with gradients enabled on trainable weights it still draws, the same tokens."""
    g = _generator()
    noise_keys, latent_keys = draws.sample_keys(4, 0, 20)
    z, keys = draws.latents("normal", 4, latent_keys), draws.key_tensor(noise_keys)
    assert g.out.weight.requires_grad and torch.is_grad_enabled()
    tokens = g.sample(z, 9, need_dists=False, noise_keys=keys).tokens
    with torch.inference_mode():
        assert torch.equal(tokens, g.sample(z, 9, need_dists=False, noise_keys=keys).tokens)
    assert torch.equal(tokens, _whole_noise_tokens(g, z, noise_keys, 9, 1.0))


def test_keyed_sampling_with_dists_matches_the_whole_noise():
    """need_dists (the relaxed one-hots) reads each step's noise: the keyed one is the same."""
    g = _generator()
    noise_keys, latent_keys = draws.sample_keys(8, 0, 6)
    z = draws.latents("normal", 4, latent_keys)
    keyed = g.sample(z, 7, tau=0.5, noise_keys=draws.key_tensor(noise_keys))
    whole = g.sample(z, 7, tau=0.5, noise=draws.gumbel(noise_keys, 7, g.vocab_size))
    assert torch.equal(keyed.tokens, whole.tokens) and torch.equal(keyed.dists, whole.dists)


@needs_cc
def test_fused_tokens_follow_softmax_chi_square():
    """20,000 draws of one row under distinct keys: token counts against softmax(logits) by
    Pearson's chi-square, 7 degrees of freedom; 24.3 is its 0.999 quantile. Deterministic (fixed
    keys), so the threshold guards against a biased kernel, not against bad luck."""
    logits = torch.tensor([[2.0, 1.0, 0.5, 0.0, -0.5, -1.0, -2.0, -4.0]]).expand(20_000, -1).contiguous()
    keys = draws.key_tensor(draws.sample_keys(21, 0, 20_000)[0])
    counts = torch.bincount(sampling.gumbel_argmax(logits, keys, 3), minlength=8).double()
    expected = torch.softmax(logits[0].double(), 0) * 20_000
    chi2 = float(((counts - expected) ** 2 / expected).sum())
    assert chi2 < 24.3, (chi2, counts.tolist(), expected.tolist())
    assert torch.equal(counts, torch.bincount(draws.gumbel_argmax(logits, keys, 3), minlength=8).double())


SCRIPT = r"""
import sys, torch
sys.path.insert(0, sys.argv[1])
from test_accel_sampling import _generator
from textgan import accel, draws
g = _generator()
line = accel.apply(g, None, sys.argv[3])
noise_keys, latent_keys = draws.sample_keys(13, 0, 64)
with torch.inference_mode():
    out = g.sample(draws.latents("normal", 4, latent_keys), 15, need_dists=False, noise_keys=draws.key_tensor(noise_keys))
torch.save({"line": line, "tokens": out.tokens}, sys.argv[2])
"""


@needs_cc
@pytest.mark.parametrize("mode", ["auto", "off"])
def test_no_compiler_gives_the_same_samples(tmp_path, mode):
    """A process where no C compiler can be found samples the same tokens as this one's kernel."""
    out = tmp_path / "tokens.pt"
    env = {**os.environ, "PYTHONPATH": str(REPO), "CC": str(tmp_path / "no-such-cc"),
           "PATH": os.path.dirname(sys.executable), "TEXTGAN_CACHE_DIR": str(tmp_path / "cache")}
    res = subprocess.run([sys.executable, "-c", SCRIPT, str(REPO / "tests"), str(out), mode], env=env,
                         capture_output=True, text=True, timeout=300)
    assert res.returncode == 0, res.stderr[-3000:]
    there = torch.load(out, weights_only=True)
    assert "C kernels for" not in there["line"]  # numpy noise, plain torch definition
    g = _generator()
    assert "noise" in accel.apply(g, None, "auto")  # here: the fused kernel
    noise_keys, latent_keys = draws.sample_keys(13, 0, 64)
    with torch.inference_mode():
        here = g.sample(draws.latents("normal", 4, latent_keys), 15, need_dists=False,
                        noise_keys=draws.key_tensor(noise_keys)).tokens
    assert torch.equal(here, there["tokens"])
