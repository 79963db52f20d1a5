"""`textgan curves`: reading sweeps, the baseline read off at another curve's diversity, and the
command's files and one-line errors (the end-to-end run on real sweeps is in test_eval.py)."""
from __future__ import annotations

import csv

import pytest

from conftest import run_cli
from textgan.curves import Curve, default_axes, default_label, gaps, interpolate, read_curve
from textgan.errors import UserError


def write_sweep(path, rows: list[dict]) -> str:
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "w", newline="") as fh:
        writer = csv.DictWriter(fh, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)
    return str(path)


BASE = [{"temperature": t, "bleu3": b, "bleu3_se": 0.01, "self_bleu3": s, "nll_gen_tok": n}
        for t, b, s, n in [(0.5, 0.8, 0.9, 9.0), (1.0, 0.6, 0.5, 6.0), (1.5, 0.4, 0.3, 5.0)]]
OTHER = [{"temperature": t, "bleu3": b, "bleu3_se": 0.01, "self_bleu3": s, "nll_gen_tok": n}
         for t, b, s, n in [(0.8, 0.75, 0.7, 7.5), (1.2, 0.5, 0.2, 5.5), (2.0, 0.3, 0.1, 4.0)]]


def test_interpolate_on_either_direction_and_outside():
    assert interpolate([1.0, 2.0, 4.0], [10.0, 20.0, 0.0], 3.0) == pytest.approx(10.0)
    assert interpolate([4.0, 2.0, 1.0], [0.0, 20.0, 10.0], 1.5) == pytest.approx(15.0)
    assert interpolate([1.0, 2.0], [5.0, 7.0], 2.0) == pytest.approx(7.0)  # an end point is inside
    assert interpolate([1.0, 2.0], [5.0, 7.0], 0.5) is None and interpolate([1.0, 2.0], [5.0, 7.0], 2.5) is None


def test_gaps_read_the_baseline_at_the_same_diversity():
    base, other = Curve("mle", BASE), Curve("gan", OTHER)
    got = gaps(base, other, "self_bleu3", "bleu3")
    # self_bleu3 0.7 lies halfway between the baseline's 0.9 and 0.5: its bleu3 there is 0.7
    assert [g.temperature for g in got] == [0.8, 1.2, 2.0]
    assert got[0].base_y == pytest.approx(0.7) and got[0].gap == pytest.approx(0.05)
    assert got[1].base_y is None and got[1].gap is None  # 0.2 is below the baseline's 0.3
    on_nll = gaps(base, other, "nll_gen_tok", "bleu3")
    assert on_nll[0].base_y == pytest.approx(0.7) and on_nll[1].base_y == pytest.approx(0.5)
    assert on_nll[1].gap == pytest.approx(0.0) and on_nll[2].gap is None


def test_a_baseline_not_monotonic_in_x_is_refused():
    bent = [dict(r) for r in BASE]
    bent[2]["nll_gen_tok"] = 7.0  # 9 -> 6 -> 7: two points of the curve at nll 6.5
    with pytest.raises(UserError, match="does not move one way"):
        gaps(Curve("mle", bent), Curve("gan", OTHER), "nll_gen_tok", "bleu3")


def test_default_axes_follow_the_sweeps_own_plot():
    assert default_axes([Curve("a", BASE), Curve("b", OTHER)]) == ("self_bleu3", "bleu3")
    oracle = [{"temperature": 1.0, "nll_oracle": 9.0, "nll_gen_tok": 9.1}]
    assert default_axes([Curve("a", oracle), Curve("b", oracle)]) == ("nll_gen_tok", "nll_oracle")
    with pytest.raises(UserError, match="no quality column"):
        default_axes([Curve("a", [{"temperature": 1.0, "entropy_tok": 2.0}])])


def test_default_labels_tell_files_apart():
    assert default_label("runs/gan/eval/sweep.csv") == "gan" and default_label("cmp/mle/sweep.csv") == "mle"
    assert default_label("benchmarks/results/sweep_nllgen_coco_mle.csv") == "sweep_nllgen_coco_mle"


def test_read_curve_errors_name_the_file(tmp_path):
    with pytest.raises(UserError, match="cannot read sweep"):
        read_curve(str(tmp_path / "missing.csv"), "x")
    one = write_sweep(tmp_path / "one.csv", BASE[:1])
    with pytest.raises(UserError, match="at least two rows"):
        read_curve(one, "x")
    untimed = write_sweep(tmp_path / "untimed.csv", [{k: v for k, v in r.items() if k != "temperature"} for r in BASE])
    with pytest.raises(UserError, match="needs a temperature column"):
        read_curve(untimed, "x")
    (tmp_path / "text.csv").write_text("temperature,bleu3\n1.0,0.5\nhello,0.4\n")
    with pytest.raises(UserError, match="line 3 is not a row of numbers"):
        read_curve(str(tmp_path / "text.csv"), "x")


@pytest.mark.slow
def test_cli_prints_gaps_writes_csv_and_png_and_never_overwrites(tmp_path):
    base = write_sweep(tmp_path / "mle" / "sweep.csv", BASE)
    other = write_sweep(tmp_path / "gan" / "sweep.csv", OTHER)
    out = tmp_path / "cmp"
    res = run_cli("curves", base, other, "--out", str(out))
    assert res.returncode == 0, res.stderr
    assert "gap = bleu3 minus mle's bleu3 at the same self_bleu3" in res.stdout  # folder names label the curves
    with open(out / "curves.csv", newline="") as fh:
        rows = list(csv.DictReader(fh))
    assert [r["curve"] for r in rows] == ["gan"] * 3
    assert float(rows[0]["gap"]) == pytest.approx(0.05) and rows[1]["gap"] == "" and rows[1]["base_bleu3"] == ""
    png = (out / "curves.png").read_bytes()
    assert png[:8] == b"\x89PNG\r\n\x1a\n"
    again = run_cli("curves", base, other, "--labels", "a,b", "--out", str(out))
    assert again.returncode == 2 and "already exists" in again.stderr
    assert (out / "curves.png").read_bytes() == png


@pytest.mark.parametrize("extra, message", [
    ([], "two sweep.csv files or more"),
    (["OTHER", "--labels", "only-one"], "--labels gives 1 names for 2 files"),
    (["OTHER", "--x", "self_bleu9"], "has no column 'self_bleu9' (--x)"),
])
def test_cli_bad_input_is_one_line_exit_2(tmp_path, extra, message):
    base = write_sweep(tmp_path / "mle" / "sweep.csv", BASE)
    other = write_sweep(tmp_path / "gan" / "sweep.csv", OTHER)
    res = run_cli("curves", base, *[other if a == "OTHER" else a for a in extra])
    assert res.returncode == 2
    assert len(res.stderr.strip().splitlines()) == 1 and message in res.stderr
