"""Small C kernels built with the machine's C compiler and called through ctypes.

Why not a torch C++ extension: its headers take ~50 s to compile, these files ~1 s, and they
need nothing but a C compiler. The kernels are built with OpenMP where the compiler has it and
then run on torch's own threads (csrc/parallel.h says why); elsewhere on the calling thread.
Libraries are cached per source, headers, compiler, flags and CPU (they are built with
-march=native) in $TEXTGAN_CACHE_DIR, else ~/.cache/textgan. $CC names the compiler (else cc, gcc
or clang on PATH); $TEXTGAN_CFLAGS adds compiler flags (e.g. -mno-avx512f: the AVX2 code paths on
an AVX-512 machine). Where a library cannot be built `load` returns None (and `failure` says why)
and textgan.accel keeps the plain torch op.
"""
from __future__ import annotations

import ctypes
import hashlib
import os
import platform
import shlex
import shutil
import subprocess
import tempfile
import warnings
from pathlib import Path

import torch

from textgan import hostinfo
from textgan.cache import cache_dir
from textgan.errors import UserError

SOURCES = Path(__file__).resolve().parent / "csrc"
FLAGS = ["-O3", "-march=native", "-ffp-contract=fast", "-shared", "-fPIC", "-std=c11"]
_LIBS: dict[str, ctypes.CDLL | None] = {}
_FAILURES: dict[str, str] = {}  # why a library could not be built, by name


def _cpu_flags() -> str:
    """What -march=native depends on: a library built on one CPU may not run on another."""
    return hostinfo.cpuinfo_field("flags", "Features") or platform.processor() or platform.machine()


def _build(source: Path, compiler: str, extra: tuple[str, ...] = ()) -> Path:
    version = subprocess.run([compiler, "--version"], capture_output=True, text=True, check=True).stdout
    flags = [*FLAGS, *extra, *shlex.split(os.environ.get("TEXTGAN_CFLAGS", ""))]
    headers = [h.read_text() for h in sorted(source.parent.glob("*.h"))]  # what the source may include
    key = hashlib.sha256("\0".join([source.read_text(), *headers, compiler, version, *flags, _cpu_flags()]).encode())
    target = cache_dir() / f"{source.stem}-{key.hexdigest()[:16]}.so"
    if not target.exists():
        target.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(suffix=".so", dir=target.parent)
        os.close(fd)
        try:
            subprocess.run([compiler, *flags, str(source), "-o", tmp], capture_output=True, text=True, check=True)
            os.replace(tmp, target)  # atomic: concurrent builders never load a half-written file
        finally:
            if os.path.exists(tmp):
                os.unlink(tmp)
    return target


def load(name: str, signatures: dict[str, list] | None = None) -> ctypes.CDLL | None:
    """The library built from csrc/NAME.c with `signatures` (function -> ctypes argument types)
    declared on first load, or None (with one warning, and the cause kept for `failure`) if it
    cannot be built. Built with -fopenmp, or without where the compiler has no OpenMP (every
    source works both ways)."""
    if name not in _LIBS:
        compiler = os.environ.get("CC") or shutil.which("cc") or shutil.which("gcc") or shutil.which("clang")
        lib = None
        try:
            if compiler is None:
                raise OSError("no C compiler found (cc, gcc or clang; or set CC)")
            if shutil.which(compiler) is None:
                raise OSError(f"the C compiler {compiler!r} (from CC) was not found")
            source = SOURCES / f"{name}.c"
            try:
                built = _build(source, compiler, ("-fopenmp",))
            except subprocess.CalledProcessError:
                built = _build(source, compiler)
            lib = ctypes.CDLL(str(built))
            for function, argtypes in (signatures or {}).items():
                getattr(lib, function).argtypes = argtypes
        except (OSError, subprocess.CalledProcessError) as err:
            _FAILURES[name] = _cause(err)
            warnings.warn(f"textgan: C kernel {name!r} unavailable, using the torch version: {_FAILURES[name]}",
                          RuntimeWarning, stacklevel=2)
        _LIBS[name] = lib
    return _LIBS[name]


def _cause(err: Exception) -> str:
    """One line on why a build failed: the compiler's own last error line (e.g. a missing header),
    else the exception's message (no compiler, a missing source file)."""
    detail = (getattr(err, "stderr", "") or "").strip()
    if detail:
        errors = [line for line in detail.splitlines() if "error" in line]
        return (errors or detail.splitlines())[-1].strip()
    return str(err)


def failure(name: str) -> str | None:
    """Why the library NAME could not be built (after a `load` that returned None), else None."""
    return _FAILURES.get(name)


def require(name: str, lib: ctypes.CDLL | None, setting: str) -> None:
    """The one-line error for `setting` demanding the kernel NAME where it could not be built,
    naming the real cause (no compiler, or the compiler's error, such as a missing header)."""
    if lib is None:
        raise UserError(f"{setting} needs the C kernel {name!r}, which cannot be built: "
                        f"{failure(name) or 'unknown cause'}; fix that, or set run.accel=auto")


def ptr(t: torch.Tensor | None) -> int | None:
    """A contiguous CPU tensor's data address for ctypes (None stays NULL)."""
    return None if t is None else t.data_ptr()
