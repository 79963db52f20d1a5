"""Quality benchmark (make bench-quality): train the MLE baselines and the GANs of the published
tables (synthetic oracle, image COCO) with the real CLI, score them with `textgan eval`, and write
benchmarks/results/quality.json next to the published numbers.

Each experiment is `textgan train CONFIG` then `textgan eval RUN --num N --protocol both`, in
subprocesses, so what is measured is what a user runs. `--smoke` runs a seconds-long version (CI)
and writes quality_smoke.json instead. Experiments can run in parallel (`--jobs`).
"""
from __future__ import annotations

import argparse
import csv
import json
import os
import shutil
import signal
import subprocess
import sys
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from textgan import checkpoint, hostinfo  # noqa: E402

# Published figures (RelGAN paper, Nie et al. 2019, Tables 1 and 2), for comparison only.
PUBLISHED = {
    "oracle20": {"MLE": {"nll_oracle": 9.038}, "SeqGAN": {"nll_oracle": 8.736},
                 "LeakGAN": {"nll_oracle": 7.038}, "RelGAN(100)": {"nll_oracle": 6.680}},
    "coco": {"MLE": {"bleu2": 0.731, "bleu3": 0.497, "bleu4": 0.305, "bleu5": 0.189, "nll_gen": 0.718},
             "RelGAN(100)": {"bleu2": 0.849, "bleu3": 0.687, "bleu4": 0.502, "bleu5": 0.331,
                             "nll_gen": 0.756}},
}


def warm_from(run: str) -> list[str]:
    """The GAN phase alone, its generator (and vocabulary) from the finished run `run`."""
    return [f"generator.init_from={{runs}}/{run}", "mle.epochs=0"]


ORACLE20_WARM = warm_from("oracle20_mle")
COCO_MIX = ["generator.init_from={runs}/coco_relgan_mle30", "mle.epochs=0", "adversarial.mle_weight=1.0"]
COCO_RSGAN_WARM = warm_from("coco_rsgan_mle30")  # from coco_rsgan's MLE phase
COCO_MLE_EARLY = ["adversarial.steps=0", "mle.epochs=40", "mle.patience=2"]  # MLE alone, early-stopped
GLR_MIX = ["adversarial.g_lr=0.001", "adversarial.mle_weight=1.0"]  # 10x G learning rate + the real batch's NLL
MIX3 = ["adversarial.g_lr=0.0003", "adversarial.mle_weight=1.0"]  # 3x G learning rate + the real batch's NLL
ORACLE20_GLR2 = [*ORACLE20_WARM, "adversarial.g_lr=0.002"]  # the oracle GAN phase at 20x G learning rate
ORACLE20_GLR3 = [*ORACLE20_WARM, "adversarial.g_lr=0.003"]  # the oracle GAN phase at 30x G learning rate
# the 20x phase evaluated every 5 steps, its lowest-NLL_oracle state kept as best.pt (its dip is narrow)
BEST_NLL_ORACLE = ["eval.every=5", "log.best_metric=nll_oracle", "log.best_mode=min"]
ORACLE20_GLR2_BEST = [*ORACLE20_GLR2, *BEST_NLL_ORACLE]


def oracle_wide(width: int) -> list[str]:
    """The oracle generator's LSTM `width` wide (32 in the configs, either length); its embeddings stay 32."""
    return [f"generator.hidden_dim={width}"]


def oracle_glr2_wide(width: int, run: str) -> list[str]:
    """The 20x recipe (best state kept) for a `width`-wide LSTM, from the finished run `run`."""
    return [*oracle_wide(width), *warm_from(run), "adversarial.g_lr=0.002", *BEST_NLL_ORACLE]


def wide_generator(width: int, io_dropout: float, tied: bool = False, layers: int = 1) -> list[str]:
    """A `width`-wide LSTM with io_dropout; `tied`: embeddings as wide, tied to the output layer;
    `layers` > 1: stacked, with io_dropout between the layers too (Zaremba et al.'s medium LSTM).
    The MLE runs and the GAN phases that start from them must name the same shapes."""
    tie = [f"generator.emb_dim={width}", "generator.tie_embeddings=true"] if tied else []
    stack = [f"generator.num_layers={layers}", f"generator.dropout={io_dropout}"] if layers > 1 else []
    return [f"generator.hidden_dim={width}", *tie, f"generator.io_dropout={io_dropout}", *stack]


def coco_mle_wide(width: int, io_dropout: float, tied: bool = False, layers: int = 1) -> tuple[str, list[str], int]:
    """coco_rsgan's MLE phase alone with `wide_generator`, patience 3 and the rate halved on each
    plateau."""
    return ("configs/coco_rsgan.yaml", [*COCO_MLE_EARLY, *wide_generator(width, io_dropout, tied, layers),
                                        "mle.patience=3", "mle.plateau_lr_factor=0.5"], 10000)


