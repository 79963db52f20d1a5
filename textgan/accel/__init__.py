"""Speed, behind one seam: `apply(generator, discriminator, mode)` swaps the models' replaceable
ops (`Generator.ops`, `RelGANCNN.conv_relu_max`, `Highway.gate`, `Dropout.keep_mask`) for faster
ones computing the same functions, and returns one line for the run's log saying what runs.
LeakGAN's manager-worker generator runs plain torch but for its noise and its leaked copy of the
discriminator, whose ops are swapped as the discriminator's.

The only package that knows about C, compilers or torch.compile. Its rule, held by
tests/test_accel_rule.py: accel changes speed, never results. The noise (Gumbel, dropout) is
bit for bit the same with or without it (textgan.philox defines it; the C kernel reproduces it);
the arithmetic ops agree with the plain torch ones up to float rounding.

Modes (`run.accel`):
  auto     every C kernel that builds, where it is faster at that size (the LSTM and cross-entropy
           kernels up to hidden size 64; torch's matmuls win above), else accel's torch versions
           (chunked cross-entropy, blockwise conv + max); GPUs take the torch versions. The noise's
           kernels ("noise" in the log line) are the Philox streams and the fused sampling step
  native   every C kernel at any size; a one-line error naming the cause where one cannot be built
  compile  as auto, with the conv + max blocks compiled by torch.compile instead of the C kernel
  off      the models' plain torch ops
"""
from __future__ import annotations

import functools

import torch
from torch import nn

from textgan import draws, philox
from textgan.accel import build, convmax, convmax_blocks, fused_ce, highway, linear_ce, lstm, mle, random, sampling
from textgan.models.discriminator import Highway, RelGANCNN, conv_relu_max, highway_gate
from textgan.models.dropout import Dropout
from textgan.models.generator import Generator, GeneratorOps, run_core, teacher_forced_nll
from textgan.models.leakgan import LeakGANGenerator

MODES = ("auto", "native", "compile", "off")
AUTO_MAX_HIDDEN = lstm.AUTO_MAX_HIDDEN  # auto's widest LSTM / cross-entropy for the C kernels (64)


def _lstm_core_run(core: nn.Module, inputs: torch.Tensor, state, max_hidden: int | None) -> torch.Tensor:
    """`run_core` through the C recurrence where it computes the same: an nn.LSTM on CPU float32 up
    to `max_hidden`, with no dropout between layers active (nn.LSTM's masks are its own draws)."""
    if (isinstance(core, nn.LSTM) and lstm.uses_native(core, "native" if max_hidden is None else "auto", inputs)
            and not (core.training and core.dropout > 0 and core.num_layers > 1)):
        return lstm.run(core, inputs, state)
    return run_core(core, inputs, state)


def _cross_entropy(hidden, weight, bias, targets, ignore_index, kernel: str):
    return fused_ce.linear_cross_entropy(hidden, weight, bias, targets, ignore_index=ignore_index, kernel=kernel)


def _target_log_probs(hidden, weight, bias, targets, ignore_index, kernel: str):
    return fused_ce.target_log_probs(hidden, weight, bias, targets, ignore_index, kernel=kernel)


def _fused(gen: Generator, kernel: str) -> bool:
    """Whether the whole MLE loss runs textgan.accel.mle: both C kernels in use, gradients on, no
    dropout active inside it."""
    probe = gen.out.weight
    return (torch.is_grad_enabled() and gen.core_kind == "lstm" and not (gen.training and gen.io_dropout)
            and mle.applies(gen.lstm) and lstm.uses_native(gen.lstm, kernel, probe)
            and fused_ce.uses_native(gen.hidden_dim, kernel, probe))


def mle_fused(gen: Generator) -> bool:
    """Whether `gen.mle_loss` now runs the fused loss of textgan.accel.mle."""
    kernel = _keyword(gen.ops.mle_loss, "kernel")
    return kernel is not None and _fused(gen, kernel)


def _mle_loss(gen: Generator, tokens: torch.Tensor, z: torch.Tensor, pad_id: int, kernel: str) -> torch.Tensor:
    """`teacher_forced_nll`, with every gradient computed in one pass where `_fused` holds."""
    if _fused(gen, kernel):
        return mle.mle_loss(gen.lstm, gen.embedding.weight, gen.out.weight, gen.output_bias(), tokens,
                            gen.state_vector(z), bos_id=gen.bos_id, pad_id=pad_id)
    return teacher_forced_nll(gen, tokens, z, pad_id)


