"""Issue 46's quickstart targets on a trained run (e.g. runs/quickstart of `make demo`): how much z
decides a sentence (latent_mi_64 over 500 sentences, the share of sentences and tokens that change
when z is redrawn at fixed noise, interpolation statistics), beside the quality the latent must
not cost (grammaticality, Self-BLEU-4 and NLL_gen over 1,000 samples as `textgan eval` scores
them), and the reconstruction of 200 test sentences through the run's sentence encoder (greedy).
Writes a JSON file (never over an existing one).
"""
from __future__ import annotations

import argparse
import json
import math
import sys
from pathlib import Path

import torch

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from textgan.corpus import prepare  # noqa: E402
from textgan.encoding import greedy_decode, load_encoder  # noqa: E402
from textgan.errors import UserError  # noqa: E402
from textgan.evaluate import evaluate  # noqa: E402
from textgan.metrics.latent import latent_metrics  # noqa: E402
from textgan.sample import load_generator  # noqa: E402

TARGETS = {"latent_mi_64": 2.5, "latent_sensitivity": 0.90, "grammaticality": 0.84}  # issue 46, section 4


@torch.no_grad()
def reconstruction(loaded, corpus, num: int) -> dict[str, float]:
    """Exact-match share of test sentences decoded greedily from their encoded z."""
    try:
        encoder = load_encoder(loaded)
    except UserError:
        return {}
    tokens, lengths = corpus.test.tokens[:num], corpus.test.lengths[:num]
    mean, _ = encoder.encode_ids(tokens, lengths)
    ids = greedy_decode(loaded.generator, mean, corpus.max_len)
    same = [loaded.vocab.decode(a) == loaded.vocab.decode(b) for a, b in zip(ids.tolist(), tokens.tolist())]
    return {"reconstruction_exact": sum(same) / len(same), "reconstruction_num": len(same)}


def measure(run: str, seed: int) -> dict:
    loaded = load_generator(run, warn=lambda m: None)
    cfg = loaded.config
    corpus = prepare(cfg.data, cfg.run.seed, vocab=loaded.vocab)
    G = loaded.generator
    out = latent_metrics(G, max_len=corpus.max_len, seed=seed, num=500, k=64, pairs=8, steps=8)
    cfg.eval.num_samples, cfg.eval.latent_samples, cfg.eval.interp_pairs = 1000, 0, 0
    cfg.eval.bleu_n = sorted(set(cfg.eval.bleu_n) | {4})  # BLEU-4 and Self-BLEU-4 whatever the run logged
    quality = evaluate(G, corpus, cfg.eval, seed=seed).metrics
    keep = ("grammaticality", "self_bleu4_loo", "bleu4_exact", "nll_gen_mc8_tok", "train_copy_frac")
    out.update({k: v for k, v in quality.items() if k in keep})
    out.update(reconstruction(loaded, corpus, 200))
    return {"run": str(run), "checkpoint": loaded.path.name, "seed": seed, "metrics": out,
            "targets": TARGETS, "met": {k: out.get(k, -math.inf) >= v for k, v in TARGETS.items()}}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("run", help="run folder or checkpoint")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--out", default=str(REPO / "benchmarks" / "results" / "latent_quickstart.json"))
    args = ap.parse_args()
    if Path(args.out).exists():
        sys.exit(f"{args.out} exists; results are never replaced, give a new --out")
    result = measure(args.run, args.seed)
    print(json.dumps(result, indent=2))
    with open(args.out, "x", encoding="utf-8") as f:
        f.write(json.dumps(result, indent=2) + "\n")


if __name__ == "__main__":
    main()
