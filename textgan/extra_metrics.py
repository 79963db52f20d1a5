"""The opt-in metrics of `textgan eval` (--exposure-bias, --lm-score, --fed): their checks before
any work, and each one on a set of sample ids, with its notes on stderr. The metrics themselves
live in textgan/metrics/ (exposure.py, lm_score.py, fed.py)."""
from __future__ import annotations

import sys
from dataclasses import dataclass

import torch

from textgan.corpus import Corpus
from textgan.errors import UserError
from textgan.sample import Loaded


@dataclass
class Extras:
    exposure: bool = False  # exposure bias by position (oracle runs, one temperature)
    lm: bool = False  # LM, reverse-LM and reference scores
    fed: bool = False  # Fréchet embedding distance and its real-vs-real floor
    encoder: object | None = None  # the sentence encoder, loaded by `prepare_extras` for fed

    @property
    def per_sample_set(self) -> bool:
        """Whether any metric here scores a sample set (and so a sweep's every temperature)."""
        return self.lm or self.fed


def check_flags(extras: Extras, sweep: bool) -> None:
    if extras.exposure and sweep:
        raise UserError("--exposure-bias scores one temperature; drop --sweep-temperature or --exposure-bias")


def prepare_extras(extras: Extras, corpus: Corpus, path: str, num: int, device: str) -> Extras:
    """One-line errors for a run or size these metrics cannot score, and FED's encoder loaded
    (a missing extra fails here), all before any sampling."""
    if extras.exposure and corpus.oracle is None:
        raise UserError(f"--exposure-bias needs an oracle run (data.source=oracle, whose oracle gives the true "
                        f"next-token distribution); {path} uses data.source={corpus.source}: drop --exposure-bias")
    if extras.fed and corpus.oracle is not None:
        raise UserError(f"--fed embeds English sentences and {path} is an oracle run (token ids); drop --fed")
    if not extras.fed:
        return extras
    from textgan.metrics.fed import fed_size, load_encoder

    fed_size(num, len(corpus.test_sentences))
    extras.encoder = load_encoder(device)
    return extras


def fed_metrics(corpus: Corpus, encoder, ids: torch.Tensor, seed: int) -> dict[str, float]:
    """FED of sample ids (N, T) against the test set, and the real-vs-real floor, at one size."""
    from textgan.metrics.fed import fed_scores

    samples = [" ".join(corpus.vocab.decode(row)) for row in ids.tolist()]
    res = fed_scores(samples, [" ".join(s) for s in corpus.test_sentences], encoder, seed=seed)
    print(f"fed: {res.num} sentences per set (samples, and two halves of the test set for fed_real_floor)",
          file=sys.stderr)
    if res.warning():
        print(res.warning(), file=sys.stderr)
    return res.metrics()


def lm_metrics(corpus: Corpus, ids: torch.Tensor, device: str) -> dict[str, float]:
    """LM, reverse-LM and reference scores of sample ids (N, T)."""
    from textgan.metrics.lm_score import cache_root, lm_scores

    res = lm_scores(corpus, ids, device=device)
    print(f"lm: real-data LM {'from the cache' if res.cached else 'trained and cached'} in {cache_root()} "
          f"({res.num_train} training sentences); reverse LM trained on the {res.num_samples} samples", file=sys.stderr)
    if res.num_samples < res.num_train // 2:
        print(f"warning: reverse_lm_score's LM saw {res.num_samples} samples, the reference's {res.num_train} "
              "sentences: part of its gap to lm_real_reference is the smaller set; use --num "
              f"{res.num_train} for a like-for-like figure", file=sys.stderr)
    return res.metrics()


def sample_set_metrics(extras: Extras, corpus: Corpus, ids: torch.Tensor, seed: int, device: str) -> dict[str, float]:
    """The asked-for metrics of one sample set (ids (N, T)): LM scores, FED."""
    out: dict[str, float] = {}
    if extras.lm:
        out.update(lm_metrics(corpus, ids, device))
    if extras.fed:
        out.update(fed_metrics(corpus, extras.encoder, ids, seed))
    return out
