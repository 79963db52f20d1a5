"""Downloads against a local HTTP mirror laid out like the Texygen repository (no internet)."""
from __future__ import annotations

import functools
import hashlib
import shutil
import socket
import subprocess
import threading
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

from conftest import run_cli
from textgan import download
from textgan.download import DATASETS, Remote, file_digest, get_dataset, git_blob_sha1
from textgan.errors import UserError

# Repository path -> file in the shared data root.
MIRRORED = {"data/image_coco.txt": "coco/train.txt", "data/testdata/test_coco.txt": "coco/test.txt",
            "data/testdata/test_emnlp.txt": "emnlp_news/test.txt"}


class _Handler(SimpleHTTPRequestHandler):
    """Serves the mirror folder; `length_delta` lies about Content-Length (None: send none)."""

    length_delta: int | None = 0

    def send_header(self, keyword: str, value: str) -> None:
        if keyword.lower() == "content-length" and self.length_delta != 0:
            if self.length_delta is None:
                return
            value = str(int(value) + self.length_delta)
        super().send_header(keyword, value)

    def log_message(self, *args) -> None:  # keep pytest output clean
        pass


class Mirror:
    def __init__(self, root: Path, url: str, handler: type[_Handler]):
        self.root, self.url, self.handler = root, url, handler

    def corrupt(self, repo_path: str) -> None:
        path = self.root / repo_path
        path.write_bytes(path.read_bytes().replace(b"a", b"A", 1))


@pytest.fixture
def mirror(tmp_path, data_root):
    root = tmp_path / "mirror"
    for repo_path, local in MIRRORED.items():
        (root / repo_path).parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(data_root / local, root / repo_path)
    handler = type("Handler", (_Handler,), {})  # per test, so length_delta does not leak
    server = ThreadingHTTPServer(("127.0.0.1", 0), functools.partial(handler, directory=str(root)))
    thread = threading.Thread(target=server.serve_forever, args=(0.05,), daemon=True)
    thread.start()
    yield Mirror(root, f"http://127.0.0.1:{server.server_address[1]}", handler)
    server.shutdown()
    server.server_close()


def _closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _leftovers(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.iterdir()) if folder.exists() else []


def test_coco_download_is_byte_identical_then_skipped(mirror, tmp_path, data_root):
    lines: list[str] = []
    paths = get_dataset("coco", tmp_path / "d", base_url=mirror.url + "/", log=lines.append)
    assert paths == [tmp_path / "d/coco/train.txt", tmp_path / "d/coco/test.txt"]
    for path, local in zip(paths, ["coco/train.txt", "coco/test.txt"]):
        assert path.read_bytes() == (data_root / local).read_bytes()
    assert len(lines) == 2 and "546,442 bytes" in lines[0] and "sha256 ok" in lines[0]
    assert _leftovers(tmp_path / "d/coco") == ["test.txt", "train.txt"]

    lines.clear()
    (mirror.root / "data/image_coco.txt").unlink()  # a second call must not touch the network
    assert get_dataset("coco", tmp_path / "d", base_url=mirror.url, log=lines.append) == paths
    assert all("ok, already present" in line for line in lines) and len(lines) == 2


def test_corrupted_mirror_file_leaves_nothing(mirror, tmp_path):
    mirror.corrupt("data/image_coco.txt")
    with pytest.raises(UserError) as err:
        get_dataset("coco", tmp_path, base_url=mirror.url, log=lambda m: None)
    msg = str(err.value)
    assert "\n" not in msg and "train.txt" in msg and "expected 2c0fd1f0f43a" in msg and "--base-url" in msg
    assert _leftovers(tmp_path / "coco") == []


def test_existing_corrupted_file_needs_force(mirror, tmp_path, data_root):
    get_dataset("coco", tmp_path, base_url=mirror.url, log=lambda m: None)
    train = tmp_path / "coco/train.txt"
    train.write_text("not the benchmark\n")
    with pytest.raises(UserError, match="--force") as err:
        get_dataset("coco", tmp_path, base_url=mirror.url, log=lambda m: None)
    assert "\n" not in str(err.value)
    assert train.read_text() == "not the benchmark\n"

    mirror.corrupt("data/image_coco.txt")  # --force with a bad mirror keeps the old file
    with pytest.raises(UserError, match="expected"):
        get_dataset("coco", tmp_path, base_url=mirror.url, force=True, log=lambda m: None)
    assert train.read_text() == "not the benchmark\n"
    assert _leftovers(tmp_path / "coco") == ["test.txt", "train.txt"]

    shutil.copyfile(data_root / "coco/train.txt", mirror.root / "data/image_coco.txt")
    lines: list[str] = []
    get_dataset("coco", tmp_path, base_url=mirror.url, force=True, log=lines.append)
    assert train.read_bytes() == (data_root / "coco/train.txt").read_bytes()
    assert len(lines) == 2 and "test.txt: ok, already present" in lines[0] and "train.txt: 546,442" in lines[1]


