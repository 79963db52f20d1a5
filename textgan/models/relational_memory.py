"""Relational memory core: RelGAN's generator cell (Nie et al. 2019), after Santoro et al. 2018,
"Relational recurrent neural networks".

Shapes: B batch, T time, E input (embedding), S memory slots, N heads, K head size,
D = N * K slot width. The memory is S slots of width D. Each step the slots attend over
themselves and the projected input (multi-head dot-product attention), pass a residual MLP with
layer norms, and the result is gated into the old memory with input and forget gates, as an
LSTM gates its cell. The output at each step is the whole memory, flattened: S * D wide.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn


class RelationalMemory(nn.Module):
    """`forward(inputs (B, T, E), memory (B, S, D)) -> (outputs (B, T, S * D), memory)`, the same
    call as a batch-first `nn.LSTM` with its state, so the generator runs either."""

    def __init__(self, input_dim: int, mem_slots: int, num_heads: int, head_size: int,
                 mlp_layers: int = 2, forget_bias: float = 1.0, input_bias: float = 0.0):
        super().__init__()
        self.mem_slots, self.num_heads, self.head_size = mem_slots, num_heads, head_size
        self.width = num_heads * head_size  # D
        self.output_dim = mem_slots * self.width  # S * D
        self.forget_bias, self.input_bias = forget_bias, input_bias
        self.input_proj = nn.Linear(input_dim, self.width)
        # Queries, keys and values of every head from one bias-free projection, layer-normed as a
        # whole (as RelGAN's and Sonnet's RMC do); per head the columns are [q | k | v].
        self.qkv = nn.Linear(self.width, 3 * self.width, bias=False)
        self.norm_qkv = nn.LayerNorm(3 * self.width)
        layers: list[nn.Module] = []
        for i in range(mlp_layers):  # ReLU between layers, none after the last
            layers += [nn.Linear(self.width, self.width)] + ([nn.ReLU()] if i < mlp_layers - 1 else [])
        self.mlp = nn.Sequential(*layers)
        self.norm_attention = nn.LayerNorm(self.width)
        self.norm_mlp = nn.LayerNorm(self.width)
        self.gate_input = nn.Linear(self.width, 2 * self.width, bias=False)  # from the projected input
        self.gate_memory = nn.Linear(self.width, 2 * self.width, bias=False)  # from tanh(old memory)

    def initial_memory(self, batch: int, device: torch.device | str, dtype: torch.dtype) -> torch.Tensor:
        """(B, S, D): slot i starts as the i-th unit vector (Santoro et al.), zero-padded to D."""
        eye = torch.eye(self.mem_slots, self.width, device=device, dtype=dtype)  # (S, D)
        return eye.unsqueeze(0).expand(batch, -1, -1).contiguous()

    def forward(self, inputs: torch.Tensor, memory: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        # Everything that depends on the input alone is computed for all steps at once: its
        # projection, its part of the gates, and its row's normalised queries, keys and values.
        # unbind, not [:, t]: the backward of T slices fills and adds T zero tensors of the whole
        # (B, T, F) size each; unbind's stacks once. Together: an MLE batch at RelGAN's size 7 %
        # faster (BENCHMARKS.md).
        projected = self.input_proj(inputs)  # (B, T, D)
        steps = zip(projected.unbind(1), self.gate_input(projected).unbind(1), self._qkv(projected).unbind(1))
        outputs = []
        for x, gate_x, qkv_x in steps:
            memory = self._update(x, gate_x, qkv_x, memory)  # (B, S, D)
            outputs.append(memory.flatten(1))
        return torch.stack(outputs, 1), memory  # (B, T, S * D)

    def step(self, x: torch.Tensor, memory: torch.Tensor) -> torch.Tensor:
        """One update from the projected input x (B, D); returns the new memory (B, S, D)."""
        return self._update(x, self.gate_input(x), self._qkv(x), memory)

    def _qkv(self, rows: torch.Tensor) -> torch.Tensor:
        """Each row's queries, keys and values, layer-normed together: (..., D) -> (..., 3D)."""
        return self.norm_qkv(self.qkv(rows))

    def _update(self, x: torch.Tensor, gate_x: torch.Tensor, qkv_x: torch.Tensor, memory: torch.Tensor) -> torch.Tensor:
        # The memory rows and the input's row are keys and values (B, S + 1, 3D). Only the memory
        # rows are kept after the step, and everything after the attention is row-wise, so the
        # input's own row is neither queried nor passed through the MLP.
        qkv = torch.cat([self._qkv(memory), qkv_x.unsqueeze(1)], dim=1)
        candidate = self.norm_attention(memory + self._attend(qkv, queries=memory.shape[1]))  # (B, S, D)
        candidate = self.norm_mlp(candidate + self.mlp(candidate))
        gates = gate_x.unsqueeze(1) + self.gate_memory(torch.tanh(memory))  # (B, S, 2D)
        i, f = gates.chunk(2, dim=-1)
        return (torch.sigmoid(i + self.input_bias) * torch.tanh(candidate)
                + torch.sigmoid(f + self.forget_bias) * memory)

    def _attend(self, qkv: torch.Tensor, queries: int) -> torch.Tensor:
        """Multi-head dot-product attention of the first `queries` rows over all rows, from their
        normalised queries, keys and values (B, R, 3D); (B, queries, D) out. The scores are scaled
        by (3K)^-1/2, the width of a head's [q | k | v], as in RelGAN's code, not by K^-1/2."""
        b, r, _ = qkv.shape
        qkv = qkv.view(b, r, self.num_heads, 3 * self.head_size)  # (B, R, N, 3K)
        q, k, v = qkv.transpose(1, 2).split(self.head_size, dim=-1)  # each (B, N, R, K)
        out = F.scaled_dot_product_attention(q[:, :, :queries], k, v, scale=(3 * self.head_size) ** -0.5)
        return out.transpose(1, 2).reshape(b, queries, self.width)  # (B, queries, D)
