"""The C kernel of the fused cross-entropy (textgan/accel/csrc/linear_ce.c): the same loss, target
log-probabilities and gradients as F.cross_entropy on the full logits in float64 (the trusted
reference) and as the torch chunked path, for shapes that do not fill its 16-row blocks or
16-wide vectors, banned tokens, any thread count; and the generator's MLE loss with either kernel."""
from __future__ import annotations


import functools

import pytest
import torch
import torch.nn.functional as F

from textgan import accel
from textgan.accel import linear_ce as linear_ce_native
from textgan.accel.build import _cpu_flags
from textgan.accel.fused_ce import linear_cross_entropy, target_log_probs
from textgan.models.generator import Generator

from conftest import run_without_avx512

needs_cc = pytest.mark.skipif(linear_ce_native.kernels() is None, reason="no C compiler")
IGNORE = -100


def problem(n, h, v, pad_frac=0.0, bias=True, seed=0, banned=()):
    g = torch.Generator().manual_seed(seed)
    hidden = torch.randn(n, h, generator=g)
    weight = torch.randn(v, h, generator=g) * 0.5
    b = torch.randn(v, generator=g) if bias else None
    if b is not None and banned:
        b[list(banned)] = -1e9  # the generator's additive mask for tokens it never emits
    targets = torch.randint(0, v, (n,), generator=g)
    if banned:
        targets[torch.isin(targets, torch.tensor(banned))] = v - 1
    targets[torch.rand(n, generator=g) < pad_frac] = IGNORE
    return hidden, weight, b, targets


def ce_and_grads(hidden, weight, bias, targets, fn, reduction="mean"):
    leaves = [t.detach().clone().requires_grad_() for t in (hidden, weight) + ((bias,) if bias is not None else ())]
    loss = fn(leaves[0], leaves[1], leaves[2] if bias is not None else None, targets, reduction)
    grads = torch.autograd.grad(loss, leaves)
    return loss.detach(), grads


def reference(h, w, b, y, reduction):
    """F.cross_entropy on the full float64 logits."""
    logits = h.double() @ w.double().T + (0 if b is None else b.double())
    return F.cross_entropy(logits, y, ignore_index=IGNORE, reduction=reduction)


def native(h, w, b, y, reduction):
    return linear_cross_entropy(h, w, b, y, ignore_index=IGNORE, reduction=reduction, kernel="native")


@needs_cc
@pytest.mark.parametrize("n,h,v", [(1, 32, 4663), (15, 32, 100), (16, 16, 16), (17, 20, 7), (100, 256, 1000),
                                   (333, 32, 4663), (50, 3, 33)])
@pytest.mark.parametrize("pad_frac", [0.0, 0.3])
@pytest.mark.parametrize("bias", [True, False])
def test_matches_float64_cross_entropy(n, h, v, pad_frac, bias):
    args = problem(n, h, v, pad_frac, bias, seed=n + h + v)
    if not bool((args[3] != IGNORE).any()):
        pytest.skip("every row ignored")
    loss, grads = ce_and_grads(*args, native)
    ref_loss, ref_grads = ce_and_grads(*[a.double() if a is not None and a.is_floating_point() else a
                                         for a in args], reference)  # float64 leaves, float64 gradients
    assert loss.dtype == torch.float32
    torch.testing.assert_close(loss.double(), ref_loss, rtol=1e-5, atol=1e-6)
    for got, want in zip(grads, ref_grads):
        assert got.dtype == torch.float32 and got.shape == want.shape
        torch.testing.assert_close(got.double(), want, rtol=1e-4, atol=1e-6)


