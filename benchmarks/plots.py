"""The plots of BENCHMARKS.md, drawn from the result files it cites (benchmarks/results/):

- plot_coco_quality_diversity.png: BLEU-2..5 against held-out NLL_gen per token on COCO's test
  set: the MLE baseline over the sampling temperature (Caccia et al. 2020's curve), the recipe's
  six training seeds at T = 1, 0.95 and 0.9, RelGAN's published BLEU and the MLE baseline's NLL_gen.
- plot_coco_seeds.png: the recipe's test BLEU-2..5 per training seed at T = 0.95, each with its
  sampling standard error, the six-seed mean with its standard error, RelGAN's published BLEU.
- plot_oracle20_quality_diversity.png: NLL_oracle against held-out NLL_gen (length 20): the MLE
  baseline and one GAN state over the temperature, the nine GAN runs' best states at T = 1.
- plot_oracle20_algorithms.png: issue 48's algorithms on the length-20 oracle from their common MLE
  start: the start and ScratchGAN's best state over the temperature, the other algorithms' states at
  T = 1, the published MLE / SeqGAN / LeakGAN figures.
- plot_coco_latent_tradeoff.png: the latent recipe (seed 0) over the sampling temperature on the
  test set: BLEU-4 against held-out NLL_gen beside the MLE curve and the plain recipe's seeds, and
  z's information (latent_mi_64) against BLEU-4 beside the plain recipe, the latent GAN and the
  autoencoders with other free bits (greedy).

`python benchmarks/plots.py` rewrites them in place; `--out-dir DIR` writes them elsewhere.
"""
from __future__ import annotations

import argparse
import csv
import json
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402

RESULTS = Path(__file__).resolve().parent / "results"
RELGAN_COCO = {2: 0.849, 3: 0.687, 4: 0.502, 5: 0.331}  # Nie et al. 2019, Table 2
RELGAN_ORACLE20 = 6.680  # Nie et al. 2019, Table 1
COCO_SEED = "coco_rsgan_h256_tied_mix3_ema98_valid_s{seed}_best{suffix}.json"
COCO_TEMPERATURES = {1.0: "", 0.95: "_t095", 0.9: "_t09"}
PUBLISHED_ORACLE20 = {"MLE": 9.038, "SeqGAN": 8.736, "LeakGAN": 7.038}  # as RelGAN's Table 1 quotes them
ORACLE20_ALGORITHMS = {  # issue 48's states at T = 1 (BENCHMARKS.md): file stem -> label
    "oracle20_seqgan_best": "SeqGAN, best state", "oracle20_seqgan_last": "SeqGAN, last state",
    "oracle20_maligan_best": "MaliGAN, best state", "oracle20_textgan_best": "textGAN-MMD, best state",
    "oracle20_textgan_last": "textGAN-MMD, last state",
}
ORACLE20_BEST = {  # the nine best states of the oracle recipe, by machine (BENCHMARKS.md)
    "AMD EPYC (AVX2)": ["", "_s1", "_s2"],
    "Intel Xeon": ["_s1_xeon", "_s3", "_s4"],
    "Intel Xeon, kernels built for AVX2": ["_s1_avx2", "_s3_avx2", "_s4_avx2"],
}


def _json(name: str) -> dict:
    return json.loads((RESULTS / name).read_text(encoding="utf-8"))


def _csv(name: str) -> list[dict[str, float]]:
    with open(RESULTS / name, encoding="utf-8") as fh:
        return [{k: float(v) for k, v in row.items()} for row in csv.DictReader(fh)]


def nll_gen(metrics: dict) -> float:
    """Held-out NLL_gen per token: the Monte Carlo estimate over latent draws (K = 1 without a latent)."""
    return next(v for k, v in metrics.items() if k.startswith("nll_gen_mc") and k.endswith("_tok"))


def coco_quality_diversity(out: Path) -> None:
    mle_curve = _csv("sweep_nllgen_coco_mle.csv")
    mle = _json("quality_cpu.json")["experiments"]["coco_mle"]["metrics"]
    fig, axes = plt.subplots(2, 2, figsize=(10, 8), sharex=True)
    for n, ax in zip((2, 3, 4, 5), axes.flat):
        ax.plot([r["nll_gen_tok"] for r in mle_curve], [r[f"bleu{n}"] for r in mle_curve], "o-", color="gray",
                label="MLE baseline (coco_mle), T = 0.4 ... 1.0")
        for seed in range(6):
            runs = [_json(COCO_SEED.format(seed=seed, suffix=s))["metrics"] for s in COCO_TEMPERATURES.values()]
            ax.plot([nll_gen(m) for m in runs], [m[f"bleu{n}_exact"] for m in runs], ".-", color=f"C{seed}",
                    label=f"recipe, seed {seed}, T = 1 / 0.95 / 0.9")
        ax.axhline(RELGAN_COCO[n], color="k", ls="--", lw=1, label="RelGAN(100), published")
        ax.axvline(nll_gen(mle), color="r", ls=":", lw=1, label="MLE baseline's NLL_gen (the bound)")
        ax.set_ylabel(f"BLEU-{n} (exact protocol)")
        ax.set_xlim(4.6, 6.5)
    for ax in axes[1]:
        ax.set_xlabel("held-out NLL_gen per token (test set; lower = more diverse coverage)")
    axes[0, 0].legend(fontsize=7)
    fig.suptitle("Image COCO: quality against diversity (10,000 samples a point)")
    fig.tight_layout()
    fig.savefig(out / "plot_coco_quality_diversity.png", dpi=110)
    plt.close(fig)


