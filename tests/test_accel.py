"""textgan.accel's build driver (textgan.accel.build), the Philox kernel against the numpy
definition in textgan.philox (the same bits), the noise and dropout built on them, `apply` and its
one log line, and the errors where a kernel cannot be built (naming the real cause)."""
from __future__ import annotations

import math
import os
import shutil
import subprocess
import sys

import numpy as np
import pytest
import torch

from textgan import accel, philox
from textgan.accel import build, random
from textgan.errors import UserError
from textgan.gumbel import gumbel_noise
from textgan.models.discriminator import RelGANCNN, conv_relu_max, highway_gate
from textgan.models.dropout import Dropout
from textgan.models.generator import Generator

from conftest import REPO, run_cli

needs_cc = pytest.mark.skipif(random.kernels() is None, reason="no C compiler")


@needs_cc
def test_library_is_cached_per_source_and_cpu(tmp_path, monkeypatch):
    """A fresh cache dir gets one .so per source; a second build reuses it."""
    monkeypatch.setenv("TEXTGAN_CACHE_DIR", str(tmp_path))
    cc = os.environ.get("CC") or "cc"
    first = build._build(build.SOURCES / "philox.c", cc)
    mtime = first.stat().st_mtime_ns
    assert first.parent == tmp_path and first.suffix == ".so"
    assert build._build(build.SOURCES / "philox.c", cc) == first and first.stat().st_mtime_ns == mtime
    assert [p.name for p in tmp_path.iterdir()] == [first.name]  # no temporary file left behind


@needs_cc
@pytest.mark.parametrize("key", [0, 1, 7, 2 ** 32 - 1, 2 ** 32, 0x0123456789ABCDEF, 2 ** 63 - 2])
@pytest.mark.parametrize("n", [1, 3, 4, 31, 32, 33, 1000, 4099, 262_147])
def test_kernel_gives_the_bits_of_the_numpy_definition_on_any_thread_count(key, n):
    """uniform and dropout's keep mask: the C kernel on 1, 2 and 3 threads equals textgan.philox."""
    expected_u = philox.uniform_bits(key, n)
    expected_mask = np.where(expected_u >= np.float32(0.3), np.float32(1 / 0.7), np.float32(0.0))
    for threads in (1, 2, 3):
        assert np.array_equal(random.uniform_with(key, n, threads).numpy().view(np.uint32), expected_u.view(np.uint32))
        mask = random.keep_mask_with(key, n, 0.3, threads).numpy()
        assert np.array_equal(mask.view(np.uint32), expected_mask.view(np.uint32))


@needs_cc
def test_kernel_and_definition_agree_through_the_generator_api():
    """The swappable functions: same shapes, same keys from the torch generator, same bits."""
    for shape in [(5, 7), (3, 4, 11), (64,)]:
        a = philox.uniform(shape, torch.Generator().manual_seed(5))
        b = random.uniform(shape, torch.Generator().manual_seed(5))
        assert a.shape == b.shape == shape and torch.equal(a, b)
        torch.manual_seed(2)
        m = philox.keep_mask(shape, 0.25)
        torch.manual_seed(2)
        assert torch.equal(m, random.keep_mask(shape, 0.25))


def test_definition_matches_the_published_philox_test_vector():
    """Philox4x32-10 of counter 0 under key 0: Random123's known-answer vector."""
    assert philox.blocks(0, 0, 1)[0].tolist() == [0x6627E8D5, 0xE169C58D, 0xBC57AC4C, 0x9B00DBD8]


