"""The README's Python API example, run as written apart from tiny sizes, and the API's checks."""
from __future__ import annotations

import re

import numpy as np
import torch
import pytest

from conftest import REPO
from textgan.errors import UserError

pytestmark = pytest.mark.slow  # whole trainings and CLI subprocesses

TINY = ('"adversarial.steps": 3, "mle.epochs": 1, "data.num_train": 200, "data.num_test": 50, '
        '"eval.every": 0, "eval.num_samples": 20, "log.progress": False, "log.checkpoint_every": 0')


def readme_example() -> str:
    text = (REPO / "README.md").read_text(encoding="utf-8")
    return re.search(r"### Python API\n.*?```python\n(.*?)```", text, re.S).group(1)


def test_readme_example_runs(tmp_path, monkeypatch, capsys):
    code = readme_example()
    assert '"adversarial.steps": 50' in code and "num=200" in code
    code = (code.replace('"adversarial.steps": 50', TINY).replace("num=200", "num=20")
            .replace('"configs/', f'"{REPO}/configs/'))
    monkeypatch.chdir(tmp_path)
    from textgan.accel import fpenv

    before = (fpenv.flushing(), torch.get_num_threads())
    exec(compile(code, "README.md", "exec"), {})
    assert (fpenv.flushing(), torch.get_num_threads()) == before  # the caller's process settings kept
    out = capsys.readouterr().out.splitlines()[-3:]  # after train's own report: the example's three prints
    samples = eval(out[0])  # noqa: S307 - the list the example printed
    assert len(samples) == 3 and all(isinstance(s, str) for s in samples)
    assert 0 <= float(out[1]) <= 1
    assert "bleu2_exact" in out[2] and (tmp_path / "runs" / "notebook" / "checkpoints").is_dir()


def test_api_sample_matches_cli_and_checks_its_arguments(tmp_path, monkeypatch):
    import textgan.api as tg

    monkeypatch.chdir(tmp_path)
    run = tg.train(f"{REPO}/configs/quickstart.yaml",
                   eval(f"{{{TINY}}}".replace('"adversarial.steps": 3', '"adversarial.steps": 0')))  # noqa: S307
    model = tg.load(run)
    assert model.sample(4, seed=2) == model.sample(4, seed=2) != model.sample(4, seed=3)
    z = np.zeros((2, model.config.generator.latent_dim), np.float32)
    assert len(model.sample(z=z)) == 2
    with pytest.raises(UserError, match="NaN or infinity|shape"):
        model.sample(z=np.full((2, 3), np.nan))
    with pytest.raises(UserError, match="not found"):
        tg.load(tmp_path / "nowhere")
    with pytest.raises(UserError, match="not a device"):
        tg.load(run, device="gpu")
    with pytest.raises(UserError, match="already exists"):
        tg.train(f"{REPO}/configs/quickstart.yaml", {"adversarial.steps": 0})


def test_the_quickstarts_interpolation_changes_along_its_path(tmp_path, monkeypatch, capsys):
    """What `make demo` shows, at two of its MLE epochs: the interpolation train prints between two
    test sentences' encoded z changes along the path (z decides the greedy sentence), and
    Model.interpolate(from_text=, to_text=) gives the same sentences."""
    import textgan.api as tg

    monkeypatch.chdir(tmp_path)
    run = tg.train(f"{REPO}/configs/quickstart.yaml", {"mle.epochs": 2, "adversarial.steps": 0, "log.progress": False})
    out = capsys.readouterr().out.splitlines()
    at = next(i for i, line in enumerate(out) if line.startswith("interpolation from"))
    start, end = re.match(r'interpolation from "(.*)" to "(.*)" \(', out[at]).groups()
    printed = [line.strip() for line in out[at + 1:at + 9]]
    assert len(printed) == 8 and len(set(printed)) >= 2, printed
    assert tg.load(run).interpolate(8, from_text=start, to_text=end) == printed