def _gumbel_argmax(noise: bool):
    """One keyed sampling step: the fused kernel where it builds, else the definition with the C
    uniforms (`noise`: the philox kernel built) or numpy's."""
    if noise and sampling.kernels() is not None:
        return sampling.gumbel_argmax
    return functools.partial(draws.gumbel_argmax, uniforms=random.key_uniforms) if noise else draws.gumbel_argmax


def _gumbel_argmax_at(noise: bool):
    """Rollout draws at per-row stream positions: the fused kernel where it builds, else the
    definition with the C uniforms (`noise`: the philox kernel built) or numpy's."""
    if noise and sampling.kernels() is not None:
        return sampling.gumbel_argmax_at
    return functools.partial(draws.gumbel_argmax_at, uniforms=random.key_uniforms) if noise else draws.gumbel_argmax_at


def _conv_relu_max(emb, weight, bias, native: bool, block):
    """conv + max by the C kernel where it runs (CPU), else blockwise torch (`block`: compiled or not)."""
    if native and convmax.supports(emb):
        return convmax.conv_relu_max_native(emb, weight, bias)
    rows = emb.shape[0] if emb.is_cuda else 1  # CPU: cache-sized blocks of one row; GPU: one block
    return convmax_blocks.conv_relu_max(emb, weight, bias, rows, block)


def _highway_gate(x, weight, bias, mask=None):
    """`highway_gate` by the C kernel on CPU float32 (it adds the bias and the mask as it goes)."""
    if highway.supports(x):
        return highway.gate(nn.functional.linear(x, weight), bias, x, mask)
    return highway_gate(x, weight, bias, mask)


def _compiled_block(filter_sizes: list[int]):
    """block_max compiled: one static graph per (width, argmax tracked or not)."""
    # dynamo's default limit of 8 graphs per function would send the rest back to eager without a word
    limit = 2 * len(set(filter_sizes)) + 2  # + the last block of a batch not divisible by rows
    torch._dynamo.config.recompile_limit = max(torch._dynamo.config.recompile_limit, limit)
    return torch.compile(convmax_blocks.block_max, dynamic=False)


def check(mode: str, generator_core: str | None = None, discriminator_kind: str | None = None) -> None:
    """The one-line error for a mode that cannot be honoured, raised before a run writes anything:
    under run.accel=native every kernel the models use (a generator with this core, a discriminator
    of this kind; None: absent) must build, and the error names the cause where one does not."""
    if mode not in MODES:
        raise ValueError(f"accel mode must be one of {', '.join(MODES)}, got {mode!r}")
    if mode != "native":
        return
    needed = [("philox", random.kernels)] + ([("gumbel_max", sampling.kernels)] if generator_core else [])
    if generator_core is not None:
        needed += [("linear_ce", linear_ce.kernels)] + ([("lstm", lstm.kernels)] if generator_core == "lstm" else [])
    if discriminator_kind == "relgan_cnn":
        needed += [("convmax", convmax.kernels), ("highway", highway.kernels)]
    for name, kernels in needed:
        build.require(name, kernels(), f"run.accel={mode}")


def apply(generator: nn.Module | None, discriminator: nn.Module | None, mode: str) -> str:
    """Swap the models' ops for `mode`'s (one of MODES; any earlier swap is undone first) and
    return the log line saying what runs."""
    leaked = generator if isinstance(generator, LeakGANGenerator) else None  # its noise and D's copy only
    if generator is not None and not isinstance(generator, Generator):
        generator = None
    check(mode, None if generator is None else generator.core_kind,
          "relgan_cnn" if isinstance(discriminator, RelGANCNN) else None)
    fast = mode != "off"
    kernel = "native" if mode == "native" else "auto"
    max_hidden = None if mode == "native" else AUTO_MAX_HIDDEN
    noise = random.kernels() is not None if fast else False
    if generator is not None:
        generator.ops = GeneratorOps() if not fast else GeneratorOps(
            core_run=functools.partial(_lstm_core_run, max_hidden=max_hidden),
            cross_entropy=functools.partial(_cross_entropy, kernel=kernel),
            target_log_probs=functools.partial(_target_log_probs, kernel=kernel),
            mle_loss=functools.partial(_mle_loss, kernel=kernel),
            **_noise_ops(noise))
    if leaked is not None:
        leaked.ops = GeneratorOps(**_noise_ops(noise))
    modules = [*(discriminator.modules() if discriminator is not None else ()),
               *(leaked.leak.modules() if leaked is not None else ())]
    for module in modules:
        if isinstance(module, RelGANCNN):
            widths = [conv.kernel_size[0] for conv in module.convs]
            block = _compiled_block(widths) if mode == "compile" else convmax_blocks.block_max
            module.conv_relu_max = (functools.partial(_conv_relu_max, native=mode != "compile", block=block)
                                    if fast else conv_relu_max)
        elif isinstance(module, Highway):
            module.gate = _highway_gate if fast else highway_gate
        elif isinstance(module, Dropout):
            module.keep_mask = random.keep_mask if noise else philox.keep_mask
    return log_line(mode, describe(generator or leaked, discriminator))


