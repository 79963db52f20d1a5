"""Per-sample draws: keys, latents and Gumbel noise of sample i are functions of (seed, i) alone,
made from textgan.philox's stream."""
from __future__ import annotations

import numpy as np
import pytest
import torch

from textgan import draws, philox


@pytest.mark.parametrize("seed", [0, 7, 2**63 - 1])
def test_keys_of_a_sample_do_not_depend_on_how_many_or_where_the_chunk_starts(seed):
    noise6, latent6 = draws.sample_keys(seed, 0, 6)
    assert draws.sample_keys(seed, 0, 3) == (noise6[:3], latent6[:3])
    assert draws.sample_keys(seed, 4, 2) == (noise6[4:], latent6[4:])
    assert len(set(noise6 + latent6)) == 12  # every stream its own key
    assert draws.sample_keys(seed + 1 if seed < 2**63 - 1 else 0, 0, 6)[0] != noise6


def test_keys_are_words_of_the_philox_block_of_the_sample_index():
    words = philox.blocks(11, 5, 1)[0].astype(object)  # (4,) python ints
    noise, latent = draws.sample_keys(11, 5, 1)
    assert noise == [int(words[0]) | int(words[1]) << 32]
    assert latent == [int(words[2]) | int(words[3]) << 32]


def test_gumbel_noise_is_the_philox_stream_of_each_key():
    keys = draws.sample_keys(3, 0, 4)[0]
    noise = draws.gumbel(keys, steps=5, vocab_size=7)  # (T, N, V)
    assert noise.shape == (5, 4, 7) and noise.dtype == torch.float32 and torch.isfinite(noise).all()
    for n, key in enumerate(keys):
        u = torch.from_numpy(philox.uniform_bits(key, 5 * 7)).view(5, 7)
        assert torch.equal(noise[:, n], -torch.log(-torch.log(u)))
    # step t's noise does not depend on the number of steps (max_len)
    assert torch.equal(draws.gumbel(keys, steps=2, vocab_size=7), noise[:2])


def test_latents_follow_the_prior():
    keys = draws.sample_keys(1, 0, 4000)[1]
    z = draws.latents("normal", 8, keys)
    assert z.shape == (4000, 8) and z.dtype == torch.float32 and torch.isfinite(z).all()
    assert abs(float(z.mean())) < 0.03 and abs(float(z.std()) - 1.0) < 0.03  # 32,000 N(0, 1) draws
    assert abs(float((z.abs() < 1).float().mean()) - 0.6827) < 0.015
    u = draws.latents("uniform", 8, keys)
    assert float(u.min()) > -1 and float(u.max()) < 1 and abs(float(u.mean())) < 0.02
    assert torch.equal(draws.latents("none", 8, keys[:3]), torch.zeros(3, 8))
    assert torch.equal(draws.latents("normal", 8, keys[:5]), z[:5])  # row i from key i only


def test_kernel_source_gives_the_numpy_bits():
    from textgan.accel import random as accel_random

    if accel_random.kernels() is None:
        pytest.skip("no C compiler here: the numpy definition is the only source")
    key = draws.sample_keys(5, 9, 1)[0][0]
    assert torch.equal(accel_random.uniform_with(key, 1000), draws.numpy_uniforms(key, 1000))


def test_chunk_size_bounds_the_noise():
    assert draws.chunk_size(50, 5000) == (1 << 24) // (50 * 5000)
    assert draws.chunk_size(10, 100) == 512 and draws.chunk_size(10_000, 100_000) == 1
    assert np.prod([draws.chunk_size(40, 30_000), 40, 30_000]) <= 1 << 24
