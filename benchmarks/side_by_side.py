"""textgan against TextGAN-PyTorch's RelGAN (the incumbent) in one process on one device, the two
alternated round by round: the adversarial iteration (5 D steps and 1 G step, batch 64, an
E = H = 32 LSTM generator, RelGAN's CNN discriminator with 64 representations), the MLE epoch over
COCO's training captions, and sampling (sentences a second, batch 256). Issue 49's comparison on a
GPU (`--device cuda`), and on the CPU.

The incumbent is not part of this repository: --incumbent names a checkout of its public
repository (outside this one, or in the git-ignored `incumbent/`). Its generator, discriminator
and loss function are imported as they are; the few lines around them (sample, score, loss, clip,
step; its MLE batch) follow its RelGAN instructor, so none of its data pipeline is needed. Its
`config` module is a global read at import time: it is set before its models are imported.

    python benchmarks/side_by_side.py --incumbent incumbent/TextGAN-PyTorch --device cuda
"""
from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from pathlib import Path

import torch
import torch.nn.functional as F

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from textgan import config, hostinfo  # noqa: E402
from textgan.corpus import prepare  # noqa: E402
from textgan.evaluate import generate  # noqa: E402
from textgan.monitor import Monitor  # noqa: E402
from textgan.train import Trainer  # noqa: E402

CONFIG = REPO / "configs" / "bench_relgan_coco.yaml"
SMOKE = ["data.train=tiny/train.txt", "data.test=tiny/test.txt"]


def synced(device: str):
    """A clock that waits for the device's queued work before reading the time."""
    def now() -> float:
        if device.startswith("cuda"):
            torch.cuda.synchronize()
        return time.perf_counter()
    return now


def timed(fn, now, repeats: int) -> list[float]:
    times = []
    for _ in range(repeats):
        t0 = now()
        fn()
        times.append(now() - t0)
    return times


