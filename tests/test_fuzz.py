"""Fuzzing the user-facing readers: whatever the config tree, override string, YAML file or data
file, the result is a valid object or a one-line UserError (ConfigError, DataError), never a
traceback. Runs are derandomized, so every run tries the same examples."""
from __future__ import annotations

import dataclasses
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from textgan import config
from textgan.config import Config, ConfigError
from textgan.data import DataError, read_lines

FUZZ = settings(max_examples=200, deadline=None, derandomize=True, database=None,
                suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])

SECTIONS = [f.name for f in dataclasses.fields(Config)]
DOTTED = [f"{s}.{f.name}" for s in SECTIONS for f in dataclasses.fields(type(getattr(Config(), s)))]
FIELDS = sorted({d.split(".")[1] for d in DOTTED})
KEYS = st.one_of(st.sampled_from(SECTIONS + FIELDS), st.text(max_size=12))

SCALARS = st.one_of(
    st.none(), st.booleans(),
    st.integers(min_value=-3, max_value=40), st.integers(), st.integers(min_value=10**300, max_value=10**400),
    st.floats(allow_nan=True, allow_infinity=True), st.floats(min_value=0.0, max_value=1.0),
    st.text(max_size=20), st.sampled_from(["normal", "uniform", "none", "hard", "soft", "lstm", "relgan_cnn",
                                           "list", "exponential", "cpu", "cuda:0", "rsgan", "files"]),
)
VALUES = st.recursive(SCALARS, lambda inner: st.one_of(st.lists(inner, max_size=5),
                                                       st.dictionaries(KEYS, inner, max_size=5)),
                      max_leaves=20)


def section_value():
    """Mostly plausible sections: a mapping of one section's real field names to anything."""
    return st.sampled_from(SECTIONS).flatmap(lambda s: st.dictionaries(
        st.sampled_from([f.name for f in dataclasses.fields(type(getattr(Config(), s)))]) | KEYS,
        VALUES, max_size=4).map(lambda d: (s, d)))


TREES = st.one_of(
    VALUES,
    st.lists(section_value(), max_size=4).map(dict),
    st.dictionaries(KEYS, VALUES, max_size=5),
)


def check_error(err: Exception) -> str:
    message = str(err)
    assert message, "empty error message"
    assert len(message.splitlines()) == 1 and "\n" not in message and "\r" not in message, message
    return message


@FUZZ
@given(TREES)
def test_from_dict_gives_config_or_config_error(raw):
    try:
        cfg = config.from_dict(raw)
    except ConfigError as err:
        check_error(err)
        return
    assert isinstance(cfg, Config)
    assert config.from_dict(config.to_dict(cfg)) == cfg


YAML_BITS = ["[", "]", "{", "}", ",", ":", " ", "- ", "!!float ", "!!int ", "!!bool ", "!!timestamp ",
             "!!binary ", "!!str ", "!!python/name:os.system", "&a ", "*a", "? ", "|", ">", "'", '"', "#",
             "%", "@", "`", "\n", "\t", "~", "null", "true", "1e-3", "0x1f", "1_000", "1:30", ".inf", ".nan",
             "2020-13-45", "abc", "0", "-1", "3.5", "=", "\\n", "\u2028", "\x85", "\x00"]
YAMLISH = st.lists(st.one_of(st.sampled_from(YAML_BITS), st.text(max_size=4)), max_size=12).map("".join)
OVERRIDE_KEYS = st.one_of(st.sampled_from(DOTTED), st.sampled_from(SECTIONS), st.text(max_size=15),
                          st.lists(st.sampled_from(SECTIONS + FIELDS + ["", " ", "x"]), min_size=1,
                                   max_size=4).map(".".join))
OVERRIDE_VALUES = st.one_of(st.text(max_size=20), YAMLISH)


@FUZZ
@given(st.lists(st.one_of(st.tuples(OVERRIDE_KEYS, OVERRIDE_VALUES).map("=".join), st.text(max_size=20)),
                min_size=1, max_size=3))
def test_overrides_give_config_or_config_error(overrides):
    try:
        cfg = config.load(None, overrides)
    except ConfigError as err:
        check_error(err)
        return
    assert isinstance(cfg, Config)


@FUZZ
@given(st.sampled_from(DOTTED), OVERRIDE_VALUES)
def test_errors_on_real_keys_name_the_section(key, value):
    try:
        config.load(None, [f"{key}={value}"])
    except ConfigError as err:
        assert check_error(err).startswith(key.split(".")[0])


@pytest.fixture(scope="module")
def workdir(tmp_path_factory) -> Path:
    return tmp_path_factory.mktemp("fuzz")


@FUZZ
@given(st.one_of(st.binary(max_size=300), st.text(max_size=200).map(lambda s: s.encode("utf-8")),
                 st.lists(st.sampled_from([b"a b", b"\n", b"\r\n", b" ", b"\t", b"\xff", b"\xc3\xa9", b"\x00",
                                           b"\xef\xbb\xbf", b"\x1c", b"\xe2\x80\xa8", b"\x0b"]),
                          max_size=20).map(b"".join)))
def test_read_lines_gives_lines_or_data_error(workdir, data):
    path = workdir / "data.txt"
    path.write_bytes(data)
    try:
        lines = read_lines(path)
    except DataError as err:
        check_error(err)
        return
    assert isinstance(lines, list) and lines
    for line in lines:
        assert isinstance(line, str) and line and line == line.strip()
        assert len(line.splitlines()) == 1


YAML_LINES = st.lists(st.one_of(
    st.tuples(st.sampled_from(["", "  ", "    ", "\t", "- "]), st.sampled_from(SECTIONS + FIELDS) | st.text(max_size=6),
              st.sampled_from([":", ": ", ":\n", ""]), OVERRIDE_VALUES).map("".join),
    YAMLISH,
), max_size=8).map("\n".join)


@FUZZ
@given(st.one_of(YAML_LINES, st.text(max_size=200),
                 st.binary(max_size=100),
                 st.builds(lambda s, d: f"{s}:\n" + "".join(f"  {k}: {v}\n" for k, v in d),
                           st.sampled_from(SECTIONS), st.lists(st.tuples(st.sampled_from(FIELDS), YAMLISH),
                                                               max_size=4))))
def test_yaml_file_gives_config_or_config_error(workdir, text):
    path = workdir / "config.yaml"
    if isinstance(text, bytes):
        path.write_bytes(text)
    else:
        path.write_text(text, encoding="utf-8", errors="surrogatepass")
    try:
        cfg = config.load(path)
    except ConfigError as err:
        check_error(err)
        return
    assert isinstance(cfg, Config)