def coco_h256_tied_mix3(start: str) -> list[str]:
    """The mix3 GAN phase of the 256-wide tied generator, from the finished MLE run `start`."""
    return [*wide_generator(256, 0.5, tied=True), "mle.epochs=0", f"generator.init_from={{runs}}/{start}", *MIX3]


# the mix3 GAN phase from coco_mle_h256_tied's restored best epoch, and the same with the
# generator's weights averaged over ~50 steps
COCO_H256_TIED_MIX3 = coco_h256_tied_mix3("coco_mle_h256_tied")
COCO_H256_TIED_MIX3_EMA98 = [*COCO_H256_TIED_MIX3, "adversarial.g_ema=0.98"]
# a tenth of the training captions held out as a validation split (data.valid_seed 0, the same
# for every seed): training-time evaluations, mle.patience and best.pt see only it, never the test set
COCO_VALID = ["data.valid_frac=0.1"]
# the g_ema GAN phase from coco_mle_h256_tied_valid, evaluated every 25 steps on the validation
# split; best.pt keeps the highest validation BLEU-3 (the order furthest below RelGAN), so the
# state scored on the test set is chosen without it. No NLL_gen ceiling: the validation split
# shares images with the training captions (its NLL_gen is ~0.9 lower than the test set's), so
# the test-set bound 5.00 has no validation equivalent; the test NLL_gen of the chosen state is
# checked against it afterwards. 350 steps: past both earlier seeds' peaks (200-225, 250-325)
COCO_H256_TIED_MIX3_EMA98_VALID = [*coco_h256_tied_mix3("coco_mle_h256_tied_valid"), "adversarial.g_ema=0.98",
                                   *COCO_VALID, "adversarial.steps=350", "eval.every=25",
                                   "log.best_metric=bleu3_exact"]
# its training seeds: the seed spread of test BLEU-3 (up to 0.028 over the first three) is larger
# than the gap to RelGAN, so the mean is taken over six
COCO_VALID_SEEDS = (0, 1, 2, 3, 4, 5)


