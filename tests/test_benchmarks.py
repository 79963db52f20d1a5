"""The benchmark scripts in their smoke modes (what CI runs of them): they run end to end and write
results with the keys BENCHMARKS.md and the issues ask for. No speed or quality is asserted here."""
from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from dataclasses import replace

import torch

from conftest import REPO
from textgan import hostinfo


def _bench(script: str, *args: str, timeout: float = 600) -> str:
    """One thread: smoke runs measure nothing, and two busy multi-threaded processes on two cores
    make OpenMP's spinning threads wait on each other (seconds per tiny step)."""
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    res = subprocess.run([sys.executable, str(REPO / "benchmarks" / script), *args], cwd=REPO, env=env,
                         capture_output=True, text=True, timeout=timeout)
    assert res.returncode == 0, res.stdout[-2000:] + res.stderr[-2000:]
    return res.stdout


def test_host_description_names_the_cpu_model_and_its_simd():
    info = hostinfo.describe()
    model = hostinfo.cpuinfo_field("model name")
    assert info["processor"] == (model or info["processor"]) and info["processor"]
    flags = (hostinfo.cpuinfo_field("flags", "Features") or "").split()
    assert info["simd"] == [f for f in hostinfo.SIMD if f in flags]
    assert info["cpus"] == os.cpu_count() >= 1


def test_speed_smoke(tmp_path, data_root):
    out = tmp_path / "speed.json"
    printed = _bench("speed.py", "--smoke", "--data-root", str(data_root), "--out", str(out))
    result = json.loads(out.read_text())
    # each measurement is printed as it is made, so a run killed part-way still shows them
    assert printed.count("matmul peak") == 3 and "adversarial iteration: median" in printed
    for key in ("matmul_peak_gflops", "adv_iter_s", "adv_gflop", "adv_frac_peak", "mle_epoch_s",
                "mle_frac_peak", "sample_sents_per_s", "machine", "torch", "threads"):
        assert key in result
    assert result["smoke"] is True and result["adv_gflop"] > 0 and result["adv_iter_s"] > 0
    # the incumbent's highway (one product) timed, and RelGAN's TensorFlow one (two) beside it
    assert result["discriminator_highway"] == "shared" and "gated highway: median" in printed
    assert result["adv_iter_s_gated_highway"] > 0 and result["adv_gflop_gated_highway"] > result["adv_gflop"]
    assert result["matmul_precision"] == "highest"  # the targets are judged on float32 products
    assert result["adv_iter_s_accel_off"] > 0 and result["mle_epoch_s_accel_off"] > 0  # plain torch beside accel
    assert result["accel"].startswith("accel: auto (run.accel=auto):") and "run.accel=off: adversarial" in printed
    assert result["machine"] == hostinfo.describe()  # the CPU model and its SIMD, not just "x86_64"
    assert set(result["kernels"]) == {"mle_cross_entropy", "mle_lstm", "mle_loss", "discriminator_conv_max",
                                      "discriminator_highway"}
    native = result["kernels"]["mle_cross_entropy"] == result["kernels"]["mle_lstm"] == "native"
    assert result["kernels"]["mle_loss"] == ("fused" if native else "layered")
    # FLOPs are counted on the torch paths, whose LSTM FlopCounterMode sees (not the C recurrence's)
    assert any("rnn" in op for op in result["mle_gflop_by_op"]), result["mle_gflop_by_op"]


def test_mle_bound_writes_rates_of_the_three_matmuls_and_the_kernel(tmp_path):
    from textgan.accel import linear_ce as linear_ce_native
    out = tmp_path / "bound.json"
    _bench("mle_bound.py", "--rounds", "1", "--out", str(out))
    result = json.loads(out.read_text())
    native = {"native_ce_batch"} if linear_ce_native.kernels() is not None else set()
    assert set(result["gflops_best"]) == {"logits_h_Wt", "grad_h_P_W", "grad_W_Pt_hs", "peak_2048"} | native
    assert all(v > 0 for v in result["gflops_best"].values()) and result["skinny_frac_peak"] > 0
    assert (result["native_ce_frac_peak"] > 0) if native else result["native_ce_frac_peak"] is None


