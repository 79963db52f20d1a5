"""Fetch the benchmark corpora from the Texygen repository, verified, without partial files.

Every file is pinned to one commit and one checksum, so a mirror (`base_url`) can never
silently change the benchmark. A download streams into `<file>.part`, is hashed on the
way, fsynced, checked, and only then renamed over the destination.
"""
from __future__ import annotations

import hashlib
import http.client
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Callable
from urllib.error import HTTPError, URLError
from urllib.parse import urlsplit
from urllib.request import urlopen

from textgan.errors import UserError

COMMIT = "3104e22ac75f3cc2070da2bf5e2da6d2bef149ad"
UPSTREAM = f"https://raw.githubusercontent.com/geek-ai/Texygen/{COMMIT}"
KINDS = ("sha256", "git-blob-sha1")
CHUNK = 1 << 16


@dataclass(frozen=True)
class Remote:
    """One file of a dataset: where it lives in the repository and what it must hash to."""

    name: str  # file name inside <dest>/<dataset>/
    path: str  # path inside the Texygen repository at COMMIT
    kind: str  # "sha256", or "git-blob-sha1" where only the git blob id is known
    digest: str  # lowercase hex


DATASETS: dict[str, tuple[Remote, ...]] = {
    "coco": (
        Remote("train.txt", "data/image_coco.txt", "sha256",
               "2c0fd1f0f43aac6a9dc3926a535516ccf395de535e15ac1fd17cd569420736f5"),
        Remote("test.txt", "data/testdata/test_coco.txt", "sha256",
               "72e25c9fb4d2cd43182ac602c92f6ffc377762147f9709572943b0b09174bcae"),
    ),
    "emnlp_news": (
        # No sha256 of the train file is known (no reachable snapshot holds it), only its blob id.
        Remote("train.txt", "data/emnlp_news.txt", "git-blob-sha1",
               "538653e5f946b6f76e2b729c5aaa7507152354a3"),
        Remote("test.txt", "data/testdata/test_emnlp.txt", "sha256",
               "03c646d08f766f4140443db4419b1f0ee292bc0db514208873e9f2e166b95bd2"),
    ),
}


def new_hash(kind: str, size: int | None = None):
    """A hashlib object; git's blob id is sha1(b"blob <size>\\0" + content), so it needs the size first."""
    if kind == "sha256":
        return hashlib.sha256()
    if kind == "git-blob-sha1":
        if size is None:
            raise ValueError("git-blob-sha1 needs the content size before the content")
        return hashlib.sha1(b"blob %d\0" % size)
    raise ValueError(f"unknown checksum kind {kind!r}; valid: {', '.join(KINDS)}")


def git_blob_sha1(data: bytes) -> str:
    """What `git hash-object` prints for these bytes."""
    h = new_hash("git-blob-sha1", len(data))
    h.update(data)
    return h.hexdigest()


def file_digest(path: Path, kind: str) -> str:
    h = new_hash(kind, path.stat().st_size)
    with open(path, "rb") as f:
        while chunk := f.read(CHUNK):
            h.update(chunk)
    return h.hexdigest()


def _short(digest: str) -> str:
    return digest[:12]


def _network_error(url: str, reason: object, folder: Path) -> UserError:
    return UserError(f"could not download {url} ({reason}); pass --base-url URL for a mirror laid out "
                     f"like the Texygen repository, or download the file by hand into {folder}")


