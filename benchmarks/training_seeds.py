"""One recipe's test metrics over several training seeds: mean, spread and the mean's standard error.

Why: the COCO GAN phase's test BLEU-3 moves by up to 0.03 between training seeds, ten times one
evaluation's sampling error, so whether a recipe reaches a published figure is a question about
its mean over seeds and that mean's standard error (sample sd / sqrt(k)), not about one run.

`python benchmarks/training_seeds.py METRICS METRICS [...] --out FILE` reads `textgan eval --out`
metrics.json files (or their copies under benchmarks/results/), one per training seed, scored
alike (split, test file, sample count, temperature, protocol, weights; the sampling seed may
differ, as `textgan eval` defaults to each run's own), and writes per metric the mean, sample
standard deviation, standard error, min and max; for the BLEU orders of --published (default
coco:RelGAN(100); `none` for a corpus without published figures), how many runs reach the figure
and how far the mean is from it in standard errors. `--per-run-temperature`: each run was scored
at its own temperature (a rule applied to each run's validation split chose it); the temperature
is then recorded per file. It refuses to overwrite FILE.
"""
from __future__ import annotations

import argparse
import json
import math
import statistics
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from quality import PUBLISHED  # noqa: E402  (benchmarks/ is this script's folder)
from seed_spread import write_new  # noqa: E402
from textgan.errors import UserError  # noqa: E402


PER_RUN = frozenset({"checkpoint", "seed"})  # settings that differ between a recipe's runs


def read_scores(paths: list[str], per_run: frozenset[str] = PER_RUN) -> list[dict]:
    """Every file's {settings, metrics}, checked to be one recipe's runs scored the same way but
    for the `per_run` settings."""
    if len(paths) < 2:
        raise UserError(f"give at least two metrics files (a spread needs two runs), got {len(paths)}")
    records = []
    for path in paths:
        try:
            record = json.loads(Path(path).read_text(encoding="utf-8"))
        except FileNotFoundError:
            raise UserError(f"{path} not found; pass the metrics.json files `textgan eval --out` wrote") from None
        except (json.JSONDecodeError, UnicodeDecodeError):
            record = None
        if not isinstance(record, dict) or not {"settings", "metrics"} <= record.keys():
            raise UserError(f"{path} is not a `textgan eval` metrics.json (no settings and metrics); "
                            "pass the files `textgan eval --out` wrote")
        records.append(record)
    first, seen = records[0], {}
    for path, record in zip(paths, records):
        ckpt = record["settings"].get("checkpoint")
        if ckpt in seen:
            raise UserError(f"{path} and {seen[ckpt]} score the same checkpoint {ckpt}; pass one file per run")
        seen[ckpt] = path
        for key in sorted((set(first["settings"]) | set(record["settings"])) - per_run):
            if record["settings"].get(key) != first["settings"].get(key):
                raise UserError(f"{path} was scored with {key}={record['settings'].get(key)!r} but {paths[0]} with "
                                f"{first['settings'].get(key)!r}; pass files scored alike")
        if set(record["metrics"]) != set(first["metrics"]):
            raise UserError(f"{path} and {paths[0]} report different metrics; pass files scored alike")
    return records


def summarize(metrics: list[dict[str, float]]) -> dict[str, dict[str, float]]:
    """Per metric over the runs: mean, sample sd, standard error of the mean, min, max."""
    k = len(metrics)
    out = {}
    for name in metrics[0]:
        values = [m[name] for m in metrics]
        sd = statistics.stdev(values)
        out[name] = {"mean": math.fsum(values) / k, "sd": sd, "se": sd / math.sqrt(k),
                     "min": min(values), "max": max(values)}
    return out


def against(summary: dict, metrics: list[dict[str, float]], figures: dict[str, float]) -> dict[str, dict]:
    """For each published BLEU order and protocol: runs at or above it, and (mean - figure) / se."""
    out = {}
    for order, figure in figures.items():
        for name in (f"{order}_exact", f"{order}_texygen"):
            if not order.startswith("bleu") or name not in summary:
                continue
            s = summary[name]
            out[name] = {"published": figure, "runs_reaching": sum(m[name] >= figure for m in metrics),
                         "mean_reaches": s["mean"] >= figure,
                         "mean_minus_published_in_se": (s["mean"] - figure) / s["se"] if s["se"] else None}
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("metrics", nargs="+", help="metrics.json files, one per training seed")
    ap.add_argument("--published", default="coco:RelGAN(100)",
                    help="BENCHMARK:MODEL of quality.py's PUBLISHED, or none (a corpus without published figures)")
    ap.add_argument("--out", default=str(REPO / "benchmarks" / "results" / "training_seeds.json"))
    ap.add_argument("--per-run-temperature", action="store_true",
                    help="each run scored at its own temperature (a validation rule's choice per run)")
    args = ap.parse_args()
    per_run = PER_RUN | {"temperature"} if args.per_run_temperature else PER_RUN
    bench, _, model = args.published.partition(":")
    if args.published != "none" and model not in PUBLISHED.get(bench, {}):
        known = ", ".join(f"{b}:{m}" for b, ms in PUBLISHED.items() for m in ms)
        ap.error(f"--published {args.published!r} is not one of: {known}, none")
    if Path(args.out).exists():
        ap.error(f"--out {args.out} exists; choose a new file name")
    try:
        records = read_scores(args.metrics, per_run)
    except UserError as err:
        sys.exit(f"training_seeds: error: {err}")
    metrics = [r["metrics"] for r in records]
    summary = summarize(metrics)
    settings = {k: v for k, v in records[0]["settings"].items() if k not in per_run}
    result = {"command": " ".join(["python", *sys.argv]), "runs": len(records), "settings": settings,
              "files": {p: {k: r["settings"].get(k) for k in sorted(per_run)} for p, r in zip(args.metrics, records)},
              "summary": summary, "published": {} if args.published == "none" else
              {args.published: against(summary, metrics, PUBLISHED[bench][model])}}
    for name, s in summary.items():
        if ("bleu" in name or name.startswith("nll_gen")) and not name.endswith("_se"):
            print(f"{name}: mean {s['mean']:.4f} sd {s['sd']:.4f} se {s['se']:.4f} "
                  f"[{s['min']:.4f}, {s['max']:.4f}]")
    for name, c in result["published"].get(args.published, {}).items():
        print(f"{name} vs {args.published} {c['published']}: {c['runs_reaching']}/{len(records)} runs reach it, "
              f"mean {'reaches' if c['mean_reaches'] else 'misses'} it")
    write_new(args.out, result)


if __name__ == "__main__":
    main()