EXPERIMENTS = {  # name -> (config, extra overrides ({runs}: the runs folder), samples scored at the end)
    "oracle20_mle": ("configs/oracle20_mle.yaml", [], 10000),
    "oracle20_rsgan": ("configs/oracle20_rsgan.yaml", [], 10000),
    # the GAN phase only, from the finished oracle20_mle run (its wall time is that run's)
    "oracle20_rsgan_warm": ("configs/oracle20_rsgan.yaml", ORACLE20_WARM, 10000),
    # the same with bfloat16 products (run.matmul_precision=medium): does the opt-in change quality?
    "oracle20_rsgan_warm_bf16": ("configs/oracle20_rsgan.yaml",
                                 [*ORACLE20_WARM, "run.matmul_precision=medium"], 10000),
    # beta_max = 1 (tau stays 1): the setting RelGAN's author gives for its length-20 figure
    # (github.com/weilinie/RelGAN/issues/22), not its code's default of 100
    "oracle20_rsgan_warm_beta1": ("configs/oracle20_rsgan.yaml", [*ORACLE20_WARM, "gumbel.tau_end=1.0"], 10000),
    # the COCO mix recipe on the oracle, where quality (NLL_oracle) and diversity (NLL_gen) are both
    # exact: the real batch's NLL added to every G update (adversarial.mle_weight)
    "oracle20_rsgan_warm_mix": ("configs/oracle20_rsgan.yaml", [*ORACLE20_WARM, "adversarial.mle_weight=1.0"], 10000),
    # the generator's adversarial learning rate 10x RelGAN's 1e-4: at 1e-4 NLL_oracle fell only
    # 8.97 -> 8.69 in 1,228 steps; does a faster G reach RelGAN's 6.68, and at what NLL_gen?
    "oracle20_rsgan_warm_glr": ("configs/oracle20_rsgan.yaml", [*ORACLE20_WARM, "adversarial.g_lr=0.001"], 10000),
    # the same with straight-through Gumbel: the discriminator sees exact one-hots of the fakes, so
    # it cannot win on their softness alone (it won from step 190 with d_loss ~0.002 and NLL_oracle stalled)
    "oracle20_rsgan_warm_glr_st": ("configs/oracle20_rsgan.yaml",
                                   [*ORACLE20_WARM, "adversarial.g_lr=0.001", "gumbel.mode=straight_through"], 10000),
    # coco_rsgan_glr_mix's recipe on the oracle: the 10x G learning rate plus the real batch's NLL in
    # every G update. On COCO it held NLL_gen near 5.5 where the plain 10x run collapsed; here both
    # quality (NLL_oracle) and diversity (NLL_gen) are exact
    "oracle20_rsgan_warm_glr_mix": ("configs/oracle20_rsgan.yaml",
                                    [*ORACLE20_WARM, *GLR_MIX], 10000),
    # the generator's learning rate 30x: at 10x NLL_oracle stalled at ~7.6 from step 300 once the
    # discriminator won; RelGAN's 6.68 comes with a rising NLL_gen (less coverage). Does a faster
    # generator reach it at temperature 1, and at what NLL_gen?
    "oracle20_rsgan_warm_glr3": ("configs/oracle20_rsgan.yaml", ORACLE20_GLR3, 10000),
    # the same with one discriminator update per G step instead of five: in both fast runs the
    # discriminator won from step ~150 (d_loss ~0.001) and NLL_oracle rose after its 7.08 dip; a
    # slower discriminator keeps its gradient informative, and a step costs ~1/3 (the
    # discriminator is ~80 % of a step's work)
    "oracle20_rsgan_warm_glr3_d1": ("configs/oracle20_rsgan.yaml", [*ORACLE20_GLR3, "adversarial.d_steps=1"], 10000),
    # glr3 with tau annealed to 0.01 over 500 steps, not 5,000: the fast runs stop after a few
    # hundred steps with tau still ~0.8 (beta ~1.3), while RelGAN's ablation credits its 6.68 to a
    # large beta_max; here beta reaches 10 by step 250
    "oracle20_rsgan_warm_glr3_anneal500": ("configs/oracle20_rsgan.yaml",
                                           [*ORACLE20_GLR3, "gumbel.anneal_steps=500"], 10000),
    # the generator's rate 20x, between the 10x run (still falling at 7.57 after 400 steps) and the
    # 30x one (7.08 at step 150, then collapse): a lower dip that holds longer?
    "oracle20_rsgan_warm_glr2": ("configs/oracle20_rsgan.yaml", ORACLE20_GLR2, 10000),
    # the same run again with a longer limit (the 1,900 s one was still falling 0.05 per 50 steps):
    # where does the dip bottom, and does it collapse as the 30x one did?
    "oracle20_rsgan_warm_glr2_long": ("configs/oracle20_rsgan.yaml", ORACLE20_GLR2, 10000),
    # that run evaluated every 5 steps, keeping the state of lowest NLL_oracle as best.pt: its dip
    # (6.89 at step 200 on 2,000 samples, 0.3-0.4 higher 50 steps either side) is narrow
    "oracle20_rsgan_warm_glr2_best": ("configs/oracle20_rsgan.yaml", ORACLE20_GLR2_BEST, 10000),
    # the same recipe under other training seeds (initialisation of the discriminator, data order,
    # latent and Gumbel noise) over the same corpus (data.seed=0, the MLE run's): how much of the
    # step-205 dip (6.871 at T = 1) is this seed's luck?
    **{f"oracle20_rsgan_warm_glr2_best_s{s}": ("configs/oracle20_rsgan.yaml",
                                               [*ORACLE20_GLR2_BEST, f"run.seed={s}", "data.seed=0"], 10000)
       for s in (1, 2)},
    # that recipe with the discriminator's rate halved: in it the discriminator won from step
    # ~150 (d_loss ~0.001) and NLL_oracle rose after its step-205 dip; a slower discriminator keeps
    # its gradient informative for longer: a deeper dip, or a later one?
    "oracle20_rsgan_warm_glr2_dlr05": ("configs/oracle20_rsgan.yaml",
                                       [*ORACLE20_GLR2_BEST, "adversarial.d_lr=0.00005"], 10000),
    # the LSTM 2x and 4x as wide (hidden 64, 128; RelGAN's generator is 512 wide): the 20x recipe's
    # dip comes as the generator concentrates its mass; does more capacity let it concentrate on
    # the oracle's modes rather than on its own? Their MLE phases as oracle20_mle's: all 150 epochs
    **{f"oracle20_mle_h{w}": ("configs/oracle20_mle.yaml", oracle_wide(w), 10000) for w in (64, 128)},
    **{f"oracle20_rsgan_warm_h{w}_glr2_best": ("configs/oracle20_rsgan.yaml",
                                               oracle_glr2_wide(w, f"oracle20_mle_h{w}"), 10000) for w in (64, 128)},
    # the 64-wide recipe (6.738 at T = 1, seed 0) under training seeds 1 to 4, as at 32 wide:
    # seeds 1 and 2 gave 6.640 and 6.731, so three seeds could not tell the mean from 6.680
    **{f"oracle20_rsgan_warm_h64_glr2_best_s{s}": ("configs/oracle20_rsgan.yaml", [
        *oracle_glr2_wide(64, "oracle20_mle_h64"), f"run.seed={s}", "data.seed=0"], 10000) for s in (1, 2, 3, 4)},
    # seeds 1 and 3 again with the generator's weights averaged (decay 0.95, ~20 steps): the raw
    # trajectory is those runs' own, bit for bit (the average never feeds back), so the two best
    # states compare the averaged iterate with the raw one on the same path: is the dip deeper or
    # steadier once the step-to-step noise is averaged out?
    **{f"oracle20_rsgan_warm_h64_glr2_ema95_s{s}": ("configs/oracle20_rsgan.yaml", [
        *oracle_glr2_wide(64, "oracle20_mle_h64"), "adversarial.g_ema=0.95", f"run.seed={s}", "data.seed=0"],
        10000) for s in (1, 3)},
    # the 64-wide MLE phase stopped early on held-out NLL_gen, halving the rate on each plateau:
    # the two criteria part early (held-out NLL_gen lowest at epoch 3 while NLL_oracle still falls)
    "oracle20_mle_h64_early": ("configs/oracle20_mle.yaml", [*oracle_wide(64), "mle.patience=3",
                                                          "mle.plateau_lr_factor=0.5"], 10000),
    # the 20x recipe from that early-stopped model (held-out NLL_gen 7.59, 2.6 nats below the
    # 150-epoch one): does a GAN phase that starts from a model that generalises reach as low an
    # NLL_oracle, and where does its NLL_gen end up?
    "oracle20_rsgan_warm_h64_early_glr2_best": ("configs/oracle20_rsgan.yaml",
                                                oracle_glr2_wide(64, "oracle20_mle_h64_early"), 10000),
    "oracle40_mle": ("configs/oracle40_mle.yaml", [], 10000),
    # length 40 under the length-20 recipe that came nearest RelGAN (64 wide, 20x, best state kept):
    # does the dip below the MLE start carry over to sequences twice as long?
    "oracle40_mle_h64": ("configs/oracle40_mle.yaml", oracle_wide(64), 10000),
    "oracle40_rsgan_warm_h64_glr2_best": ("configs/oracle40_rsgan.yaml",
                                          oracle_glr2_wide(64, "oracle40_mle_h64"), 10000),
    # its dip (6.221 at T = 1, seed 0) under other training seeds: at length 20 runs of one recipe
    # part by up to a nat at the dip, so one run says little
    **{f"oracle40_rsgan_warm_h64_glr2_best_s{s}": ("configs/oracle40_rsgan.yaml", [
        *oracle_glr2_wide(64, "oracle40_mle_h64"), f"run.seed={s}", "data.seed=0"], 10000) for s in (1, 2)},
    "oracle40_rsgan": ("configs/oracle40_rsgan.yaml", [], 10000),
    "coco_mle": ("configs/coco_mle.yaml", [], 10000),
    "coco_rsgan": ("configs/coco_rsgan.yaml", [], 10000),
    # the generator's adversarial learning rate 10x, as oracle20_rsgan_warm_glr (which it moved 0.84-1.11
    # nats below the MLE curve on the oracle): does BLEU rise on COCO without held-out NLL_gen rising?
    "coco_rsgan_glr": ("configs/coco_rsgan.yaml", ["adversarial.g_lr=0.001"], 10000),
    # coco_rsgan's 30 MLE epochs alone, kept as a run folder: the start of the GAN variants below
    # (coco_rsgan_glr3 first ran from coco_rsgan_glr's step-4680 checkpoint, the same 30 epochs,
    # since deleted by log.keep_last)
    "coco_rsgan_mle30": ("configs/coco_rsgan.yaml", ["adversarial.steps=0"], 10000),
    # its GAN phase with the generator's learning rate 30x: does the gain over the MLE curve at
    # equal held-out NLL_gen (+0.05 BLEU-2 at 10x) grow with it?
    "coco_rsgan_glr3": ("configs/coco_rsgan.yaml", [*COCO_RSGAN_WARM, "adversarial.g_lr=0.003"], 10000),
    # the 10x run again from that MLE start with the real batch's NLL in every G update: the 10x
    # run peaked near 200 steps and collapsed by 400; does the NLL term hold it, and NLL_gen near 5?
    "coco_rsgan_glr_mix": ("configs/coco_rsgan.yaml", [*COCO_RSGAN_WARM, *GLR_MIX], 10000),
    # the same with a spectrally normalised discriminator: coco_rsgan_glr_mix held BLEU-2 0.81 and
    # NLL_gen 5.5 to step 400, then its discriminator's real-fake logit gap ran from ~9 to ~17, the
    # adversarial loss outweighed the NLL term, and by step 500 samples were 5 tokens long
    "coco_rsgan_glr_mix_sn": ("configs/coco_rsgan.yaml",
                              [*COCO_RSGAN_WARM, *GLR_MIX, "discriminator.spectral_norm=true"], 10000),
    # the same with one discriminator update per step instead of five: a slower discriminator, to
    # keep its logit gap near where coco_rsgan_glr_mix peaked (step 200) rather than running away
    "coco_rsgan_glr_mix_d1": ("configs/coco_rsgan.yaml",
                              [*COCO_RSGAN_WARM, *GLR_MIX, "adversarial.d_steps=1"], 10000),
    # coco_rsgan's MLE phase with a 4x wider LSTM (hidden 128): does capacity, early-stopped, move
    # the MLE curve the GANs are measured on? Its record scores the last epoch trained; the epoch
    # with the best held-out NLL_gen is kept as checkpoints/best.pt, where the GAN below starts
    "coco_mle_h128": ("configs/coco_rsgan.yaml",
                      ["generator.hidden_dim=128", "adversarial.steps=0", "mle.epochs=20",
                       "log.best_metric=nll_gen_mc8_tok", "log.best_mode=min"], 10000),
    # the same with dropout on the LSTM's inputs and outputs, early-stopped on held-out NLL_gen
    # (mle.patience): the record scores the restored best epoch. Does regularising the wide
    # model lower the held-out optimum, and with it the whole MLE curve the GANs are measured on?
    "coco_mle_h128_drop": ("configs/coco_rsgan.yaml", [*COCO_MLE_EARLY, "generator.hidden_dim=128",
                                                       "generator.io_dropout=0.3"], 10000),
    # the same halving the MLE learning rate at each evaluation without a new best (it flattened at
    # 4.20-4.23 from epoch 4 at lr 0.01, rather than rising as without dropout), patience 3
    "coco_mle_h128_drop_plateau": coco_mle_wide(128, 0.3),
    # twice as wide, with more dropout
    "coco_mle_h256_drop_plateau": coco_mle_wide(256, 0.5),
    # coco_mle_h128_drop_plateau with 128-wide embeddings tied to the output layer (the 32-wide
    # embeddings under a 128-wide LSTM may be a bottleneck; tying regularises the wider matrix)
    "coco_mle_h128_tied": coco_mle_wide(128, 0.3, tied=True),
    # the same twice as wide, with more dropout
    "coco_mle_h256_tied": coco_mle_wide(256, 0.5, tied=True),
    # and twice again (held-out NLL_gen 4.135 at 128, 4.093 at 256)
    "coco_mle_h512_tied": coco_mle_wide(512, 0.5, tied=True),
    # 256 wide in two layers: depth where width stopped helping (512 ended no lower than 256)
    "coco_mle_h256_tied_2l": coco_mle_wide(256, 0.5, tied=True, layers=2),
    # the GAN phase from coco_mle_h128_drop_plateau's restored best epoch (held-out NLL_gen 4.20)
    # with 3x RelGAN's generator rate, not 10x: from coco_mle_h128 the 10x run only lost diversity
    # (Self-BLEU-4 0.69 -> 0.84 in 50 steps) without gaining BLEU at equal NLL_gen
    "coco_rsgan_h128_drop_mix3": ("configs/coco_rsgan.yaml",
                                  [*wide_generator(128, 0.3), "mle.epochs=0",
                                   "generator.init_from={runs}/coco_mle_h128_drop_plateau", *MIX3], 10000),
    # the same recipe from coco_mle_h256_tied's restored best epoch (held-out NLL_gen 4.093), whose
    # temperature curve is above coco_mle_h128's on BLEU-3..5: does the GAN phase carry that along?
    "coco_rsgan_h256_tied_mix3": ("configs/coco_rsgan.yaml", COCO_H256_TIED_MIX3, 10000),
    # the same with the generator's weights averaged (adversarial.g_ema, ~50-step window): on the
    # oracle the average moved the dip toward lower NLL_gen, the side COCO's target is on; its raw
    # weights are the same run's plain recipe (`textgan eval --weights trained`), so both are scored
    "coco_rsgan_h256_tied_mix3_ema98": ("configs/coco_rsgan.yaml", COCO_H256_TIED_MIX3_EMA98, 10000),
    # the same under another training seed (latent, Gumbel noise, batches): its BLEU jumped ~0.025
    # between steps 200 and 250 to 0.035 above the MLE curve, then fell after 350; does that recur?
    "coco_rsgan_h256_tied_mix3_ema98_s1": ("configs/coco_rsgan.yaml",
                                           [*COCO_H256_TIED_MIX3_EMA98, "run.seed=1", "data.seed=0"], 10000),
    # the MLE baseline (`configs/coco_mle.yaml`, whose held-out NLL_gen 5.00 is the target's bound)
    # without the validation tenth: its validation NLL_gen is that bound on the validation split
    "coco_mle_valid": ("configs/coco_mle.yaml", COCO_VALID, 10000),
    # coco_mle_h256_tied trained without the validation tenth, and the GAN phase above from it,
    # over six training seeds (COCO_VALID_SEEDS): a recipe whose stopping point is chosen without
    # the test set
    "coco_mle_h256_tied_valid": ("configs/coco_rsgan.yaml", [*coco_mle_wide(256, 0.5, tied=True)[1], *COCO_VALID], 10000),
    **{f"coco_rsgan_h256_tied_mix3_ema98_valid_s{s}": (
        "configs/coco_rsgan.yaml", [*COCO_H256_TIED_MIX3_EMA98_VALID, f"run.seed={s}", "data.seed=0"], 10000)
       for s in COCO_VALID_SEEDS},
    # coco_rsgan_glr_mix's GAN phase from that wider MLE model's best checkpoint
    "coco_rsgan_h128_glr_mix": ("configs/coco_rsgan.yaml",
                                ["generator.hidden_dim=128", "generator.init_from={runs}/coco_mle_h128/checkpoints/best.pt",
                                 "mle.epochs=0", *GLR_MIX], 10000),
    "coco_mle_large": ("configs/coco_mle_large.yaml", [], 10000),
    # RelGAN as published: relational memory generator, 150 MLE epochs, then 2,000 RSGAN steps
    "coco_relgan": ("configs/coco_relgan.yaml", [], 10000),
    "oracle20_relgan": ("configs/oracle20_relgan.yaml", [], 10000),
    # the same without a latent, as RelGAN has none: is the prior what makes its GAN phase drift?
    "oracle20_relgan_noprior": ("configs/oracle20_relgan.yaml", ["generator.prior=none"], 10000),
    # RelGAN as its author says the length-20 figure was made: no latent, beta_max = 1
    "oracle20_relgan_beta1": ("configs/oracle20_relgan.yaml", ["generator.prior=none", "gumbel.tau_end=1.0"], 10000),
    # coco_relgan's recipe stopped at 30 MLE epochs (held-out NLL_gen 6.15 there, 9.37 after 150:
    # the longer pretraining overfits), kept as the start of the GAN variants below
    "coco_relgan_mle30": ("configs/coco_relgan.yaml", ["mle.epochs=30", "adversarial.steps=0"], 10000),
    # coco_relgan's GAN phase from coco_relgan_mle30 with the real batch's NLL added to every G
    # update (adversarial.mle_weight), without and with a spectrally normalised discriminator
    "coco_relgan_mix": ("configs/coco_relgan.yaml", COCO_MIX, 10000),
    "coco_relgan_mix_sn": ("configs/coco_relgan.yaml", [*COCO_MIX, "discriminator.spectral_norm=true"], 10000),
    # coco_relgan_mix's NLL term for its first 608 steps only, then the adversarial loss alone (run
    # 2026-12-02 as a resume of coco_relgan_mix's step-608 checkpoint with adversarial.mle_weight=0)
    "coco_relgan_mix_gan608": ("configs/coco_relgan.yaml", [*COCO_MIX, "adversarial.mle_weight_steps=608"], 10000),
    # the GAN phase only, from the finished coco_mle_large run (its wall time is that run's)
    "coco_rsgan_large": ("configs/coco_rsgan_large.yaml",
                         ["generator.init_from={runs}/coco_mle_large", "mle.epochs=0"], 10000),
}

