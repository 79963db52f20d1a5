"""The strict config loader: every shipped YAML loads, dotted overrides parse to the field's type,
and every mistake is a one-line ConfigError that starts with the dotted key."""
from __future__ import annotations

import dataclasses
from pathlib import Path

import pytest
import yaml

from textgan import config
from textgan.config import Config, ConfigError

REPO = Path(__file__).resolve().parents[1]
CONFIGS = sorted((REPO / "configs").glob("*.yaml"))


def error_of(fn, *args) -> str:
    with pytest.raises(ConfigError) as info:
        fn(*args)
    message = str(info.value)
    assert message and len(message.splitlines()) == 1 and "\n" not in message, message
    return message


def write(tmp_path: Path, text: str, name: str = "c.yaml") -> Path:
    path = tmp_path / name
    path.write_text(text, encoding="utf-8")
    return path


# ---------------------------------------------------------------------------- shipped configs

def test_configs_folder_is_not_empty():
    assert len(CONFIGS) >= 3


@pytest.mark.parametrize("path", CONFIGS, ids=lambda p: p.name)
def test_every_shipped_config_loads(path):
    cfg = config.load(path)
    assert isinstance(cfg, Config)
    assert cfg != Config() or path.read_text().strip() == ""


@pytest.mark.parametrize("path", CONFIGS, ids=lambda p: p.name)
def test_dump_load_round_trip(path, tmp_path):
    cfg = config.load(path)
    again = config.load(write(tmp_path, config.dump(cfg)))
    assert again == cfg
    assert config.from_dict(config.to_dict(cfg)) == cfg


def test_defaults_round_trip(tmp_path):
    assert config.load(None) == Config()
    assert config.load(write(tmp_path, config.dump(Config()))) == Config()
    assert config.load(write(tmp_path, "")) == Config()
    assert config.load(write(tmp_path, "# only a comment\n")) == Config()


# ---------------------------------------------------------------------------- overrides

@pytest.mark.parametrize(("override", "attr", "expected"), [
    ("adversarial.steps=200", "adversarial.steps", 200),
    ("run.seed=-3", "run.seed", -3),
    ("mle.lr=0.003", "mle.lr", 0.003),
    ("mle.lr=1e-3", "mle.lr", 0.001),  # YAML 1.1 reads this as a string; floats accept it
    ("adversarial.g_lr=2.5E-4", "adversarial.g_lr", 2.5e-4),
    ("mle.grad_clip=5", "mle.grad_clip", 5.0),  # an int where a float is expected
    ("eval.bleu_n=[2, 3]", "eval.bleu_n", [2, 3]),
    ("gumbel.values=[1, 0.5]", "gumbel.values", [1.0, 0.5]),
    ("log.progress=false", "log.progress", False),
    ("eval.nll_gen=true", "eval.nll_gen", True),
    ("log.name=my run", "log.name", "my run"),
    ("log.name=", "log.name", ""),
    ("data.root='123'", "data.root", "123"),
    ("data.train=a=b.txt", "data.train", "a=b.txt"),  # only the first = splits
    (" mle.epochs = 3", "mle.epochs", 3),
    ("generator.prior=uniform", "generator.prior", "uniform"),
    ("discriminator.kind=lstm", "discriminator.kind", "lstm"),
])
def test_override_values(override, attr, expected):
    cfg = config.load(None, [override])
    section, name = attr.split(".")
    value = getattr(getattr(cfg, section), name)
    assert value == expected and type(value) is type(expected)


def test_overrides_apply_in_order_over_the_file(tmp_path):
    path = write(tmp_path, "mle:\n  epochs: 4\n  lr: 0.5\n")
    cfg = config.load(path, ["mle.epochs=7", "mle.epochs=9"])
    assert cfg.mle.epochs == 9 and cfg.mle.lr == 0.5


def test_override_into_an_empty_section(tmp_path):
    """`generator:` with every key commented out is an empty section, not a value."""
    path = write(tmp_path, "generator:\n  # emb_dim: 8\n")
    assert config.load(path).generator == config.GeneratorConfig()
    assert config.load(path, ["generator.emb_dim=8"]).generator.emb_dim == 8


def test_parse_override():
    assert config.parse_override("a.b=[1, 2]") == ("a.b", [1, 2])
    assert config.parse_override("a.b=x=y") == ("a.b", "x=y")


# ---------------------------------------------------------------------------- errors

@pytest.mark.parametrize(("override", "key"), [
    ("mle.lrr=1", "mle.lrr"),
    ("mlee.lr=1", "mlee"),
    ("nonsense=1", "nonsense"),
])
def test_unknown_key_override(override, key):
    message = error_of(config.load, None, [override])
    assert message.startswith(f"{key}: unknown key")
    assert "valid keys" in message