@pytest.mark.parametrize("n", [1, 3, 4, 31, 32, 33, 1000, 4099])
def test_uniform_is_in_the_open_interval_and_element_i_is_word_i_mod_4(n):
    u = philox.uniform_bits(11, n)
    assert bool((u > 0).all()) and bool((u < 1).all())
    words = philox.blocks(11, 0, -(-n // 4)).reshape(-1)[:n]
    assert np.array_equal(u, philox.open_unit(words))


def test_extreme_words_stay_inside_the_open_interval():
    """The smallest and largest uniforms are inside (0, 1) in float32, so the Gumbel noise
    -log(-log u) is finite for every draw (and the C kernel's map agrees)."""
    ends = philox.open_unit(np.array([0, 0xFFFFFFFF], dtype=np.uint64))
    assert 0 < ends[0] < ends[1] < 1 and ends[1] == np.float32(1 - 2 ** -24)
    assert bool(np.isfinite(-np.log(-np.log(ends))).all())
    if random.kernels() is not None:
        import ctypes

        lib = random.kernels()
        lib.open_unit_scalar.argtypes, lib.open_unit_scalar.restype = [ctypes.c_uint32], ctypes.c_float
        assert [lib.open_unit_scalar(0), lib.open_unit_scalar(0xFFFFFFFF)] == ends.tolist()


def test_uniform_is_reproducible_from_the_generator_and_uniform():
    g = torch.Generator().manual_seed(3)
    state = g.get_state()
    a = philox.uniform((200_000,), g)
    b = philox.uniform((200_000,), g)
    g.set_state(state)
    assert torch.equal(philox.uniform((200_000,), g), a)  # resumable from the saved state
    assert not torch.equal(a, b)  # each call takes a fresh key
    # moments of U(0, 1) within 6 standard errors; a histogram close to flat
    assert abs(a.mean().item() - 0.5) < 6 * math.sqrt(1 / 12 / a.numel())
    assert abs(a.var().item() - 1 / 12) < 0.002
    counts = torch.histc(a, bins=20, min=0.0, max=1.0)
    chi2 = ((counts - a.numel() / 20) ** 2 / (a.numel() / 20)).sum().item()
    assert chi2 < 60  # 19 degrees of freedom: p < 1e-5 beyond this
    assert abs(torch.corrcoef(torch.stack([a[:-1], a[1:]]))[0, 1].item()) < 0.01  # neighbours


def test_gumbel_noise_has_the_gumbel_moments():
    noise = gumbel_noise((400_000,), torch.Generator().manual_seed(0))
    assert bool(torch.isfinite(noise).all())
    assert abs(noise.mean().item() - 0.5772156649) < 0.01  # Euler's constant
    assert abs(noise.var().item() - math.pi ** 2 / 6) < 0.03


def test_gumbel_max_draws_from_the_softmax():
    logits = torch.log(torch.tensor([0.5, 0.3, 0.15, 0.05]))
    noise = gumbel_noise((100_000, 4), torch.Generator().manual_seed(1))
    freq = torch.bincount((logits + noise).argmax(-1), minlength=4).float() / 100_000
    torch.testing.assert_close(freq, logits.exp(), rtol=0, atol=0.006)


@pytest.mark.parametrize("p", [0.1, 0.25, 0.5])
@pytest.mark.parametrize("source", ["numpy", "kernel"])
def test_dropout_keeps_the_expected_fraction_and_scale(p, source):
    if source == "kernel" and random.kernels() is None:
        pytest.skip("no C compiler")
    torch.manual_seed(0)
    drop = Dropout(p)
    drop.keep_mask = philox.keep_mask if source == "numpy" else random.keep_mask
    x = torch.ones(300, 1000)
    y = drop(x)
    kept = y != 0
    assert abs(kept.float().mean().item() - (1 - p)) < 0.005
    torch.testing.assert_close(y[kept], torch.full_like(y[kept], 1 / (1 - p)))
    drop.eval()
    assert torch.equal(drop(x), x)
    torch.manual_seed(0)
    assert torch.equal(Dropout(p).train()(x), y)  # seeded by torch's global generator; either source


def test_dropout_gradient_is_the_mask():
    torch.manual_seed(1)
    x = torch.randn(50, 40, requires_grad=True)
    y = Dropout(0.3)(x)
    y.sum().backward()
    torch.testing.assert_close(x.grad, (y.detach() / x.detach()).nan_to_num(0.0), rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("mode", ["auto", "native", "off"])
def test_apply_swaps_the_ops_and_says_so_in_one_line(mode):
    if mode == "native" and random.kernels() is None:
        pytest.skip("no C compiler")
    g = Generator(30, 8, 16, 1, 4, "normal")
    d = RelGANCNN(30, emb_dim=8, num_rep=8, filter_sizes=[2, 3], num_filters=[4, 4])
    line = accel.apply(g, d, mode)
    assert "\n" not in line and line.startswith(f"accel: {mode}")
    plain = mode == "off"
    assert (d.conv_relu_max is conv_relu_max) == plain and (d.highway.gate is highway_gate) == plain
    assert (g.ops.uniform is philox.uniform) == (plain or random.kernels() is None)
    kernels = random.kernels() is not None and not plain
    for op in ("cross-entropy", "LSTM", "MLE loss", "conv+max", "highway gate", "noise"):
        assert (op in line.split(";")[0]) == kernels, line
    accel.apply(g, d, "off")  # undone
    assert d.conv_relu_max is conv_relu_max and g.ops.uniform is philox.uniform


def test_auto_keeps_the_lstm_and_cross_entropy_kernels_to_hidden_64_and_native_takes_any():
    if random.kernels() is None:
        pytest.skip("no C compiler")
    wide = Generator(30, 8, 128, 1, 4, "normal")
    accel.apply(wide, None, "auto")
    assert accel.describe(wide, None)["lstm"] == accel.describe(wide, None)["cross_entropy"] == "torch"
    accel.apply(wide, None, "native")
    assert accel.describe(wide, None)["lstm"] == accel.describe(wide, None)["cross_entropy"] == "native"


def _copy_sources_without(tmp_path, header: str):
    sources = tmp_path / "csrc"
    shutil.copytree(build.SOURCES, sources)
    (sources / header).unlink()
    return sources


def test_a_missing_header_is_named_not_blamed_on_the_compiler(tmp_path, monkeypatch):
    """A package that ships the .c files but not simd.h / parallel.h (the old wheel): the build
    fails, the warning and run.accel=native's error name the missing header."""
    if shutil.which(os.environ.get("CC") or "cc") is None:
        pytest.skip("no C compiler")
    monkeypatch.setattr(build, "SOURCES", _copy_sources_without(tmp_path, "simd.h"))
    monkeypatch.setattr(build, "_LIBS", {})
    monkeypatch.setattr(build, "_FAILURES", {})
    monkeypatch.setenv("TEXTGAN_CACHE_DIR", str(tmp_path / "cache"))
    with pytest.warns(RuntimeWarning, match="simd.h"):
        assert build.load("linear_ce") is None
    assert "simd.h" in build.failure("linear_ce")
    with pytest.raises(UserError) as err:
        accel.check("native", "lstm", None)
    message = str(err.value)
    assert "simd.h" in message and "no C compiler" not in message and "working C compiler" not in message
    assert "\n" not in message and "run.accel=auto" in message


def test_without_a_compiler_the_torch_ops_run_with_the_same_noise(tmp_path):
    """CC pointing nowhere and no cached library: one warning per kernel, then accel's torch ops;
    the noise is the numpy definition's, the same numbers the kernel draws; run.accel=native is a
    one-line error naming the cause."""
    script = """
import warnings, torch
from textgan import accel
from textgan.models.discriminator import RelGANCNN
from textgan.models.generator import Generator
from textgan.gumbel import gumbel_noise
from textgan.errors import UserError
with warnings.catch_warnings(record=True) as caught:
    warnings.simplefilter("always")
    d = RelGANCNN(30, emb_dim=8, num_rep=8, filter_sizes=[2, 3], num_filters=[4, 4])
    g = Generator(30, 8, 8, 1, 4, "normal")
    print("LINE", accel.apply(g, d, "auto"))
    out = d(torch.softmax(torch.randn(3, 6, 30), -1))
    noise = g.ops.uniform((5, 7), torch.Generator().manual_seed(0))
    loss = g.mle_loss(torch.randint(3, 30, (2, 5)), torch.zeros(2, 4), pad_id=0)
assert out.shape == (3, 8) and torch.isfinite(loss)
print("NOISE", noise.view(-1).tolist())
assert accel.describe(g, d) == {"cross_entropy": "torch", "lstm": "torch", "mle_loss": "layered", "noise": "numpy",
                                "conv_max": "torch", "highway": "torch"}, accel.describe(g, d)
assert any("unavailable" in str(w.message) for w in caught), [str(w.message) for w in caught]
try:
    accel.apply(g, d, "native")
except UserError as err:
    print("ERR", err)
"""
    env = {**os.environ, "CC": str(tmp_path / "no-such-cc"), "TEXTGAN_CACHE_DIR": str(tmp_path / "cache"),
           "PYTHONPATH": str(REPO)}
    res = subprocess.run([sys.executable, "-c", script], env=env, capture_output=True, text=True, timeout=120)
    assert res.returncode == 0, res.stderr
    assert "LINE accel: auto (run.accel=auto): no C kernels" in res.stdout
    noise = [float(v) for v in res.stdout.split("NOISE ")[1].splitlines()[0].strip("[]").split(", ")]
    assert noise == philox.uniform((5, 7), torch.Generator().manual_seed(0)).view(-1).tolist()
    assert (f"ERR run.accel=native needs the C kernel 'philox', which cannot be built: the C compiler "
            f"'{tmp_path / 'no-such-cc'}' (from CC) was not found; fix that, or set run.accel=auto") in res.stdout


def test_cli_native_without_a_compiler_is_one_line_and_writes_no_run(tmp_path):
    runs = tmp_path / "runs"
    res = run_cli("train", str(REPO / "configs" / "quickstart.yaml"), "run.accel=native", f"log.dir={runs}",
                  env={"CC": str(tmp_path / "no-such-cc"), "TEXTGAN_CACHE_DIR": str(tmp_path / "cache")})
    assert res.returncode == 2
    errors = [line for line in res.stderr.splitlines() if line.startswith("textgan: error:")]
    assert errors == [f"textgan: error: run.accel=native needs the C kernel 'philox', which cannot be built: "
                      f"the C compiler '{tmp_path / 'no-such-cc'}' (from CC) was not found; fix that, or set "
                      "run.accel=auto"]
    assert not runs.exists() or not any(runs.iterdir())  # nothing written