# experiment -> the run its overrides start from (its generator.init_from={runs}/RUN), which runs first
WARM_PREFIX = "generator.init_from={runs}/"
AFTER = {name: item[len(WARM_PREFIX):].split("/")[0] for name, (_, extra, _) in EXPERIMENTS.items()
         for item in extra if item.startswith(WARM_PREFIX)}

SMOKE = ["mle.epochs=1", "adversarial.steps=2", "adversarial.d_steps=1", "eval.num_samples=20",
         "eval.every=0", "eval.latent_draws=1", "data.num_train=128", "data.num_test=32",
         "data.train=tiny/train.txt", "data.test=tiny/test.txt", "generator.hidden_dim=16",
         "discriminator.num_filters=[8, 8, 8, 8]"]


def _cli(*args: str, log: Path, limit: float | None = None) -> tuple[float, str | None]:
    """Run `python -m textgan ARGS`, appending its output to `log`; returns (wall seconds, why it
    stopped early: "time_limit", "sigterm" or None).

    Past `limit` seconds the run gets SIGTERM, which makes `textgan train` checkpoint and exit 143:
    the benchmark then scores that checkpoint and says how far training got. A SIGTERM sent to
    the `textgan train` process from outside ends it the same way."""
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(REPO), os.environ.get("PYTHONPATH", "")])}
    t0 = time.perf_counter()
    with open(log, "a", encoding="utf-8") as fh:
        fh.write("$ textgan " + " ".join(args) + "\n")
        fh.flush()
        proc = subprocess.Popen([sys.executable, "-m", "textgan", *args], cwd=REPO, env=env,
                                stdout=fh, stderr=subprocess.STDOUT)
        try:
            code, stopped = proc.wait(timeout=limit), None
        except subprocess.TimeoutExpired:
            proc.send_signal(signal.SIGTERM)
            code, stopped = proc.wait(timeout=120), "time_limit"
    # Exit 143: SIGTERM from the limit above or from outside (to end a long run early); either
    # way the run checkpointed and is scored as it stands.
    stopped = stopped or ("sigterm" if code == 128 + signal.SIGTERM else None)
    if code != 0 and not stopped:
        raise RuntimeError(f"textgan {args[0]} failed (exit {code}); see {log}")
    return time.perf_counter() - t0, stopped


