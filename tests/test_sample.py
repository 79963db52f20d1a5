"""`textgan sample` and textgan.sample: sentence i depends on (seed, i) only, so a smaller --num is a
prefix of a larger one whatever the chunking; --save-z writes the latents used and --z of them
gives the same sentences; an interpolation holds the noise fixed while z moves."""
from __future__ import annotations

import numpy as np
import pytest
import torch

from conftest import run_cli, untrained_run
from textgan import sample


@pytest.fixture(scope="module")
def run(data_root, tmp_path_factory):
    return untrained_run(tmp_path_factory.mktemp("sample_run"))


@pytest.fixture(scope="module")
def loaded(run):
    return sample.load_generator(run, warn=lambda m: None)


def test_fewer_samples_are_a_prefix_of_more(loaded):
    six = sample.sample_text(loaded, 6, seed=7)
    assert sample.sample_text(loaded, 3, seed=7) == six[:3]
    assert len(set(six)) > 1 and sample.sample_text(loaded, 6, seed=8) != six


@pytest.mark.parametrize("chunk", [1, 2, 4, 512])
def test_chunking_does_not_change_a_sentence(loaded, chunk):
    whole = sample.sample_text(loaded, 9, seed=3)
    chunks = list(sample.stream_samples(loaded, 9, seed=3, chunk=chunk))
    assert [line for c in chunks for line in c.lines] == whole
    assert [len(c.lines) for c in chunks] == [min(chunk, 9 - s) for s in range(0, 9, chunk)]
    assert torch.equal(torch.cat([c.z for c in chunks]), sample.latent_from_seed(loaded, 3, 9))


def test_given_z_meets_the_noise_of_its_row(loaded):
    """--z row i sees the noise of (seed, i): the seed's own latents give its own sentences."""
    z = sample.latent_from_seed(loaded, 5, 4)
    assert sample.sample_text(loaded, 4, seed=5, z=z) == sample.sample_text(loaded, 4, seed=5)
    assert sample.sample_text(loaded, 2, seed=5, z=z[:2]) == sample.sample_text(loaded, 2, seed=5)
    greedy = [line for c in sample.stream_samples(loaded, 4, seed=5, greedy=True, chunk=3) for line in c.lines]
    assert [line for c in sample.stream_samples(loaded, 2, seed=5, greedy=True) for line in c.lines] == greedy[:2]


@pytest.mark.parametrize("batch_size", [2, 512])
def test_eval_and_sweeps_draw_the_samples_of_textgan_sample(loaded, batch_size):
    """textgan.evaluate.generate (evaluation, sweeps, --lm-score / --fed) is `textgan sample`'s
    sampler: sample i depends on (seed, i) only, so evaluations are prefix-stable too."""
    from textgan.evaluate import generate

    g, lines = loaded.generator, sample.sample_text(loaded, 6, seed=7)
    ids = generate(g, 6, loaded.max_len, seed=7, batch_size=batch_size)
    assert [" ".join(loaded.vocab.decode(row)) for row in ids.tolist()] == lines
    assert torch.equal(generate(g, 3, loaded.max_len, seed=7), ids[:3])
    z = sample.latent_from_seed(loaded, 7, 6)
    assert torch.equal(generate(g, 6, loaded.max_len, seed=7, z=z), ids)  # the prior draw of (seed, i) is z_i
    drawn = list(sample.draw_ids(g, 5, loaded.max_len, seed=7, chunk=2))
    assert torch.equal(torch.cat([d.ids for d in drawn]), ids[:5]) and torch.equal(torch.cat([d.z for d in drawn]), z[:5])


def test_accel_off_samples_the_same_sentences(run):
    """run.accel=off (numpy noise, the plain torch step) and the fused kernel: the same sentences."""
    from textgan import accel

    fast, plain = (sample.load_generator(run, warn=lambda m: None) for _ in range(2))
    accel.apply(plain.generator, None, "off")
    assert sample.sample_text(plain, 12, seed=4) == sample.sample_text(fast, 12, seed=4)
    assert sample.interpolation_text(plain, 4, 5, steps=3) == sample.interpolation_text(fast, 4, 5, steps=3)


