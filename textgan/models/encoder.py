"""Sentence encoders: a (bidirectional) LSTM over token embeddings giving a Gaussian over z, and a
source sentence's reader for conditional generation.

Shapes: B batch, T time, V vocabulary, E embedding, H hidden, Z latent, F the generator's state.
One class serves two jobs: the variational posterior q(z | x) of ELBO pretraining (Bowman et al.
2016), fed token ids, and the latent reconstruction head of the adversarial phase (InfoGAN, Chen
et al. 2016), fed the generator's relaxed one-hots, whose gradient must reach the generator.
"""
from __future__ import annotations

import torch
from torch import nn
from torch.nn.utils.rnn import pack_padded_sequence


def final_states(lstm: nn.LSTM, emb: torch.Tensor, lengths: torch.Tensor) -> torch.Tensor:
    """Each direction's final state (B, directions * H) of embedded inputs (B, T, E), at each
    sentence's own length, so padding never enters."""
    packed = pack_padded_sequence(emb, lengths.clamp(min=1).cpu(), batch_first=True, enforce_sorted=False)
    _, (h, _) = lstm(packed)  # h: (directions, B, H)
    return h.transpose(0, 1).reshape(emb.shape[0], -1)


class SourceReader(nn.Module):
    """The condition of generator.condition=sentence: a bidirectional LSTM's final states over a
    source sentence's embeddings, mapped to a vector (B, F) added to the generator's initial state."""

    def __init__(self, vocab_size: int, emb_dim: int, hidden_dim: int, out_dim: int):
        super().__init__()
        self.embedding = nn.Embedding(vocab_size, emb_dim)
        self.lstm = nn.LSTM(emb_dim, hidden_dim, batch_first=True, bidirectional=True)
        self.out = nn.Linear(2 * hidden_dim, out_dim)

    def forward(self, tokens: torch.Tensor, lengths: torch.Tensor) -> torch.Tensor:
        """The readings (B, F) of source sentences: ids (B, T) up to and including EOS."""
        return self.out(final_states(self.lstm, self.embedding(tokens), lengths))


class SentenceEncoder(nn.Module):
    """Embeddings, an LSTM read up to each sentence's length, and linear maps to mean and log-variance."""

    def __init__(self, vocab_size: int, emb_dim: int, hidden_dim: int, latent_dim: int,
                 bidirectional: bool = True):
        super().__init__()
        self.embedding = nn.Embedding(vocab_size, emb_dim)
        self.lstm = nn.LSTM(emb_dim, hidden_dim, batch_first=True, bidirectional=bidirectional)
        width = hidden_dim * (2 if bidirectional else 1)
        self.mean = nn.Linear(width, latent_dim)
        self.log_var = nn.Linear(width, latent_dim)

    def _read(self, emb: torch.Tensor, lengths: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Mean and log-variance (B, Z) from embedded inputs (B, T, E)."""
        feats = final_states(self.lstm, emb, lengths)
        return self.mean(feats), self.log_var(feats)

    def encode_ids(self, tokens: torch.Tensor, lengths: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """q(z | x) of real sentences: token ids (B, T) up to and including EOS."""
        return self._read(self.embedding(tokens), lengths)

    def encode_dists(self, dists: torch.Tensor, lengths: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """The same of relaxed one-hots (B, T, V): their expected embedding, differentiable in `dists`."""
        return self._read(dists @ self.embedding.weight, lengths)  # (B, T, E)
