"""The user's cache folder, and the tokenized corpora kept there.

nltk's tokenizer takes about a quarter of a millisecond a line (5 s for COCO's train and test
files on 2 cores), paid by every `textgan train`, `eval` and `sample --from-text` of a run on
that corpus; the tokens of a file depend only on its bytes and the tokenizer's settings, so they
are kept under a hash of those and read back in milliseconds.
"""
from __future__ import annotations

import hashlib
import json
import os
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import IO

TOKEN_CACHE_VERSION = 1  # raise when tokenize() changes what it returns


def cache_dir() -> Path:
    """$TEXTGAN_CACHE_DIR, else $XDG_CACHE_HOME/textgan or ~/.cache/textgan; the temporary folder
    where no home folder is known (a bare CI environment)."""
    env = os.environ.get("TEXTGAN_CACHE_DIR")
    if env:
        return Path(env)
    if os.environ.get("XDG_CACHE_HOME"):
        return Path(os.environ["XDG_CACHE_HOME"]) / "textgan"
    try:
        return Path.home() / ".cache" / "textgan"
    except RuntimeError:
        return Path(tempfile.gettempdir()) / "textgan-cache"


def _token_file(raw: bytes, settings: str) -> Path:
    key = hashlib.sha256(raw + b"\0" + settings.encode()).hexdigest()[:32]
    return cache_dir() / "tokens" / f"{key}.json"


def _load(path: Path, count: int) -> list[list[str]] | None:
    """The cached sentences, or None where the file is missing or not what was written."""
    try:
        sentences = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    ok = (isinstance(sentences, list) and len(sentences) == count
          and all(isinstance(s, list) and all(isinstance(t, str) for t in s) for s in sentences))
    return sentences if ok else None


def keep(path: Path, write: Callable[[IO], None], binary: bool = False) -> OSError | None:
    """A cache file `write(fh)` fills, written whole or not at all (a temporary file renamed), so a
    reader in another process never sees half a file; a cache that cannot be written (read-only
    home, full disk) is simply not kept: the error is returned (None when kept), and no temporary
    file is left behind."""
    tmp = None
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=path.parent, suffix=".tmp")
        with (os.fdopen(fd, "wb") if binary else os.fdopen(fd, "w", encoding="utf-8")) as fh:
            write(fh)
        os.replace(tmp, path)
        return None
    except OSError as err:
        if tmp is not None:
            Path(tmp).unlink(missing_ok=True)
        return err


def _store(path: Path, sentences: list[list[str]]) -> None:
    keep(path, lambda fh: json.dump(sentences, fh, ensure_ascii=False, separators=(",", ":")))


def cached_tokens(raw: bytes, count: int, settings: str,
                  compute: Callable[[], list[list[str]]]) -> list[list[str]]:
    """The token lists of a file's `count` lines: from the cache when this file's bytes were
    tokenized with the same `settings` before, else `compute()`d and kept."""
    path = _token_file(raw, f"{TOKEN_CACHE_VERSION}\0{settings}")
    sentences = _load(path, count)
    if sentences is None:
        sentences = compute()
        _store(path, sentences)
    return sentences