def test_interpolation_holds_the_noise_fixed(loaded):
    """Point k of the path is the sentence of its z under sample 0's noise of the start seed: the
    noise does not move along the path, only z does."""
    chunks = list(sample.interpolation_samples(loaded, seed=7, seed_to=9, steps=5))
    lines, path = [line for c in chunks for line in c.lines], torch.cat([c.z for c in chunks])
    assert len(lines) == 5 and path.shape == (5, loaded.generator.latent_dim)
    for k in range(5):
        assert sample.sample_text(loaded, 1, seed=7, z=path[k:k + 1]) == [lines[k]]
    assert lines[0] == sample.sample_text(loaded, 1, seed=7)[0]
    assert torch.allclose(path[-1], sample.latent_from_seed(loaded, 9)[0], atol=1e-5)
    fixed = sample.interpolation_text(loaded, seed=7, seed_to=7, steps=4)  # z stays put: one sentence
    assert fixed == [lines[0]] * 4


def _out(res):
    assert res.returncode == 0, res.stderr
    return res.stdout.splitlines()


@pytest.mark.slow
def test_cli_prefix_and_save_z_round_trip(run, tmp_path):
    six = _out(run_cli("sample", str(run), "--seed", "7", "--num", "6"))
    assert _out(run_cli("sample", str(run), "--seed", "7", "--num", "3")) == six[:3]
    res = run_cli("sample", str(run), "--seed", "7", "--num", "6", "--save-z", str(tmp_path / "z.npy"))
    assert _out(res) == six and "wrote" in res.stderr
    z = np.load(tmp_path / "z.npy")
    assert z.shape == (6, 8) and z.dtype == np.float32
    assert sorted(p.name for p in tmp_path.iterdir()) == ["z.npy"]  # no partial file left
    assert _out(run_cli("sample", str(run), "--seed", "7", "--z", str(tmp_path / "z.npy"))) == six
    # an existing file is refused, one line, and kept; --force replaces it
    again = run_cli("sample", str(run), "--seed", "8", "--num", "2", "--save-z", str(tmp_path / "z.npy"))
    assert again.returncode == 2 and "already exists" in again.stderr and len(again.stderr.splitlines()) == 1
    assert np.array_equal(np.load(tmp_path / "z.npy"), z)
    assert _out(run_cli("sample", str(run), "--seed", "8", "--num", "2", "--save-z", str(tmp_path / "z.npy"),
                        "--force"))
    assert np.load(tmp_path / "z.npy").shape == (2, 8)


@pytest.mark.slow
def test_cli_save_z_of_an_interpolation_and_of_given_z(run, tmp_path):
    path_lines = _out(run_cli("sample", str(run), "--interpolate", "4", "--seed", "3", "--seed-to", "4",
                              "--save-z", str(tmp_path / "path.npy")))
    path = np.load(tmp_path / "path.npy")
    assert path.shape == (4, 8) and len(path_lines) == 4
    np.save(tmp_path / "first.npy", path[:1])
    assert _out(run_cli("sample", str(run), "--seed", "3", "--z", str(tmp_path / "first.npy"))) == path_lines[:1]
    given = _out(run_cli("sample", str(run), "--seed", "3", "--z", str(tmp_path / "path.npy"),
                         "--save-z", str(tmp_path / "copy.npy")))
    assert len(given) == 4 and np.array_equal(np.load(tmp_path / "copy.npy"), path)


@pytest.mark.slow
def test_cli_save_z_of_a_prior_none_run_is_one_line(data_root, tmp_path):
    run = untrained_run(tmp_path / "lm", "generator.prior=none")
    res = run_cli("sample", str(run), "--num", "2", "--save-z", str(tmp_path / "z.npy"))
    assert res.returncode == 2 and "prior=none" in res.stderr and "--save-z" in res.stderr
    assert len(res.stderr.strip().splitlines()) == 1 and res.stdout == ""
    assert not list(tmp_path.glob("z.npy*"))
    assert len(_out(run_cli("sample", str(run), "--num", "2", "--seed", "1"))) == 2  # without it, it samples


def test_api_sample_and_latents(run):
    import textgan.api as tg
    from textgan.errors import UserError

    model = tg.load(run)
    assert model.sample(2, seed=4) == model.sample(5, seed=4)[:2]
    z = model.latents(5, seed=4)
    assert z.shape == (5, 8) and z.dtype == np.float32
    assert model.sample(z=z, seed=4) == model.sample(5, seed=4)
    for bad in ({"num": 0}, {"seed": -1}, {"seed": 2**63}):
        with pytest.raises(UserError):
            model.sample(**bad)
