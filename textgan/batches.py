"""The real sentences a training step draws: shuffled MLE epochs and with-replacement draws for
the adversarial steps, always one draw of the global batch from the shared `data` stream, of
which each torchrun rank takes its strided shard.

Shapes: B batch (this rank's), T time, V vocabulary.
"""
from __future__ import annotations

from dataclasses import dataclass

import torch

from textgan.corpus import Corpus
from textgan.distributed import Dist
from textgan.run_state import Streams


@dataclass
class Batch:
    tokens: torch.Tensor  # (B, T_batch) this rank's sentences, cut after the longest of them
    lengths: torch.Tensor  # (B,)
    weight: float  # the shard's share of the global batch's tokens times world_size (1.0 in one process)
    labels: torch.Tensor | None = None  # (B,) class ids in a conditional run

    def weighted(self, loss: torch.Tensor) -> torch.Tensor:
        """A per-token mean loss as this shard's part of the global batch's mean, so that DDP's
        average over ranks equals one process on the global batch."""
        return loss if self.weight == 1.0 else loss * self.weight


class TrainBatches:
    """The training set on the run's device and the draws from it."""

    def __init__(self, corpus: Corpus, streams: Streams, dist: Dist, device: torch.device,
                 labelled: bool = False):
        self.tokens = corpus.train.tokens.to(device)  # (N, T)
        self.lengths = corpus.train.lengths.to(device)  # (N,)
        self.labels = corpus.train.labels.to(device) if labelled else None  # (N,) class ids
        self.vocab_size, self.pad_id, self.max_len = len(corpus.vocab), corpus.vocab.pad_id, corpus.max_len
        self.unk_id = corpus.vocab.unk_id  # latent.word_dropout's replacement
        self.streams, self.dist, self.device = streams, dist, device

    def epoch_order(self, resumed: bool) -> torch.Tensor:
        """A permutation of the training set for an MLE epoch; `resumed` (part-way through the
        epoch): the one drawn at its start, redrawn from the data stream's state then."""
        n = self.tokens.shape[0]
        if not resumed:
            self.streams.epoch = self.streams.data.get_state()
            return torch.randperm(n, generator=self.streams.data)
        replay = torch.Generator()
        replay.set_state(self.streams.epoch)
        return torch.randperm(n, generator=replay)

    def draw(self, batch_size: int) -> torch.Tensor:
        """Indices of a global batch (batch_size per rank) drawn with replacement."""
        return torch.randint(self.tokens.shape[0], (batch_size * self.dist.world_size,),
                             generator=self.streams.data)

    def shard(self, whole: torch.Tensor) -> Batch:
        """This rank's part of the global batch `whole` (indices)."""
        whole = whole.to(self.device)
        idx = self.dist.shard(whole)
        lengths = self.lengths[idx]  # (B,)
        # Positions past the batch's longest sentence are all padding: no loss, no gradient.
        tokens = self.tokens[idx, :int(lengths.max())]  # (B, T_batch)
        return Batch(tokens, lengths, self.dist.token_weight(lengths, self.lengths[whole]),
                     None if self.labels is None else self.labels[idx])

    def real_dists(self, batch_size: int) -> torch.Tensor:
        """Real sentences as one-hot distributions (B, T, V) for the discriminator, drawn with
        replacement (one shared draw of the global batch; this rank's shard)."""
        return self.real_labelled(batch_size)[0]

    def real_labelled(self, batch_size: int) -> tuple[torch.Tensor, torch.Tensor | None]:
        """`real_dists`' draw and its sentences' class ids (B,) (None in an unconditional run)."""
        idx = self.dist.shard(self.draw(batch_size)).to(self.device)
        tokens = self.tokens[idx]  # (B, T)
        # Written as float directly: F.one_hot(...).float() filled an int64 array twice the size
        # and converted it (~30 ms a batch at COCO's size, six batches an adversarial step).
        dists = torch.zeros(*tokens.shape, self.vocab_size, device=self.device)
        return dists.scatter_(-1, tokens.unsqueeze(-1), 1.0), None if self.labels is None else self.labels[idx]
