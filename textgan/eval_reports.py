"""Files `textgan eval` writes beside metrics.json: the samples it scored (samples.txt, written
as they are drawn), and for the by-position metrics a CSV, a JSON, a PNG plot against position
and TensorBoard scalars (step = position)."""
from __future__ import annotations

import csv
import json
from pathlib import Path

from textgan.errors import UserError
from textgan.metrics.exposure import ExposureBias

EXPOSURE_FILES = ("exposure_bias.csv", "exposure_bias.json", "exposure_bias.png", "events.out.tfevents.*")
SAMPLES_FILE = "samples.txt"


class SamplesFile:
    """out_dir/samples.txt: the scored samples, one per line, appended chunk by chunk as they
    are drawn (memory stays bounded) to samples.txt.partial, renamed onto samples.txt once
    every sample is in, so a stopped evaluation leaves no file that looks complete."""

    def __init__(self, out_dir: Path, force: bool = False):
        self.path = Path(out_dir) / SAMPLES_FILE
        self.tmp = self.path.with_name(SAMPLES_FILE + ".partial")
        self.force, self.lines = force, 0
        self.path.parent.mkdir(parents=True, exist_ok=True)
        if self.path.exists() and not force:
            raise UserError(f"{self.path} already exists; choose another --out folder, or add --force")
        self.fh = open(self.tmp, "w", encoding="utf-8")

    def __call__(self, samples: list[list[str]], drawn=None) -> None:
        self.fh.write("".join(" ".join(tokens) + "\n" for tokens in samples))
        self.lines += len(samples)

    def finish(self) -> Path:
        self.fh.close()
        if self.path.exists() and not self.force:
            self.abandon()
            raise UserError(f"{self.path} appeared while scoring; nothing overwritten, rerun with another --out")
        self.tmp.replace(self.path)
        return self.path

    def abandon(self) -> None:
        self.fh.close()
        self.tmp.unlink(missing_ok=True)


def _open_new(path: Path, force: bool):
    try:
        return open(path, "w" if force else "x", newline="", encoding="utf-8")
    except FileExistsError:
        raise UserError(f"{path} already exists; choose another --out folder, or add --force") from None


def write_exposure(eb: ExposureBias, out_dir: Path, settings: dict, force: bool = False) -> list[Path]:
    """exposure_bias.csv/.json/.png and TensorBoard scalars exposure_bias/<column> in out_dir; with
    `force` an earlier result there (its event files included) is replaced."""
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    rows = eb.rows()
    csv_path, json_path, png_path = (out_dir / f"exposure_bias.{ext}" for ext in ("csv", "json", "png"))
    if force:
        for old in out_dir.glob("events.out.tfevents.*"):
            old.unlink()
    with _open_new(csv_path, force) as fh:
        writer = csv.DictWriter(fh, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)
    with _open_new(json_path, force) as fh:
        fh.write(json.dumps({"settings": {**settings, "num": eb.num, "draws": eb.draws},
                             "summary": eb.summary(), "by_position": rows}, indent=2) + "\n")
    from textgan.monitor import Monitor  # TensorBoard's writer: imported only when writing

    monitor = Monitor(out_dir, progress=False)
    for row in rows:
        monitor.scalars({f"exposure_bias/{k}": v for k, v in row.items() if k != "position"}, step=row["position"])
    monitor.close()
    plot_exposure(eb, png_path)
    return [csv_path, json_path, png_path]


def plot_exposure(eb: ExposureBias, path: Path) -> None:
    """Three panels against position: the two KLs (+-1 standard error), their ratio EB-M, and
    NLL_oracle of the model's and the oracle's own samples. Agg canvas, no pyplot state."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    pos = list(range(1, len(eb.ratio) + 1))
    fig = Figure(figsize=(13, 4), dpi=100)
    FigureCanvasAgg(fig)
    kl, ratio, nll = fig.subplots(1, 3)
    kl.errorbar(pos, eb.kl_oracle_prefix, yerr=eb.kl_oracle_prefix_se, fmt="o-", ms=3, capsize=2,
                label="prefixes from the oracle (CGD M|D)")
    kl.errorbar(pos, eb.kl_model_prefix, yerr=eb.kl_model_prefix_se, fmt="s-", ms=3, capsize=2,
                label="prefixes from the model (CGD M|M)")
    kl.set_ylabel("KL(oracle || model) at t, nats")
    kl.legend(fontsize=8)
    ratio.plot(pos, eb.ratio, "o-", ms=3)
    ratio.axhline(1.0, color="grey", lw=0.8, ls="--")
    ratio.set_ylabel("EB-M: KL on model / on oracle prefixes")
    nll.plot(pos, eb.nll_oracle_model, "s-", ms=3, label="model's free-running samples")
    nll.plot(pos, eb.nll_oracle_data, "o-", ms=3, label="oracle's samples (its entropy)")
    nll.set_ylabel("NLL_oracle of the token at t")
    nll.legend(fontsize=8)
    for axis in (kl, ratio, nll):
        axis.set_xlabel("position t (prefix of t - 1 tokens)")
        axis.grid(alpha=0.3)
    fig.suptitle(f"exposure bias on the oracle ({eb.num} prefixes from each source)")
    fig.tight_layout()
    fig.savefig(path)
