"""The C kernels' build and loading (textgan.native), the Philox draws (textgan.random_native)
and the dropout built on them: exact where they must be, distributed as they should be, and a
working fallback where no compiler is found."""
from __future__ import annotations

import math
import os
import subprocess
import sys

import pytest
import torch

from textgan import native, random_native
from textgan.gumbel import gumbel_noise
from textgan.models.dropout import Dropout

from conftest import REPO, run_cli

needs_cc = pytest.mark.skipif(not random_native.available("cpu"), reason="no C compiler")


@needs_cc
def test_library_is_cached_per_source_and_cpu(tmp_path, monkeypatch):
    """A fresh cache dir gets one .so per source; a second build reuses it."""
    monkeypatch.setenv("TEXTGAN_CACHE_DIR", str(tmp_path))
    cc = os.environ.get("CC") or "cc"
    first = native._build(native.SOURCES / "philox.c", cc)
    mtime = first.stat().st_mtime_ns
    assert first.parent == tmp_path and first.suffix == ".so"
    assert native._build(native.SOURCES / "philox.c", cc) == first and first.stat().st_mtime_ns == mtime
    assert [p.name for p in tmp_path.iterdir()] == [first.name]  # no temporary file left behind


@needs_cc
@pytest.mark.parametrize("n", [1, 3, 4, 31, 32, 33, 1000, 4099])
def test_uniform_is_the_same_for_any_thread_count_and_in_the_open_interval(n):
    before = torch.get_num_threads()
    try:
        draws = []
        for threads in (1, 2, 3):
            torch.set_num_threads(threads)
            draws.append(random_native.uniform((n,), torch.Generator().manual_seed(7)))
    finally:
        torch.set_num_threads(before)
    assert torch.equal(draws[0], draws[1]) and torch.equal(draws[0], draws[2])
    assert bool((draws[0] > 0).all()) and bool((draws[0] < 1).all())


@needs_cc
def test_extreme_words_stay_inside_the_open_interval():
    """The smallest and largest uniforms the kernel can return are inside (0, 1) in float32, so
    the Gumbel noise -log(-log u) is finite for every draw."""
    import ctypes

    lib = random_native._lib()
    lib.open_unit_scalar.argtypes, lib.open_unit_scalar.restype = [ctypes.c_uint32], ctypes.c_float
    ends = torch.tensor([lib.open_unit_scalar(0), lib.open_unit_scalar(0xFFFFFFFF)], dtype=torch.float32)
    assert 0 < ends[0] < ends[1] < 1
    assert bool(torch.isfinite(-torch.log(-torch.log(ends))).all())


@needs_cc
def test_uniform_is_reproducible_from_the_generator_and_uniform():
    g = torch.Generator().manual_seed(3)
    state = g.get_state()
    a = random_native.uniform((200_000,), g)
    b = random_native.uniform((200_000,), g)
    g.set_state(state)
    assert torch.equal(random_native.uniform((200_000,), g), a)  # resumable from the saved state
    assert not torch.equal(a, b)  # each call takes a fresh key
    # moments of U(0, 1) within 6 standard errors; a histogram close to flat
    assert abs(a.mean().item() - 0.5) < 6 * math.sqrt(1 / 12 / a.numel())
    assert abs(a.var().item() - 1 / 12) < 0.002
    counts = torch.histc(a, bins=20, min=0.0, max=1.0)
    chi2 = ((counts - a.numel() / 20) ** 2 / (a.numel() / 20)).sum().item()
    assert chi2 < 60  # 19 degrees of freedom: p < 1e-5 beyond this
    assert abs(torch.corrcoef(torch.stack([a[:-1], a[1:]]))[0, 1].item()) < 0.01  # neighbours


@needs_cc
def test_gumbel_noise_has_the_gumbel_moments():
    noise = gumbel_noise((400_000,), torch.Generator().manual_seed(0))
    assert bool(torch.isfinite(noise).all())
    assert abs(noise.mean().item() - 0.5772156649) < 0.01  # Euler's constant
    assert abs(noise.var().item() - math.pi ** 2 / 6) < 0.03


@needs_cc
def test_gumbel_max_draws_from_the_softmax():
    logits = torch.log(torch.tensor([0.5, 0.3, 0.15, 0.05]))
    noise = gumbel_noise((100_000, 4), torch.Generator().manual_seed(1))
    freq = torch.bincount((logits + noise).argmax(-1), minlength=4).float() / 100_000
    torch.testing.assert_close(freq, logits.exp(), rtol=0, atol=0.006)