def _noise_ops(noise: bool) -> dict:
    """GeneratorOps' noise fields: the C Philox kernels (`noise`: they built) or numpy's, the same bits."""
    return dict(uniform=random.uniform if noise else philox.uniform,
                step_noise=(functools.partial(draws.step_gumbel, uniforms=random.key_uniforms) if noise
                            else draws.step_gumbel),
                gumbel_argmax=_gumbel_argmax(noise), gumbel_argmax_at=_gumbel_argmax_at(noise))


def describe(generator: nn.Module | None, discriminator: nn.Module | None) -> dict[str, str]:
    """Which implementation each op takes on the models' current device and dtype: native (the C
    kernel), torch (accel's torch version or the plain op), compiled, or none where it is absent."""
    out: dict[str, str] = {}
    if isinstance(generator, Generator):
        ops, probe = generator.ops, generator.out.weight
        kernel = _keyword(ops.cross_entropy, "kernel")
        ce = kernel is not None and fused_ce.uses_native(generator.hidden_dim, kernel, probe)
        limit = _keyword(ops.core_run, "max_hidden", missing=0)  # 0: the plain op
        rnn = (generator.core_kind == "lstm" and limit != 0
               and lstm.uses_native(generator.lstm, "native" if limit is None else "auto", probe))
        out["cross_entropy"] = "native" if ce else "torch"
        out["lstm"] = "none" if generator.core_kind != "lstm" else ("native" if rnn else "torch")
        out["mle_loss"] = "fused" if kernel is not None and ce and rnn and mle.applies(generator.lstm) else "layered"
    if generator is not None:
        cpu = generator.out.weight.device.type == "cpu"  # elsewhere torch's generator draws the noise
        out["noise"] = ("native" if generator.ops.uniform is random.uniform else "numpy") if cpu else "torch"
    for module in discriminator.modules() if discriminator is not None else ():
        if isinstance(module, RelGANCNN):
            # not .weight: under spectral_norm that runs a power iteration
            op, probe = module.conv_relu_max, next(module.embed.parameters())
            if op is conv_relu_max:
                out["conv_max"] = "plain"
            elif _keyword(op, "block") is not convmax_blocks.block_max:
                out["conv_max"] = "compiled"
            else:
                out["conv_max"] = "native" if _keyword(op, "native") and convmax.supports(probe) else "torch"
        elif isinstance(module, Highway):
            native = module.gate is _highway_gate and highway.supports(module.proj.bias)
            out["highway"] = "native" if native else "torch"
    return out


def _keyword(op, name: str, missing=None):
    """A keyword bound into one of accel's ops (functools.partial), else `missing` (a plain op)."""
    return op.keywords.get(name, missing) if isinstance(op, functools.partial) else missing


_NAMES = {"cross_entropy": "cross-entropy", "lstm": "LSTM", "mle_loss": "MLE loss", "noise": "noise",
          "conv_max": "conv+max", "highway": "highway gate"}


def log_line(mode: str, ops: dict[str, str]) -> str:
    """One line: the mode, the ops in C, and the rest."""
    if mode == "off":
        return "accel: off (run.accel=off): plain torch ops"
    fast = [_NAMES[k] for k, v in ops.items() if v in ("native", "fused")]
    other = [f"{_NAMES[k]} {v}" for k, v in ops.items() if v not in ("native", "fused", "none")]
    c_part = f"C kernels for {', '.join(fast)}" if fast else "no C kernels"
    return f"accel: {mode} (run.accel={mode}): {c_part}" + (f"; {', '.join(other)}" if other else "")