@pytest.mark.parametrize("how", ["404", "refused", "timeout"])
def test_network_errors_are_one_line(mirror, tmp_path, how):
    base, timeout = mirror.url, 5.0
    if how == "404":
        (mirror.root / "data/testdata/test_coco.txt").unlink()
    elif how == "refused":
        base = f"http://127.0.0.1:{_closed_port()}"
    else:  # a server that accepts connections but never answers
        silent = socket.socket()
        silent.bind(("127.0.0.1", 0))
        silent.listen()
        base, timeout = f"http://127.0.0.1:{silent.getsockname()[1]}", 0.3
    try:
        with pytest.raises(UserError) as err:
            get_dataset("coco", tmp_path, base_url=base, log=lambda m: None, timeout=timeout)
    finally:
        if how == "timeout":
            silent.close()
    msg = str(err.value)
    assert "\n" not in msg and "--base-url" in msg and "by hand into" in msg
    assert f"{base}/data/" in msg and ("HTTP 404" in msg if how == "404" else True)
    assert not list((tmp_path / "coco").glob("*.part"))
    assert not (tmp_path / "coco/test.txt").exists()


def test_truncated_body_is_an_error(mirror, tmp_path):
    mirror.handler.length_delta = 10  # promises more bytes than it sends, then closes
    with pytest.raises(UserError, match="could not download") as err:
        get_dataset("coco", tmp_path, base_url=mirror.url, log=lambda m: None, timeout=5)
    assert "\n" not in str(err.value)
    assert _leftovers(tmp_path / "coco") == []


def test_unwritable_destination(mirror, tmp_path):
    blocker = tmp_path / "file"
    blocker.write_text("x")
    with pytest.raises(UserError, match="cannot write to") as err:
        get_dataset("coco", blocker / "sub", base_url=mirror.url, log=lambda m: None)
    assert "\n" not in str(err.value)


def test_bad_inputs():
    with pytest.raises(UserError, match="valid: coco, emnlp_news"):
        get_dataset("cocoa", Path("unused"))
    with pytest.raises(UserError, match="--base-url must start"):
        get_dataset("coco", Path("unused"), base_url="127.0.0.1:8000")


def test_git_blob_hash_matches_git(tmp_path):
    assert git_blob_sha1(b"") == "e69de29bb2d1d6434b8b29ae775ad8c2e48c5391"  # git's empty blob
    if shutil.which("git") is None:
        pytest.skip("git not installed")
    sample = tmp_path / "s.txt"
    sample.write_bytes("a caption .\nnon-ascii é\n".encode())
    expected = subprocess.run(["git", "hash-object", str(sample)], capture_output=True, text=True,
                              check=True).stdout.strip()
    assert git_blob_sha1(sample.read_bytes()) == expected == file_digest(sample, "git-blob-sha1")


def test_shared_files_match_the_table(data_root):
    blob = file_digest(data_root / "coco/train.txt", "git-blob-sha1")
    assert blob == "f858bc9262633a0630108c03f67ee139dd30e778"  # the README's provenance table
    for local, (name, i) in {"coco/train.txt": ("coco", 0), "coco/test.txt": ("coco", 1),
                             "emnlp_news/test.txt": ("emnlp_news", 1)}.items():
        remote = DATASETS[name][i]
        assert hashlib.sha256((data_root / local).read_bytes()).hexdigest() == remote.digest


def test_emnlp_train_git_blob_mismatch(mirror, tmp_path):
    (mirror.root / "data/emnlp_news.txt").write_text("not the news corpus\n")
    with pytest.raises(UserError) as err:
        get_dataset("emnlp_news", tmp_path, base_url=mirror.url, log=lambda m: None)
    msg = str(err.value)
    assert "\n" not in msg and "git-blob-sha1" in msg and "expected 538653e5f946" in msg
    assert not (tmp_path / "emnlp_news/train.txt").exists()
    assert not list((tmp_path / "emnlp_news").glob("*.part"))


@pytest.mark.parametrize("length_delta", [0, None], ids=["content-length", "no-content-length"])
def test_git_blob_check_accepts_the_right_file(mirror, tmp_path, data_root, length_delta, monkeypatch):
    """The blob id is checked while streaming when the size is announced, after writing when not."""
    mirror.handler.length_delta = length_delta
    body = (data_root / "emnlp_news/test.txt").read_bytes()
    (mirror.root / "data/emnlp_news.txt").write_bytes(body)
    train = Remote("train.txt", "data/emnlp_news.txt", "git-blob-sha1", git_blob_sha1(body))
    monkeypatch.setitem(DATASETS, "emnlp_news", (train, DATASETS["emnlp_news"][1]))
    hashed_after: list[str] = []
    real_digest = download.file_digest
    monkeypatch.setattr(download, "file_digest", lambda p, k: hashed_after.append(p.name) or real_digest(p, k))
    paths = get_dataset("emnlp_news", tmp_path, base_url=mirror.url, log=lambda m: None)
    assert [p.read_bytes() for p in paths] == [body, body]
    assert hashed_after == ([] if length_delta == 0 else ["train.txt.part"])


def test_cli_data_get(mirror, tmp_path):
    proc = run_cli("data", "get", "coco", "--dest", str(tmp_path), "--base-url", mirror.url, timeout=60)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.splitlines() == [str(tmp_path / "coco/train.txt"), str(tmp_path / "coco/test.txt")]
    assert "546,442 bytes" in proc.stderr

    bad = run_cli("data", "get", "nope", "--dest", str(tmp_path), timeout=60)
    assert bad.returncode == 2 and bad.stdout == ""
    assert len(bad.stderr.splitlines()) == 1 and bad.stderr.startswith("textgan: error:")
