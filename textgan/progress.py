"""Progress of the commands: the phases of `textgan eval` and `score` (Progress), and the pieces
the training monitor's lines share (textgan.monitor). Torch-free, so `textgan score` stays light:
a tqdm bar on a terminal, elsewhere a progress line at a steady interval."""
from __future__ import annotations

import math
import os
import sys
import threading
import time
from dataclasses import dataclass, field

from tqdm import tqdm


@dataclass
class Phase:
    """The phase a progress line describes: its name, size and how far it has come."""
    desc: str
    total: int
    done: int
    start_done: int
    started: float = field(default_factory=time.monotonic)


def duration(seconds: float) -> str:
    """3725 -> '1h02m05s'; 65 -> '1m05s'; 4.2 -> '4s'."""
    if not math.isfinite(seconds):
        return "?"
    s = int(round(seconds))
    h, m = divmod(s, 3600)
    m, s = divmod(m, 60)
    return f"{h}h{m:02d}m{s:02d}s" if h else f"{m}m{s:02d}s" if m else f"{s}s"


class Progress:
    """Progress of a long command that is not a training (`textgan eval`, `score`): named phases,
    each with a count where it has one (samples drawn) or none (a metric computed in one call).
    On a terminal a tqdm bar per phase; elsewhere one line every `interval_s` seconds (0: none),
    written by a timer thread, so a long phase that advances no count still reports."""

    def __init__(self, command: str, interval_s: float, terminal: bool | None = None):
        self.command = command
        self.terminal = sys.stderr.isatty() if terminal is None else terminal
        self.interval_s = 0.0 if self.terminal else interval_s
        self.started = time.monotonic()
        self.phase_: Phase | None = None
        self.seconds: dict[str, float] = {}  # wall time by phase name, for `eval --profile`
        self.bar = None
        self._stop = threading.Event()
        self._lock = threading.Lock()
        every = 1.0 if self.terminal else self.interval_s
        self._timer = threading.Thread(target=self._tick, args=(every,), daemon=True) if every > 0 else None
        if self._timer is not None:
            self._timer.start()

    def phase(self, desc: str, total: int | None = None, done: int = 0) -> None:
        """Start the next phase (the previous one ends); `done`: of `total`, counted before (a
        phase taken up again after another, as a streamed evaluation's sampling)."""
        with self._lock:
            self._end_phase()
            if self.bar is not None:
                self.bar.close()
                self.bar = None
            self.phase_ = Phase(desc, total or 0, done, done)
            if self.terminal:
                self.bar = tqdm(total=total, initial=done, desc=f"{self.command}: {desc}", file=sys.stderr,
                                dynamic_ncols=True, leave=False)

    def advance(self, n: int = 1) -> None:
        with self._lock:
            if self.phase_ is not None:
                self.phase_.done += n
            if self.bar is not None:
                self.bar.update(n)

    def line(self) -> str:
        """'progress: eval sampling 1024/10000 | 512 it/s, ETA 17s | 1m02s elapsed', or for a
        phase without a count 'progress: eval BLEU and Self-BLEU | 45s in this phase, 1m47s elapsed'."""
        ph, now = self.phase_, time.monotonic()
        elapsed = f"{duration(now - self.started)} elapsed"
        if ph is None:
            return f"progress: {self.command} starting | {elapsed}"
        if not ph.total:
            return f"progress: {self.command} {ph.desc} | {duration(now - ph.started)} in this phase, {elapsed}"
        rate = (ph.done - ph.start_done) / max(now - ph.started, 1e-9)
        eta = (ph.total - ph.done) / rate if rate > 0 else math.inf
        return f"progress: {self.command} {ph.desc} {ph.done}/{ph.total} | {rate:.3g} it/s, ETA {duration(eta)} | {elapsed}"

    def _tick(self, every: float) -> None:
        while not self._stop.wait(every):
            with self._lock:
                if self.bar is not None:
                    self.bar.refresh()
                elif not self.terminal:
                    try:
                        print(self.line(), file=sys.stderr, flush=True)
                    except (OSError, ValueError):  # stderr gone: the command goes on without lines
                        return

    def _end_phase(self) -> None:
        """Add the current phase's wall time to `seconds` (a phase entered twice adds up)."""
        if self.phase_ is not None:
            desc = self.phase_.desc
            self.seconds[desc] = self.seconds.get(desc, 0.0) + time.monotonic() - self.phase_.started
            self.phase_ = None

    def close(self) -> None:
        with self._lock:
            self._end_phase()
        self._stop.set()
        if self._timer is not None:
            self._timer.join()
        if self.bar is not None:
            self.bar.close()
            self.bar = None

    def __enter__(self) -> "Progress":
        return self

    def __exit__(self, *exc) -> None:
        self.close()


def process_age() -> float | None:
    """Wall seconds since this process started, so a profile counts the interpreter's start-up and
    the imports (torch's takes a second or more) that precede any timer the program can start:
    Linux's /proc/self/stat start time (clock ticks after boot) against the boot-time clock. None
    where there is no /proc."""
    try:
        with open("/proc/self/stat", encoding="ascii") as fh:
            fields = fh.read().rsplit(")", 1)[1].split()  # from field 3 of proc(5)'s stat on
        start = int(fields[19]) / os.sysconf("SC_CLK_TCK")  # field 22: starttime
        return max(time.clock_gettime(time.CLOCK_BOOTTIME) - start, 0.0)
    except (OSError, ValueError, IndexError, AttributeError):
        return None


def wall_profile(phases: dict[str, float], entered: float, startup: float | None) -> dict[str, float]:
    """`phases` (seconds by name, timed after `entered`, a time.monotonic()) completed to the wall
    time since the process started: a first row for the `startup` before `entered` (process_age()
    then; none where unknown) and a last one for what no phase timed, so the rows sum to it."""
    spent = time.monotonic() - entered
    rows = {"start-up: Python, imports, arguments": startup} if startup is not None else {}
    rows.update(phases)
    rows["other: between phases, output files"] = max(spent - sum(phases.values()), 0.0)
    return rows


def phase_table(seconds: dict[str, float]) -> str:
    """One line a phase (seconds and share of the total), then the total: `eval --profile`."""
    total = sum(seconds.values())
    width = max((len(name) for name in seconds), default=5)
    lines = [f"{name:<{width}}  {secs:8.2f} s  {secs / total if total else 0:6.1%}" for name, secs in seconds.items()]
    return "\n".join(lines + [f"{'total':<{width}}  {total:8.2f} s"])


class NoProgress(Progress):
    """A Progress that shows nothing (library calls, training-time evaluations)."""

    def __init__(self):
        super().__init__("", 0.0, terminal=False)
