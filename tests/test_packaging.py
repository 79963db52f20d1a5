"""A regular (non-editable) install works: the wheel ships the C sources and their headers and the
YAML configs (`textgan configs` lists them and copies one out), and a short training run from it
builds and uses every kernel (run.accel=auto)."""
from __future__ import annotations

import os
import shutil
import subprocess
import sys
import sysconfig
import venv
import zipfile
from pathlib import Path

import pytest

from conftest import FAST, REPO

# copied to build from, so the worktree gets no build/ or egg-info folders
_SKIP = shutil.ignore_patterns(".git", "build", "dist", "*.egg-info", "__pycache__", ".venv", "results", "runs")


def _run(cmd: list[str], **kwargs) -> subprocess.CompletedProcess:
    res = subprocess.run(cmd, capture_output=True, text=True, timeout=600, **kwargs)
    assert res.returncode == 0, f"{' '.join(cmd)}\n{res.stdout[-2000:]}\n{res.stderr[-3000:]}"
    return res


@pytest.mark.slow
def test_wheel_installs_into_a_fresh_venv_and_builds_every_kernel(tmp_path, data_root):
    if shutil.which(os.environ.get("CC") or "cc") is None:
        pytest.skip("no C compiler")
    src = tmp_path / "src"
    shutil.copytree(REPO, src, ignore=_SKIP)
    _run([sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "-w", str(tmp_path / "wheel"),
          str(src)])
    wheel = next((tmp_path / "wheel").glob("textgan-*.whl"))
    names = set(zipfile.ZipFile(wheel).namelist())
    for header in ("simd.h", "parallel.h", "philox.c", "linear_ce.c"):
        assert f"textgan/accel/csrc/{header}" in names
    configs = sorted(p.name for p in (REPO / "configs").glob("*.yaml"))
    shipped = sorted(n.rsplit("/", 1)[1] for n in names if "/data/share/textgan/configs/" in n)
    assert shipped == configs

    # A venv over the base interpreter (--system-site-packages) that also sees this venv's
    # site-packages through a plain .pth line (torch and the rest, not reinstalled; the .pth files
    # there, the editable textgan's finder among them, are not run), then the wheel installed.
    env_dir = tmp_path / "venv"
    venv.EnvBuilder(system_site_packages=True, with_pip=False).create(env_dir)
    python = env_dir / "bin" / "python"
    site = Path(_run([str(python), "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"]).stdout.strip())
    (site / "outer_venv.pth").write_text(sysconfig.get_paths()["purelib"] + "\n")
    _run([sys.executable, "-m", "pip", "--python", str(python), "install", "--no-deps", "--force-reinstall",
          "--no-index", str(wheel)])

    cwd = tmp_path / "elsewhere"
    cwd.mkdir()
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    env["TEXTGAN_CACHE_DIR"] = str(tmp_path / "cache")  # empty: every kernel is built from the installed sources
    where = _run([str(python), "-c", "import textgan; print(textgan.__file__)"], cwd=cwd, env=env).stdout.strip()
    assert where.startswith(str(env_dir)), where
    _check_installed_configs(python, env_dir, cwd, env, configs)
    res = _run([str(python), "-m", "textgan", "train", str(REPO / "configs" / "quickstart.yaml"), *FAST,
                f"data.root={data_root}", f"log.dir={tmp_path / 'runs'}", "adversarial.steps=2", "run.accel=auto"],
               cwd=cwd, env=env)
    line = next(line for line in res.stderr.splitlines() if line.startswith("accel:"))
    assert line.startswith("accel: auto (run.accel=auto): C kernels for cross-entropy, LSTM, MLE loss, noise, "
                           "conv+max, highway gate"), line
    assert "unavailable" not in res.stderr, res.stderr[-2000:]
    built = {p.name.split("-")[0] for p in (tmp_path / "cache").glob("*.so")}
    assert {"linear_ce", "lstm", "philox", "convmax", "highway"} <= built


def _check_installed_configs(python: Path, env_dir: Path, cwd: Path, env: dict, configs: list[str]) -> None:
    """The installed `textgan configs` reads the venv's share/textgan/configs, not this checkout."""
    res = _run([str(python), "-m", "textgan", "configs"], cwd=cwd, env=env)
    assert [row.split()[0] + ".yaml" for row in res.stdout.splitlines()] == configs
    assert str(env_dir / "share" / "textgan" / "configs") in res.stderr, res.stderr
    _run([str(python), "-m", "textgan", "configs", "--copy", "quickstart"], cwd=cwd, env=env)
    assert (cwd / "quickstart.yaml").read_bytes() == (REPO / "configs" / "quickstart.yaml").read_bytes()
    (cwd / "quickstart.yaml").unlink()
