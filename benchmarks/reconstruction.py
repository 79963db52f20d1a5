"""Issue 46's reconstruction benchmark: encode held-out sentences with a run's sentence encoder
(E_q[z | x] of mle.objective elbo, e.g. configs/coco_vae.yaml), decode each z with the noise off
(greedy, as `textgan sample --z Z --greedy`), and score each reconstruction against its own source:
nltk sentence BLEU-4 (method1 smoothing) and the exact-match share. As a control, the same
reconstructions against another source (the next sentence of the list): what BLEU-4 a decoder that
ignored the sentence would still get. Writes a JSON file (never over an existing one).
"""
from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import torch

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from textgan.corpus import prepare  # noqa: E402
from textgan.encoding import greedy_decode, load_encoder  # noqa: E402
from textgan.metrics.bleu import bleu_scores  # noqa: E402
from textgan.sample import load_generator  # noqa: E402

BATCH = 250  # sentences encoded and decoded at once


def pair_bleu(hypotheses: list[list[str]], sources: list[list[str]], n: int = 4) -> list[float]:
    """BLEU-n of each hypothesis against its own source alone."""
    return [bleu_scores([h], [s], max_n=n)[0] if h and s else 0.0 for h, s in zip(hypotheses, sources)]


@torch.no_grad()
def reconstruct(run: str, num: int, which: str) -> dict:
    loaded = load_generator(run, warn=lambda m: None)
    corpus = prepare(loaded.config.data, loaded.config.run.seed, vocab=loaded.vocab)
    encoder = load_encoder(loaded, which)
    tokens, lengths = corpus.test.tokens[:num], corpus.test.lengths[:num]
    decoded = []
    for start in range(0, tokens.shape[0], BATCH):
        mean, _ = encoder.encode_ids(tokens[start:start + BATCH], lengths[start:start + BATCH])  # (N, Z)
        decoded += greedy_decode(loaded.generator, mean, corpus.max_len).tolist()
    hyps = [loaded.vocab.decode(row) for row in decoded]
    sources = [loaded.vocab.decode(row) for row in tokens.tolist()]
    own = pair_bleu(hyps, sources)
    other = pair_bleu(hyps, sources[1:] + sources[:1])
    n = len(sources)
    return {"run": str(run), "checkpoint": loaded.path.name, "encoder": which, "num": n,
            "test_file": str(Path(loaded.config.data.root) / loaded.config.data.test),
            "metrics": {"bleu4_own_source": sum(own) / n, "exact_match": sum(h == s for h, s in zip(hyps, sources)) / n,
                        "bleu4_other_source": sum(other) / n,
                        "mean_length_source": sum(map(len, sources)) / n, "mean_length_decoded": sum(map(len, hyps)) / n},
            "examples": [{"source": " ".join(s), "decoded": " ".join(h)} for s, h in list(zip(sources, hyps))[:10]]}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("run", help="run folder or checkpoint with a sentence encoder")
    ap.add_argument("--num", type=int, default=1000, help="test sentences, the first ones of the test file")
    ap.add_argument("--encoder", default="variational", choices=("auto", "variational", "info"))
    ap.add_argument("--out", default=str(REPO / "benchmarks" / "results" / "reconstruction_coco.json"))
    args = ap.parse_args()
    if Path(args.out).exists():
        sys.exit(f"{args.out} exists; results are never replaced, give a new --out")
    if args.num < 1:
        sys.exit(f"--num must be >= 1, got {args.num}")
    t0 = time.perf_counter()
    result = reconstruct(args.run, args.num, args.encoder)
    result["wall_s"] = round(time.perf_counter() - t0, 1)
    text = json.dumps(result, indent=2)
    print(text)
    with open(args.out, "x", encoding="utf-8") as f:
        f.write(text + "\n")


if __name__ == "__main__":
    main()
