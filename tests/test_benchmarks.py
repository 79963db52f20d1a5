"""The benchmark scripts in their smoke modes (what CI runs of them): they run end to end and write
results with the keys BENCHMARKS.md and the issues ask for. No speed or quality is asserted here."""
from __future__ import annotations

import json
import os
import re
import shutil
import signal
import subprocess
import sys
import time
from dataclasses import replace
from pathlib import Path

import pytest
import torch

from conftest import REPO
from textgan import hostinfo
from textgan.algorithms import ALGORITHMS


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


@pytest.mark.slow
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
    # every algorithm has its iteration's row (gumbel's is adv_iter_s); SeqGAN, ScratchGAN and LeakGAN at their recipes' shapes
    assert set(result["adv_iter_config"]) == set(ALGORITHMS) - {"gumbel"}
    assert all(result[f"adv_iter_s_{name}"] > 0 for name in result["adv_iter_config"])
    recipes = {name: f"configs/oracle20_{name}.yaml" for name in ("seqgan", "scratchgan", "leakgan")}
    assert result["adv_iter_config"] == {name: recipes.get(name, "configs/bench_relgan_coco.yaml")
                                         for name in result["adv_iter_config"]}
    assert "textgan_mmd iteration median" in printed
    assert result["accel"].startswith("accel: auto (run.accel=auto):") and "run.accel=off: adversarial" in printed
    assert result["machine"] == hostinfo.describe()  # the CPU model and its SIMD, not just "x86_64"
    assert set(result["kernels"]) == {"mle_cross_entropy", "mle_lstm", "mle_loss", "discriminator_conv_max",
                                      "discriminator_highway"}
    native = result["kernels"]["mle_cross_entropy"] == result["kernels"]["mle_lstm"] == "native"
    assert result["kernels"]["mle_loss"] == ("fused" if native else "layered")
    # FLOPs are counted on the torch paths, whose LSTM FlopCounterMode sees (not the C recurrence's)
    assert any("rnn" in op for op in result["mle_gflop_by_op"]), result["mle_gflop_by_op"]


@pytest.mark.slow
def test_mle_bound_writes_rates_of_the_three_matmuls_and_the_kernel(tmp_path):
    from textgan.accel import linear_ce as linear_ce_native
    out = tmp_path / "bound.json"
    _bench("mle_bound.py", "--rounds", "1", "--out", str(out))
    result = json.loads(out.read_text())
    native = {"native_ce_batch"} if linear_ce_native.kernels() is not None else set()
    assert set(result["gflops_best"]) == {"logits_h_Wt", "grad_h_P_W", "grad_W_Pt_hs", "peak_2048"} | native
    assert all(v > 0 for v in result["gflops_best"].values()) and result["skinny_frac_peak"] > 0
    assert (result["native_ce_frac_peak"] > 0) if native else result["native_ce_frac_peak"] is None


@pytest.mark.slow
def test_side_by_side_names_a_missing_incumbent_in_one_line(tmp_path):
    """benchmarks/side_by_side.py times TextGAN-PyTorch from a checkout outside the repository;
    without one it says so in one line, before loading anything, and writes nothing."""
    out = tmp_path / "sbs.json"
    res = subprocess.run([sys.executable, str(REPO / "benchmarks" / "side_by_side.py"), "--incumbent",
                          str(tmp_path), "--out", str(out)], cwd=REPO, capture_output=True, text=True, timeout=120)
    assert res.returncode == 1 and not out.exists()
    assert res.stderr.strip().splitlines() == [f"--incumbent: {tmp_path} holds no models/RelGAN_G.py; point it at a "
                                               "checkout of TextGAN-PyTorch"]


def test_bleu_speed_smoke(tmp_path, data_root):
    out = tmp_path / "bleu.json"
    _bench("bleu_speed.py", "--smoke", "--data-root", str(data_root), "--out", str(out))
    result = json.loads(out.read_text())
    assert result["parity_max_abs_diff"] <= 1e-9
    assert result["machine"] == hostinfo.describe()


@pytest.mark.slow
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


def _quality():
    """benchmarks/quality.py as a module (it is a script, not a package module)."""
    import importlib.util

    spec = importlib.util.spec_from_file_location("quality", REPO / "benchmarks" / "quality.py")
    quality = sys.modules["quality"] = importlib.util.module_from_spec(spec)  # its dataclass needs the entry
    spec.loader.exec_module(quality)
    return quality


