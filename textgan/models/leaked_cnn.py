"""LeakGAN's leaked CNN features of a growing prefix, kept up to date a token at a time.

Free-running LeakGAN (sampling, rollouts) reads D's features of its prefix before every token:
`RelGANCNN.features_tokens` of the prefix padded to the sentence width L. Recomputing them
convolves every window of all L positions at every step, though one token changes only the
windows covering it. Here each filter width w keeps, per row, the maximum over the windows
already complete (their last token written) and the partial sums of the w - 1 windows the next
tokens will complete; a new token adds its one tap to each of those (one product per token for all
widths) and completes one. The prefix's maximum is then the larger of the complete windows'
maximum, the partial windows' sums (their unwritten positions are pad, embedded as zero, so a
partial sum is the window's value) and 0 where a window lies wholly in the padding. ReLU, bias,
highway and output layer follow as in the discriminator. The same function as recomputing: each
window's value is the same sum of products, grouped by token (float rounding apart; L x fewer
conv products a step).

Shapes: N rows, L width D scores (padded), R representations, D features per representation,
F filters of one width, K that width, S the state's columns per row.
"""
from __future__ import annotations

import torch

from textgan.models.discriminator import RelGANCNN, token_embedding


class LeakedCNN:
    """The incremental features of one `RelGANCNN` (its current weights, read at every call)."""

    def __init__(self, cnn: RelGANCNN):
        self.cnn = cnn
        self.widths = [conv.kernel_size[0] for conv in cnn.convs]
        self.filters = [conv.out_channels for conv in cnn.convs]
        r = cnn.num_rep
        self.columns = [r * f * w for w, f in zip(self.widths, self.filters)]  # per width: maximum, w - 1 partials

    def width(self, written: int) -> int:
        """L, the width D scores a prefix written in `written` columns at (padded to its widest filter)."""
        return max(written, max(self.widths))

    def start(self, rows: int, device: torch.device) -> torch.Tensor:
        """The state (N, S) of empty prefixes: no window complete (maxima -inf), partial sums 0."""
        state = torch.zeros(rows, sum(self.columns), device=device)
        for top, _ in self._parts(state):
            top.fill_(-torch.inf)
        return state

    def _parts(self, state: torch.Tensor):
        """Per width, views of the complete windows' maxima (N, R, F) and the partial sums
        (N, R, K - 1, F), slot i the window starting at (prefix length) - (K - 1) + i."""
        n, r, at = state.shape[0], self.cnn.num_rep, 0
        for w, f, size in zip(self.widths, self.filters, self.columns):
            part = state[:, at:at + size].view(n, r, w, f)
            yield part[:, :, 0], part[:, :, 1:]
            at += size

    def push(self, state: torch.Tensor, tokens: torch.Tensor, position: int, length: int) -> torch.Tensor:
        """The state after token `position` (0-based) is written, tokens (N,) (pad: a zero tap);
        `length` L. Returns a new state (N, S)."""
        cnn, n = self.cnn, tokens.shape[0]
        emb = token_embedding(cnn.embed, tokens.unsqueeze(1), cnn.pad_id).view(n * cnn.num_rep, cnn.rep_dim)
        weights = torch.cat([conv.weight[:, 0].permute(2, 1, 0).reshape(cnn.rep_dim, -1) for conv in cnn.convs], 1)
        taps = (emb @ weights).view(n, cnn.num_rep, -1)  # (N, R, sum K F): tap k of width K at [k F .. (k + 1) F)
        new, at = torch.empty_like(state), 0
        for (top, part), (new_top, new_part), w, f in zip(self._parts(state), self._parts(new), self.widths,
                                                          self.filters):
            tap = taps[:, :, at:at + w * f].view(n, cnn.num_rep, w, f)  # (N, R, K, F)
            at += w * f
            first = position - (w - 1)  # the window this token completes
            done = tap[:, :, w - 1] if w == 1 else part[:, :, 0] + tap[:, :, w - 1]  # (N, R, F)
            new_top.copy_(torch.maximum(top, done) if 0 <= first <= length - w else top)
            if w > 1:  # slot i - 1 <- slot i plus tap K - 1 - i; the window starting here: tap 0
                new_part[:, :, :-1] = part[:, :, 1:] + tap[:, :, 1:w - 1].flip(2)
                new_part[:, :, -1] = tap[:, :, 0]
        return new

    def features(self, state: torch.Tensor, written: int, length: int) -> torch.Tensor:
        """D's features (N, R * 100) of the prefixes of `written` tokens the state holds, padded to L."""
        pooled = []
        for (top, part), w, conv in zip(self._parts(state), self.widths, self.cnn.convs):
            best = top
            lo, hi = max(0, w - 1 - written), min(w - 2, length - 1 - written)  # slots whose window exists
            if lo <= hi:
                best = torch.maximum(best, part[:, :, lo:hi + 1].amax(2))
            if written <= length - w:  # a window wholly in the padding: value 0
                best = best.clamp(min=0.0)
            pooled.append(torch.relu(best + conv.bias))  # (N, R, F)
        return self.cnn.pooled_features(torch.cat(pooled, dim=2)).flatten(1)