@needs_cc
@pytest.mark.parametrize("reduction", ["mean", "sum"])
def test_native_and_torch_kernels_agree(reduction):
    args = problem(700, 32, 4663, pad_frac=0.2, banned=(0, 1, 3))
    loss_n, grads_n = ce_and_grads(*args, lambda *a: linear_cross_entropy(
        *a[:4], ignore_index=IGNORE, reduction=a[4], kernel="native"), reduction)
    loss_t, grads_t = ce_and_grads(*args, lambda *a: linear_cross_entropy(
        *a[:4], ignore_index=IGNORE, reduction=a[4], kernel="torch"), reduction)
    torch.testing.assert_close(loss_n, loss_t, rtol=1e-5, atol=1e-5)
    for a, b in zip(grads_n, grads_t):  # float32 sums over 4,663 terms: absolute, relative to the largest
        torch.testing.assert_close(a, b, rtol=1e-5, atol=1e-5 * float(b.abs().max()))
    banned_grad = grads_n[2][[0, 1, 3]]  # softmax mass of a -1e9 logit is exactly 0
    assert torch.equal(banned_grad, torch.zeros_like(banned_grad))


@needs_cc
def test_target_log_probs_match_log_softmax_and_ignore_rows():
    h, w, b, y = problem(257, 32, 500, pad_frac=0.25, banned=(2,))
    got = target_log_probs(h, w, b, y, IGNORE, kernel="native")
    logp = torch.log_softmax(h.double() @ w.double().T + b.double(), 1)
    want = torch.where(y != IGNORE, logp.gather(1, y.clamp(min=0)[:, None]).squeeze(1), torch.zeros(()).double())
    torch.testing.assert_close(got.double(), want, rtol=1e-5, atol=1e-5)
    assert bool((got[y == IGNORE] == 0).all())


@needs_cc
def test_far_below_the_maximum_gives_exact_log_probs():
    """Targets whose logit is ~1000 below the row's maximum: the probability underflows, the log
    does not (the torch path recomputes such rows; the kernel never takes a log of p)."""
    h, w, b, y = problem(40, 8, 50)
    b = b.clone()
    b[y[:20]] -= 1000.0
    got = target_log_probs(h, w, b, y, IGNORE, kernel="native")
    want = torch.log_softmax(h.double() @ w.double().T + b.double(), 1).gather(1, y[:, None]).squeeze(1)
    assert bool(torch.isfinite(got).all())
    torch.testing.assert_close(got.double(), want, rtol=1e-6, atol=1e-3)


@needs_cc
def test_deterministic_and_close_for_any_thread_count():
    args = problem(999, 32, 1000, pad_frac=0.1)
    before = torch.get_num_threads()
    runs = {}
    try:
        for threads in (1, 2, 3, 2):
            torch.set_num_threads(threads)
            runs.setdefault(threads, []).append(ce_and_grads(*args, native))
    finally:
        torch.set_num_threads(before)
    (l2a, g2a), (l2b, g2b) = runs[2]
    assert torch.equal(l2a, l2b) and all(torch.equal(a, b) for a, b in zip(g2a, g2b))  # same split, same sums
    for threads in (1, 3):
        loss, grads = runs[threads][0]
        torch.testing.assert_close(loss, l2a, rtol=1e-6, atol=1e-6)
        for a, b in zip(grads, g2a):
            torch.testing.assert_close(a, b, rtol=1e-5, atol=1e-7)


@needs_cc
def test_nan_hidden_state_gives_nan_loss():
    h, w, b, y = problem(20, 16, 40)
    h[3, 5] = float("nan")
    assert torch.isnan(linear_cross_entropy(h, w, b, y, kernel="native"))


@needs_cc
def test_generator_mle_loss_same_with_either_kernel():
    torch.manual_seed(0)
    gen = Generator(vocab_size=60, emb_dim=8, hidden_dim=24, num_layers=2, latent_dim=4, prior="normal",
                    banned=[0, 1])
    tokens = torch.randint(3, 60, (9, 11))
    tokens[:4, 7:] = 0  # padding
    z = gen.sample_latent(9, torch.Generator().manual_seed(1))
    results = {}
    for kernel in ("native", "torch"):
        accel.apply(gen, None, "native")
        gen.ops.cross_entropy = functools.partial(accel._cross_entropy, kernel=kernel)
        gen.zero_grad()
        loss = gen.mle_loss(tokens, z, pad_id=0)
        loss.backward()
        results[kernel] = (loss.detach(), [p.grad.clone() for p in gen.parameters() if p.grad is not None])
    assert accel.describe(gen, None)["cross_entropy"] == "torch"
    accel.apply(gen, None, "auto")
    assert accel.describe(gen, None)["cross_entropy"] == "native"
    torch.testing.assert_close(results["native"][0], results["torch"][0], rtol=1e-5, atol=1e-6)
    for a, b in zip(results["native"][1], results["torch"][1]):
        torch.testing.assert_close(a, b, rtol=1e-4, atol=1e-6)