@pytest.fixture(scope="module")
def warm_runs(tmp_path_factory, data_root):
    """The COCO recipe's smoke pair: coco_mle_h256, then coco_rsgan_h256_s0 from its run (second
    wave even with --jobs 2). Tests that need a finished MLE start copy runs/coco_mle_h256."""
    tmp = tmp_path_factory.mktemp("warm")
    out, runs = tmp / "quality.json", tmp / "runs"
    _bench("quality.py", "--smoke", "--data-root", str(data_root), "--only", "coco_mle_h256,coco_rsgan_h256_s0",
           "--runs", str(runs), "--out", str(out), "--jobs", "2")
    return out, runs


def _with_mle_start(warm_runs, tmp_path) -> Path:
    runs = tmp_path / "runs"
    shutil.copytree(warm_runs[1] / "coco_mle_h256", runs / "coco_mle_h256")
    return runs


@pytest.mark.slow
def test_quality_smoke(tmp_path, data_root):
    out = tmp_path / "quality.json"
    _bench("quality.py", "--smoke", "--data-root", str(data_root), "--only", "oracle20_mle,coco_mle",
           "--runs", str(tmp_path / "runs"), "--out", str(out), "--jobs", "2")
    result = json.loads(out.read_text())
    coco = result["experiments"]["coco_mle"]["metrics"]
    assert {"bleu2_exact", "bleu2_texygen", "self_bleu2_loo", "self_bleu2_texygen"} <= set(coco)
    assert "nll_oracle" in result["experiments"]["oracle20_mle"]["metrics"]
    assert result["published"]["coco"]["RelGAN(100)"]["bleu2"] == 0.849
    assert {"nll_gen_pos", "nll_gen_pos_train"} <= set(coco)
    assert result["experiments"]["coco_mle"]["machine"] == {**hostinfo.describe(), "torch": torch.__version__,
                                                            "device": "cpu"}
    assert result["experiments"]["coco_mle"]["config"] == "configs/coco_mle.yaml"
    # --score-only scores the same run again and keeps its training record; --sweep adds its
    # quality-diversity curve (rows in the record, the plot beside the results)
    _bench("quality.py", "--smoke", "--score-only", "--data-root", str(data_root), "--only", "coco_mle",
           "--runs", str(tmp_path / "runs"), "--out", str(out), "--sweep", "0.8:1.2:2")
    again = json.loads(out.read_text())["experiments"]["coco_mle"]
    assert [row["temperature"] for row in again["sweep"]["rows"]] == [0.8, 1.2]
    assert {"bleu3", "self_bleu3", "nll_gen_tok", "entropy_tok"} <= set(again["sweep"]["rows"][0])
    assert (tmp_path / again["sweep"]["plot"]).stat().st_size > 0
    before = result["experiments"]["coco_mle"]
    assert again["train_wall_s"] == before["train_wall_s"] and again["command"] == before["command"]
    assert "--score-only" in again["rescored"]["command"]
    assert again["metrics"]["bleu2_exact"] == before["metrics"]["bleu2_exact"]  # same checkpoint, same seed


@pytest.mark.slow
def test_quality_smoke_resume_trains_further_and_adds_up(tmp_path, data_root, warm_runs):
    """--resume continues a run cut off by --train-limit (here: given more steps) and adds the
    segment to the record; without a record it refuses before training anything."""
    out, runs = tmp_path / "quality.json", _with_mle_start(warm_runs, tmp_path)
    common = ("--smoke", "--data-root", str(data_root), "--only", "coco_rsgan_h256_s0", "--runs", str(runs),
              "--out", str(out))
    refused = subprocess.run([sys.executable, str(REPO / "benchmarks" / "quality.py"), *common, "--resume"],
                             capture_output=True, text=True, timeout=300)
    assert refused.returncode != 0 and "no training record of coco_rsgan_h256_s0" in refused.stderr
    assert not (runs / "coco_rsgan_h256_s0").exists()
    _bench("quality.py", *common, "--sweep", "0.8:1.2:2")
    first = json.loads(out.read_text())["experiments"]["coco_rsgan_h256_s0"]
    assert first["adversarial_steps_done"] == first["sweep"]["adversarial_steps_done"] == 2
    scored = runs / "coco_rsgan_h256_s0" / "eval_final" / "metrics.json"
    first_scoring = scored.stat().st_mtime_ns
    _bench("quality.py", *common, "--resume", "--set", "adversarial.steps=4", "--sweep", "0.9:1.1:2")
    again = json.loads(out.read_text())["experiments"]["coco_rsgan_h256_s0"]
    assert again["adversarial_steps_done"] == 4 and again["command"] == first["command"]
    (segment,) = again["resumed"]
    assert segment["adversarial_steps_done"] == 4 and "--resume" in segment["command"]
    # the scores the segment replaced are kept with it
    assert segment["scored_before"]["adversarial_steps_done"] == 2
    assert segment["scored_before"]["metrics"] == first["metrics"]
    # scored again after the segment (best.pt may still be an early state, so the scores may repeat)
    assert scored.stat().st_mtime_ns > first_scoring
    assert json.loads(scored.read_text())["metrics"] == again["metrics"]
    # and so is the sweep's data; its plot file now shows the newer sweep
    assert segment["scored_before"]["sweep"]["rows"] == first["sweep"]["rows"]
    assert "plot" not in segment["scored_before"]["sweep"] and again["sweep"]["adversarial_steps_done"] == 4
    assert [row["temperature"] for row in again["sweep"]["rows"]] == [0.9, 1.1]
    assert again["train_wall_s"] == round(first["train_wall_s"] + segment["train_wall_s"], 1)
    assert again["config"] == first["config"] == "configs/coco_rsgan_h256.yaml"
    log = (runs / "coco_rsgan_h256_s0.log").read_text()
    assert "--resume" in log and log.count("$ textgan train") == 2  # the first segment's log is kept


