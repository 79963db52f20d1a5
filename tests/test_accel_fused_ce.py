"""Chunked linear cross-entropy: the same loss and the same gradients as F.cross_entropy on the
full logits (the trusted reference), for any chunking, padding, dtype and grad mode; and
Generator.mle_loss equals cross-entropy of the teacher-forced logits, parameter gradients too."""
from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from textgan import accel
from textgan.accel.fused_ce import linear_cross_entropy
from textgan.models.generator import Generator

TOL = {torch.float32: dict(rtol=1e-5, atol=1e-5), torch.float64: dict(rtol=1e-10, atol=1e-10)}
IGNORE = -100


def problem(n: int, dtype: torch.dtype, pad_frac: float = 0.0, bias: bool = True, v: int = 50, h: int = 16,
            seed: int = 0, device: str = "cpu"):
    g = torch.Generator().manual_seed(seed)
    hidden = torch.randn(n, h, generator=g, dtype=dtype).to(device).requires_grad_()
    weight = torch.randn(v, h, generator=g, dtype=dtype).to(device).requires_grad_()
    b = torch.randn(v, generator=g, dtype=dtype).to(device).requires_grad_() if bias else None
    targets = torch.randint(0, v, (n,), generator=g)
    targets[torch.rand(n, generator=g) < pad_frac] = IGNORE
    return hidden, weight, b, targets.to(device)


def reference(hidden, weight, bias, targets, reduction="mean"):
    logits = hidden @ weight.T + (0 if bias is None else bias)  # (N, V)
    return F.cross_entropy(logits, targets, ignore_index=IGNORE, reduction=reduction)


def grads(loss, inputs):
    return torch.autograd.grad(loss, [t for t in inputs if t is not None])


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
@pytest.mark.parametrize("n", [1, 7, 100, 257])
@pytest.mark.parametrize("pad_frac", [0.0, 0.4])
@pytest.mark.parametrize("chunk_rows", [8, None])
@pytest.mark.parametrize("bias", [True, False])
def test_matches_cross_entropy(dtype, n, pad_frac, chunk_rows, bias):
    h, w, b, y = problem(n, dtype, pad_frac, bias, seed=n)
    ref = reference(h, w, b, y)
    out = linear_cross_entropy(h, w, b, y, ignore_index=IGNORE, chunk_rows=chunk_rows)
    torch.testing.assert_close(out, ref, **TOL[dtype], equal_nan=True)
    for got, want in zip(grads(out, (h, w, b)), grads(ref, (h, w, b))):
        torch.testing.assert_close(got, want, **TOL[dtype])


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_sum_reduction_and_upstream_gradient(dtype):
    h, w, b, y = problem(37, dtype, pad_frac=0.3)
    ref = reference(h, w, b, y, reduction="sum")
    out = linear_cross_entropy(h, w, b, y, ignore_index=IGNORE, chunk_rows=5, reduction="sum")
    torch.testing.assert_close(out, ref, **TOL[dtype])
    for got, want in zip(grads(2.5 * out, (h, w, b)), grads(2.5 * ref, (h, w, b))):
        torch.testing.assert_close(got, want, **TOL[dtype])


@pytest.mark.parametrize("n", [0, 5])
def test_all_rows_ignored_is_nan_with_zero_gradients_like_torch(n):
    h, w, b, y = problem(n, torch.float64, pad_frac=1.0)
    ref = reference(h, w, b, y)
    out = linear_cross_entropy(h, w, b, y, ignore_index=IGNORE, chunk_rows=2)
    assert torch.isnan(ref) and torch.isnan(out)
    for got, want in zip(grads(out, (h, w, b)), grads(ref, (h, w, b))):
        torch.testing.assert_close(got, want)
    assert linear_cross_entropy(h, w, b, y, ignore_index=IGNORE, reduction="sum").item() == 0.0


def test_no_grad_and_frozen_inputs_skip_gradient_work():
    h, w, b, y = problem(50, torch.float64, pad_frac=0.2)
    ref = reference(h, w, b, y)
    with torch.no_grad():
        out = linear_cross_entropy(h, w, b, y, ignore_index=IGNORE, chunk_rows=16)
    assert out.grad_fn is None
    torch.testing.assert_close(out, ref.detach(), **TOL[torch.float64])
    frozen = linear_cross_entropy(h.detach(), w.detach(), b.detach(), y, ignore_index=IGNORE)
    assert frozen.grad_fn is None and torch.allclose(frozen, ref.detach())
    # Only the hidden states train: the weight and bias get no gradient.
    out = linear_cross_entropy(h, w.detach(), b.detach(), y, ignore_index=IGNORE, chunk_rows=16)
    (gh,) = torch.autograd.grad(out, h)
    torch.testing.assert_close(gh, torch.autograd.grad(ref, h)[0], **TOL[torch.float64])
    # Only the output layer trains (the hidden states are frozen), and only the bias.
    out = linear_cross_entropy(h.detach(), w, b, y, ignore_index=IGNORE, chunk_rows=16)
    want_w, want_b = torch.autograd.grad(reference(h, w, b, y), (w, b))
    for got, want in zip(torch.autograd.grad(out, (w, b)), (want_w, want_b)):
        torch.testing.assert_close(got, want, **TOL[torch.float64])
    out = linear_cross_entropy(h.detach(), w.detach(), b, y, ignore_index=IGNORE, chunk_rows=16)
    torch.testing.assert_close(torch.autograd.grad(out, b)[0], want_b, **TOL[torch.float64])


