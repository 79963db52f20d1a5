"""Sequence discriminators over (soft) one-hot token distributions.

Shapes: B batch, T time, V vocabulary, E embedding, R representations,
F filters, H hidden, P the features the output layer reads, C classes. Every discriminator maps
(B, T, V) distributions to logits of shape (B, R) (R = 1 for single-representation models);
losses average over all.
Padding is the pad one-hot, so mask = 1 - dists[..., pad] needs no extra input.
With C > 0 classes a discriminator is a projection discriminator (Miyato & Koyama 2018): given
each sentence's class ids (B,), its logit is the unconditional one plus <embed(c), features>; or,
with conditioning "auxiliary", an unconditional one with a classifier head on the same features
(AC-GAN, Odena et al. 2017), whose cross-entropy `scores` returns beside the logits; or, with
conditioning "vector", a projection discriminator of condition vectors (B, C) (a source sentence's
reading, generator.condition sentence), embedded by a linear map.
"""
from __future__ import annotations

from typing import NamedTuple

import torch
import torch.nn.functional as F
from torch import nn

from textgan.models.dropout import Dropout


def conv_relu_max(emb: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor) -> torch.Tensor:
    """max over t of relu(sum_k,d weight[f,k,d] * emb[b,t+k,r,d] + bias[f]), (B, R, F): every
    representation convolved over time by F filters of width K, then the maximum over time.
    emb (B, T, R, D) with T >= K, weight (F, K, D), bias (F,). Where several time steps tie for
    the maximum (a repeated n-gram of one-hots), the gradient goes to the last of them."""
    b, t, r, d = emb.shape
    x = emb.reshape(b, 1, t, r * d)  # (B, 1, T, R*D)
    conv = F.conv2d(x, weight.unsqueeze(1), bias, stride=(1, d))  # (B, F, T', R)
    with torch.no_grad():
        times = torch.arange(conv.shape[2], device=conv.device).view(1, 1, -1, 1)
        last = torch.where(conv == conv.amax(dim=2, keepdim=True), times, -1).amax(dim=2, keepdim=True)  # (B, F, 1, R)
    return torch.relu(conv.gather(2, last)).squeeze(2).transpose(1, 2)  # (B, R, F)


def highway_gate(x: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor,
                 mask: torch.Tensor | None = None) -> torch.Tensor:
    """y = g * relu(h) + (1 - g) * x = x + g * (relu(h) - x), g = sigmoid(gate), from
    [h, gate] = x W^T + b (weight (2D, D)), or h = gate = x W^T + b (weight (D, D), shared); times
    `mask` (a constant) where given. x (..., D) -> y (..., D)."""
    p = F.linear(x, weight, bias)  # (..., 2D) or (..., D)
    h, g = (p, p) if p.shape[-1] == x.shape[-1] else p.chunk(2, dim=-1)
    y = x + torch.sigmoid(g) * (torch.relu(h) - x)
    return y if mask is None else y * mask


class Highway(nn.Module):
    """y = g * relu(W x) + (1 - g) * x, g = sigmoid(W_g x) (Srivastava et al. 2015).
    shared: W_g = W, one product for both (TextGAN-PyTorch's RelGAN discriminator; half the
    FLOPs, which are nearly all of an adversarial step's at RelGAN's size). `gate` computes it
    (`highway_gate`); a faster function computing the same may replace it."""

    def __init__(self, dim: int, shared: bool = False):
        super().__init__()
        self.proj = nn.Linear(dim, dim if shared else 2 * dim)
        self.gate = highway_gate

    def forward(self, x: torch.Tensor, mask: torch.Tensor | None = None) -> torch.Tensor:
        """The layer's output, times `mask` (the following dropout's, a constant) where given."""
        return self.gate(x, self.proj.weight, self.proj.bias, mask)