@pytest.mark.slow
def test_quality_smoke_gan_from_pretrained_run(warm_runs):
    """coco_rsgan_h256_s0 starts from the coco_mle_h256 run (its config's generator.init_from,
    pointed at the runs folder), skipping MLE, waits for it even when experiments run in
    parallel, and is scored on its best.pt at the recipe's temperature."""
    out, runs = warm_runs
    gan = json.loads(out.read_text())["experiments"]["coco_rsgan_h256_s0"]
    assert gan["mle_epochs_done"] == 0 and gan["adversarial_steps_done"] == 2
    assert f"generator.init_from={runs}/coco_mle_h256" in gan["overrides"] and "run.seed=0" in gan["overrides"]
    assert gan["scored"] == "checkpoints/best.pt --temperature 0.95"
    assert "generator initialised from" in (runs / "coco_rsgan_h256_s0.log").read_text()
    assert json.loads((runs / "coco_rsgan_h256_s0" / "eval_final" / "metrics.json").read_text())["metrics"] == gan["metrics"]


def test_every_quality_experiment_is_a_config_run_as_is(tmp_path):
    """Each experiment is a file in configs/ (a typo would only show hours into a long run); what
    quality.py adds is bookkeeping (data, run folder, seed, where the warm start's run lies), and a
    GAN phase's init_from names the run folder its MLE config writes, with the same shapes."""
    from textgan.config import load

    quality = _quality()
    args = quality.argparse.Namespace(data_root="data", runs=str(tmp_path), device="cpu", smoke=False, set=[])
    starts = quality.after()
    for name, exp in quality.EXPERIMENTS.items():
        path = REPO / exp.config
        assert path.parent == REPO / "configs" and path.is_file(), name
        cfg, as_run = load(path), load(path, quality.overrides_for(name, args))
        assert as_run.log.dir == str(tmp_path) and as_run.log.name == name  # the folder quality.py scores
        assert as_run.run.seed == (cfg.run.seed if exp.seed is None else exp.seed)
        assert replace(as_run, log=cfg.log, data=replace(as_run.data, root=cfg.data.root), run=cfg.run,
                       generator=replace(as_run.generator, init_from=cfg.generator.init_from)) == cfg
        assert not exp.best or cfg.log.best_metric, name  # best.pt is written only with a best_metric
        if not cfg.generator.init_from:
            assert name not in starts
            continue
        mle_name = starts[name]
        mle = quality.config_of(mle_name)
        assert Path(cfg.generator.init_from) == Path(mle.log.dir) / (mle.log.name or Path(quality.EXPERIMENTS[mle_name].config).stem)
        assert as_run.generator.init_from == f"{tmp_path}/{mle_name}" and cfg.mle.epochs == 0 < mle.mle.epochs
        # the same network; the GAN phase may add a latent (its z projection starts at zero)
        assert replace(cfg.generator, init_from="", prior=mle.generator.prior,
                       latent_dim=mle.generator.latent_dim) == mle.generator, name
        assert replace(cfg.data, seed=mle.data.seed) == mle.data and cfg.data.seed == mle.run.seed, name
    assert set(starts.values()) == {"coco_mle_h256", "oracle20_mle_h64", "oracle40_mle_h64"}