def test_bleu_speed_smoke(tmp_path, data_root):
    out = tmp_path / "bleu.json"
    _bench("bleu_speed.py", "--smoke", "--data-root", str(data_root), "--out", str(out))
    result = json.loads(out.read_text())
    assert result["parity_max_abs_diff"] <= 1e-9
    assert result["machine"] == hostinfo.describe()


def test_coco_reference_smoke(tmp_path, data_root):
    """The reference rows on the tiny corpus, with a sample file: the seen-only training rows hold
    no token the test file lacks, and the sample file gets its copy fraction."""
    samples = tmp_path / "s.txt"
    test_line = (data_root / "tiny/test.txt").read_text().splitlines()[0]
    samples.write_text((data_root / "tiny/train.txt").read_text().splitlines()[0] + f"\n{test_line}\nqxzzy .\n")
    out = tmp_path / "ref.json"
    _bench("coco_reference.py", "--smoke", "--data-root", str(data_root), "--samples", f"mine={samples}",
           "--out", str(out))
    result = json.loads(out.read_text())
    rows = result["rows"]
    assert rows["train_seen_only"]["ref_unseen_frac"] == 0 < rows["train"]["ref_unseen_frac"]
    assert rows["train_seen_only"]["sentences"] < rows["train"]["sentences"] == 500
    assert rows["mine"]["sentences"] == 3 and rows["mine"]["train_copy_frac"] == 1 / 3
    assert 1 / 3 <= rows["mine"]["ref_unseen_frac"] <= 2 / 3  # the made-up word is in no test line; the test line's words all are
    assert {"bleu5_exact", "self_bleu5_loo", "bleu5_texygen"} <= set(rows["train"])
    split = rows["train"]["split"]  # the seen part of the training file is the seen-only row
    assert split["seen"]["sentences"] + split["unseen"]["sentences"] == 500
    assert split["seen"]["bleu3_exact"] == rows["train_seen_only"]["bleu3_exact"]
    assert result["train_tokens_never_in_test"]["types"] > 0 and result["machine"] == hostinfo.describe()
    overlap = result["validation_split"]  # a tenth of the training file against the rest, and the test file
    assert overlap["held_out"]["sentences"] == 50 and overlap["remainder_sentences"] == 450
    assert overlap["test"]["sentences"] == 100 and 0 < overlap["test"]["bleu2_exact"] < 1


def test_quality_smoke(tmp_path, data_root):
    out = tmp_path / "quality.json"
    _bench("quality.py", "--smoke", "--data-root", str(data_root), "--only", "oracle20_rsgan,coco_rsgan",
           "--runs", str(tmp_path / "runs"), "--out", str(out), "--jobs", "2")
    result = json.loads(out.read_text())
    coco = result["experiments"]["coco_rsgan"]["metrics"]
    assert {"bleu2_exact", "bleu2_texygen", "self_bleu2_loo", "self_bleu2_texygen"} <= set(coco)
    assert "nll_oracle" in result["experiments"]["oracle20_rsgan"]["metrics"]
    assert result["published"]["coco"]["RelGAN(100)"]["bleu2"] == 0.849
    assert {"nll_gen_pos", "nll_gen_pos_train"} <= set(coco)
    assert result["experiments"]["coco_rsgan"]["machine"] == {**hostinfo.describe(), "torch": torch.__version__,
                                                              "device": "cpu"}
    # --score-only scores the same run again and keeps its training record; --sweep adds its
    # quality-diversity curve (rows in the record, the plot beside the results)
    _bench("quality.py", "--smoke", "--score-only", "--data-root", str(data_root), "--only", "coco_rsgan",
           "--runs", str(tmp_path / "runs"), "--out", str(out), "--sweep", "0.8:1.2:2")
    again = json.loads(out.read_text())["experiments"]["coco_rsgan"]
    assert [row["temperature"] for row in again["sweep"]["rows"]] == [0.8, 1.2]
    assert {"bleu3", "self_bleu3", "nll_gen_tok", "entropy_tok"} <= set(again["sweep"]["rows"][0])
    assert (tmp_path / again["sweep"]["plot"]).stat().st_size > 0
    before = result["experiments"]["coco_rsgan"]
    assert again["train_wall_s"] == before["train_wall_s"] and again["command"] == before["command"]
    assert "--score-only" in again["rescored"]["command"]
    assert again["metrics"]["bleu2_exact"] == before["metrics"]["bleu2_exact"]  # same checkpoint, same seed


