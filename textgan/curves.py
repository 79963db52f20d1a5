"""`textgan curves BASE.csv OTHER.csv ...`: temperature sweeps of several models on one plot, and
each model's gap to the first (the baseline) at equal diversity.

Why: one temperature can make any model look good, so a GAN has to beat the baseline's whole
curve (Caccia et al. 2020, "Language GANs Falling Short"). The gap at a point of the other curve
is its quality minus the baseline's quality at the same diversity, the baseline read off linearly
between its two neighbouring temperatures; points beyond the baseline's range get no gap, as
extrapolating a curve would invent numbers.
"""
from __future__ import annotations

import csv
import re
import sys
from dataclasses import dataclass
from pathlib import Path

from textgan.errors import UserError

# Which way is better for the quality columns a sweep writes (other columns: higher is better).
LOWER_IS_BETTER = ("nll_oracle", "nll_gen_tok", "lm_score", "reverse_lm_score", "fed")


def better(column: str) -> str:
    return "lower" if column in LOWER_IS_BETTER else "higher"


@dataclass
class Curve:
    """One sweep.csv: its label and rows (column -> value), in the file's temperature order."""
    label: str
    rows: list[dict[str, float]]


@dataclass
class Gap:
    """One point of a compared curve and the baseline at its diversity (None: outside its range)."""
    label: str
    temperature: float
    x: float
    y: float
    base_y: float | None

    @property
    def gap(self) -> float | None:
        return None if self.base_y is None else self.y - self.base_y


def read_curve(path: str, label: str) -> Curve:
    """A sweep.csv as written by `textgan eval --sweep-temperature`: numbers only, two rows or more."""
    try:
        with open(path, newline="", encoding="utf-8") as fh:
            table = list(csv.DictReader(fh))
    except (OSError, UnicodeDecodeError, csv.Error) as err:
        raise UserError(f"cannot read sweep {path}: {err}") from None
    if len(table) < 2 or "temperature" not in table[0]:
        raise UserError(f"{path}: a curve needs a temperature column and at least two rows; write it "
                        "with `textgan eval RUN --sweep-temperature A:B:K`")
    rows = []
    for i, raw in enumerate(table, 2):  # line 1 is the header
        try:
            rows.append({k: float(v) for k, v in raw.items()})
        except (TypeError, ValueError):
            raise UserError(f"{path}: line {i} is not a row of numbers; is it a sweep.csv "
                            "from `textgan eval --sweep-temperature`?") from None
    return Curve(label, rows)


def default_label(path: str) -> str:
    """A sweep.csv is named by its folder (`textgan eval --out`), or by its run where that folder
    is the default RUN/eval; any other file by its stem."""
    p = Path(path).resolve()
    if p.name != "sweep.csv":
        return p.stem
    default_folder = p.parent.name == "eval" or re.fullmatch(r"eval-\d+", p.parent.name)  # RUN/eval, RUN/eval-2, ...
    return p.parent.parent.name if default_folder else p.parent.name


def default_axes(curves: list[Curve]) -> tuple[str, str]:
    """(x, y) as the sweep's own plot pairs them: NLL_gen and NLL_oracle when every curve has
    NLL_oracle, else Self-BLEU-n and BLEU-n for the largest n they all have."""
    common = set.intersection(*(set(c.rows[0]) for c in curves))
    if "nll_oracle" in common:
        return "nll_gen_tok", "nll_oracle"
    orders = sorted(int(k[4:]) for k in common if k.startswith("bleu") and k[4:].isdigit())
    if not orders:
        raise UserError("the sweeps share no quality column (bleuN or nll_oracle); give --x and --y")
    return f"self_bleu{orders[-1]}", f"bleu{orders[-1]}"


def check_columns(curves: list[Curve], paths: list[str], x: str, y: str) -> None:
    for curve, path in zip(curves, paths):
        for axis, col in (("--x", x), ("--y", y)):
            if col not in curve.rows[0]:
                raise UserError(f"{path} has no column {col!r} ({axis}); it has: {', '.join(curve.rows[0])}")