def test_the_recipes_as_benchmarks_md_reports_them():
    quality = _quality()
    exps, cfg = quality.EXPERIMENTS, quality.config_of
    coco = [n for n in exps if n.startswith("coco_rsgan_h256_s")]
    assert sorted(exps[n].seed for n in coco) == list(range(6))  # the six-seed mean
    assert all(exps[n].best and exps[n].temperature == 0.95 for n in coco)
    gan, start = cfg("coco_rsgan_h256_s0"), cfg("coco_mle_h256")
    assert gan.data.valid_frac == start.data.valid_frac == 0.1  # chosen without the test set
    assert (gan.log.best_metric, gan.eval.every, gan.adversarial.steps) == ("bleu3_exact", 25, 350)
    assert (gan.adversarial.g_ema, gan.adversarial.mle_weight, gan.adversarial.g_lr) == (0.98, 1.0, 0.0003)
    base, base_valid = cfg("coco_mle"), cfg("coco_mle_valid")  # the NLL_gen bound, on the test and validation sets
    assert replace(base_valid, data=replace(base_valid.data, valid_frac=0.0)) == base and base_valid.data.valid_frac == 0.1
    for length, seeds in ((20, range(5)), (40, range(3))):
        names = [n for n in exps if n.startswith(f"oracle{length}_rsgan_h64_s")]
        assert sorted(exps[n].seed for n in names) == list(seeds)
        assert all(exps[n].best and exps[n].eval_seed == 7 for n in names)
        oracle = cfg(names[0])
        assert (oracle.data.oracle_seq_len, oracle.generator.hidden_dim, oracle.adversarial.g_lr) == (length, 64, 0.002)
        assert (oracle.log.best_metric, oracle.log.best_mode, oracle.eval.every) == ("nll_oracle", "min", 5)


# config in configs/ -> (record file, experiment as recorded): the runs BENCHMARKS.md reports
RECORDED = {
    "coco_mle.yaml": ("quality_cpu.json", "coco_mle"),
    "coco_mle_valid.yaml": ("quality_cpu_xeon.json", "coco_mle_valid"),
    "coco_rsgan_h256.yaml": ("quality_cpu_xeon.json", "coco_rsgan_h256_tied_mix3_ema98_valid_s0"),
    "oracle20_mle.yaml": ("quality_cpu.json", "oracle20_mle"),
    "oracle20_mle_h64.yaml": ("quality_cpu.json", "oracle20_mle_h64"),
    "oracle20_rsgan_h64.yaml": ("quality_cpu_xeon.json", "oracle20_rsgan_warm_h64_glr2_best_s1"),
    "oracle40_mle_h64.yaml": ("quality_cpu_xeon.json", "oracle40_mle_h64"),
    "oracle40_rsgan_h64.yaml": ("quality_cpu_xeon.json", "oracle40_rsgan_warm_h64_glr2_best_s1"),
}


def test_reported_configs_reproduce_the_recorded_runs():
    """Each reported config, run as is, resolves to the config its recorded run was trained with
    (a config file plus overrides, as quality.py ran it then), apart from where the data, the runs
    and the warm start's folder were, the training seed and the checkpoint cadence."""
    from textgan.config import load, to_dict

    def comparable(cfg) -> dict:
        d = to_dict(cfg)
        for section, key in (("data", "root"), ("run", "device"), ("run", "seed"), ("generator", "init_from"),
                             ("log", "dir"), ("log", "name"), ("log", "progress"), ("log", "checkpoint_every"),
                             ("log", "keep_last")):
            d[section].pop(key)
        return d

    for config, (results, name) in RECORDED.items():
        record = json.loads((REPO / "benchmarks" / "results" / results).read_text())["experiments"][name]
        recorded = load(REPO / record["config"], record["overrides"])
        assert comparable(load(REPO / "configs" / config)) == comparable(recorded), config
        assert bool(recorded.generator.init_from) == bool(load(REPO / "configs" / config).generator.init_from)


def test_benchmarks_md_cites_what_is_kept_and_nothing_missing():
    """BENCHMARKS.md names only configs and result files that exist, and benchmarks/results/
    holds nothing it does not cite as benchmarks/results/NAME (NAME may hold {a,b} groups)."""
    text = (REPO / "BENCHMARKS.md").read_text(encoding="utf-8")
    for config in set(re.findall(r"configs/[\w.]+\.yaml", text)):
        assert (REPO / config).is_file(), config
    cited = set()
    for name in re.findall(r"benchmarks/results/([\w.{},-]+\.(?:json|csv|png))", text):
        for expanded in _braces(name):
            cited.add(expanded)
    kept = {p.name for p in (REPO / "benchmarks" / "results").iterdir()}
    assert cited - kept == set()
    assert kept - cited == set()