class Projection(nn.Module):
    """The class term of a projection discriminator: <embed(c), phi> for features phi (B, R, P).
    `vectors`: c is a vector (B, C) (a source sentence's reading), embedded by a linear map."""

    def __init__(self, num_classes: int, feature_dim: int, vectors: bool = False):
        super().__init__()
        self.embed = nn.Linear(num_classes, feature_dim, bias=False) if vectors else nn.Embedding(num_classes, feature_dim)
        if not vectors:
            nn.init.normal_(self.embed.weight, 0.0, feature_dim ** -0.5)  # a term of the logit's scale at the start

    def forward(self, phi: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
        return (phi * self.embed(labels).unsqueeze(1)).sum(-1)  # (B, R)


class AuxClassifier(nn.Module):
    """An auxiliary classifier head: class logits (B, C) from features phi (B, R, P), each
    representation's logits averaged."""

    def __init__(self, num_classes: int, feature_dim: int):
        super().__init__()
        self.out = nn.Linear(feature_dim, num_classes)

    def forward(self, phi: torch.Tensor) -> torch.Tensor:
        return self.out(phi).mean(1)  # (B, C)

    def nll(self, phi: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
        """-log p(labels | sentence) (B,)."""
        return F.cross_entropy(self(phi), labels, reduction="none")


def class_heads(num_classes: int, conditioning: str, feature_dim: int) -> tuple[Projection | None, AuxClassifier | None]:
    """A conditional discriminator's class part: (projection, None) or (None, auxiliary classifier);
    (None, None) when unconditional."""
    if not num_classes:
        return None, None
    if conditioning == "auxiliary":
        return None, AuxClassifier(num_classes, feature_dim)
    return Projection(num_classes, feature_dim, vectors=conditioning == "vector"), None


def conditional_logit(head: nn.Linear, projection: Projection | None, phi: torch.Tensor,
                      labels: torch.Tensor | None) -> torch.Tensor:
    """head(phi) (B, R), plus the projection's class term where classes are given; phi (B, R, P)."""
    logit = head(phi).squeeze(-1)  # (B, R)
    if projection is None:
        return logit
    if labels is None:
        raise ValueError("a conditional discriminator scores a sentence with its class: pass labels (B,)")
    return logit + projection(phi, labels)


class ConditionalScores(NamedTuple):
    """A conditional discriminator's verdict on sentences given their classes (a tuple, so DDP can
    return it from a forward)."""
    logits: torch.Tensor  # (B, R): `forward`'s
    class_nll: torch.Tensor | None  # (B,): an auxiliary classifier's -log p(c | x); None for a projection


def scored(head: nn.Linear, projection: Projection | None, aux: AuxClassifier | None, phi: torch.Tensor,
           labels: torch.Tensor) -> ConditionalScores:
    """The scores of features phi (B, R, P) given classes `labels` (B,)."""
    return ConditionalScores(conditional_logit(head, projection, phi, labels),
                             None if aux is None else aux.nll(phi, labels))


class RelGANCNN(nn.Module):
    """RelGAN's CNN discriminator (Nie et al. 2019): a linear embedding of the
    distribution split into R narrow representations, 1-D convolutions of several
    widths over time for each representation, max over time, highway, dropout.
    `conv_relu_max` computes each width's convolution and maximum (the function above); a faster
    function computing the same may replace it."""

    def __init__(self, vocab_size: int, emb_dim: int = 64, num_rep: int = 64,
                 filter_sizes: list[int] = (2, 3, 4, 5), num_filters: list[int] = (300, 300, 300, 300),
                 dropout: float = 0.25, pad_id: int = 0, highway: str = "gated", num_classes: int = 0,
                 conditioning: str = "projection"):
        super().__init__()
        self.pad_id, self.num_rep, self.rep_dim = pad_id, num_rep, emb_dim // num_rep
        self.conv_relu_max = conv_relu_max
        self.embed = nn.Linear(vocab_size, emb_dim, bias=False)
        self.convs = nn.ModuleList(
            nn.Conv2d(1, n, kernel_size=(f, self.rep_dim), stride=(1, self.rep_dim))
            for f, n in zip(filter_sizes, num_filters))
        total = sum(num_filters)
        self.highway = Highway(total, shared=highway == "shared")
        self.dropout = Dropout(dropout)
        self.feature = nn.Linear(total, 100)
        self.logit = nn.Linear(100, 1)
        self.projection, self.aux = class_heads(num_classes, conditioning, 100)

    def forward(self, dists: torch.Tensor, labels: torch.Tensor | None = None) -> torch.Tensor:
        """Logits (B, R) of distributions (B, T, V); `labels` (B,): the classes, when conditional."""
        return conditional_logit(self.logit, self.projection, self._features(self._masked(dists)), labels)  # (B, R)

    def scores(self, dists: torch.Tensor, labels: torch.Tensor) -> ConditionalScores:
        """A conditional run's `forward` of distributions (B, T, V) and, with an auxiliary classifier, its class NLL."""
        return scored(self.logit, self.projection, self.aux, self._features(self._masked(dists)), labels)

    def forward_tokens(self, tokens: torch.Tensor) -> torch.Tensor:
        """`forward` of the one-hots of tokens (B, T), without making them: the embedding's
        columns looked up (the policy-gradient algorithms score thousands of discrete rollouts)."""
        return self.logit(self._features(token_embedding(self.embed, tokens, self.pad_id))).squeeze(-1)

    def features_and_logits(self, dists: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """The sentence features (B, R * 100) the output layer reads, and `forward`'s logits (B, R),
        from one pass (textGAN matches the features; one forward per backward under DDP)."""
        feats = self._features(self._masked(dists))  # (B, R, 100)
        return feats.flatten(1), self.logit(feats).squeeze(-1)

    def features_tokens(self, tokens: torch.Tensor) -> torch.Tensor:
        """`features_and_logits`'s features (B, R * 100) of the one-hots of tokens (B, T), without
        making them (LeakGAN leaks them to its generator for every prefix of every sample)."""
        return self._features(token_embedding(self.embed, tokens, self.pad_id)).flatten(1)

    def _masked(self, dists: torch.Tensor) -> torch.Tensor:
        """The embedded distribution (B, T, E), zero at pad positions."""
        mask = 1.0 - dists[..., self.pad_id]  # (B, T)
        return self.embed(dists) * mask.unsqueeze(-1)

    def _features(self, emb: torch.Tensor) -> torch.Tensor:
        """The output layer's input (B, R, 100) from masked embeddings (B, T, E)."""
        b, t, _ = emb.shape
        widest = max(conv.kernel_size[0] for conv in self.convs)
        if t < widest:  # sequence shorter than a filter: pad time with zeros
            emb = nn.functional.pad(emb, (0, 0, 0, widest - t))
        reps = emb.view(b, -1, self.num_rep, self.rep_dim)  # (B, T, R, D)
        pooled = [self.conv_relu_max(reps, conv.weight[:, 0], conv.bias) for conv in self.convs]
        return self.pooled_features(torch.cat(pooled, dim=2))

    def pooled_features(self, feats: torch.Tensor) -> torch.Tensor:
        """The output layer's input (B, R, 100) from the pooled convolutions (B, R, sum F): highway,
        dropout, the feature layer (LeakGAN's incremental leaked features pool their own)."""
        keep = self.dropout.mask(feats)  # the dropout after the highway, applied by the highway
        return self.feature(self.highway(feats, keep))  # (B, R, 100)


def token_embedding(embed: nn.Linear, tokens: torch.Tensor, pad_id: int) -> torch.Tensor:
    """embed(one_hot(tokens)) with pad positions zeroed, (B, T, E), as a lookup of embed's columns."""
    emb = F.embedding(tokens, embed.weight.t())  # (B, T, E)
    return emb * (tokens != pad_id).unsqueeze(-1).to(emb.dtype)


class LSTMDiscriminator(nn.Module):
    """An LSTM over the embedded distribution; the last real position's state is scored
    (`step_logits`: every position's, for adversarial.algorithm scratchgan)."""

    def __init__(self, vocab_size: int, emb_dim: int = 64, hidden_dim: int = 64,
                 dropout: float = 0.25, pad_id: int = 0, num_classes: int = 0, conditioning: str = "projection"):
        super().__init__()
        self.pad_id = pad_id
        self.embed = nn.Linear(vocab_size, emb_dim, bias=False)
        self.lstm = nn.LSTM(emb_dim, hidden_dim, batch_first=True)
        self.dropout = Dropout(dropout)
        self.logit = nn.Linear(hidden_dim, 1)
        self.projection, self.aux = class_heads(num_classes, conditioning, hidden_dim)

    def forward(self, dists: torch.Tensor, labels: torch.Tensor | None = None) -> torch.Tensor:
        """Logits (B, 1) of distributions (B, T, V); `labels` (B,): the classes, when conditional."""
        return self._logits(self._read(dists), labels)

    def scores(self, dists: torch.Tensor, labels: torch.Tensor) -> ConditionalScores:
        """A conditional run's `forward` of distributions (B, T, V) and, with an auxiliary classifier, its class NLL."""
        return scored(self.logit, self.projection, self.aux, self._read(dists).unsqueeze(1), labels)

    def forward_tokens(self, tokens: torch.Tensor) -> torch.Tensor:
        """`forward` of the one-hots of tokens (B, T), without making them."""
        emb = token_embedding(self.embed, tokens, self.pad_id)
        return self.logit(self._features(emb, (tokens != self.pad_id).float()))

    def step_logits(self, tokens: torch.Tensor) -> torch.Tensor:
        """A logit (B, T) for every prefix y_1..y_t of tokens (B, T), 0 at pad positions: the
        LSTM's state after reading y_t, dropout, the output layer. The LSTM runs forward only, so
        step t sees no later token: ScratchGAN's per-step discriminator (de Masson d'Autume et al.
        2019). Without dropout its logit at a sentence's last token is `forward_tokens`'."""
        emb = token_embedding(self.embed, tokens, self.pad_id)  # (B, T, E)
        hidden, _ = self.lstm(emb)  # (B, T, H)
        logits = self.logit(self.dropout(hidden)).squeeze(-1)  # (B, T)
        return logits * (tokens != self.pad_id).to(logits.dtype)

    def features_and_logits(self, dists: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """The sentence features (B, H) the output layer reads, and `forward`'s logits (B, 1)."""
        feats = self._read(dists)
        return feats, self.logit(feats)

    def _read(self, dists: torch.Tensor) -> torch.Tensor:
        """The sentence features (B, H) of distributions (B, T, V), pad positions masked."""
        mask = 1.0 - dists[..., self.pad_id]  # (B, T)
        return self._features(self.embed(dists) * mask.unsqueeze(-1), mask)

    def _features(self, emb: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        """The last real position's state after dropout (B, H), from masked embeddings (B, T, E)
        with mask (B, T)."""
        hidden, _ = self.lstm(emb)  # (B, T, H)
        last = (mask.sum(1).round().long() - 1).clamp(min=0)  # (B,) index of the last token
        final = hidden[torch.arange(hidden.shape[0], device=hidden.device), last]  # (B, H)
        return self.dropout(final)

    def _logits(self, phi: torch.Tensor, labels: torch.Tensor | None) -> torch.Tensor:
        """Logits (B, 1) of features phi (B, H), with the projection's class term when conditional."""
        if self.projection is None:
            return self.logit(phi)  # (B, 1)
        return conditional_logit(self.logit, self.projection, phi.unsqueeze(1), labels)  # (B, 1)