def test_unknown_key_suggests_the_close_one(tmp_path):
    assert "did you mean lr?" in error_of(config.load, None, ["mle.lrr=1"])
    message = error_of(config.load, write(tmp_path, "generator:\n  hiden_dim: 3\n"))
    assert message.startswith("generator.hiden_dim: unknown key (did you mean hidden_dim?)")


@pytest.mark.parametrize(("override", "key"), [
    ("mle.epochs=abc", "mle.epochs"),
    ("mle.epochs=1.5", "mle.epochs"),
    ("mle.epochs=true", "mle.epochs"),  # a bool is not an int
    ("mle.lr=fast", "mle.lr"),
    ("mle.lr=", "mle.lr"),
    ("log.progress=1", "log.progress"),
    ("log.name=[a]", "log.name"),
    ("data.root=123", "data.root"),
    ("generator.prior=gaussian", "generator.prior"),
    ("run.accel=fast", "run.accel"),
    ("run.accel=true", "run.accel"),
    ("discriminator.highway=single", "discriminator.highway"),
    ("eval.bleu_n=3", "eval.bleu_n"),
    ("eval.bleu_n=[2, x]", "eval.bleu_n[1]"),
    ("mle.lr={a: 1}", "mle.lr"),
    ("mle.lr=!!float abc", "mle.lr"),  # PyYAML raises ValueError on this one
    ("mle.lr=!!bool maybe", "mle.lr"),
    ("mle.lr=[1, 2", "mle.lr"),
    ("mle.lr=" + "9" * 400, "mle.lr"),  # an int beyond the float range
])
def test_wrong_type(override, key):
    message = error_of(config.load, None, [override])
    assert message.startswith(f"{key}: ")


LEGACY = ["generator.ce_kernel", "generator.lstm_kernel", "discriminator.conv_kernel",
          "discriminator.highway_kernel", "discriminator.compile"]


@pytest.mark.parametrize("key", LEGACY)
def test_a_kernel_setting_from_before_run_accel_is_one_line_naming_run_accel(tmp_path, key):
    """In an override and in a user's YAML file: the setting is gone, run.accel replaces it."""
    value = "true" if key.endswith("compile") else "native"
    section, name = key.split(".")
    for message in (error_of(config.load, None, [f"{key}={value}"]),
                    error_of(config.load, write(tmp_path, f"{section}:\n  {name}: {value}\n"))):
        assert message == (f"{key}: replaced by run.accel (auto, native, compile or off); "
                           f"remove {key} and set run.accel instead")


def test_a_saved_config_with_the_old_kernel_settings_still_loads(tmp_path, capsys):
    """A run folder's config.yaml (or a checkpoint's config) from before run.accel: the old keys
    are dropped with a one-line note; a compiled discriminator maps to run.accel=compile."""
    old = config.to_dict(config.Config())
    old["generator"].update(ce_kernel="native", lstm_kernel="torch")
    old["discriminator"].update(conv_kernel="auto", highway_kernel="auto", compile=False)
    del old["run"]["accel"]
    path = tmp_path / "config.yaml"
    path.write_text(yaml.safe_dump(old))
    cfg = config.load(path, ["mle.epochs=2"], saved=True)
    assert cfg.run.accel == "auto" and cfg.mle.epochs == 2
    note = capsys.readouterr().err.strip().splitlines()
    assert note == ["note: saved config's generator.ce_kernel, generator.lstm_kernel, discriminator.conv_kernel, "
                    "discriminator.highway_kernel, discriminator.compile dropped (replaced by run.accel)"]
    old["discriminator"]["compile"] = True
    assert config.from_dict(old, saved=True).run.accel == "compile"
    assert config.from_dict(config.to_dict(cfg), saved=True) == cfg  # a new config: nothing dropped
    assert capsys.readouterr().err.count("note:") == 1
    with pytest.raises(config.ConfigError, match="replaced by run.accel"):
        config.from_dict(old)  # not a saved one: the user is told


def test_wrong_type_names_the_valid_choices():
    message = error_of(config.load, None, ["generator.prior=gaussian"])
    assert "normal" in message and "uniform" in message and "none" in message


