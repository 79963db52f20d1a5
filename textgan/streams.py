"""Console streams that a closed reader cannot break.

`textgan train ... | head -n 1` closes the pipe after one line; the next write would raise
BrokenPipeError in the middle of training and end the run wherever it stood. Instead, the
first EPIPE points the stream's file descriptor at /dev/null and the run goes on to its
checkpoints and final metrics (the run folder's train.log keeps the progress lines).
Torch-free, so the CLI can guard its streams before torch loads.
"""
from __future__ import annotations

import os
import sys
from collections.abc import Iterator
from contextlib import contextmanager


class GuardedStream:
    """Delegates to a text stream; a write or flush that meets a closed pipe silences it instead."""

    def __init__(self, stream):
        self._stream = stream
        self.reader_closed = False

    def _silence(self) -> None:
        self.reader_closed = True
        try:
            devnull = os.open(os.devnull, os.O_WRONLY)
            os.dup2(devnull, self._stream.fileno())  # what is still buffered then flushes into /dev/null
            os.close(devnull)
        except (OSError, ValueError, AttributeError):  # no file descriptor (an in-memory stream)
            pass

    def write(self, text: str) -> int:
        try:
            return self._stream.write(text)
        except BrokenPipeError:
            self._silence()
            return len(text)

    def flush(self) -> None:
        try:
            self._stream.flush()
        except BrokenPipeError:
            self._silence()
            try:
                self._stream.flush()
            except (BrokenPipeError, ValueError):
                pass

    def __getattr__(self, name: str):
        return getattr(self._stream, name)


@contextmanager
def guarded_streams() -> Iterator[None]:
    """sys.stdout and sys.stderr wrapped in GuardedStream for the duration; flushed through the
    guards at the end, so the interpreter's own last flush finds nothing left to write."""
    saved = {name: getattr(sys, name) for name in ("stdout", "stderr")}
    for name, stream in saved.items():
        if stream is not None and not isinstance(stream, GuardedStream):
            setattr(sys, name, GuardedStream(stream))
    try:
        yield
    finally:
        for name, stream in saved.items():
            current = getattr(sys, name)
            if isinstance(current, GuardedStream):
                current.flush()
            setattr(sys, name, stream)