def coco_seeds(out: Path) -> None:
    summary = _json("training_seeds_coco_rsgan_h256_tied_mix3_ema98_valid_best_t095.json")["summary"]
    runs = [_json(COCO_SEED.format(seed=s, suffix="_t095"))["metrics"] for s in range(6)]
    fig, axes = plt.subplots(1, 4, figsize=(13, 3.6))
    for n, ax in zip((2, 3, 4, 5), axes):
        key = f"bleu{n}_exact"
        ax.errorbar(range(6), [m[key] for m in runs], yerr=[m[f"{key}_se"] for m in runs], fmt="o", capsize=3,
                    label="one seed ± sampling s.e.")
        mean, se = summary[key]["mean"], summary[key]["se"]
        ax.axhspan(mean - se, mean + se, color="C0", alpha=0.2, label="six-seed mean ± s.e.")
        ax.axhline(RELGAN_COCO[n], color="k", ls="--", lw=1, label="RelGAN(100), published")
        ax.set_title(f"BLEU-{n}")
        ax.set_xlabel("training seed")
    axes[0].legend(fontsize=7)
    fig.suptitle("Image COCO recipe at T = 0.95: the spread between training seeds")
    fig.tight_layout()
    fig.savefig(out / "plot_coco_seeds.png", dpi=110)
    plt.close(fig)


def oracle_curves(ax, curves) -> None:
    """NLL_oracle against held-out NLL_gen over the temperature, one line per (sweep file, label, colour)."""
    for name, label, color in curves:
        rows = _csv(name)
        ax.plot([r["nll_gen_tok"] for r in rows], [r["nll_oracle"] for r in rows], "o-", color=color,
                label=f"{label}, T = {rows[0]['temperature']:.1f} ... {rows[-1]['temperature']:.1f}")


def save_oracle_plot(fig, ax, title: str, path: Path) -> None:
    """An oracle plot's axes, title and legend, written to `path`."""
    ax.set_xlabel("held-out NLL_gen per token (lower = more diverse coverage)")
    ax.set_ylabel("NLL_oracle (lower = better samples)")
    ax.set_title(title)
    ax.legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def oracle20_quality_diversity(out: Path) -> None:
    fig, ax = plt.subplots(figsize=(7, 5))
    oracle_curves(ax, (("sweep_nllgen_oracle20_mle.csv", "MLE baseline (oracle20_mle)", "gray"),
                       ("sweep_nllgen_oracle20_rsgan_warm_h64_glr2_best_s1_best.csv", "recipe, seed 1 (AMD EPYC)", "C0")))
    for i, (machine, runs) in enumerate(ORACLE20_BEST.items()):
        states = [_json(f"eval_oracle20_rsgan_warm_h64_glr2_best{r}_best_seed7.json")["metrics"] for r in runs]
        ax.plot([nll_gen(m) for m in states], [m["nll_oracle"] for m in states], "s^D"[i], color=f"C{i + 1}",
                ls="", label=f"recipe's best states at T = 1, {machine}")
    ax.axhline(RELGAN_ORACLE20, color="k", ls="--", lw=1, label="RelGAN(100), published")
    ax.set_xlim(8.5, 33)
    save_oracle_plot(fig, ax, "Synthetic oracle, length 20: quality against diversity",
                     out / "plot_oracle20_quality_diversity.png")


