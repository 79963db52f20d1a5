"""How fast the MLE epoch could be on this machine: the rates of the torch path's three skinny
matmuls of the fused cross-entropy (one (224, 4663) chunk of COCO, H = 32) and of the native
kernel doing all of it (loss, softmax and the three products for a batch of 809 rows, the
benchmark's mean), next to the fp32 matmul peak, interleaved in rounds so all see the same
machine state. 91 % of an MLE epoch's FLOPs are these products, so their rate bounds the epoch's
share of the peak from above (`make bench-speed` runs it after speed.py). Writes
benchmarks/results/mle_bound.json.
"""
from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from pathlib import Path

import torch

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from textgan.accel import linear_ce  # noqa: E402


def rates(rounds: int) -> dict[str, list[float]]:
    c, v, h = 224, 4663, 32  # the fused CE's CPU chunk on COCO, hidden 32
    hid, weight, probs, hs = torch.randn(c, h), torch.randn(v, h), torch.rand(c, v), torch.randn(c, h)
    logits, grad_h, grad_w = torch.empty(c, v), torch.empty(c, h), torch.zeros(v, h)
    square = torch.randn(2048, 2048)
    m = 809  # valid rows in a COCO batch of 64 (the mean)
    rows, targets, bias = torch.randn(m, h), torch.randint(0, v, (m,)), torch.randn(v)
    ops = {
        "logits_h_Wt": (lambda: torch.mm(hid, weight.t(), out=logits), 2 * c * h * v, 200),
        "grad_h_P_W": (lambda: torch.mm(probs, weight, out=grad_h), 2 * c * h * v, 200),
        "grad_W_Pt_hs": (lambda: grad_w.addmm_(probs.t(), hs), 2 * c * h * v, 200),
        "peak_2048": (lambda: square @ square, 2 * 2048 ** 3, 10),
    }
    if linear_ce.kernels() is not None:  # loss and all three gradients, softmax included
        scratch = torch.empty(linear_ce.scratch_size(h, v))
        ops["native_ce_batch"] = (lambda: linear_ce.loss_and_grads(
            rows, weight, bias, targets, scale=1 / m, grads=True, scratch=scratch), 6 * m * h * v, 40)
    out: dict[str, list[float]] = {k: [] for k in ops}
    for _ in range(rounds):
        for name, (fn, flop, n) in ops.items():
            for _ in range(3):
                fn()
            t0 = time.perf_counter()
            for _ in range(n):
                fn()
            out[name].append(flop * n / (time.perf_counter() - t0) / 1e9)
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--rounds", type=int, default=5)
    ap.add_argument("--out", default=str(REPO / "benchmarks" / "results" / "mle_bound.json"))
    args = ap.parse_args()
    measured = rates(args.rounds)
    best = {k: max(v) for k, v in measured.items()}
    skinny = statistics.mean(best[k] for k in ("logits_h_Wt", "grad_h_P_W", "grad_W_Pt_hs"))
    result = {"gflops_best": best, "gflops_all": measured, "skinny_mean_best_gflops": skinny,
              "skinny_frac_peak": skinny / best["peak_2048"],
              "native_ce_frac_peak": best["native_ce_batch"] / best["peak_2048"] if "native_ce_batch" in best else None,
              "torch": torch.__version__,
              "threads": torch.get_num_threads(), "command": " ".join(["python"] + sys.argv)}
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps(result, indent=2) + "\n")
    print(json.dumps({k: v for k, v in result.items() if k != "gflops_all"}, indent=2))


if __name__ == "__main__":
    main()