def interpolate(xs: list[float], ys: list[float], x: float) -> float | None:
    """y at x on the polyline through (xs, ys), xs strictly monotonic; None outside [min, max]."""
    for (x0, y0), (x1, y1) in zip(zip(xs, ys), zip(xs[1:], ys[1:])):
        if min(x0, x1) <= x <= max(x0, x1):
            return y0 + (y1 - y0) * (x - x0) / (x1 - x0)
    return None


def gaps(base: Curve, other: Curve, x: str, y: str) -> list[Gap]:
    """Every point of `other` against `base` at the same x."""
    xs, ys = [r[x] for r in base.rows], [r[y] for r in base.rows]
    steps = [b - a for a, b in zip(xs, xs[1:])]
    if not (all(s > 0 for s in steps) or all(s < 0 for s in steps)):
        raise UserError(f"the baseline {base.label}'s {x} does not move one way over its temperatures "
                        f"({', '.join(f'{v:.4g}' for v in xs)}), so it cannot be read off at a given {x}; "
                        "choose another --x or a narrower sweep")
    return [Gap(other.label, r["temperature"], r[x], r[y], interpolate(xs, ys, r[x]))
            for r in other.rows]


def table(all_gaps: list[Gap], base: str, x: str, y: str) -> list[str]:
    """The gaps as aligned text lines, with which sign is better."""
    lines = [f"{y} against {x}; gap = {y} minus {base}'s {y} at the same {x} ({better(y)} is better)",
             f"{'curve':<24} {'T':>6} {x:>14} {y:>10} {'baseline':>10} {'gap':>8}"]
    for g in all_gaps:
        base_y = "outside" if g.base_y is None else f"{g.base_y:.4f}"
        gap = "" if g.gap is None else f"{g.gap:+.4f}"
        lines.append(f"{g.label[:24]:<24} {g.temperature:>6.3g} {g.x:>14.4f} {g.y:>10.4f} {base_y:>10} {gap:>8}")
    return lines


def write_gaps(all_gaps: list[Gap], path: Path, x: str, y: str) -> None:
    with open(path, "w", newline="", encoding="utf-8") as fh:
        writer = csv.writer(fh)
        writer.writerow(["curve", "temperature", x, y, f"base_{y}", "gap"])
        for g in all_gaps:
            writer.writerow([g.label, g.temperature, g.x, g.y, "" if g.base_y is None else g.base_y,
                             "" if g.gap is None else g.gap])


def curves_command(paths: list[str], labels: list[str] | None, x: str | None, y: str | None,
                   out: str | None, force: bool = False) -> int:
    """Print the gaps of every curve after the first to the first; with out, also write
    DIR/curves.csv and DIR/curves.png (the overlay), neither overwriting anything unless `force`."""
    from textgan.sweep import Axes, plot_curves

    if len(paths) < 2:
        raise UserError("curves needs two sweep.csv files or more: the baseline first, then the models to compare")
    labels = labels or [default_label(p) for p in paths]
    if len(labels) != len(paths):
        raise UserError(f"--labels gives {len(labels)} names for {len(paths)} files; give one per file, comma-separated")
    out_dir = Path(out) if out else None
    targets = [out_dir / "curves.csv", out_dir / "curves.png"] if out_dir else []
    for target in targets:
        if target.exists() and not force:
            raise UserError(f"{target} already exists; choose another --out folder, or add --force to replace it")
    curves = [read_curve(p, label) for p, label in zip(paths, labels)]
    if x is None or y is None:
        dx, dy = default_axes(curves)
        x, y = x or dx, y or dy
    check_columns(curves, paths, x, y)
    all_gaps = [g for other in curves[1:] for g in gaps(curves[0], other, x, y)]
    print("\n".join(table(all_gaps, curves[0].label, x, y)))
    if out_dir:
        out_dir.mkdir(parents=True, exist_ok=True)
        write_gaps(all_gaps, targets[0], x, y)
        plot_curves([(c.label, c.rows) for c in curves], Axes(y, x, f"{y} ({better(y)} is better)", x), targets[1])
        for target in targets:
            print(f"wrote {target}", file=sys.stderr)
    return 0