def overrides_for(name: str, args: argparse.Namespace) -> list[str]:
    """The experiment's config overrides. The run folder is named after the experiment, not
    the config file, since several experiments share a config."""
    extra = EXPERIMENTS[name][1]
    return [f"data.root={args.data_root}", f"log.dir={args.runs}", f"log.name={name}", "log.progress=false",
            f"run.device={args.device}", *(SMOKE if args.smoke else []),
            *(e.format(runs=args.runs) for e in extra), *args.set]  # the experiment's own beat smoke's


def run_experiment(name: str, args: argparse.Namespace) -> dict:
    config, _, num = EXPERIMENTS[name]
    overrides = overrides_for(name, args)
    run_dir = Path(args.runs) / name
    log = Path(args.runs) / f"{name}.log"
    log.parent.mkdir(parents=True, exist_ok=True)
    if args.score_only:  # re-score the run already there; its training figures are kept by the caller
        train_s, stopped = None, None
    elif args.resume:  # train the run already there further; the caller adds this segment's time
        train_s, stopped = _cli("train", "--resume", str(run_dir), *args.set, log=log, limit=args.train_limit)
    else:
        log.write_text("")
        train_s, stopped = _cli("train", config, *overrides, "--force", log=log, limit=args.train_limit)
    progress = checkpoint.read_progress(checkpoint.load(checkpoint.newest(run_dir / "checkpoints")))
    num = 50 if args.smoke else num
    eval_dir = run_dir / "eval_final"
    eval_s, _ = _cli("eval", str(run_dir), "--num", str(num), "--protocol", "both", "--out", str(eval_dir),
                  "--device", args.device, log=log)
    metrics = json.loads((eval_dir / "metrics.json").read_text())["metrics"]
    sweep = {**_sweep(name, run_dir, args, log), "adversarial_steps_done": progress["step"]} if args.sweep else None
    trained = {} if train_s is None else {"train_wall_s": round(train_s, 1),
                                          "stopped_by_time_limit": stopped == "time_limit",
                                          "stopped_by_sigterm": stopped == "sigterm"}
    if not (args.score_only or args.resume):
        trained.update(config=config, overrides=overrides)
    return {**trained, "mle_epochs_done": progress["epoch"],
            "adversarial_steps_done": progress["step"],
            "eval_wall_s": round(eval_s, 1), "samples_scored": num, "metrics": metrics,
            **({"sweep": sweep} if sweep else {}),
            "command": " ".join(["python", "benchmarks/quality.py", *sys.argv[1:]])}