@pytest.mark.parametrize(("override", "key"), [
    ("data.min_freq=0", "data.min_freq"),
    ("data.test=", "data.test"),  # every evaluation scores the test split
    ("data.train= ", "data.train"),
    ("data.max_len=-1", "data.max_len"),
    ("generator.hidden_dim=0", "generator.hidden_dim"),
    ("generator.dropout=1.0", "generator.dropout"),
    ("generator.init_std=-0.1", "generator.init_std"),
    ("generator.io_dropout=1.0", "generator.io_dropout"),
    ("generator.io_dropout=-0.1", "generator.io_dropout"),
    ("mle.patience=-1", "mle.patience"),
    ("mle.plateau_lr_factor=0", "mle.plateau_lr_factor"),
    ("mle.plateau_lr_factor=1.5", "mle.plateau_lr_factor"),
    ("discriminator.emb_dim=0", "discriminator.emb_dim"),
    ("discriminator.num_rep=0", "discriminator.num_rep"),
    ("discriminator.num_rep=5", "discriminator.num_rep"),  # must divide emb_dim
    ("discriminator.filter_sizes=[2, 3]", "discriminator.num_filters"),  # lengths differ
    ("discriminator.filter_sizes=[0, 1, 2, 3]", "discriminator.filter_sizes"),
    ("gumbel.tau_start=0", "gumbel.tau_start"),
    ("gumbel.tau_end=.inf", "gumbel.tau_end"),
    ("gumbel.tau_end=.nan", "gumbel.tau_end"),
    ("gumbel.anneal_steps=-1", "gumbel.anneal_steps"),
    ("gumbel.schedule=list", "gumbel.values"),
    ("mle.lr=-1", "mle.lr"),
    ("mle.lr=.nan", "mle.lr"),
    ("mle.batch_size=0", "mle.batch_size"),
    ("adversarial.g_lr=0", "adversarial.g_lr"),
    ("adversarial.d_lr=0", "adversarial.d_lr"),
    ("adversarial.beta1=1", "adversarial.beta1"),
    ("adversarial.beta2=-0.1", "adversarial.beta2"),
    ("adversarial.d_steps=0", "adversarial.d_steps"),
    ("adversarial.mle_weight=-0.5", "adversarial.mle_weight"),
    ("adversarial.mle_weight=.nan", "adversarial.mle_weight"),
    ("adversarial.mle_weight_steps=-1", "adversarial.mle_weight_steps"),
    ("discriminator.spectral_norm=2", "discriminator.spectral_norm"),
    ("eval.every=-1", "eval.every"),
    ("eval.mle_every=-1", "eval.mle_every"),
    ("eval.sample_every=-1", "eval.sample_every"),
    ("eval.num_samples=1", "eval.num_samples"),
    ("eval.bleu_n=[0, 2]", "eval.bleu_n"),
    ("log.keep_last=0", "log.keep_last"),
    ("run.threads=-1", "run.threads"),
    ("run.device=tpu", "run.device"),
])
def test_out_of_range(override, key):
    message = error_of(config.load, None, [override])
    assert message.startswith(f"{key}: ")


@pytest.mark.parametrize(("overrides", "width"), [
    (["generator.hidden_dim=64"], 64),
    (["generator.core=relational_memory", "generator.num_heads=2", "generator.head_size=8"], 16),
])
def test_tie_embeddings_needs_emb_dim_equal_to_the_core_output(overrides, width):
    """One (V, E) matrix both embeds and scores tokens only when E is the width the output layer
    reads: otherwise a one-line error with both sizes and both ways out."""
    message = error_of(config.load, None, ["generator.tie_embeddings=true", *overrides])
    assert message.startswith(f"generator.tie_embeddings: needs emb_dim (32) equal to the core's output size ({width})")
    assert "emb_dim" in message and "tie_embeddings to false" in message and "\n" not in message
    assert config.load(None, ["generator.tie_embeddings=true", *overrides, f"generator.emb_dim={width}"]).generator.tie_embeddings


@pytest.mark.parametrize("override", ["eval.nll_gen=false", "eval.mle_every=0"])
def test_mle_patience_needs_held_out_nll_gen_each_evaluation(override):
    """Early stopping watches held-out NLL_gen at the MLE evaluations: without either, a one-line
    error before anything runs, naming both ways out."""
    assert config.load(None, ["mle.patience=2"]).mle.patience == 2
    message = error_of(config.load, None, ["mle.patience=2", override])
    assert message.startswith("mle.patience: needs eval.nll_gen: true and eval.mle_every >= 1")
    assert "mle.patience: 0" in message and "\n" not in message
    assert config.load(None, ["mle.patience=0", override]).mle.patience == 0


def test_plateau_lr_factor_needs_patience():
    message = error_of(config.load, None, ["mle.plateau_lr_factor=0.5"])
    assert message.startswith("mle.plateau_lr_factor: acts at mle.patience's evaluations")
    assert config.load(None, ["mle.plateau_lr_factor=0.5", "mle.patience=1"]).mle.plateau_lr_factor == 0.5