@needs_cc
@pytest.mark.parametrize("p", [0.1, 0.25, 0.5])
def test_dropout_keeps_the_expected_fraction_and_scale(p):
    torch.manual_seed(0)
    drop = Dropout(p)
    x = torch.ones(300, 1000)
    y = drop(x)
    kept = y != 0
    assert abs(kept.float().mean().item() - (1 - p)) < 0.005
    torch.testing.assert_close(y[kept], torch.full_like(y[kept], 1 / (1 - p)))
    drop.eval()
    assert torch.equal(drop(x), x)
    torch.manual_seed(0)
    assert torch.equal(Dropout(p).train()(x), y)  # seeded by torch's global generator


@needs_cc
def test_dropout_gradient_is_the_mask():
    torch.manual_seed(1)
    x = torch.randn(50, 40, requires_grad=True)
    y = Dropout(0.3)(x)
    y.sum().backward()
    torch.testing.assert_close(x.grad, (y.detach() / x.detach()).nan_to_num(0.0), rtol=1e-5, atol=1e-5)


def test_without_a_compiler_the_torch_paths_run(tmp_path):
    """CC pointing nowhere and no cached library: one warning, then torch's convolution, noise,
    dropout, cross-entropy, LSTM and highway gate; asking for any kernel=native
    instead is a one-line error."""
    script = """
import warnings, torch
from textgan.models.discriminator import RelGANCNN
from textgan.models.generator import Generator
from textgan.gumbel import gumbel_noise
from textgan.errors import UserError
with warnings.catch_warnings(record=True) as caught:
    warnings.simplefilter("always")
    d = RelGANCNN(30, emb_dim=8, num_rep=8, filter_sizes=[2, 3], num_filters=[4, 4])
    out = d(torch.softmax(torch.randn(3, 6, 30), -1))
    noise = gumbel_noise((5, 7), torch.Generator().manual_seed(0))
    g = Generator(30, 8, 8, 1, 4, "normal")
    loss = g.mle_loss(torch.randint(3, 30, (2, 5)), torch.zeros(2, 4), pad_id=0)
assert out.shape == (3, 8) and torch.isfinite(noise).all() and torch.isfinite(loss)
assert g.ce_kernel_used() == "torch" and g.lstm_kernel_used() == "torch" and d.highway.kernel_used() == "torch"
assert any("unavailable" in str(w.message) for w in caught), [str(w.message) for w in caught]
for make in (lambda: RelGANCNN(30, emb_dim=8, num_rep=8, conv_kernel="native"),
             lambda: RelGANCNN(30, emb_dim=8, num_rep=8, highway_kernel="native"),
             lambda: Generator(30, 8, 8, 1, 4, "normal", ce_kernel="native"),
             lambda: Generator(30, 8, 8, 1, 4, "normal", lstm_kernel="native")):
    try:
        make()
    except UserError as err:
        print("ERR", err)
"""
    env = {**os.environ, "CC": str(tmp_path / "no-such-cc"), "TEXTGAN_CACHE_DIR": str(tmp_path / "cache"),
           "PYTHONPATH": str(REPO)}
    res = subprocess.run([sys.executable, "-c", script], env=env, capture_output=True, text=True, timeout=120)
    assert res.returncode == 0, res.stderr
    assert "ERR discriminator.conv_kernel=native needs a working C compiler" in res.stdout
    assert "ERR discriminator.highway_kernel=native needs a working C compiler" in res.stdout
    assert "ERR generator.ce_kernel=native needs a working C compiler" in res.stdout
    assert "ERR generator.lstm_kernel=native needs a working C compiler" in res.stdout


@pytest.mark.parametrize("setting", ["generator.ce_kernel", "generator.lstm_kernel", "discriminator.conv_kernel",
                                     "discriminator.highway_kernel"])
def test_cli_native_without_a_compiler_is_one_line_and_writes_no_run(tmp_path, setting):
    runs = tmp_path / "runs"
    res = run_cli("train", str(REPO / "configs" / "quickstart.yaml"), f"{setting}=native", f"log.dir={runs}",
                  env={"CC": str(tmp_path / "no-such-cc"), "TEXTGAN_CACHE_DIR": str(tmp_path / "cache")})
    assert res.returncode == 2
    errors = [line for line in res.stderr.splitlines() if line.startswith("textgan: error:")]
    assert errors == [f"textgan: error: {setting}=native needs a working C compiler (cc, gcc or clang, or set CC); "
                      f"install one or set {setting}=auto"]
    assert not runs.exists() or not any(runs.iterdir())  # nothing written
