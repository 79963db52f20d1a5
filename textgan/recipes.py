"""The YAML recipes in configs/, found wherever textgan runs from: the source checkout's configs/
folder, else the copy a regular install puts under the prefix (setup.cfg's data_files:
PREFIX/share/textgan/configs), so `textgan configs` lists them and copies one out.

Free of torch, like arguments.py: listing and copying never wait for torch to load.
"""
from __future__ import annotations

import os
import shutil
import site
import sys
import sysconfig
from dataclasses import dataclass
from pathlib import Path

from textgan import arguments
from textgan.errors import UserError

INSTALLED = Path("share") / "textgan" / "configs"  # under the install prefix (setup.cfg [options.data_files])


@dataclass
class Recipe:
    name: str  # file name without .yaml
    path: Path
    description: str  # the file's first comment line


def _candidates() -> list[Path]:
    """The source checkout's configs/ first (next to setup.cfg, above the package), then the
    installed copies: this interpreter's prefix, its data path, and the user base (pip --user)."""
    checkout = Path(__file__).resolve().parents[1]
    found = [checkout / "configs"] if (checkout / "setup.cfg").is_file() else []
    prefixes = [sys.prefix, sysconfig.get_paths()["data"], site.getuserbase()]
    return found + [Path(prefix) / INSTALLED for prefix in prefixes]


def configs_dir() -> Path:
    """The first folder of `_candidates` holding a .yaml file."""
    for folder in _candidates():
        if folder.is_dir() and any(folder.glob("*.yaml")):
            return folder
    places = ", ".join(str(p) for p in _candidates())
    raise UserError(f"no configs found (looked in {places}); reinstall textgan with `pip install .` "
                    "from its source folder")


def _description(path: Path) -> str:
    with open(path, encoding="utf-8") as fh:
        for line in fh:
            if line.startswith("#"):
                return line.lstrip("#").strip()
    return ""


def recipes(folder: Path | None = None) -> list[Recipe]:
    """Every config in `folder` (default: `configs_dir()`), sorted by name."""
    folder = folder or configs_dir()
    return [Recipe(p.stem, p, _description(p)) for p in sorted(folder.glob("*.yaml"))]


def find(name: str, available: list[Recipe]) -> Recipe:
    """The recipe called `name`, with or without .yaml; an unknown name lists the valid ones."""
    stem = name[: -len(".yaml")] if name.endswith(".yaml") else name
    for recipe in available:
        if recipe.name == stem:
            return recipe
    raise UserError(f"unknown config {name!r}; choose one of: {', '.join(r.name for r in available)}")


def copy(name: str, dest: str, force: bool) -> Path:
    """Copy config `name` into folder `dest` (as NAME.yaml), or to file `dest` where it is no
    folder; an existing file is kept unless `force`."""
    recipe = find(name, recipes())
    if dest.endswith(("/", os.sep)) and not Path(dest).is_dir():  # meant a folder: never a file named so
        raise UserError(f"copy destination {dest} is not an existing folder; create it first")
    target = Path(dest) / recipe.path.name if Path(dest).is_dir() else Path(dest)
    arguments.new_file(str(target), "copy destination", force)
    shutil.copyfile(recipe.path, target)
    return target


def listing(available: list[Recipe]) -> str:
    """One line per recipe: its name, padded, then its description."""
    width = max(len(r.name) for r in available)
    return "\n".join(f"{r.name:<{width}}  {r.description}" for r in available)