def _sweep(name: str, run_dir: Path, args: argparse.Namespace, log: Path) -> dict:
    """`textgan eval --sweep-temperature`: the run's quality-diversity curve (Caccia et al. 2020),
    its rows for the record and its plot copied next to the results."""
    out_dir = run_dir / "eval_sweep"
    num = 50 if args.smoke else args.sweep_num
    _cli("eval", str(run_dir), "--sweep-temperature", args.sweep, "--num", str(num), "--out", str(out_dir),
         "--device", args.device, log=log)
    with open(out_dir / "sweep.csv", encoding="utf-8") as fh:
        rows = [{k: float(v) for k, v in row.items()} for row in csv.DictReader(fh)]
    plot = args.results_dir / f"sweep_{name}.png"
    plot.parent.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(out_dir / "sweep.png", plot)
    return {"temperatures": args.sweep, "samples": num, "rows": rows, "plot": plot.name}


def _scores(record: dict) -> dict:
    """What a record scored and how far its run had trained then: a resumed segment keeps the
    scores it replaces, so the record holds the whole trajectory (e.g. the end of MLE, then the GAN)."""
    keys = ("mle_epochs_done", "adversarial_steps_done", "samples_scored", "metrics")
    kept = {k: record[k] for k in keys if k in record}
    if "sweep" in record:  # its rows; the plot file is the newest sweep's now
        kept["sweep"] = {k: v for k, v in record["sweep"].items() if k != "plot"}
    return kept