def test_quality_smoke_resume_trains_further_and_adds_up(tmp_path, data_root):
    """--resume continues a run cut off by --train-limit (here: given more steps) and adds the
    segment to the record; without a record it refuses before training anything."""
    out, runs = tmp_path / "quality.json", tmp_path / "runs"
    common = ("--smoke", "--data-root", str(data_root), "--only", "coco_rsgan", "--runs", str(runs), "--out", str(out))
    refused = subprocess.run([sys.executable, str(REPO / "benchmarks" / "quality.py"), *common, "--resume"],
                             capture_output=True, text=True, timeout=300)
    assert refused.returncode != 0 and "no training record of coco_rsgan" in refused.stderr
    assert not runs.exists()
    _bench("quality.py", *common, "--sweep", "0.8:1.2:2")
    first = json.loads(out.read_text())["experiments"]["coco_rsgan"]
    assert first["adversarial_steps_done"] == first["sweep"]["adversarial_steps_done"] == 2
    _bench("quality.py", *common, "--resume", "--set", "adversarial.steps=4", "--sweep", "0.9:1.1:2")
    again = json.loads(out.read_text())["experiments"]["coco_rsgan"]
    assert again["adversarial_steps_done"] == 4 and again["command"] == first["command"]
    (segment,) = again["resumed"]
    assert segment["adversarial_steps_done"] == 4 and "--resume" in segment["command"]
    # the scores the segment replaced are kept with it
    assert segment["scored_before"]["adversarial_steps_done"] == 2
    assert segment["scored_before"]["metrics"] == first["metrics"] != again["metrics"]
    # and so is the sweep's data; its plot file now shows the newer sweep
    assert segment["scored_before"]["sweep"]["rows"] == first["sweep"]["rows"]
    assert "plot" not in segment["scored_before"]["sweep"] and again["sweep"]["adversarial_steps_done"] == 4
    assert [row["temperature"] for row in again["sweep"]["rows"]] == [0.9, 1.1]
    assert again["train_wall_s"] == round(first["train_wall_s"] + segment["train_wall_s"], 1)
    assert again["config"] == first["config"]
    log = (runs / "coco_rsgan.log").read_text()
    assert "--resume" in log and log.count("$ textgan train") == 2  # the first segment's log is kept


def test_quality_smoke_gan_from_pretrained_run(tmp_path, data_root):
    """coco_rsgan_large starts from the coco_mle_large run (generator.init_from), skipping MLE, and
    waits for it even when experiments run in parallel."""
    out = tmp_path / "quality.json"
    _bench("quality.py", "--smoke", "--data-root", str(data_root), "--only", "coco_mle_large,coco_rsgan_large",
           "--runs", str(tmp_path / "runs"), "--out", str(out), "--jobs", "2")  # still one after the other
    gan = json.loads(out.read_text())["experiments"]["coco_rsgan_large"]
    assert gan["mle_epochs_done"] == 0 and gan["adversarial_steps_done"] == 2
    assert f"generator.init_from={tmp_path / 'runs'}/coco_mle_large" in gan["overrides"]
    assert "generator initialised from" in (tmp_path / "runs" / "coco_rsgan_large.log").read_text()