def oracle20_algorithms(out: Path) -> None:
    fig, ax = plt.subplots(figsize=(7, 5))
    oracle_curves(ax, (("sweep_oracle20_mle_h64_e45.csv", "MLE start (oracle20_mle_h64, 45 epochs)", "gray"),
                       ("sweep_oracle20_scratchgan_best.csv", "ScratchGAN, best state", "C0")))
    for i, (stem, label) in enumerate(ORACLE20_ALGORITHMS.items()):
        m = _json(f"{stem}_seed7.json")["metrics"]
        ax.plot([nll_gen(m)], [m["nll_oracle"]], "s^Dv<"[i], color=f"C{i + 1}", ls="", label=f"{label}, T = 1")
    for (name, figure), style in zip(PUBLISHED_ORACLE20.items(), (":", "--", "-.")):
        ax.axhline(figure, color="k", ls=style, lw=1, label=f"{name}, published")
    save_oracle_plot(fig, ax, "Oracle, length 20: the algorithms against their MLE start",
                     out / "plot_oracle20_algorithms.png")


def coco_latent_tradeoff(out: Path) -> None:
    sweep = _csv("coco_latent_h256_s0_sweep_test.csv")
    mle_curve = _csv("sweep_nllgen_coco_mle.csv")
    fig, (left, right) = plt.subplots(1, 2, figsize=(12, 5))
    left.plot([r["nll_gen_tok"] for r in mle_curve], [r["bleu4"] for r in mle_curve], "o-", color="gray",
              label="MLE baseline (coco_mle), T = 0.4 ... 1.0")
    for seed in range(6):
        runs = [_json(COCO_SEED.format(seed=seed, suffix=s))["metrics"] for s in COCO_TEMPERATURES.values()]
        left.plot([nll_gen(m) for m in runs], [m["bleu4_exact"] for m in runs], ".", color="C0",
                  label="plain recipe, 6 seeds, T = 1 / 0.95 / 0.9" if seed == 0 else None)
    left.plot([r["nll_gen_tok"] for r in sweep], [r["bleu4"] for r in sweep], "s-", color="C3",
              label="latent recipe, seed 0, T = 0.2 ... 1.0")
    for r in sweep:
        left.annotate(f"{r['temperature']:.1f}", (r["nll_gen_tok"], r["bleu4"]), fontsize=7,
                      xytext=(4, 2), textcoords="offset points")
    left.axhline(RELGAN_COCO[4], color="k", ls="--", lw=1, label="RelGAN(100), published")
    left.axvline(nll_gen(_json("quality_cpu.json")["experiments"]["coco_mle"]["metrics"]), color="r", ls=":",
                 lw=1, label="MLE baseline's NLL_gen (the bound)")
    left.set_xlabel("held-out NLL_gen per token of the sampler at T (test; lower = more diverse coverage)")
    left.set_ylabel("BLEU-4 (exact protocol)")
    left.legend(fontsize=7)
    right.plot([r["bleu4"] for r in sweep], [r["latent_mi_64"] for r in sweep], "s-", color="C3",
               label="latent recipe, seed 0, T = 0.2 ... 1.0")
    points = (("coco_latent_h256_s0_greedy.json", "latent recipe, greedy (free bits 1.5)", "C3", "*"),
              ("coco_vae_h256_s0_greedy.json", "free bits 0.5, greedy", "C1", "v"),
              ("coco_vae_h256_fb2_s0_greedy.json", "free bits 2, greedy", "C4", "^"),
              ("coco_vae_h256_fb3_s0_greedy.json", "free bits 3, greedy", "C5", "D"),
              ("coco_rsgan_h256_latent_s0_best_t1.json", "latent GAN, seed 0, T = 1", "C2", "o"),
              ("coco_rsgan_h256_s0_rerun_t095.json", "plain recipe, seed 0, T = 0.95", "C0", "o"))
    for name, label, color, marker in points:
        m = _json(name)["metrics"]
        right.plot([m["bleu4_exact"]], [m["latent_mi_64"]], marker, color=color, ls="", label=label)
    right.axhline(sweep[0]["latent_mi_64_max"], color="k", ls=":", lw=1, label="the bound's ceiling, log 64")
    right.axvline(RELGAN_COCO[4], color="k", ls="--", lw=1, label="RelGAN(100)'s BLEU-4")
    right.set_xlabel("BLEU-4 (exact protocol, test)")
    right.set_ylabel("latent_mi_64 (nats): how much z decides the sentence")
    right.legend(fontsize=7)
    fig.suptitle("Image COCO: text from a latent, quality against coverage and z's information (10,000 samples a point)")
    fig.tight_layout()
    fig.savefig(out / "plot_coco_latent_tradeoff.png", dpi=110)
    plt.close(fig)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--out-dir", default=str(RESULTS), help="folder for the PNG files")
    out = Path(ap.parse_args().out_dir)
    out.mkdir(parents=True, exist_ok=True)
    for plot in (coco_quality_diversity, coco_seeds, oracle20_quality_diversity, oracle20_algorithms,
                 coco_latent_tradeoff):
        plot(out)
        print(f"{plot.__name__}: written under {out}")


if __name__ == "__main__":
    main()
