"""Quality benchmark (make bench-quality): train the recipes BENCHMARKS.md reports (synthetic oracle,
image COCO) from their files in configs/ with the real CLI, score them with `textgan eval`, and
write benchmarks/results/quality.json next to the published numbers.

Each experiment is `textgan train configs/NAME.yaml` (a training seed as run.seed, a warm start
pointed at the runs folder), then `textgan eval` of its newest checkpoint or its best.pt at the
experiment's temperature, `--num 10000 --protocol both`, in subprocesses, so what is measured is
what a user runs. A GAN phase whose config names another experiment's run in generator.init_from
runs after it. `--smoke` runs a seconds-long version (CI) and writes quality_smoke.json instead.
Experiments can run in parallel (`--jobs`).
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
from dataclasses import dataclass
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from textgan import checkpoint, hostinfo  # noqa: E402
from textgan.config import Config, load  # noqa: E402

# Published figures (RelGAN paper, Nie et al. 2019, Tables 1 and 2), for comparison only.
PUBLISHED = {
    "oracle20": {"MLE": {"nll_oracle": 9.038}, "SeqGAN": {"nll_oracle": 8.736},
                 "LeakGAN": {"nll_oracle": 7.038}, "RelGAN(100)": {"nll_oracle": 6.680}},
    "coco": {"MLE": {"bleu2": 0.731, "bleu3": 0.497, "bleu4": 0.305, "bleu5": 0.189, "nll_gen": 0.718},
             "RelGAN(100)": {"bleu2": 0.849, "bleu3": 0.687, "bleu4": 0.502, "bleu5": 0.331,
                             "nll_gen": 0.756}},
}
NUM_SAMPLES = 10000  # samples scored at the end of each experiment (50 with --smoke)


@dataclass(frozen=True)
class Experiment:
    """One row of BENCHMARKS.md: how it is trained and which state of the run is scored."""
    config: str  # a file in configs/, run as is
    seed: int | None = None  # run.seed (the training seed); None: the config's
    best: bool = False  # score checkpoints/best.pt (log.best_metric's choice), not the newest checkpoint
    temperature: float = 1.0  # the sampling temperature it is scored at
    eval_seed: int | None = None  # `textgan eval --seed`; None: run.seed


def _seeds(name: str, seeds: range, **kw) -> dict[str, Experiment]:
    """The recipe configs/NAME.yaml under each training seed, as NAME_sS."""
    return {f"{name}_s{s}": Experiment(f"configs/{name}.yaml", seed=s, **kw) for s in seeds}


EXPERIMENTS = {
    "coco_mle": Experiment("configs/coco_mle.yaml"),  # the MLE baseline; its held-out NLL_gen is the bound
    "coco_mle_valid": Experiment("configs/coco_mle_valid.yaml"),  # the same bound on the validation split
    "coco_mle_h256": Experiment("configs/coco_mle_h256.yaml"),  # the COCO recipe's MLE start
    # the COCO recipe: best.pt by validation BLEU-3, at the temperature the validation rule chose
    **_seeds("coco_rsgan_h256", range(6), best=True, temperature=0.95),
    "oracle20_mle": Experiment("configs/oracle20_mle.yaml"),  # the MLE baseline
    "oracle20_mle_h64": Experiment("configs/oracle20_mle_h64.yaml"),  # the oracle recipe's MLE start
    **_seeds("oracle20_rsgan_h64", range(5), best=True, eval_seed=7),  # best.pt by NLL_oracle
    "oracle40_mle_h64": Experiment("configs/oracle40_mle_h64.yaml"),
    **_seeds("oracle40_rsgan_h64", range(3), best=True, eval_seed=7),
}


def config_of(name: str) -> Config:
    """The experiment's config file as a user runs it (no overrides)."""
    return load(REPO / EXPERIMENTS[name].config)


def after() -> dict[str, str]:
    """Experiment -> the experiment whose run its generator.init_from names (it runs first)."""
    starts = {name: config_of(name).generator.init_from for name in EXPERIMENTS}
    return {name: Path(start).name for name, start in starts.items() if start}