def _stream(url: str, part: Path, remote: Remote, timeout: float) -> tuple[int, str]:
    """Write the body of `url` to `part`, hashing on the way; return (bytes, digest)."""
    folder = part.parent
    try:
        response = urlopen(url, timeout=timeout)  # noqa: S310 (scheme checked by the caller)
    except HTTPError as err:
        raise _network_error(url, f"HTTP {err.code} {err.reason}", folder) from None
    except URLError as err:
        raise _network_error(url, err.reason, folder) from None
    except (OSError, http.client.HTTPException) as err:
        raise _network_error(url, str(err) or type(err).__name__, folder) from None
    with response:
        length = response.headers.get("Content-Length", "")
        declared = int(length) if length.isdigit() else None
        h = new_hash(remote.kind, declared) if remote.kind == "sha256" or declared is not None else None
        size = 0
        with open(part, "wb") as out:
            while True:
                try:
                    chunk = response.read(CHUNK)
                except (OSError, http.client.HTTPException) as err:
                    raise _network_error(url, f"connection lost after {size:,} bytes: "
                                              f"{str(err) or type(err).__name__}", folder) from None
                if not chunk:
                    break
                out.write(chunk)
                size += len(chunk)
                if h is not None:
                    h.update(chunk)
            out.flush()
            os.fsync(out.fileno())
    if declared is not None and size != declared:
        raise _network_error(url, f"incomplete: {size:,} of {declared:,} bytes", folder)
    digest = h.hexdigest() if h is not None else file_digest(part, remote.kind)  # git blob, size unknown
    return size, digest


def _fetch(remote: Remote, target: Path, base_url: str, timeout: float, log: Callable[[str], None]) -> None:
    """Download one file into place; on any failure nothing but the old `target` (if any) remains."""
    url = f"{base_url}/{remote.path}"
    part = target.with_name(target.name + ".part")
    try:
        try:
            size, got = _stream(url, part, remote, timeout)
        except OSError as err:  # network errors were converted above, so this is the local disk
            raise UserError(f"cannot write {part} ({err.strerror or err}); choose another --dest") from None
        if got != remote.digest:
            raise UserError(f"{target} downloaded from {url} has {remote.kind} {_short(got)}..., expected "
                            f"{_short(remote.digest)}...; the server holds a different file: check the "
                            "mirror given with --base-url (or omit it to use upstream) and retry")
        os.replace(part, target)
    finally:
        part.unlink(missing_ok=True)
    log(f"{target}: {size:,} bytes from {url}, {remote.kind} ok")


def _prepare_folder(folder: Path) -> None:
    try:
        folder.mkdir(parents=True, exist_ok=True)
        if not os.access(folder, os.W_OK | os.X_OK):
            raise PermissionError(13, "permission denied")
    except OSError as err:
        raise UserError(f"cannot write to {folder} ({err.strerror or err}); choose another --dest") from None


def _existing_ok(target: Path, remote: Remote) -> bool:
    try:
        return file_digest(target, remote.kind) == remote.digest
    except OSError as err:
        raise UserError(f"cannot read existing {target} ({err.strerror or err}); remove it") from None


def get_dataset(name: str, dest: Path, base_url: str | None = None, force: bool = False,
                log: Callable[[str], None] = print, timeout: float = 60.0) -> list[Path]:
    """Make `<dest>/<name>/{train,test}.txt` hold the benchmark files; return their paths.

    Files already present with the right checksum are kept; a present file with a wrong one is
    an error unless `force`, which re-downloads it (the old file stays until the new one is verified).
    """
    if name not in DATASETS:
        raise UserError(f"unknown dataset {name!r}; valid: {', '.join(sorted(DATASETS))}")
    base = (base_url or UPSTREAM).rstrip("/")
    if urlsplit(base).scheme.lower() not in ("http", "https", "file"):
        raise UserError(f"--base-url must start with http://, https:// or file://, got {base_url!r}")
    folder = Path(dest) / name
    _prepare_folder(folder)
    targets = [(remote, folder / remote.name) for remote in DATASETS[name]]
    todo = []
    for remote, target in targets:  # check everything local before touching the network
        if not target.exists():
            todo.append((remote, target))
        elif _existing_ok(target, remote):
            log(f"{target}: ok, already present")
        elif force:
            todo.append((remote, target))
        else:
            raise UserError(f"{target} exists but its {remote.kind} does not match the benchmark file; "
                            "pass --force to download it again and replace it")
    for remote, target in todo:
        _fetch(remote, target, base, timeout, log)
    return [target for _, target in targets]
