"""Files `textgan eval` writes beside metrics.json: the samples it scored (samples.txt, written
as they are drawn), and for the by-position metrics a CSV, a JSON, a PNG plot against position
and TensorBoard scalars (step = position)."""
from __future__ import annotations

import csv
import json
from pathlib import Path

from textgan.errors import UserError
from textgan.metrics.exposure import ExposureBias
from textgan.metrics.exposure_lm import LMExposureBias

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


def write_exposure(eb: ExposureBias | LMExposureBias, out_dir: Path, settings: dict, force: bool = False) -> list[Path]:
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


def plot_exposure(eb: ExposureBias | LMExposureBias, path: Path) -> None:
    """Three panels against position: the two KLs (+-1 standard error), their ratio EB-M, and the
    reference's NLL of the model's and the data's tokens. Agg canvas, no pyplot state."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    c = eb.curves()
    kl_d, kl_d_se, kl_m, kl_m_se = c["kl"]
    pos = list(range(1, len(c["ratio"]) + 1))
    fig = Figure(figsize=(13, 4), dpi=100)
    FigureCanvasAgg(fig)
    kl, ratio, nll = fig.subplots(1, 3)
    kl.errorbar(pos, kl_d, yerr=kl_d_se, fmt="o-", ms=3, capsize=2, label=f"prefixes from {c['data']} (CGD M|D)")
    kl.errorbar(pos, kl_m, yerr=kl_m_se, fmt="s-", ms=3, capsize=2, label="prefixes from the model (CGD M|M)")
    kl.set_ylabel(f"KL({c['reference']} || model) at t, nats")
    kl.legend(fontsize=8)
    ratio.plot(pos, c["ratio"], "o-", ms=3)
    ratio.axhline(1.0, color="grey", lw=0.8, ls="--")
    ratio.set_ylabel("EB-M: KL on model / on data prefixes")
    nll.plot(pos, c["nll"][0], "s-", ms=3, label="model's free-running samples")
    nll.plot(pos, c["nll"][1], "o-", ms=3, label=c["nll_data_label"])
    nll.set_ylabel(f"{c['nll_name']} of the token at t")
    nll.legend(fontsize=8)
    for axis in (kl, ratio, nll):
        axis.set_xlabel("position t (prefix of t - 1 tokens)")
        axis.grid(alpha=0.3)
    fig.suptitle(f"{c['title']} ({eb.num} prefixes from each source)")
    fig.tight_layout()
    fig.savefig(path)
