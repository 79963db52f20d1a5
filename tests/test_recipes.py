"""`textgan configs` in real subprocesses: it lists every YAML in configs/ with its first comment
line, copies one out by name, keeps an existing file unless --force, and rejects an unknown name in
one line naming the valid ones. (The installed wheel's copy: tests/test_packaging.py.)"""
from __future__ import annotations

from conftest import REPO, run_cli
from textgan import recipes

CONFIGS = sorted(REPO.glob("configs/*.yaml"))


def _first_comment(path) -> str:
    return next(line for line in path.read_text().splitlines() if line.startswith("#")).lstrip("#").strip()


def test_list_names_every_config_with_its_description(tmp_path):
    res = run_cli("configs", cwd=tmp_path)
    assert res.returncode == 0, res.stderr
    rows = res.stdout.splitlines()
    assert [row.split()[0] for row in rows] == [p.stem for p in CONFIGS]
    for row, path in zip(rows, CONFIGS):
        assert row.endswith(_first_comment(path)), row
    assert str(REPO / "configs") in res.stderr  # says which folder it read: the checkout's


def test_copy_by_name_with_or_without_yaml(tmp_path):
    res = run_cli("configs", "--copy", "quickstart", cwd=tmp_path)
    assert res.returncode == 0, res.stderr
    assert (tmp_path / "quickstart.yaml").read_bytes() == (REPO / "configs" / "quickstart.yaml").read_bytes()
    assert res.stdout.strip() == "quickstart.yaml"
    (tmp_path / "sub").mkdir()
    res = run_cli("configs", "--copy", "coco_rsgan.yaml", "sub", cwd=tmp_path)
    assert res.returncode == 0, res.stderr
    assert (tmp_path / "sub" / "coco_rsgan.yaml").read_bytes() == (REPO / "configs" / "coco_rsgan.yaml").read_bytes()
    res = run_cli("configs", "--copy", "oracle20_mle", str(tmp_path / "mine.yaml"))  # DEST as a file name
    assert res.returncode == 0, res.stderr
    assert (tmp_path / "mine.yaml").read_bytes() == (REPO / "configs" / "oracle20_mle.yaml").read_bytes()


def test_copy_keeps_an_existing_file_unless_force(tmp_path):
    (tmp_path / "quickstart.yaml").write_text("my edits\n")
    res = run_cli("configs", "--copy", "quickstart", cwd=tmp_path)
    assert res.returncode == 2
    lines = res.stderr.strip().splitlines()
    assert len(lines) == 1 and "already exists" in lines[0] and "--force" in lines[0], res.stderr
    assert (tmp_path / "quickstart.yaml").read_text() == "my edits\n"
    res = run_cli("configs", "--copy", "quickstart", "--force", cwd=tmp_path)
    assert res.returncode == 0, res.stderr
    assert (tmp_path / "quickstart.yaml").read_bytes() == (REPO / "configs" / "quickstart.yaml").read_bytes()


def test_unknown_name_is_one_line_listing_the_valid_ones(tmp_path):
    res = run_cli("configs", "--copy", "quickstrat", cwd=tmp_path)
    assert res.returncode == 2
    lines = res.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("textgan: error: unknown config 'quickstrat'"), res.stderr
    assert all(p.stem in lines[0] for p in CONFIGS)
    assert "Traceback" not in res.stderr and list(tmp_path.iterdir()) == []


def test_the_installed_copy_is_found_without_a_checkout(tmp_path, monkeypatch):
    """No configs/ beside the package: the folder data_files installs under the prefix is read."""
    installed = tmp_path / "share" / "textgan" / "configs"
    installed.mkdir(parents=True)
    (installed / "only.yaml").write_text("# the one recipe\nrun:\n  seed: 1\n")
    monkeypatch.setattr(recipes, "_candidates", lambda: [tmp_path / "no_checkout" / "configs", installed])
    assert recipes.configs_dir() == installed
    assert [(r.name, r.description) for r in recipes.recipes()] == [("only", "the one recipe")]