def test_every_quality_experiment_config_loads_with_its_overrides(tmp_path):
    """A typo in an experiment's config path or overrides would only show hours into a long run."""
    import importlib.util

    from textgan.config import load
    from textgan.gumbel import tau_at

    spec = importlib.util.spec_from_file_location("quality", REPO / "benchmarks" / "quality.py")
    quality = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(quality)
    args = quality.argparse.Namespace(data_root="data", runs=str(tmp_path), device="cpu", smoke=False, set=[])
    cfgs = {}  # name -> its loaded config, as quality.py trains it
    for name, (config, extra, num) in quality.EXPERIMENTS.items():
        cfg = cfgs[name] = load(str(REPO / config), quality.overrides_for(name, args))
        assert num > 0 and cfg.data.source in ("files", "oracle"), name
        assert cfg.log.dir == str(tmp_path) and cfg.log.name == name  # the folder quality.py scores
    assert set(quality.AFTER) | set(quality.AFTER.values()) <= set(quality.EXPERIMENTS)
    for name in ("coco_relgan", "oracle20_relgan"):
        assert load(str(REPO / quality.EXPERIMENTS[name][0]), []).generator.core == "relational_memory"
    noprior = cfgs["oracle20_relgan_noprior"]
    assert noprior.generator.prior == "none" and noprior.generator.core == "relational_memory"
    for name in ("oracle20_rsgan_warm_beta1", "oracle20_relgan_beta1"):  # beta_max = 1: tau stays 1
        cfg = cfgs[name]
        assert all(tau_at(step, cfg.gumbel, cfg.adversarial.steps) == 1.0 for step in (0, 1500, 3000)), name
    mle30, mix, mix_sn = (cfgs[name] for name in ("coco_relgan_mle30", "coco_relgan_mix", "coco_relgan_mix_sn"))
    assert (mle30.mle.epochs, mle30.adversarial.steps) == (30, 0)
    assert mix.generator.init_from == f"{tmp_path}/coco_relgan_mle30" and mix.mle.epochs == 0
    assert mix.adversarial.mle_weight == mix_sn.adversarial.mle_weight == 1.0
    assert (mix.discriminator.spectral_norm, mix_sn.discriminator.spectral_norm) == (False, True)
    gan608 = cfgs["coco_relgan_mix_gan608"]
    assert (gan608.adversarial.mle_weight, gan608.adversarial.mle_weight_steps) == (1.0, 608)
    assert gan608.generator.init_from == mix.generator.init_from
    oracle_mix = cfgs["oracle20_rsgan_warm_mix"]
    assert oracle_mix.generator.init_from == f"{tmp_path}/oracle20_mle" and oracle_mix.mle.epochs == 0
    assert oracle_mix.adversarial.mle_weight == 1.0 and oracle_mix.data.source == "oracle"
    glr, glr_st = cfgs["oracle20_rsgan_warm_glr"], cfgs["oracle20_rsgan_warm_glr_st"]
    assert glr.adversarial.g_lr == glr_st.adversarial.g_lr == 0.001  # only the Gumbel mode differs
    assert (glr.gumbel.mode, glr_st.gumbel.mode) == ("soft", "straight_through")
    o_mix = cfgs["oracle20_rsgan_warm_glr_mix"]
    assert o_mix.generator.init_from == glr.generator.init_from and o_mix.mle.epochs == 0
    assert (o_mix.adversarial.g_lr, o_mix.adversarial.mle_weight) == (0.001, 1.0)
    glr3 = cfgs["coco_rsgan_glr3"]
    assert glr3.generator.init_from == f"{tmp_path}/coco_rsgan_mle30"
    assert (glr3.mle.epochs, glr3.adversarial.g_lr, glr3.adversarial.d_lr) == (0, 0.003, 0.0001)
    rsgan_mle30 = cfgs["coco_rsgan_mle30"]
    assert (rsgan_mle30.mle.epochs, rsgan_mle30.adversarial.steps) == (30, 0)
    glr_mix = cfgs["coco_rsgan_glr_mix"]
    assert glr_mix.generator.init_from == glr3.generator.init_from and glr_mix.mle.epochs == 0
    assert (glr_mix.adversarial.g_lr, glr_mix.adversarial.mle_weight) == (0.001, 1.0)
    glr_mix_sn = cfgs["coco_rsgan_glr_mix_sn"]
    assert (glr_mix_sn.discriminator.spectral_norm, glr_mix.discriminator.spectral_norm) == (True, False)
    assert glr_mix_sn.adversarial == glr_mix.adversarial and glr_mix_sn.generator == glr_mix.generator
    best = cfgs["oracle20_rsgan_warm_glr2_best"]  # its seed variants train over the MLE run's corpus
    for name in ("oracle20_rsgan_warm_glr2_best_s1", "oracle20_rsgan_warm_glr2_best_s2"):
        seeded = cfgs[name]
        assert seeded.run.seed != best.run.seed and seeded.data.seed == best.run.seed == 0, name
        assert seeded.adversarial == best.adversarial and seeded.log.best_metric == "nll_oracle", name
    for w in (64, 128):  # the wider generators: an MLE phase each, and the 20x recipe from it
        wide_mle, wide = cfgs[f"oracle20_mle_h{w}"], cfgs[f"oracle20_rsgan_warm_h{w}_glr2_best"]
        assert wide_mle.generator.hidden_dim == wide.generator.hidden_dim == w  # the warm start's shapes
        assert (wide_mle.mle.epochs, wide_mle.mle.patience) == (150, 0)
        assert wide.generator.init_from == f"{tmp_path}/oracle20_mle_h{w}" and wide.mle.epochs == 0
        assert wide.adversarial == best.adversarial and wide.eval == best.eval
        assert (wide.log.best_metric, wide.log.best_mode) == (best.log.best_metric, best.log.best_mode)
        assert quality.AFTER[f"oracle20_rsgan_warm_h{w}_glr2_best"] == f"oracle20_mle_h{w}"
    h64 = cfgs["oracle20_rsgan_warm_h64_glr2_best"]
    for s in (1, 2, 3, 4):  # the 64-wide recipe under other training seeds, over the same corpus
        seeded = cfgs[f"oracle20_rsgan_warm_h64_glr2_best_s{s}"]
        assert (seeded.run.seed, seeded.data.seed, h64.run.seed) == (s, 0, 0)
        assert seeded.generator == h64.generator and seeded.adversarial == h64.adversarial
    for s in (1, 3):  # the same runs with the weight average: only g_ema differs
        averaged, seeded = cfgs[f"oracle20_rsgan_warm_h64_glr2_ema95_s{s}"], cfgs[f"oracle20_rsgan_warm_h64_glr2_best_s{s}"]
        assert averaged.adversarial.g_ema == 0.95 and seeded.adversarial.g_ema == 0
        assert replace(averaged.adversarial, g_ema=0.0) == seeded.adversarial
        assert (averaged.run, averaged.data, averaged.generator, averaged.eval, averaged.log.best_metric) == (
            seeded.run, seeded.data, seeded.generator, seeded.eval, seeded.log.best_metric)
        assert quality.AFTER[f"oracle20_rsgan_warm_h64_glr2_ema95_s{s}"] == "oracle20_mle_h64"
    coco_ema, coco_raw = cfgs["coco_rsgan_h256_tied_mix3_ema98"], cfgs["coco_rsgan_h256_tied_mix3"]
    assert coco_ema.adversarial.g_ema == 0.98 and replace(coco_ema.adversarial, g_ema=0.0) == coco_raw.adversarial
    assert (coco_ema.generator, coco_ema.run, coco_ema.eval) == (coco_raw.generator, coco_raw.run, coco_raw.eval)
    assert quality.AFTER["coco_rsgan_h256_tied_mix3_ema98"] == "coco_mle_h256_tied"
    coco_ema_s1 = cfgs["coco_rsgan_h256_tied_mix3_ema98_s1"]  # another training seed, the same corpus
    assert (coco_ema_s1.run.seed, coco_ema_s1.data.seed, coco_ema.run.seed) == (1, 0, 0)
    assert coco_ema_s1.adversarial == coco_ema.adversarial and coco_ema_s1.generator == coco_ema.generator
    assert quality.AFTER["coco_rsgan_h256_tied_mix3_ema98_s1"] == "coco_mle_h256_tied"
    # the validation-split recipe: the MLE start and every seed's GAN phase hold out the same tenth
    mle_valid = cfgs["coco_mle_h256_tied_valid"]
    assert replace(mle_valid.data, valid_frac=0.0) == cfgs["coco_mle_h256_tied"].data and mle_valid.data.valid_frac == 0.1
    assert (mle_valid.mle, mle_valid.generator) == (cfgs["coco_mle_h256_tied"].mle, cfgs["coco_mle_h256_tied"].generator)
    base_valid = cfgs["coco_mle_valid"]  # the target's MLE bound, measured on the same validation split
    assert base_valid.data == mle_valid.data
    assert (base_valid.generator, base_valid.mle) == (cfgs["coco_mle"].generator, cfgs["coco_mle"].mle)
    assert quality.COCO_VALID_SEEDS == (0, 1, 2, 3, 4, 5)
    for s in quality.COCO_VALID_SEEDS:
        gan = cfgs[f"coco_rsgan_h256_tied_mix3_ema98_valid_s{s}"]
        assert quality.AFTER[f"coco_rsgan_h256_tied_mix3_ema98_valid_s{s}"] == "coco_mle_h256_tied_valid"
        assert replace(gan.data, seed=-1) == mle_valid.data and (gan.run.seed, gan.data.seed) == (s, 0)
        assert gan.adversarial == replace(coco_ema.adversarial, steps=350) and gan.generator.hidden_dim == 256
        assert (gan.log.best_metric, gan.log.best_ceiling_metric) == ("bleu3_exact", "")
        assert gan.eval.every == 25 and gan.eval.latent_draws == 8
    assert cfgs["oracle20_mle_h64_early"].mle.patience == 3
    early = cfgs["oracle20_rsgan_warm_h64_early_glr2_best"]  # the same recipe from the early-stopped model
    assert early.generator.init_from == f"{tmp_path}/oracle20_mle_h64_early" and early.generator.hidden_dim == 64
    assert early.adversarial == h64.adversarial and early.mle.epochs == 0
    assert quality.AFTER["oracle20_rsgan_warm_h64_early_glr2_best"] == "oracle20_mle_h64_early"
    long_mle, long_gan = cfgs["oracle40_mle_h64"], cfgs["oracle40_rsgan_warm_h64_glr2_best"]  # length 40
    assert long_mle.data.oracle_seq_len == long_gan.data.oracle_seq_len == 40
    assert long_mle.generator.hidden_dim == long_gan.generator.hidden_dim == 64 and long_mle.mle.epochs == 150
    assert long_gan.generator.init_from == f"{tmp_path}/oracle40_mle_h64" and long_gan.mle.epochs == 0
    assert long_gan.adversarial == h64.adversarial and long_gan.eval == h64.eval and long_gan.gumbel == h64.gumbel
    assert quality.AFTER["oracle40_rsgan_warm_h64_glr2_best"] == "oracle40_mle_h64"
    for s in (1, 2):  # the length-40 recipe under other training seeds, over the same corpus
        seeded = cfgs[f"oracle40_rsgan_warm_h64_glr2_best_s{s}"]
        assert (seeded.run.seed, seeded.data.seed, long_gan.run.seed) == (s, 0, 0)
        assert seeded.generator == long_gan.generator and seeded.adversarial == long_gan.adversarial
        assert quality.AFTER[f"oracle40_rsgan_warm_h64_glr2_best_s{s}"] == "oracle40_mle_h64"