@pytest.mark.parametrize(("overrides", "start"), [
    (["log.best_ceiling_metric=nll_gen_mc8_tok", "log.best_ceiling=4.8"], "log.best_ceiling_metric: bounds"),
    (["log.best_metric=bleu2_exact", "log.best_ceiling_metric=nll_gen_mc8_tok"], "log.best_ceiling: set a finite"),
    (["log.best_metric=bleu2_exact", "log.best_ceiling=4.8"], "log.best_ceiling: needs log.best_ceiling_metric"),
])
def test_best_ceiling_needs_its_metric_and_a_bound(overrides, start):
    assert error_of(config.load, None, overrides).startswith(start)
    ok = config.load(None, ["log.best_metric=bleu2_exact", "log.best_ceiling_metric=nll_gen_mc8_tok",
                            "log.best_ceiling=4.8"])
    assert (ok.log.best_ceiling_metric, ok.log.best_ceiling) == ("nll_gen_mc8_tok", 4.8)


def test_list_schedule_needs_matching_milestones():
    ok = config.load(None, ["gumbel.schedule=list", "gumbel.values=[1, 0.5]", "gumbel.milestones=[0, 10]"])
    assert ok.gumbel.values == [1.0, 0.5]
    message = error_of(config.load, None, ["gumbel.schedule=list", "gumbel.values=[1, 0.5]",
                                           "gumbel.milestones=[5, 10]"])
    assert message.startswith("gumbel.milestones: ")


@pytest.mark.parametrize(("yaml_text", "key"), [
    ("mle:\n  lrr: 1\n", "mle.lrr"),
    ("mle:\n  epochs: abc\n", "mle.epochs"),
    ("mle:\n  lr: -1\n", "mle.lr"),
    ("mle:\n  lr: !!float abc\n", "config file"),
    ("mle: 3\n", "mle"),  # a section given a value
    ("mle: [1, 2]\n", "mle"),
    ("mle:\n  lr:\n    x: 1\n", "mle.lr"),  # a value used as a section
    ("bogus:\n  x: 1\n", "bogus"),
    ("? [a, b]\n: 1\n", "config file"),  # an unhashable key
    ('"mle\\n": {}\n', "'mle\\n'"),  # a key with a newline is shown quoted, on one line
])
def test_yaml_file_errors(tmp_path, yaml_text, key):
    message = error_of(config.load, write(tmp_path, yaml_text))
    assert message.startswith(f"{key}: " if key != "config file" else "config file ")


@pytest.mark.parametrize(("override", "key"), [
    ("mle=3", "mle"),
    ("mle={lr: 1}", "mle"),
    ("mle.lr.x=3", "mle.lr"),
    ("mle.lr.x.y=3", "mle.lr"),
])
def test_section_and_value_confusion_in_overrides(override, key):
    assert error_of(config.load, None, [override]).startswith(f"{key}: ")


@pytest.mark.parametrize("override", ["mle.lr", "=3", " =3", ""])
def test_override_without_key_or_equals(override):
    assert error_of(config.load, None, [override]).startswith("override ")


@pytest.mark.parametrize(("text", "fragment"), [
    ("mle: [1, 2\n", "invalid YAML at line"),
    ("mle:\n  lr: 1\n bad indent: 2\n", "invalid YAML"),
    ("- mle\n- run\n", "expected a mapping"),
    ("just a string\n", "expected a mapping"),
    ("42\n", "expected a mapping"),
])
def test_bad_yaml_files(tmp_path, text, fragment):
    path = write(tmp_path, text)
    message = error_of(config.load, path)
    assert message.startswith(f"config file {path}") and fragment in message


def test_missing_and_unreadable_files(tmp_path):
    assert "not found" in error_of(config.load, tmp_path / "nope.yaml")
    assert "cannot be read" in error_of(config.load, tmp_path)  # a folder
    latin = tmp_path / "latin.yaml"
    latin.write_bytes("log:\n  name: caf\xe9\n".encode("latin-1"))
    assert "UTF-8" in error_of(config.load, latin)


def test_from_dict_rejects_non_mappings():
    assert error_of(config.from_dict, [1, 2]).startswith("config: ")
    assert error_of(config.from_dict, {"run": 5}).startswith("run: ")
    assert config.from_dict(None) == Config()
    assert config.from_dict({"run": None}) == Config()


def test_every_field_has_a_default():
    """So an empty file is a complete config."""
    for section in dataclasses.fields(Config):
        for f in dataclasses.fields(type(getattr(Config(), section.name))):
            assert f.default is not dataclasses.MISSING or f.default_factory is not dataclasses.MISSING, f.name