def _braces(name: str) -> list[str]:
    """`a_{x,y}_b` -> [a_x_b, a_y_b] (one level, any number of groups)."""
    m = re.search(r"\{([^{}]*)\}", name)
    if not m:
        return [name]
    return [e for part in m.group(1).split(",") for e in _braces(name[:m.start()] + part + name[m.end():])]


def test_plots_script_draws_every_plot_from_the_kept_results(tmp_path):
    _bench("plots.py", "--out-dir", str(tmp_path))
    drawn = sorted(p.name for p in tmp_path.glob("*.png"))
    assert drawn and all((tmp_path / p).stat().st_size > 10_000 for p in drawn)
    assert drawn == sorted(p.name for p in (REPO / "benchmarks" / "results").glob("*.png"))


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


@pytest.mark.slow
def test_quality_run_ended_from_outside_is_scored_as_it_stands(tmp_path, data_root, warm_runs):
    """SIGTERM to the `textgan train` of a long benchmark run (to free the machine early) makes it
    checkpoint; quality.py then scores that checkpoint and records how far it got."""
    out, runs = tmp_path / "quality.json", _with_mle_start(warm_runs, tmp_path)
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    proc = subprocess.Popen([sys.executable, str(REPO / "benchmarks" / "quality.py"), "--smoke", "--data-root",
                             str(data_root), "--only", "coco_rsgan_h256_s0", "--runs", str(runs), "--out",
                             str(out), "--set", "adversarial.steps=100000", "log.checkpoint_every=1", "log.keep_last=2"],
                            cwd=REPO, env=env, stdout=(tmp_path / "out.txt").open("w"), stderr=subprocess.STDOUT)
    deadline = time.monotonic() + 300
    while len(list((runs / "coco_rsgan_h256_s0" / "checkpoints").glob("step_*.pt"))) < 2:  # past MLE, handler set
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
    record = json.loads(out.read_text())["experiments"]["coco_rsgan_h256_s0"]
    assert record["stopped_by_sigterm"] is True and record["stopped_by_time_limit"] is False
    assert 1 <= record["adversarial_steps_done"] < 100000
    assert "bleu2_exact" in record["metrics"]


@pytest.mark.slow
def test_eval_metrics_speed_smoke(tmp_path, data_root):
    """Every opt-in metric of `textgan eval` timed on 200 samples (FED where textgan[embed] is installed,
    MAUVE where textgan[mauve] is)."""
    out = tmp_path / "speed.json"
    _bench("eval_metrics_speed.py", "--smoke", "--data-root", str(data_root), "--out", str(out))
    result = json.loads(out.read_text())
    assert result["exposure_bias"]["num"] == 200 and result["exposure_bias"]["positions"] == 20
    assert result["lm"]["num"] == 100 and result["lm"]["real_lm_train_seconds"] > 0  # the tiny test set
    text = result["exposure_bias_text"]  # the stand-in LM trained in a temporary cache, judging itself
    assert text["num"] == 100 and text["reference_lm_train_seconds"] > 0 and text["kl_against_itself"] == 0
    assert result["lm"]["lm_real_reference"] > 0 and len(result["load_average_before"]) == 3
    assert "skipped" in result["fed"] or result["fed"]["fed_num"] == 200
    assert "skipped" in result["mauve"] or result["mauve"]["mauve_num"] == 200


def test_sampling_speed_smoke(tmp_path, data_root):
    """Sampling timed beside its bandwidth bound and the incumbent-shaped sampler, in one run."""
    out = tmp_path / "sampling.json"
    printed = _bench("sampling_speed.py", "--smoke", "--data-root", str(data_root), "--out", str(out))
    result = json.loads(out.read_text())
    assert "incumbent-shaped" in printed and "bound" in printed
    for key in ("sample_sents_per_s", "sample_sents_per_s_accel_off", "incumbent_shaped_sents_per_s",
                "copy_bandwidth_gb_s", "sample_bound_sents_per_s"):
        assert result[key] > 0, key
    b, v, h = result["sample_batch"], result["sample_vocab"], result["sample_hidden"]
    assert result["sample_step_bytes"] == 8 * b * v + 4 * v * (h + 1)  # logits written and read, W and b read
    assert result["sample_vs_incumbent"] == pytest.approx(result["sample_sents_per_s"]
                                                          / result["incumbent_shaped_sents_per_s"])
    assert result["sample_frac_bound"] == pytest.approx(result["sample_sents_per_s"] / result["sample_bound_sents_per_s"])
