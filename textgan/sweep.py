"""Temperature sweep: one quality-diversity curve instead of one point, because a single
temperature can trade diversity for quality and make any model look good (Caccia et al. 2020,
"Language GANs Falling Short").

Every temperature samples with the same seed (same z and Gumbel noise: sample i's are those of
(seed, i), as `textgan sample` and `textgan eval` draw them), so differences between rows come from
the temperature alone. Columns:
- text corpora: bleuN (quality, vs the test set), its standard error bleuN_se, and self_bleuN
  (diversity, lower is more diverse) for each n in eval.bleu_n; the plot uses the largest n, as
  Caccia et al. do, with +-1 standard error bars on BLEU.
- oracle corpus: nll_oracle (quality, lower is better) against nll_gen_tok (diversity, as
  Caccia et al. plot NLL_oracle against NLL_test).
- all corpora: nll_gen_tok, NLL_gen per token of the test set under the distribution sampled
  from at that temperature (Monte Carlo over eval.latent_draws prior draws, as `textgan eval`):
  what the colder, better-scoring samples cost in coverage of the data, lower is better;
  entropy_tok, the per-token NLL the generator gives its own samples under that distribution, a
  Monte Carlo estimate of its entropy (given z for latent models), higher is more diverse;
  mean_length; and how much z decides a sentence at that temperature, as `textgan eval` reports
  it (same draws): latent_mi_K (lower bound on I(z; x) in nats) and its ceiling latent_mi_K_max
  = log K, latent_sensitivity, latent_token_change, interp_distinct, interp_edit
  (textgan.metrics.latent; eval.latent_samples=0 / eval.interp_pairs=0 leave them out).
"""
from __future__ import annotations

import csv
import math
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import torch

from textgan.corpus import Corpus
from textgan.errors import UserError
from textgan.eval_stream import stream_scores
from textgan.evaluate import latent_usage, nll_gen_on_test
from textgan.metrics.nll import sequence_nll
from textgan.monitor import Monitor
from textgan.progress import NoProgress, Progress
from textgan.sample import Loaded

SPEC_HELP = "START:STOP:COUNT with 0 < START < STOP and COUNT >= 2, e.g. 0.5:2.0:8"


def parse_spec(spec: str) -> list[float]:
    """'a:b:k' -> k temperatures evenly spaced from a to b (both included)."""
    parts = spec.split(":")
    try:
        start, stop, count = float(parts[0]), float(parts[1]), int(parts[2])
        if len(parts) != 3:
            raise ValueError
    except (ValueError, IndexError):
        raise UserError(f"bad --sweep-temperature {spec!r}: expected {SPEC_HELP}") from None
    if not (0 < start < stop < math.inf) or count < 2:
        raise UserError(f"bad --sweep-temperature {spec!r}: expected {SPEC_HELP}")
    # rounded: 0.1 + 0.2 * 1 is 0.30000000000000004, a column value nobody typed
    return [round(start + (stop - start) * i / (count - 1), 12) for i in range(count)]


def sample_entropy(generator, ids: torch.Tensor, z: torch.Tensor, temperature: float,
                   eos_id: int | None, batch_size: int = 256) -> float:
    """Per-token NLL of samples ids (N, T) under the tempered distribution they came from, given z (N, Z).

    Tokens count up to and including the first EOS (all T when eos_id is None)."""
    total = EntropySum(generator, temperature, eos_id, batch_size)
    total.add(ids, z)
    return total.value()


class EntropySum:
    """`sample_entropy` over chunks of samples: the NLL summed batch by batch in the order one
    call over all of them would sum it, so chunks of a multiple of `batch_size` give its figure
    to the bit."""

    def __init__(self, generator, temperature: float, eos_id: int | None, batch_size: int = 256):
        self.generator, self.temperature, self.eos_id, self.batch_size = generator, temperature, eos_id, batch_size
        self.total, self.tokens = 0, 0

    def add(self, ids: torch.Tensor, z: torch.Tensor) -> None:
        """Samples ids (N, T) drawn from z (N, Z)."""
        z = z.to(self.generator.out.weight.device)
        ids = ids.to(z.device)
        lengths = torch.full((ids.shape[0],), ids.shape[1], device=z.device)
        if self.eos_id is not None:
            is_eos = ids == self.eos_id
            lengths = torch.where(is_eos.any(1), is_eos.float().argmax(1) + 1, lengths)
        b = self.batch_size
        for i in range(0, ids.shape[0], b):
            self.total += float(sequence_nll(self.generator, ids[i:i + b], lengths[i:i + b], z[i:i + b],
                                             self.temperature).double().sum())
        self.tokens += int(lengths.sum())

    def value(self) -> float:
        return self.total / self.tokens