class Incumbent:
    """TextGAN-PyTorch's RelGAN_G (its LSTM variant) and RelGAN_D at textgan's benchmark shapes."""

    def __init__(self, root: Path, cfg: config.Config, vocab_size: int, max_len: int, device: str):
        sys.path.insert(0, str(root))
        import config as inc  # the incumbent's global settings module
        inc.CUDA = device.startswith("cuda")
        inc.model_type, inc.loss_type = "LSTM", "rsgan"
        inc.vocab_size, inc.max_seq_len, inc.batch_size = vocab_size, max_len, cfg.adversarial.batch_size
        inc.padding_idx, inc.start_letter = 0, 1
        from models.RelGAN_D import RelGAN_D
        from models.RelGAN_G import RelGAN_G
        from utils.helpers import get_losses
        self.inc, self.get_losses, self.device = inc, get_losses, device
        self.gen = RelGAN_G(inc.mem_slots, inc.num_heads, inc.head_size, cfg.generator.emb_dim,
                            cfg.generator.hidden_dim, vocab_size, max_len, 0, gpu=inc.CUDA).to(device)
        self.dis = RelGAN_D(cfg.discriminator.emb_dim, max_len, cfg.discriminator.num_rep, vocab_size, 0,
                            gpu=inc.CUDA).to(device)
        self.gen_opt = torch.optim.Adam(self.gen.parameters(), lr=1e-2)
        self.adv_opt = torch.optim.Adam(self.gen.parameters(), lr=1e-4)
        self.dis_opt = torch.optim.Adam(self.dis.parameters(), lr=1e-4)
        self.d_steps, self.g_steps = cfg.adversarial.d_steps, cfg.adversarial.g_steps

    def _step(self, opt, loss, model) -> None:
        opt.zero_grad()
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), self.inc.clip_norm)
        opt.step()

    def _scores(self, real_ids: torch.Tensor):
        b = self.inc.batch_size
        fake = self.gen.sample(b, b, one_hot=True)
        real = F.one_hot(real_ids.to(self.device), self.inc.vocab_size).float()
        return self.dis(real), self.dis(fake)

    def adversarial_iteration(self, batches) -> None:
        """Its instructor's order: the G steps, then the D steps, each on a fresh real batch."""
        for _ in range(self.g_steps):
            g_loss, _ = self.get_losses(*self._scores(batches()), self.inc.loss_type)
            self._step(self.adv_opt, g_loss, self.gen)
        for _ in range(self.d_steps):
            _, d_loss = self.get_losses(*self._scores(batches()), self.inc.loss_type)
            self._step(self.dis_opt, d_loss, self.dis)

    def mle_epoch(self, tokens: torch.Tensor) -> None:
        """Teacher forcing over `tokens` (N, T) in batches: input = start letter + target[:-1]."""
        b, criterion = self.inc.batch_size, torch.nn.NLLLoss()
        for s in range(0, tokens.shape[0] - b + 1, b):
            target = tokens[s:s + b].to(self.device)
            inp = torch.cat([torch.full_like(target[:, :1], self.inc.start_letter), target[:, :-1]], 1)
            pred = self.gen.forward(inp, self.gen.init_hidden(b))
            self._step(self.gen_opt, criterion(pred, target.reshape(-1)), self.gen)

    def sample(self, num: int, batch: int) -> None:
        """`num` sentences, `batch` at a time (asked for more than one batch at once, its sampler
        draws one batch beyond them)."""
        with torch.no_grad():
            for _ in range(num // batch):
                self.gen.sample(batch, batch)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--incumbent", required=True, help="a checkout of TextGAN-PyTorch")
    ap.add_argument("--device", default="cpu", help="cpu, cuda or cuda:N")
    ap.add_argument("--data-root", default=str(REPO.parent / "shared" / "data"))
    ap.add_argument("--rounds", type=int, default=3, help="alternations of the two programs")
    ap.add_argument("--accel", default="auto", help="textgan's run.accel (auto, off, compile)")
    ap.add_argument("--smoke", action="store_true", help="the tiny corpus and one round, to check the script")
    ap.add_argument("--out", default=str(REPO / "benchmarks" / "results" / "side_by_side.json"))
    args = ap.parse_args()
    root = Path(args.incumbent)
    if not (root / "models" / "RelGAN_G.py").is_file():
        sys.exit(f"--incumbent: {root} holds no models/RelGAN_G.py; point it at a checkout of TextGAN-PyTorch")
    if args.device.startswith("cuda") and not torch.cuda.is_available():
        sys.exit("--device cuda: this torch sees no CUDA device; run it on the GPU machine or use --device cpu")
    rounds = 1 if args.smoke else args.rounds
    overrides = [f"data.root={args.data_root}", "log.progress=false", f"run.device={args.device}",
                 f"run.accel={args.accel}"] + (SMOKE if args.smoke else [])
    cfg = config.load(str(CONFIG), overrides)
    corpus = prepare(cfg.data, cfg.run.seed)
    tr = Trainer(cfg, corpus, Path("/tmp"), Monitor(Path("/tmp"), progress=False, enabled=False))
    inc = Incumbent(root, cfg, len(corpus.vocab), corpus.max_len, args.device)
    tokens = corpus.train.tokens
    draw = torch.Generator().manual_seed(0)

    def batches() -> torch.Tensor:
        return tokens[torch.randint(tokens.shape[0], (cfg.adversarial.batch_size,), generator=draw)]

    now = synced(args.device)
    num, batch = (256, 256) if args.smoke else (2048, 256)
    jobs = {"adversarial_iteration_s": (tr.adversarial_step, lambda: inc.adversarial_iteration(batches)),
            "mle_epoch_s": (tr.mle_epoch, lambda: inc.mle_epoch(tokens)),
            "sample_s": (lambda: generate(tr.G, num, corpus.max_len, seed=0, batch_size=batch),
                         lambda: inc.sample(num, batch))}
    times = {name: {"textgan": [], "incumbent": []} for name in jobs}
    for name, (ours, theirs) in jobs.items():  # a warm-up each: caches, kernels, compilation
        ours(), theirs()
    for r in range(rounds):
        for name, (ours, theirs) in jobs.items():
            times[name]["textgan"] += timed(ours, now, 1)
            times[name]["incumbent"] += timed(theirs, now, 1)
            print(f"round {r + 1} {name}: textgan {times[name]['textgan'][-1]:.3f} s, "
                  f"incumbent {times[name]['incumbent'][-1]:.3f} s", flush=True)
    result = {}
    for name, t in times.items():
        ours, theirs = statistics.median(t["textgan"]), statistics.median(t["incumbent"])
        result[name] = {"textgan_median": ours, "incumbent_median": theirs, "ratio": theirs / ours, **t}
    result["sentences_per_s"] = {who: num / result["sample_s"][f"{who}_median"] for who in ("textgan", "incumbent")}
    result.update(device=args.device, card=torch.cuda.get_device_name(args.device) if args.device.startswith("cuda")
                  else None, machine=hostinfo.describe(), accel=args.accel, torch=torch.__version__,
                  threads=torch.get_num_threads(), vocab=len(corpus.vocab), max_len=corpus.max_len,
                  smoke=args.smoke, command=" ".join(["python"] + sys.argv))
    for name in jobs:
        print(f"{name}: textgan {result[name]['textgan_median']:.3f} s, incumbent "
              f"{result[name]['incumbent_median']:.3f} s: {result[name]['ratio']:.1f}x")
    Path(args.out).write_text(json.dumps(result, indent=2) + "\n")
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
