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
    exposure: bool = False  # exposure bias by position (exact on the oracle, a real-data LM's estimate on text)
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
    if extras.fed and corpus.oracle is not None:
        raise UserError(f"--fed embeds English sentences and {path} is an oracle run (token ids); drop --fed")
    if not extras.fed:
        return extras
    from textgan.metrics.fed import fed_size, load_encoder

    fed_size(num, len(corpus.test_sentences))
    extras.encoder = load_encoder(device)
    return extras


def exposure_curves(corpus: Corpus, generator, num: int, seed: int, temperature: float, draws: int, device: str):
    """Exposure bias by position: exact against the oracle on an oracle run, else estimated with the
    corpus's real-data LM in the oracle's place (trained once and cached; said on stderr)."""
    if corpus.oracle is not None:
        from textgan.metrics.exposure import exposure_bias

        return exposure_bias(corpus.oracle, generator, num=num, seed=seed, temperature=temperature, draws=draws)
    from textgan.metrics.exposure_lm import exposure_bias_lm
    from textgan.metrics.lm_score import cache_root

    print(f"exposure bias: estimated with a real-data LM in the oracle's place (trained once per corpus, cached in "
          f"{cache_root()}); eb_lm_reference_nll is its test NLL per token", file=sys.stderr)
    return exposure_bias_lm(corpus, generator, num=num, seed=seed, temperature=temperature, draws=draws,
                            device=device)


def fed_metrics(corpus: Corpus, encoder, ids: torch.Tensor, seed: int) -> dict[str, float]:
    """FED of sample ids (N, T) against the test set, and the real-vs-real floor, at one size (the
    test halves' embeddings kept in the cache folder's fed/)."""
    from textgan.cache import cache_dir
    from textgan.metrics.fed import encoder_id, fed_scores

    samples = [" ".join(corpus.vocab.decode(row)) for row in ids.tolist()]
    res = fed_scores(samples, [" ".join(s) for s in corpus.test_sentences], encoder, seed=seed,
                     cache=cache_dir() / "fed", encoder_key=encoder_id())
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
