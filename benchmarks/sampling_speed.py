"""Sampling speed without gradients (issue 49): textgan's sampler (`textgan sample`, evaluation and
sweeps: textgan.sample.draw_ids, run.accel as configured, and run.accel=off beside it) in sentences
per second, against
- its bandwidth bound: the bytes each step must move at batch B and vocabulary V, over the copy
  bandwidth of this machine measured in the same run (a large tensor copy); and
- an incumbent-shaped plain torch sampler (TextGAN-PyTorch's LSTM generator: embedding 32,
  LSTM 32, then softmax and torch.multinomial at every step; a stand-in, the incumbent itself is
  not installed here), timed in the same run at the same batch and vocabulary.

The bound's bytes per step: the logits (B, V) float32 written by the output layer and read again by
the sampling step (the fused step makes its noise in registers, so no noise is moved), plus the
output layer's weights and bias, (V, H + 1) floats, read once. Under a loaded machine both the
bandwidth and the speeds move; read the fraction, not the absolute figures.

benchmarks/speed.py calls `measure` on its trained generator; run alone, this script times an
untrained generator of configs/bench_relgan_coco.yaml's shape (flat logits: the fused step's worst
case, where the fewest noise values can be skipped) and writes benchmarks/results/sampling_speed.json.
"""
from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from pathlib import Path

import torch
from torch import nn

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from textgan import accel, config, hostinfo  # noqa: E402
from textgan.corpus import prepare  # noqa: E402
from textgan.data import banned_ids  # noqa: E402
from textgan.evaluate import generate  # noqa: E402
from textgan.models import build_generator  # noqa: E402