def sweep_row(loaded: Loaded, corpus: Corpus, temperature: float, num: int, seed: int,
              progress: Progress | None = None, extra: Callable | None = None, chunk: int = 512) -> dict[str, float]:
    """Quality and diversity of `num` samples at one temperature, streamed as `textgan eval`
    streams them (textgan.eval_stream: Self-BLEU and `extra` on the first eval.self_bleu_max);
    `progress` is told each phase; `extra(ids, temperature)` adds columns computed from the same
    samples (`textgan eval --lm-score / --fed / --mauve`)."""
    g, progress, at = loaded.generator, progress or NoProgress(), f"T={temperature:g}: "
    entropy = EntropySum(g, temperature, eos_id=corpus.vocab.eos_id if corpus.add_eos else None)
    streamed = stream_scores(g, corpus, num, loaded.config.eval.self_bleu_max, seed, temperature,
                             loaded.config.eval.bleu_n, 0, progress, chunk=chunk, keep=extra is not None,
                             sink=lambda tokens, drawn: entropy.add(drawn.ids, drawn.z), label=at)
    row = {"temperature": temperature}
    for name, value in streamed.metrics.items():
        row[name.replace("_exact", "").removesuffix("_loo")] = value  # CSV columns: bleuN, bleuN_se, self_bleuN
    progress.phase(f"{at}NLL_gen and entropy")
    row["nll_gen_tok"] = nll_gen_on_test(g, corpus, loaded.config.eval.latent_draws, seed, temperature).per_token
    row["entropy_tok"] = entropy.value()
    row["mean_length"] = streamed.mean_length
    progress.phase(f"{at}latent metrics")
    row.update(latent_usage(g, corpus, loaded.config.eval, seed, temperature))
    if extra is not None:
        progress.phase(f"{at}LM scores, FED, MAUVE")
        row.update(extra(streamed.ids, temperature))
    return row


def temperature_sweep(loaded: Loaded, corpus: Corpus, temperatures: list[float], num: int, seed: int,
                      progress: Progress | None = None, extra: Callable | None = None) -> list[dict]:
    if num < 2:
        raise UserError(f"--num must be >= 2 (Self-BLEU needs two samples), got {num}")
    return [sweep_row(loaded, corpus, t, num=num, seed=seed, progress=progress, extra=extra) for t in temperatures]


@dataclass
class Axes:
    quality: str  # column on the y axis
    diversity: str  # column on the x axis
    quality_note: str
    diversity_note: str


def axes(corpus: Corpus, bleu_n: list[int]) -> Axes:
    """Which columns the plot pairs: BLEU-n vs Self-BLEU-n for text, NLL_oracle vs NLL_gen for the oracle."""
    if corpus.oracle is not None:
        return Axes("nll_oracle", "nll_gen_tok", "NLL_oracle (lower is better)",
                    "NLL_gen per token of the test set at that temperature (lower covers the data better)")
    n = max(bleu_n)
    return Axes(f"bleu{n}", f"self_bleu{n}", f"BLEU-{n} vs test (higher is better)",
                f"Self-BLEU-{n} (lower is more diverse)")


def write_sweep(rows: list[dict], out_dir: Path, ax: Axes, force: bool = False) -> list[Path]:
    """sweep.csv, TensorBoard scalars sweep/<column> at step = row index (events in out_dir),
    and sweep.png; returns the csv and png paths. An earlier sweep's files there are an error,
    or with `force` replaced (its event files removed, so TensorBoard shows one sweep)."""
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    csv_path = out_dir / "sweep.csv"
    if force:
        for old in out_dir.glob("events.out.tfevents.*"):
            old.unlink()
    try:
        fh = open(csv_path, "w" if force else "x", newline="", encoding="utf-8")
    except FileExistsError:
        raise UserError(f"{csv_path} already exists; choose another --out folder, or add --force") from None
    with fh:
        writer = csv.DictWriter(fh, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)
    monitor = Monitor(out_dir, progress=False)
    for i, row in enumerate(rows):
        monitor.scalars({f"sweep/{k}": v for k, v in row.items()}, step=i)
    monitor.close()
    png_path = out_dir / "sweep.png"
    plot(rows, ax, png_path)
    return [csv_path, png_path]


def plot(rows: list[dict], ax: Axes, path: Path) -> None:
    """Quality against diversity, one point per temperature."""
    plot_curves([("", rows)], ax, path, title="temperature sweep")


def plot_curves(curves: list[tuple[str, list[dict]]], ax: Axes, path: Path, title: str = "temperature sweeps") -> None:
    """One line per (label, rows), points labelled by temperature, +-1 standard error bars on the
    quality where the rows have them; Agg canvas, no pyplot global state."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    fig = Figure(figsize=(5.5, 4.5), dpi=100)
    FigureCanvasAgg(fig)
    axis = fig.add_subplot()
    for label, rows in curves:
        xs, ys = [r[ax.diversity] for r in rows], [r[ax.quality] for r in rows]
        errors = [r[f"{ax.quality}_se"] for r in rows] if f"{ax.quality}_se" in rows[0] else None
        axis.errorbar(xs, ys, yerr=errors, fmt="o-", capsize=3, label=label or None)
        for r, x, y in zip(rows, xs, ys):
            axis.annotate(f"T={r['temperature']:.3g}", (x, y), textcoords="offset points", xytext=(4, 4), fontsize=8)
    if any(label for label, _ in curves):
        axis.legend(fontsize=8)
    axis.set_xlabel(ax.diversity_note)
    axis.set_ylabel(ax.quality_note)
    axis.set_title(title)
    axis.grid(alpha=0.3)
    fig.tight_layout()
    fig.savefig(path)
