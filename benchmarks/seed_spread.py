"""BLEU of checkpoints over several sampling seeds, pooled: the model's expected BLEU to a
standard error a few times smaller than one evaluation's.

Why: one evaluation of 10,000 samples measures BLEU-2 to about +-0.0013 on COCO, so a checkpoint
0.0005 away from a published figure is neither above nor below it. Each seed draws the samples
`textgan eval CKPT --num NUM --seed S` draws (the same function, so the same sentences), scored
with the exact protocol; NLL_gen is left out (it does not depend on the samples). Pooled over k
seeds of equal size: the mean of the seed means, and its standard error sqrt(sum se_s^2) / k.

`python benchmarks/seed_spread.py CKPT [CKPT ...] --seeds 0,1,2,3,4 --num 10000 --out FILE`
writes per-seed and pooled figures to FILE (default benchmarks/results/seed_spread.json; it
refuses to overwrite an existing file).
"""
from __future__ import annotations

import argparse
import dataclasses
import json
import math
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from textgan import hostinfo  # noqa: E402
from textgan.accel import fpenv  # noqa: E402
from textgan.errors import UserError  # noqa: E402
from textgan.evaluate import evaluate  # noqa: E402
from textgan.evaluation_cli import load_run  # noqa: E402


def pooled(per_seed: list[dict], orders: list[int]) -> dict[str, float]:
    """Mean of the seed means and its standard error, per BLEU order (seeds of equal size)."""
    k = len(per_seed)
    out = {}
    for n in orders:
        out[f"bleu{n}_exact"] = math.fsum(m[f"bleu{n}_exact"] for m in per_seed) / k
        out[f"bleu{n}_exact_se"] = math.sqrt(math.fsum(m[f"bleu{n}_exact_se"] ** 2 for m in per_seed)) / k
    return out


def spread(checkpoint: str, loaded, corpus, seeds: list[int], num: int) -> dict:
    cfg = dataclasses.replace(loaded.config.eval, num_samples=num, protocol="exact")
    per_seed = {}
    for seed in seeds:
        t0 = time.perf_counter()
        metrics = evaluate(loaded.generator, corpus, cfg, seed, nll=False)[0]
        per_seed[seed] = {**metrics, "seconds": round(time.perf_counter() - t0, 1)}
        print(checkpoint, f"seed {seed}:", " ".join(f"{k}={v:.5f}" for k, v in metrics.items() if "bleu" in k), flush=True)
    result = {"num_per_seed": num, "seeds": per_seed, "pooled": pooled(list(per_seed.values()), cfg.bleu_n)}
    print(checkpoint, "pooled:", " ".join(f"{k}={v:.5f}" for k, v in result["pooled"].items()), flush=True)
    return result


def write_new(path: str, result: dict) -> None:
    """`result` as JSON in a new file at `path` ("x": a file made since the check is never replaced)."""
    Path(path).parent.mkdir(parents=True, exist_ok=True)
    with open(path, "x", encoding="utf-8") as f:
        f.write(json.dumps(result, indent=2) + "\n")
    print(f"wrote {path}")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("checkpoints", nargs="+", help="checkpoint files or run folders (their newest checkpoint)")
    ap.add_argument("--seeds", default="0,1,2,3,4", help="sampling seeds, comma-separated")
    ap.add_argument("--num", type=int, default=10000, help="samples per seed (>= 2)")
    ap.add_argument("--out", default=str(REPO / "benchmarks" / "results" / "seed_spread.json"))
    args = ap.parse_args()
    try:
        seeds = [int(s) for s in args.seeds.split(",")]
    except ValueError:
        ap.error(f"--seeds takes whole numbers separated by commas, got {args.seeds!r}")
    if len(set(seeds)) != len(seeds):
        ap.error(f"--seeds must be distinct (a repeated seed draws the same samples), got {args.seeds!r}")
    if args.num < 2:
        ap.error(f"--num must be >= 2 (Self-BLEU needs two samples), got {args.num}")
    if Path(args.out).exists():
        ap.error(f"--out {args.out} exists; choose a new file name")
    import torch

    try:  # every checkpoint before any scoring, so a bad path fails now, not an hour in
        runs = {ckpt: load_run(ckpt) for ckpt in args.checkpoints}
    except UserError as err:
        sys.exit(f"seed_spread: error: {err}")
    result = {"machine": hostinfo.describe(), "torch": torch.__version__, "seeds": seeds,
              "command": " ".join(["python", *sys.argv]), "checkpoints": {}}
    for ckpt, (loaded, corpus) in runs.items():
        fpenv.apply(loaded.config.run)  # as `textgan eval` scores it (denormals flushed as the run trained)
        result["checkpoints"][ckpt] = spread(ckpt, loaded, corpus, seeds, args.num)
    write_new(args.out, result)


if __name__ == "__main__":
    main()