def copy_bandwidth(megabytes: int = 512, repeats: int = 5) -> float:
    """Bytes per second of a large copy (each byte read once and written once), the best of
    `repeats`, on torch's threads: the machine's memory bandwidth as the sampler sees it."""
    src = torch.ones(megabytes * (1 << 20) // 4)
    dst = torch.empty_like(src)
    dst.copy_(src)  # first touch: page faults out of the timing
    best = min(_seconds(lambda: dst.copy_(src)) for _ in range(repeats))
    return 2 * src.numel() * 4 / best


def step_bytes(batch: int, vocab: int, hidden: int) -> int:
    """Bytes one sampling step must move: the logits written and read, and the output layer read."""
    return 2 * batch * vocab * 4 + vocab * (hidden + 1) * 4


def bound_sents_per_s(bandwidth: float, batch: int, vocab: int, hidden: int, steps: int) -> float:
    """The bandwidth bound: sentences per second if every step moved `step_bytes` at `bandwidth`."""
    return bandwidth / (step_bytes(batch, vocab, hidden) * steps) * batch


class IncumbentSampler(nn.Module):
    """The incumbent's sampler shape: embedding, one LSTM layer, output layer, then softmax and
    torch.multinomial each step (TextGAN-PyTorch's LSTMGenerator.sample)."""

    def __init__(self, vocab_size: int, emb_dim: int = 32, hidden_dim: int = 32, bos_id: int = 1):
        super().__init__()
        self.embedding = nn.Embedding(vocab_size, emb_dim)
        self.lstm = nn.LSTM(emb_dim, hidden_dim, batch_first=True)
        self.out = nn.Linear(hidden_dim, vocab_size)
        self.bos_id = bos_id

    @torch.no_grad()
    def sample(self, num: int, max_len: int, batch_size: int) -> torch.Tensor:
        """(num, T) token ids, `batch_size` sentences at a time."""
        out = []
        for start in range(0, num, batch_size):
            b = min(batch_size, num - start)
            tokens = torch.full((b, 1), self.bos_id, dtype=torch.long)
            state, steps = None, []
            for _ in range(max_len):
                hidden, state = self.lstm(self.embedding(tokens), state)  # (B, 1, H)
                probs = torch.softmax(self.out(hidden[:, 0]), dim=-1)  # (B, V)
                tokens = torch.multinomial(probs, 1)  # (B, 1)
                steps.append(tokens)
            out.append(torch.cat(steps, dim=1))
        return torch.cat(out)


def _seconds(fn) -> float:
    t0 = time.perf_counter()
    fn()
    return time.perf_counter() - t0


def _rate(fn, num: int, repeats: int) -> float:
    """Sentences per second of fn() (which draws `num`), the median of `repeats` after a warm-up."""
    fn()
    return num / statistics.median(_seconds(fn) for _ in range(repeats))


def measure(generator, max_len: int, num: int, batch: int = 256, repeats: int = 3, accel_mode: str = "auto",
            bandwidth: float | None = None) -> dict:
    """textgan's sampling rate under `accel_mode` and run.accel=off, the incumbent-shaped sampler's,
    their ratio, and the bandwidth bound with the fraction of it reached, all in this run."""
    vocab, hidden = generator.vocab_size, generator.hidden_dim
    bandwidth = bandwidth or copy_bandwidth()
    rates = {}
    for mode in (accel_mode, "off"):
        accel.apply(generator, None, mode)
        rates[mode] = _rate(lambda: generate(generator, num, max_len, seed=0, batch_size=batch), num, repeats)
    accel.apply(generator, None, accel_mode)
    torch.manual_seed(0)
    incumbent = IncumbentSampler(vocab).eval()
    incumbent_rate = _rate(lambda: incumbent.sample(num, max_len, batch), num, repeats)
    bound = bound_sents_per_s(bandwidth, batch, vocab, hidden, max_len)
    return {"sample_sents_per_s": rates[accel_mode], "sample_sents_per_s_accel_off": rates["off"],
            "sample_accel": accel_mode, "incumbent_shaped_sents_per_s": incumbent_rate,
            "sample_vs_incumbent": rates[accel_mode] / incumbent_rate,
            "sample_batch": batch, "sample_num": num, "sample_vocab": vocab, "sample_hidden": hidden,
            "sample_steps": max_len, "sample_step_bytes": step_bytes(batch, vocab, hidden),
            "copy_bandwidth_gb_s": bandwidth / 1e9, "sample_bound_sents_per_s": bound,
            "sample_frac_bound": rates[accel_mode] / bound,
            "incumbent_note": "plain torch stand-in of the incumbent's shape (embedding 32, LSTM 32, softmax then "
                              "multinomial), not TextGAN-PyTorch itself"}


def report(res: dict) -> str:
    return (f"sampling at batch {res['sample_batch']}, V={res['sample_vocab']}, T={res['sample_steps']}: "
            f"textgan {res['sample_sents_per_s']:.0f} sentences/s (run.accel={res['sample_accel']}; "
            f"off {res['sample_sents_per_s_accel_off']:.0f}), incumbent-shaped {res['incumbent_shaped_sents_per_s']:.0f}"
            f" ({res['sample_vs_incumbent']:.2f}x); bound {res['sample_bound_sents_per_s']:.0f} sentences/s "
            f"({res['sample_step_bytes'] / 1e6:.2f} MB per step at {res['copy_bandwidth_gb_s']:.1f} GB/s copy "
            f"bandwidth): {res['sample_frac_bound']:.1%} of it")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--data-root", default=str(REPO.parent / "shared" / "data"))
    ap.add_argument("--config", default=str(REPO / "configs" / "bench_relgan_coco.yaml"))
    ap.add_argument("--num", type=int, default=2048, help="sentences per timing")
    ap.add_argument("--batch", type=int, default=256)
    ap.add_argument("--smoke", action="store_true", help="tiny corpus, 64 sentences, 64 MB copy")
    ap.add_argument("--out", default=str(REPO / "benchmarks" / "results" / "sampling_speed.json"))
    args = ap.parse_args()
    overrides = [f"data.root={args.data_root}", "log.progress=false"]
    if args.smoke:
        overrides += ["data.train=tiny/train.txt", "data.test=tiny/test.txt"]
        args.num = min(args.num, 64)
    cfg = config.load(args.config, overrides)
    corpus = prepare(cfg.data, cfg.run.seed)
    torch.manual_seed(cfg.run.seed)
    gen = build_generator(cfg.generator, len(corpus.vocab), banned_ids(corpus.vocab, True)).eval()
    res = measure(gen, corpus.max_len, args.num, batch=args.batch, repeats=1 if args.smoke else 3,
                  accel_mode=cfg.run.accel, bandwidth=copy_bandwidth(64 if args.smoke else 512))
    res.update({"smoke": args.smoke, "machine": hostinfo.describe(), "torch": torch.__version__,
                "threads": torch.get_num_threads(), "command": " ".join(["python"] + sys.argv)})
    print(report(res), flush=True)
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(res, indent=2) + "\n")


if __name__ == "__main__":
    main()
