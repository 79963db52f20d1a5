"""Class accuracy of a conditional generator: a small classifier trained on the real labelled
training sentences reads the class off generated ones; the share of samples asked for class c
that it assigns to c, per class and averaged. Its accuracy on the held-out real sentences is
reported beside (class_acc_real), the ceiling a perfect generator would reach.

The classifier is fastText's (Joulin et al. 2017): the mean of learned vectors of a sentence's
words and hashed word bigrams, then a linear layer; cheap to train, and it sees word order only
through the bigrams. Shapes: N sentences, T time, C classes, F features.
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import torch
from torch import nn

from textgan.cache import keep
from textgan.data import Encoded

BUCKETS = 4096  # hashed bigram features
CLASSIFIER_FILE = "class_classifier.pt"  # its cache in the run folder


class BagClassifier(nn.Module):
    """Mean of word and hashed-bigram vectors (F = V + BUCKETS features), then class logits (C)."""

    def __init__(self, vocab_size: int, num_classes: int, dim: int = 32):
        super().__init__()
        self.vocab_size = vocab_size
        self.bag = nn.EmbeddingBag(vocab_size + BUCKETS, dim, mode="mean")
        self.out = nn.Linear(dim, num_classes)

    def features(self, tokens: torch.Tensor, lengths: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Flat feature ids and per-sentence offsets for the bag: each sentence's words before EOS
        (lengths - 1 of them where it ends in EOS) and its bigrams hashed into BUCKETS."""
        ids, offsets, start = [], [], 0
        for row, n in zip(tokens.tolist(), lengths.tolist()):
            words = [t for t in row[:n] if t > 3] or [0]  # pad, bos, eos, unk say nothing of the class
            bigrams = [self.vocab_size + (a * 7919 + b) % BUCKETS for a, b in zip(words, words[1:])]
            offsets.append(start)
            ids.extend(words + bigrams)
            start += len(words) + len(bigrams)
        return torch.tensor(ids, dtype=torch.long), torch.tensor(offsets, dtype=torch.long)

    def forward(self, tokens: torch.Tensor, lengths: torch.Tensor) -> torch.Tensor:
        """Class logits (N, C) of sentences tokens (N, T) with lengths (N,)."""
        ids, offsets = self.features(tokens.cpu(), lengths.cpu())
        return self.out(self.bag(ids.to(self.out.weight.device), offsets.to(self.out.weight.device)))

    @torch.no_grad()
    def predict(self, tokens: torch.Tensor, lengths: torch.Tensor) -> torch.Tensor:
        return self.forward(tokens, lengths).argmax(dim=1).cpu()  # (N,)


def train_classifier(train: Encoded, vocab_size: int, num_classes: int, seed: int = 0,
                     epochs: int = 5, batch_size: int = 64) -> BagClassifier:
    """The classifier fitted to the labelled training sentences (Adam, cross-entropy), seeded alone."""
    rng = torch.Generator().manual_seed(seed)
    with torch.random.fork_rng(devices=[]):  # its initialisation leaves the run's global stream alone
        torch.manual_seed(seed)
        model = BagClassifier(vocab_size, num_classes)
    optimizer = torch.optim.Adam(model.parameters(), lr=0.02)
    n = train.tokens.shape[0]
    for _ in range(epochs):
        for idx in torch.randperm(n, generator=rng).split(batch_size):
            loss = nn.functional.cross_entropy(model(train.tokens[idx], train.lengths[idx]), train.labels[idx])
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
    return model.eval()


def cached_classifier(path: Path, train: Encoded, vocab_size: int, names: list[str]) -> BagClassifier:
    """The run's classifier: read from `path` if it was trained for these classes and vocabulary,
    else trained now and written there (atomically), so every evaluation of a run uses one."""
    path = Path(path)
    if path.is_file():
        saved = torch.load(path, map_location="cpu", weights_only=True)
        if saved.get("names") == list(names) and saved.get("vocab_size") == vocab_size:
            model = BagClassifier(vocab_size, len(names))
            model.load_state_dict(saved["weights"])
            return model.eval()
    model = train_classifier(train, vocab_size, len(names))
    state = {"names": list(names), "vocab_size": vocab_size, "weights": model.state_dict()}
    keep(path, lambda fh: torch.save(state, fh), binary=True)  # not kept: trained again next time
    return model


@dataclass
class ClassRequest:
    names: list[str]  # every class of the run, in class-id order
    wanted: list[int]  # the class ids to score
    num_per_class: int  # samples generated for each


@torch.no_grad()
def class_accuracy(generator, classifier: BagClassifier, request: ClassRequest, max_len: int,
                   held_out: Encoded | None, seed: int, temperature: float = 1.0) -> dict[str, float]:
    """class_acc_<name> for each wanted class, class_acc their mean, and class_acc_real on the
    held-out real sentences (where labelled)."""
    was_training = generator.training
    generator.eval()
    rng = torch.Generator(device=generator.out.weight.device).manual_seed(seed)
    metrics: dict[str, float] = {}
    for c in request.wanted:
        num = request.num_per_class
        z = generator.sample_latent(num, rng, classes=torch.full((num,), c, device=rng.device))
        out = generator.sample(z, max_len, temperature=temperature, generator=rng, need_dists=False)
        predicted = classifier.predict(out.tokens, out.lengths)
        metrics[f"class_acc_{request.names[c]}"] = float((predicted == c).float().mean())
    generator.train(was_training)
    metrics["class_acc"] = sum(metrics.values()) / len(metrics)
    if held_out is not None and held_out.labels is not None:
        metrics["class_acc_real"] = float((classifier.predict(held_out.tokens, held_out.lengths)
                                           == held_out.labels).float().mean())
    return metrics


def run_class_metrics(generator, corpus, names: list[str], cache: Path, num_samples: int, seed: int,
                      temperature: float = 1.0, wanted: list[int] | None = None) -> dict[str, float]:
    """`class_accuracy` of a conditional run: the run's cached classifier, `num_samples` split
    over the wanted classes (default all), scored beside the corpus's held-out (test fields) labels."""
    wanted = list(range(len(names))) if wanted is None else wanted
    classifier = cached_classifier(cache, corpus.train, len(corpus.vocab), names)
    request = ClassRequest(names=names, wanted=wanted, num_per_class=max(1, num_samples // len(wanted)))
    return class_accuracy(generator, classifier, request, corpus.max_len, corpus.test, seed, temperature)