def test_bad_arguments_are_one_line_errors():
    h, w, b, y = problem(4, torch.float32)
    with pytest.raises(ValueError, match="reduction"):
        linear_cross_entropy(h, w, b, y, reduction="none")
    with pytest.raises(ValueError, match="expected hidden"):
        linear_cross_entropy(h, w, b, y[:3])


@pytest.mark.skipif(not torch.cuda.is_available(), reason="no CUDA device")
@pytest.mark.parametrize("chunk_rows", [16, None])
def test_cuda_matches_cross_entropy(chunk_rows):
    h, w, b, y = problem(300, torch.float32, pad_frac=0.5, v=1000, device="cuda")
    ref = reference(h, w, b, y)
    out = linear_cross_entropy(h, w, b, y, ignore_index=IGNORE, chunk_rows=chunk_rows)
    torch.testing.assert_close(out, ref, **TOL[torch.float32])
    for got, want in zip(grads(out, (h, w, b)), grads(ref, (h, w, b))):
        torch.testing.assert_close(got, want, **TOL[torch.float32])


# ---------------------------------------------------------------------------- generator

PAD, BOS, EOS, V = 0, 1, 2, 50


def padded_tokens(b: int, t: int, seed: int) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    tokens = torch.randint(3, V, (b, t), generator=g)
    lengths = torch.randint(1, t + 1, (b,), generator=g)
    tokens[torch.arange(b), lengths - 1] = EOS
    return tokens.masked_fill(torch.arange(t) >= lengths[:, None], PAD)  # (B, T)


@pytest.mark.parametrize("mode", ["auto", "off"])
@pytest.mark.parametrize("num_layers", [1, 2])
@pytest.mark.parametrize("prior", ["none", "normal"])
def test_generator_mle_loss_matches_teacher_forced_cross_entropy(num_layers, prior, mode):
    """With accel's ops and with the plain ones."""
    torch.manual_seed(0)
    gen = Generator(vocab_size=V, emb_dim=8, hidden_dim=16, num_layers=num_layers, latent_dim=5,
                    prior=prior, banned=[PAD, BOS], pad_id=PAD, bos_id=BOS, eos_id=EOS)
    accel.apply(gen, None, mode)
    tokens, z = padded_tokens(6, 9, seed=1), gen.sample_latent(6, torch.Generator().manual_seed(2))
    assert torch.equal(gen.logits(gen.hidden_states(tokens, z)), gen(tokens, z))
    params = [p for p in gen.parameters()]
    ref = F.cross_entropy(gen(tokens, z).transpose(1, 2), tokens, ignore_index=PAD)
    ref_grads = torch.autograd.grad(ref, params, allow_unused=True)
    out = gen.mle_loss(tokens, z, pad_id=PAD)
    out_grads = torch.autograd.grad(out, params, allow_unused=True)
    torch.testing.assert_close(out, ref, **TOL[torch.float32])
    for got, want in zip(out_grads, ref_grads):
        assert (got is None) == (want is None)
        if want is not None:
            torch.testing.assert_close(got, want, **TOL[torch.float32])


def test_targets_whose_probability_underflows_get_the_exact_loss():
    """With gradients on, log p(target) is read off the softmax; where that probability is below
    fp32's range (target logit far below the row's maximum) the loss must still be exact, not inf."""
    h, w, b, y = problem(40, torch.float32, pad_frac=0.2, v=50, h=16, seed=3)
    with torch.no_grad():
        h.mul_(40.0)  # logit spreads of hundreds of nats
    ref = reference(h, w, b, y)
    logits = h.detach() @ w.detach().T + b.detach()
    valid = y != IGNORE
    p_target = torch.softmax(logits[valid], 1).gather(1, y[valid, None])
    assert (p_target == 0).sum() >= 3  # the case is really exercised
    out = linear_cross_entropy(h, w, b, y, ignore_index=IGNORE, chunk_rows=7)
    assert torch.isfinite(out)
    torch.testing.assert_close(out, ref, rtol=1e-5, atol=1e-4)
    for got, want in zip(grads(out, (h, w, b)), grads(ref, (h, w, b))):  # logits of ~100: fp32 ulp ~1e-5
        torch.testing.assert_close(got, want, rtol=1e-4, atol=1e-4)


def test_a_buffer_grown_during_an_evaluation_serves_later_training():
    """The kept chunk buffer grown under inference mode (an NLL_gen evaluation's kernel scratch
    during a training run) must still take a later training step's in-place writes."""
    from textgan.accel import fused_ce
    gen = torch.Generator().manual_seed(0)
    hidden = torch.randn(48, 16, generator=gen, requires_grad=True)
    weight = torch.randn(300, 16, generator=gen, requires_grad=True)
    targets = torch.randint(0, 300, (48,), generator=gen)
    with torch.inference_mode():
        fused_ce._train_buffer(2048, 4096, hidden)  # larger than anything before: regrown here
    loss = linear_cross_entropy(hidden, weight, None, targets, kernel="torch")
    loss.backward()
    expected = F.cross_entropy(hidden.detach() @ weight.detach().t(), targets)
    torch.testing.assert_close(loss.detach(), expected)
    assert hidden.grad is not None and weight.grad.abs().sum() > 0