def smoke_overrides(cfg: Config) -> list[str]:
    """A seconds-long version of `cfg` on tiny data: each phase shortened, none added."""
    return [f"mle.epochs={min(cfg.mle.epochs, 1)}", f"adversarial.steps={min(cfg.adversarial.steps, 2)}",
            "adversarial.d_steps=1", "eval.num_samples=20", f"eval.every={1 if cfg.log.best_metric else 0}",
            "eval.latent_draws=1", "data.num_train=128", "data.num_test=32", "data.train=tiny/train.txt",
            "data.test=tiny/test.txt", "generator.hidden_dim=16", "generator.emb_dim=16",
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
    """What quality.py adds to the experiment's config: where the data and the runs are, the run
    folder named after the experiment (several share a config), its training seed, and its warm
    start pointed at the runs folder (the config names runs/NAME, the folder its MLE config writes)."""
    exp, cfg = EXPERIMENTS[name], config_of(name)
    start = cfg.generator.init_from
    return [f"data.root={args.data_root}", f"log.dir={args.runs}", f"log.name={name}", "log.progress=false",
            f"run.device={args.device}", *(smoke_overrides(cfg) if args.smoke else []),
            *([f"generator.init_from={Path(args.runs) / Path(start).name}"] if start else []),
            *([f"run.seed={exp.seed}"] if exp.seed is not None else []), *args.set]


def scored_state(name: str, run_dir: Path) -> tuple[Path, list[str]]:
    """The checkpoint (or run folder: its newest) `textgan eval` scores, and how it samples."""
    exp = EXPERIMENTS[name]
    path = run_dir / "checkpoints" / "best.pt" if exp.best else run_dir
    how = ["--temperature", str(exp.temperature)] if exp.temperature != 1.0 else []
    return path, [*how, *(["--seed", str(exp.eval_seed)] if exp.eval_seed is not None else [])]


def run_experiment(name: str, args: argparse.Namespace) -> dict:
    config = EXPERIMENTS[name].config
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
    num = 50 if args.smoke else NUM_SAMPLES
    state, sampling = scored_state(name, run_dir)
    eval_dir = run_dir / "eval_final"
    eval_s, _ = _cli("eval", str(state), *sampling, "--num", str(num), "--protocol", "both", "--out", str(eval_dir),
                     "--device", args.device, log=log)
    metrics = json.loads((eval_dir / "metrics.json").read_text())["metrics"]
    sweep = {**_sweep(name, state, args, log), "adversarial_steps_done": progress["step"]} if args.sweep else None
    trained = {} if train_s is None else {"train_wall_s": round(train_s, 1),
                                          "stopped_by_time_limit": stopped == "time_limit",
                                          "stopped_by_sigterm": stopped == "sigterm"}
    if not (args.score_only or args.resume):
        trained.update(config=config, overrides=overrides)
    return {**trained, "mle_epochs_done": progress["epoch"],
            "adversarial_steps_done": progress["step"], "scored": " ".join([str(state.relative_to(run_dir)), *sampling]),
            "eval_wall_s": round(eval_s, 1), "samples_scored": num, "metrics": metrics,
            **({"sweep": sweep} if sweep else {}),
            "command": " ".join(["python", "benchmarks/quality.py", *sys.argv[1:]])}


def _sweep(name: str, state: Path, args: argparse.Namespace, log: Path) -> dict:
    """`textgan eval --sweep-temperature` of the scored state: the run's quality-diversity curve
    (Caccia et al. 2020), its rows for the record and its plot copied next to the results."""
    out_dir = Path(args.runs) / name / "eval_sweep"
    num = 50 if args.smoke else args.sweep_num
    _cli("eval", str(state), "--sweep-temperature", args.sweep, "--num", str(num), "--out", str(out_dir),
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
    starts = after()
    later = [n for n in names if starts.get(n) in names]
    with ThreadPoolExecutor(max_workers=max(args.jobs, 1)) as pool:
        for wave in ([n for n in names if n not in later], later):
            list(pool.map(run_and_record, wave))

if __name__ == "__main__":
    main()
