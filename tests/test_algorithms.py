"""The GAN objectives in textgan/algorithms/: every adversarial.algorithm value names one, and the
trainer's adversarial step is nothing but the chosen algorithm's D updates, then its G updates."""
from __future__ import annotations

import pytest

from conftest import FAST
from textgan import config
from textgan.algorithms import ALGORITHMS
from textgan.algorithms.gumbel_gan import GumbelGAN
from textgan.config import AdversarialConfig, ConfigError
from textgan.corpus import prepare
from textgan.monitor import Monitor
from textgan.train import Trainer


def test_every_config_value_names_an_algorithm():
    assert set(config.choices(AdversarialConfig, "algorithm")) == set(ALGORITHMS)
    assert AdversarialConfig().algorithm == "gumbel" and ALGORITHMS["gumbel"] is GumbelGAN
    with pytest.raises(ConfigError, match="adversarial.algorithm.*gumbel"):
        config.load(None, ["adversarial.algorithm=seqgan"])


class _Recorded(GumbelGAN):
    """The Gumbel objective, noting the order of its updates."""

    calls: list[str] = []

    def d_step(self, tau: float) -> dict[str, float]:
        self.calls.append("d")
        return super().d_step(tau)

    def g_step(self, tau: float) -> dict[str, float]:
        self.calls.append("g")
        return super().g_step(tau)


@pytest.mark.parametrize("order, want", [("d_first", "ddg"), ("g_first", "gdd")])
def test_the_adversarial_step_runs_the_configured_algorithm(tmp_path, data_root, monkeypatch, order, want):
    """An algorithm registered under a config value is what the trainer runs, in adversarial.order,
    d_steps and g_steps times: adding one is a file and a dict entry, not an edit to the trainer."""
    monkeypatch.setitem(ALGORITHMS, "gumbel", _Recorded)
    monkeypatch.setattr(_Recorded, "calls", [])
    cfg = config.load(None, [*FAST, "adversarial.d_steps=2", f"adversarial.order={order}"])
    tr = Trainer(cfg, prepare(cfg.data, cfg.run.seed), tmp_path, Monitor(tmp_path, progress=False, enabled=False))
    assert isinstance(tr.algorithm, _Recorded)
    stats = tr.adversarial_step()
    assert "".join(_Recorded.calls) == want and {"adv/d_loss", "adv/g_loss"} <= set(stats)
