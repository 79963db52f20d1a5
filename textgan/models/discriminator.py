"""Sequence discriminators over (soft) one-hot token distributions.

Shapes: B batch, T time, V vocabulary, E embedding, R representations,
F filters, H hidden. Every discriminator maps (B, T, V) distributions to logits
of shape (B, R) (R = 1 for single-representation models); losses average over all.
Padding is the pad one-hot, so mask = 1 - dists[..., pad] needs no extra input.
"""
from __future__ import annotations

import torch
from torch import nn

from textgan import native
from textgan.models import convmax_native, highway_native
from textgan.models.convmax import block_max, conv_relu_max, conv_relu_max_reference
from textgan.models.dropout import Dropout


class Highway(nn.Module):
    """y = g * relu(W x) + (1 - g) * x, g = sigmoid(W_g x) (Srivastava et al. 2015), computed as
    x + g * (relu(W x) - x); the gate by the C kernel of highway_native where `kernel` takes it.
    shared: W_g = W, one product for both (TextGAN-PyTorch's RelGAN discriminator; half the
    FLOPs, which are nearly all of an adversarial step's at RelGAN's size)."""

    def __init__(self, dim: int, kernel: str = "auto", shared: bool = False):
        super().__init__()
        if kernel == "native":
            native.require(highway_native.kernels(), "discriminator.highway_kernel")
        self.kernel = kernel
        self.proj = nn.Linear(dim, dim if shared else 2 * dim)

    def kernel_used(self) -> str:
        """native or torch, on this module's device and dtype."""
        # the bias: reading a spectrally normalised weight would run a power iteration
        return "native" if self.kernel != "torch" and highway_native.supports(self.proj.bias) else "torch"

    def forward(self, x: torch.Tensor, mask: torch.Tensor | None = None) -> torch.Tensor:
        """The layer's output, times `mask` (the following dropout's, a constant) where given."""
        if self.kernel != "torch" and highway_native.supports(x):
            p = nn.functional.linear(x, self.proj.weight)  # (..., 2D) or (..., D); the kernel adds the bias
            return highway_native.gate(p, self.proj.bias, x, mask)
        y = highway_native.gate_torch(self.proj(x), x)  # proj: [W x + b, W_g x + b_g], or W x + b
        return y if mask is None else y * mask


class RelGANCNN(nn.Module):
    """RelGAN's CNN discriminator (Nie et al. 2019): a linear embedding of the
    distribution split into R narrow representations, 1-D convolutions of several
    widths over time for each representation, max over time, highway, dropout."""

    def __init__(self, vocab_size: int, emb_dim: int = 64, num_rep: int = 64,
                 filter_sizes: list[int] = (2, 3, 4, 5), num_filters: list[int] = (300, 300, 300, 300),
                 dropout: float = 0.25, pad_id: int = 0, fast: bool = True, compile: bool = False,
                 conv_kernel: str = "auto", highway_kernel: str = "auto", highway: str = "gated"):
        super().__init__()
        self.pad_id, self.num_rep, self.rep_dim = pad_id, num_rep, emb_dim // num_rep
        self.fast = fast  # blockwise or native conv+max (textgan.models.convmax*); False = torch's conv2d
        if conv_kernel == "native":
            native.require(convmax_native.kernels(), "discriminator.conv_kernel")
        self.native = conv_kernel == "native" or (conv_kernel == "auto" and not compile)  # on CPU
        # torch.compile fuses each block's conv, max and argmax into one pass (needs a C++ compiler)
        self.block = block_max
        if compile:
            self.block = torch.compile(block_max, dynamic=False)
            # One static graph per (width, argmax tracked or not); dynamo's default limit of 8 per
            # function would send the rest back to eager without a word.
            limit = 2 * len(set(filter_sizes)) + 2  # + the last block of a batch not divisible by rows
            torch._dynamo.config.recompile_limit = max(torch._dynamo.config.recompile_limit, limit)
        self.embed = nn.Linear(vocab_size, emb_dim, bias=False)
        self.convs = nn.ModuleList(
            nn.Conv2d(1, n, kernel_size=(f, self.rep_dim), stride=(1, self.rep_dim))
            for f, n in zip(filter_sizes, num_filters))
        total = sum(num_filters)
        self.highway = Highway(total, kernel=highway_kernel, shared=highway == "shared")
        self.dropout = Dropout(dropout)
        self.feature = nn.Linear(total, 100)
        self.logit = nn.Linear(100, 1)

    def conv_kernel(self) -> str:
        """Which conv + max runs on this module's device, for the log: native, torch, compiled or reference."""
        probe = next(self.embed.parameters())  # not .weight: under spectral_norm that runs a power iteration
        if self.fast and self.native and convmax_native.supports(probe):
            return "native"
        if not self.fast:
            return "reference"
        return "compiled" if self.block is not block_max else "torch"

    def forward(self, dists: torch.Tensor) -> torch.Tensor:
        mask = 1.0 - dists[..., self.pad_id]  # (B, T)
        emb = self.embed(dists) * mask.unsqueeze(-1)  # (B, T, E)
        b, t, _ = emb.shape
        widest = max(conv.kernel_size[0] for conv in self.convs)
        if t < widest:  # sequence shorter than a filter: pad time with zeros
            emb = nn.functional.pad(emb, (0, 0, 0, widest - t))
        reps = emb.view(b, -1, self.num_rep, self.rep_dim)  # (B, T, R, D)
        if self.fast and self.native and convmax_native.supports(reps):
            pooled = [convmax_native.conv_relu_max_native(reps, conv.weight[:, 0], conv.bias) for conv in self.convs]
        elif self.fast:  # CPU: cache-sized blocks of one row; GPU: the whole batch in one block
            rows = b if reps.is_cuda else 1
            pooled = [conv_relu_max(reps, conv.weight[:, 0], conv.bias, rows, self.block) for conv in self.convs]
        else:
            pooled = [conv_relu_max_reference(reps, conv.weight[:, 0], conv.bias) for conv in self.convs]
        feats = torch.cat(pooled, dim=2)  # (B, R, sum F)
        mask = self.dropout.native_mask(feats)  # drawn where the dropout would draw it: after the highway's
        feats = self.highway(feats, mask) if mask is not None else self.dropout(self.highway(feats))
        return self.logit(self.feature(feats)).squeeze(-1)  # (B, R)


class LSTMDiscriminator(nn.Module):
    """An LSTM over the embedded distribution; the last real position's state is scored."""

    def __init__(self, vocab_size: int, emb_dim: int = 64, hidden_dim: int = 64,
                 dropout: float = 0.25, pad_id: int = 0):
        super().__init__()
        self.pad_id = pad_id
        self.embed = nn.Linear(vocab_size, emb_dim, bias=False)
        self.lstm = nn.LSTM(emb_dim, hidden_dim, batch_first=True)
        self.dropout = Dropout(dropout)
        self.logit = nn.Linear(hidden_dim, 1)

    def forward(self, dists: torch.Tensor) -> torch.Tensor:
        mask = 1.0 - dists[..., self.pad_id]  # (B, T)
        hidden, _ = self.lstm(self.embed(dists) * mask.unsqueeze(-1))  # (B, T, H)
        last = (mask.sum(1).round().long() - 1).clamp(min=0)  # (B,) index of the last token
        final = hidden[torch.arange(hidden.shape[0], device=hidden.device), last]  # (B, H)
        return self.logit(self.dropout(final))  # (B, 1)