def _recorded(out: Path) -> dict:
    """The experiments already recorded in `out` (none if it does not exist yet)."""
    return json.loads(out.read_text()).get("experiments", {}) if out.is_file() else {}


def machine(device: str) -> dict:
    import torch

    info = {**hostinfo.describe(), "torch": torch.__version__, "device": device}
    if device.startswith("cuda") and torch.cuda.is_available():
        info["gpu"] = torch.cuda.get_device_name(0)
    return info


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--data-root", default=str(REPO.parent / "shared" / "data"))
    ap.add_argument("--only", default=",".join(EXPERIMENTS), help="comma-separated experiment names")
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--jobs", type=int, default=1, help="experiments run at once")
    ap.add_argument("--set", nargs="*", default=[], metavar="KEY=VALUE", help="overrides for every run")
    ap.add_argument("--train-limit", type=float, default=None,
                    help="seconds of training before SIGTERM (checkpoint, then scored as it stands)")
    ap.add_argument("--smoke", action="store_true", help="seconds-long version for CI")
    ap.add_argument("--score-only", action="store_true",
                    help="score the runs already in --runs again (new metrics); keep their training record")
    ap.add_argument("--resume", action="store_true",
                    help="train the runs already in --runs further (up to --train-limit more seconds, "
                         "or to the end of their schedule), then score them; their records add up")
    ap.add_argument("--sweep", metavar="A:B:K", default=None,
                    help="also sweep the sampling temperature over K values from A to B on each run "
                         "(quality against diversity); rows go into the record, the plot next to it")
    ap.add_argument("--sweep-num", type=int, default=2000, help="samples per temperature of --sweep")
    ap.add_argument("--runs", default=str(REPO / "benchmarks" / "runs"))
    ap.add_argument("--out", default=None)
    args = ap.parse_args()
    if args.score_only and args.resume:
        sys.exit("give --score-only or --resume, not both (--resume scores the run too)")
    if args.sweep:  # a bad spec fails now, not after hours of training
        from textgan.errors import UserError
        from textgan.sweep import parse_spec
        try:
            parse_spec(args.sweep)
        except UserError as err:
            sys.exit(str(err).replace("--sweep-temperature", "--sweep"))
    names = [n for n in args.only.split(",") if n]
    unknown = sorted(set(names) - set(EXPERIMENTS))
    if unknown:
        sys.exit(f"unknown experiment(s) {unknown}; choose from {', '.join(EXPERIMENTS)}")
    out = Path(args.out or REPO / "benchmarks" / "results" / ("quality_smoke.json" if args.smoke else "quality.json"))
    args.results_dir = out.parent
    kept = args.score_only or args.resume  # the runs were trained before: their records stay
    untrained = [n for n in names if "train_wall_s" not in _recorded(out).get(n, {})] if kept else []
    if untrained:
        sys.exit(f"{'--score-only' if args.score_only else '--resume'}: {out} has no training record of "
                 f"{', '.join(untrained)}; train it first (run without that flag)")
    lock = threading.Lock()

    def run_and_record(name: str) -> None:
        """Each experiment's result is merged into `out` as soon as it ends, so a long series
        interrupted part-way keeps what it finished."""
        res = run_experiment(name, args)
        with lock:
            recorded = _recorded(out)
            before = recorded.get(name, {}) if kept else {}
            record = {**before, **res, "machine": before.get("machine", machine(args.device)),
                      "date": before.get("date", time.strftime("%Y-%m-%d"))}
            if kept:
                record["command"] = before.get("command")
            if args.score_only:
                record["rescored"] = {"date": time.strftime("%Y-%m-%d"), "machine": machine(args.device),
                                      "command": res["command"]}
            if args.resume:  # one entry per further training segment; the wall times add up
                record["train_wall_s"] = round(before["train_wall_s"] + res["train_wall_s"], 1)
                record["resumed"] = before.get("resumed", []) + [{
                    "date": time.strftime("%Y-%m-%d"), "machine": machine(args.device), "command": res["command"],
                    "train_wall_s": res["train_wall_s"], "adversarial_steps_done": res["adversarial_steps_done"],
                    "mle_epochs_done": res["mle_epochs_done"], "scored_before": _scores(before)}]
            merged = {**recorded, name: record}
            out.parent.mkdir(parents=True, exist_ok=True)
            out.write_text(json.dumps({"published": PUBLISHED, "experiments": merged}, indent=2) + "\n")
            shown = {k: round(v, 4) for k, v in res["metrics"].items() if isinstance(v, (int, float))}
            print(f"{name}: train {record['train_wall_s']} s, eval {res['eval_wall_s']} s, {shown}", flush=True)

    # experiments that start from another one's run go in a second wave, after it has finished
    later = [n for n in names if AFTER.get(n) in names]
    with ThreadPoolExecutor(max_workers=max(args.jobs, 1)) as pool:
        for wave in ([n for n in names if n not in later], later):
            list(pool.map(run_and_record, wave))

if __name__ == "__main__":
    main()