@needs_cc
def test_auto_takes_the_kernel_only_where_it_is_faster():
    """auto: the C kernel up to hidden 64, torch's matmuls above (faster there on the Xeon)."""
    def used(hidden, mode):
        gen = Generator(30, 8, hidden, 1, 4, "normal")
        accel.apply(gen, None, mode)
        return accel.describe(gen, None)["cross_entropy"]
    assert used(32, "auto") == used(64, "auto") == "native"
    assert used(32, "native") == "native"
    assert used(128, "auto") == "torch" and used(128, "native") == "native" and used(32, "off") == "torch"
    wide = problem(40, 128, 300)
    auto_loss = linear_cross_entropy(*wide, kernel="auto")
    torch_loss = linear_cross_entropy(*wide, kernel="torch")
    assert torch.equal(auto_loss, torch_loss)  # the same path, not just close


@needs_cc
@pytest.mark.parametrize("bad", [-1, 50])
def test_target_out_of_range_is_an_error_as_in_torch(bad):
    h, w, b, y = problem(20, 16, 50)
    y[7] = bad
    for kernel, error in (("native", IndexError), ("torch", RuntimeError)):  # never a silent read
        with pytest.raises(error):
            linear_cross_entropy(h.requires_grad_(), w, b, y, kernel=kernel)
        with pytest.raises(error):
            target_log_probs(h, w, b, y, kernel=kernel)


def test_bad_kernel_name_is_rejected():
    h, w, b, y = problem(4, 4, 5)
    with pytest.raises(ValueError, match="kernel must be one of"):
        linear_cross_entropy(h, w, b, y, kernel="fast")
    with pytest.raises(ValueError, match="kernel must be one of"):
        target_log_probs(h, w, b, y, kernel="fast")


@needs_cc
@pytest.mark.skipif("avx512f" not in _cpu_flags(), reason="the generic path is the default here")
def test_generic_vector_path_matches_too(tmp_path):
    """The kernel built without AVX-512 (TEXTGAN_CFLAGS=-mno-avx512f: the AVX2 machines' exp and
    max) in a fresh process: the same loss and gradients, exact zeros for banned tokens, NaN kept."""
    script = """
import torch, torch.nn.functional as F
from textgan.accel.fused_ce import linear_cross_entropy
g = torch.Generator().manual_seed(0)
for n, h, v in [(37, 32, 4663), (17, 20, 7), (300, 64, 1000)]:
    hid = torch.randn(n, h, generator=g).requires_grad_()
    w = (torch.randn(v, h, generator=g) * 0.5).requires_grad_()
    b = torch.randn(v, generator=g)
    b[0] = -1e9
    b = b.requires_grad_()
    y = torch.randint(1, v, (n,), generator=g)
    loss = linear_cross_entropy(hid, w, b, y, kernel="native")
    got = torch.autograd.grad(loss, [hid, w, b])
    leaves = [t.detach().double().requires_grad_() for t in (hid, w, b)]
    ref = F.cross_entropy(leaves[0] @ leaves[1].T + leaves[2], y)
    want = torch.autograd.grad(ref, leaves)
    torch.testing.assert_close(loss.double(), ref, rtol=1e-5, atol=1e-6)
    for a, r in zip(got, want):
        torch.testing.assert_close(a.double(), r, rtol=1e-4, atol=1e-6)
    assert got[2][0] == 0 and bool((got[1][0] == 0).all())
hid = torch.randn(20, 16)
hid[3, 5] = float("nan")
assert torch.isnan(linear_cross_entropy(hid, torch.randn(40, 16), torch.randn(40), torch.randint(0, 40, (20,)), kernel="native"))
print("OK")
"""
    run_without_avx512(script, tmp_path, "linear_ce")