def _pids_running(*needles: str) -> list[int]:
    """Processes whose command line holds every one of `needles` (Linux /proc)."""
    pids = []
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                cmd = open(f"/proc/{entry}/cmdline", "rb").read().replace(b"\0", b" ").decode()
            except OSError:
                continue
            if all(n in cmd for n in needles):
                pids.append(int(entry))
    return pids


def test_quality_run_ended_from_outside_is_scored_as_it_stands(tmp_path, data_root):
    """SIGTERM to the `textgan train` of a long benchmark run (to free the machine early) makes it
    checkpoint; quality.py then scores that checkpoint and records how far it got."""
    out, runs = tmp_path / "quality.json", tmp_path / "runs"
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    proc = subprocess.Popen([sys.executable, str(REPO / "benchmarks" / "quality.py"), "--smoke", "--data-root",
                             str(data_root), "--only", "coco_rsgan", "--runs", str(runs), "--out", str(out),
                             "--set", "adversarial.steps=100000", "log.checkpoint_every=1", "log.keep_last=2"],
                            cwd=REPO, env=env, stdout=(tmp_path / "out.txt").open("w"), stderr=subprocess.STDOUT)
    deadline = time.monotonic() + 300
    while len(list((runs / "coco_rsgan" / "checkpoints").glob("step_*.pt"))) < 2:  # past MLE, handler set
        assert proc.poll() is None and time.monotonic() < deadline, (tmp_path / "out.txt").read_text()
        time.sleep(0.2)
    (pid,) = _pids_running("textgan", "train", str(runs))
    os.kill(pid, signal.SIGTERM)
    try:
        assert proc.wait(timeout=300) == 0, (tmp_path / "out.txt").read_text()
    finally:  # never leave a run training on after a failure
        for left in _pids_running(str(runs)):
            os.kill(left, signal.SIGKILL)
        proc.kill()
    record = json.loads(out.read_text())["experiments"]["coco_rsgan"]
    assert record["stopped_by_sigterm"] is True and record["stopped_by_time_limit"] is False
    assert 1 <= record["adversarial_steps_done"] < 100000
    assert "bleu2_exact" in record["metrics"]
