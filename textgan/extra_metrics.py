"""The opt-in metrics of `textgan eval` (--exposure-bias, --lm-score, --fed, --mauve): their checks
before any work, and each one on a set of sample ids, with its notes on stderr. The metrics
themselves live in textgan/metrics/ (exposure.py, lm_score.py, fed.py, mauve.py)."""
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
    mauve: bool = False  # MAUVE on the same embeddings and its real-vs-real ceiling
    encoder: object | None = None  # the sentence encoder, loaded by `prepare_extras` for fed / mauve

    @property
    def embeds(self) -> bool:
        """Whether any metric here compares sentence embeddings (FED, MAUVE: one encoder, one embedding)."""
        return self.fed or self.mauve

    @property
    def per_sample_set(self) -> bool:
        """Whether any metric here scores a sample set (and so a sweep's every temperature)."""
        return self.lm or self.embeds


def check_flags(extras: Extras, sweep: bool) -> None:
    if extras.exposure and sweep:
        raise UserError("--exposure-bias scores one temperature; drop --sweep-temperature or --exposure-bias")


def prepare_extras(extras: Extras, corpus: Corpus, path: str, num: int, device: str) -> Extras:
    """One-line errors for a run or size these metrics cannot score, and the sentence encoder of
    FED and MAUVE loaded (a missing extra fails here), all before any sampling."""
    for flag, asked in (("--fed", extras.fed), ("--mauve", extras.mauve)):
        if asked and corpus.oracle is not None:
            raise UserError(f"{flag} embeds English sentences and {path} is an oracle run (token ids); drop {flag}")
    return load_encoder_for(extras, num, len(corpus.test_sentences), device)


def load_encoder_for(extras: Extras, num: int, num_test: int, device: str) -> Extras:
    """The sentence encoder of FED and MAUVE in `extras` (nothing when neither is asked for), after
    the size check; a missing extra is a one-line error naming it."""
    if not extras.embeds:
        return extras
    from textgan.metrics import fed

    fed.fed_size(num, num_test, "FED" if extras.fed else "MAUVE")
    metric, extra = "FED", fed.EXTRA
    if extras.mauve:  # its extra holds the encoder's packages too, so a missing encoder names it
        from textgan.metrics.mauve import EXTRA, require_mauve

        require_mauve()  # before the encoder, which takes longer to load
        metric, extra = "MAUVE", EXTRA
    extras.encoder = fed.load_encoder(device, metric=metric, extra=extra)
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


def embedding_metrics(extras: Extras, corpus: Corpus, ids: torch.Tensor, seed: int) -> dict[str, float]:
    """FED and / or MAUVE of sample ids (N, T) against the run's test set (`text_embedding_metrics`)."""
    samples = [" ".join(corpus.vocab.decode(row)) for row in ids.tolist()]
    return text_embedding_metrics(extras, samples, [" ".join(s) for s in corpus.test_sentences], seed)


def text_embedding_metrics(extras: Extras, samples: list[str], test: list[str], seed: int) -> dict[str, float]:
    """FED and / or MAUVE of sentences against test sentences, with FED's real-vs-real floor and
    MAUVE's ceiling, at one size, on one embedding of each set (the test halves' kept in the cache
    folder's fed/)."""
    from textgan.cache import cache_dir
    from textgan.metrics.fed import embedded_sets, encoder_id, fed_of

    sets = embedded_sets(samples, test, extras.encoder, seed=seed, cache=cache_dir() / "fed",
                         encoder_key=encoder_id(), metric="FED" if extras.fed else "MAUVE")
    out: dict[str, float] = {}
    if extras.fed:
        res = fed_of(sets)
        print(f"fed: {res.num} sentences per set (samples, and two halves of the test set for fed_real_floor)",
              file=sys.stderr)
        if res.warning():
            print(res.warning(), file=sys.stderr)
        out.update(res.metrics())
    if extras.mauve:
        from textgan.metrics.mauve import mauve_of

        got = mauve_of(sets)
        print(f"mauve: {got.num} sentences per set (samples, and two halves of the test set for mauve_real_ceiling, "
              f"the real-vs-real figure), {got.buckets} buckets ({got.settings_line()}); compare at one size",
              file=sys.stderr)
        out.update(got.metrics())
    return out


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
    """The asked-for metrics of one sample set (ids (N, T)): LM scores, FED, MAUVE."""
    out: dict[str, float] = {}
    if extras.lm:
        out.update(lm_metrics(corpus, ids, device))
    if extras.embeds:
        out.update(embedding_metrics(extras, corpus, ids, seed))
    return out
