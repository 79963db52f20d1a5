"""MAUVE (Pillutla et al. 2021) between the sentence embeddings of generated and real test
sentences: the same all-MiniLM-L6-v2 embeddings and equal-size sets as FED (textgan.metrics.fed).

Shapes: n sentences per set, D embedding size.
MAUVE quantises both sets together (l2-normalised, PCA to 90% of the variance, k-means into
n/10 buckets) and measures the area under the divergence curve of the two histograms,
exp(-c KL) with c = 5; 1 is indistinguishable, near 0 far apart. The figure is that of the
reference library, mauve-text (`mauve.compute_mauve` on our features), with every setting fixed
here so that it is reproducible and recorded: it depends on n through the bucket count, so compare
figures at one size. Two halves of the real test set give the real-vs-real figure, a ceiling (near
but below 1 at finite n), not a floor as FED's. Optional: `pip install 'textgan[mauve]'` (mauve-text,
faiss-cpu, and FED's encoder packages).
"""
from __future__ import annotations

import importlib
import os
import re
import sys
import tempfile
from contextlib import contextmanager
from dataclasses import asdict, dataclass

import numpy as np

from textgan.errors import UserError
from textgan.metrics.fed import Embedded

EXTRA = "pip install 'textgan[mauve]'"
# faiss's k-means, on its C stderr, below 39 points a centroid: always so at MAUVE's n / 10 buckets
FAISS_SIZE_WARNING = re.compile(r"WARNING clustering \d+ points to \d+ centroids: please provide at least")


@dataclass(frozen=True)
class MauveSettings:
    """compute_mauve's settings, fixed; the defaults are the paper's and the library's (0.4.0)."""
    scaling: float = 5.0  # c in exp(-c KL) of the divergence curve (mauve_scaling_factor)
    explained_var: float = 0.9  # share of the variance the PCA before k-means keeps
    kmeans_redo: int = 5  # k-means restarts, the best objective kept
    kmeans_iter: int = 500  # k-means iterations per restart
    curve_points: int = 25  # mixture weights on the divergence curve
    seed: int = 25  # k-means' and the PCA's seeds derive from it (the library's default)
    per_bucket: int = 10  # sentences per bucket: num_buckets = round(n / per_bucket), the paper's n/10


def num_buckets(n: int, per_bucket: int = 10) -> int:
    """The library's 'auto' bucket count for two sets of n: round(n / 10), at least 2."""
    return max(2, int(round(n / per_bucket)))


# what `textgan[mauve]` installs, by import name: the library, its k-means, FED's encoder
PACKAGES = ("mauve", "faiss", "sentence_transformers")


def require_mauve():
    """The mauve package, or a one-line error naming the extra and every package of it missing."""
    missing = []
    for name in PACKAGES:
        try:
            importlib.import_module(name)
        except ImportError:
            missing.append(name)
    if missing:
        raise UserError(f"MAUVE needs mauve-text, faiss-cpu and FED's sentence encoder ({', '.join(missing)} "
                        f"not installed): {EXTRA}")
    return importlib.import_module("mauve")


@contextmanager
def _without_faiss_size_warning():
    """Drop faiss's "please provide at least ... training points" line, which every MAUVE at the
    paper's n / 10 buckets prints (20 points a bucket by design); whatever else goes to the C
    stderr meanwhile is passed on."""
    sys.stderr.flush()
    saved = os.dup(2)
    with tempfile.TemporaryFile() as caught:
        os.dup2(caught.fileno(), 2)
        try:
            yield
        finally:
            sys.stderr.flush()
            os.dup2(saved, 2)
            os.close(saved)
            caught.seek(0)
            kept = [line for line in caught.read().decode("utf-8", "replace").splitlines(keepends=True)
                    if not FAISS_SIZE_WARNING.match(line)]
            sys.stderr.write("".join(kept))


def mauve_between(p: np.ndarray, q: np.ndarray, settings: MauveSettings = MauveSettings()) -> float:
    """MAUVE of features p (n, D) against q (m, D), by mauve.compute_mauve at `settings`."""
    if p.ndim != 2 or q.ndim != 2 or p.shape[1] != q.shape[1] or min(len(p), len(q)) < 2:
        raise ValueError(f"need two (N, D) arrays of one D with N >= 2, got {p.shape} and {q.shape}")
    library = require_mauve()
    with _without_faiss_size_warning():
        out = library.compute_mauve(
            p_features=p, q_features=q, num_buckets=num_buckets(min(len(p), len(q)), settings.per_bucket),
            kmeans_explained_var=settings.explained_var, kmeans_num_redo=settings.kmeans_redo,
            kmeans_max_iter=settings.kmeans_iter, divergence_curve_discretization_size=settings.curve_points,
            mauve_scaling_factor=settings.scaling, seed=settings.seed, verbose=False)
    return float(out.mauve)


@dataclass
class MAUVE:
    mauve: float  # generated vs real test sentences (higher is closer; 1 at most)
    ceiling: float  # real vs real: the two test halves, same size; what a perfect model would get
    num: int  # sentences per set, every set
    buckets: int  # k-means buckets (num_buckets(num))
    settings: MauveSettings

    def metrics(self) -> dict[str, float]:
        return {"mauve": self.mauve, "mauve_real_ceiling": self.ceiling, "mauve_num": float(self.num),
                "mauve_buckets": float(self.buckets), "mauve_scaling": self.settings.scaling,
                "mauve_seed": float(self.settings.seed)}

    def settings_line(self) -> str:
        return ", ".join(f"{k}={v:g}" for k, v in asdict(self.settings).items())


def mauve_of(sets: Embedded, settings: MauveSettings = MauveSettings()) -> MAUVE:
    """MAUVE of the samples against the first test half, and the ceiling of that half against the other."""
    n = sets.samples.shape[0]
    return MAUVE(mauve=mauve_between(sets.samples, sets.real_a, settings),
                 ceiling=mauve_between(sets.real_b, sets.real_a, settings), num=n,
                 buckets=num_buckets(n, settings.per_bucket), settings=settings)
