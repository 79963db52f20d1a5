"""TensorBoard logging, the console progress bar, and progress lines off a terminal, kept out of
the training maths."""
from __future__ import annotations

import math
import sys
import time
from pathlib import Path

from torch.utils.tensorboard import SummaryWriter
from tqdm import tqdm

from textgan.progress import Phase, duration

LOG_FILE = "train.log"  # in the run folder: the progress lines and the final metrics


def metrics_table(metrics: dict[str, float], title: str) -> list[str]:
    """The metrics as an aligned two-column table under `title`, one metric a line, sorted by name."""
    width = max(map(len, metrics), default=0)
    return [title] + [f"  {name:<{width}}  {value:.4g}" for name, value in sorted(metrics.items())]


def append_log(run_dir: Path, lines: list[str]) -> None:
    """Add lines to the run folder's train.log (best effort: a log line never stops a run)."""
    try:
        with open(Path(run_dir) / LOG_FILE, "a", encoding="utf-8") as fh:
            fh.write("".join(f"{line}\n" for line in lines))
    except OSError:
        pass


class Monitor:
    """Scalars, text samples and hparams to TensorBoard; a tqdm bar on stderr when it is a terminal,
    else (interval_s > 0) one progress line every interval_s seconds, on stderr and in train.log."""

    def __init__(self, run_dir: Path, progress: bool = True, enabled: bool = True, interval_s: float = 0.0):
        self.run_dir = Path(run_dir)
        self.writer = SummaryWriter(log_dir=str(self.run_dir)) if enabled else None
        self.progress = progress and enabled
        self.interval_s = interval_s if enabled and not self.progress else 0.0
        self.bar = None
        self.phase: Phase | None = None
        self.last_line = time.monotonic()

    def scalars(self, values: dict[str, float], step: int) -> None:
        if self.writer is None:
            return
        for tag, value in values.items():
            self.writer.add_scalar(tag, float(value), step)

    def text(self, tag: str, lines: list[str], step: int) -> None:
        if self.writer is None:
            return
        body = "\n".join(f"    {line}" for line in lines)  # markdown code block keeps spacing
        self.writer.add_text(tag, body, step)

    def hparams(self, hparams: dict, metrics: dict[str, float]) -> None:
        if self.writer is None:
            return
        clean = {k: (v if isinstance(v, (int, float, str, bool)) else str(v)) for k, v in hparams.items()}
        self.writer.add_hparams(clean, {f"hparam/{k}": float(v) for k, v in metrics.items()},
                                run_name=".")

    def start_bar(self, total: int, desc: str, initial: int = 0) -> None:
        self.close_bar()
        if self.progress:
            self.bar = tqdm(total=total, desc=desc, initial=initial, file=sys.stderr,
                            dynamic_ncols=True, leave=False)
        elif self.interval_s > 0:
            self.phase = Phase(desc, total, initial, initial)

    def advance(self, postfix: dict[str, float]) -> None:
        if self.bar is not None:
            self.bar.set_postfix({k: f"{v:.3g}" for k, v in postfix.items()}, refresh=False)
            self.bar.update(1)
        elif self.phase is not None:
            self.phase.done += 1
            if time.monotonic() - self.last_line >= self.interval_s:
                self.log_line(self.progress_line(postfix))

    def progress_line(self, postfix: dict[str, float]) -> str:
        """'progress: adversarial 120/2000 | d 0.693 g 0.701 tau 0.85 | 2.31 it/s, ETA 13m34s'."""
        ph = self.phase
        rate = (ph.done - ph.start_done) / max(time.monotonic() - ph.started, 1e-9)
        eta = (ph.total - ph.done) / rate if rate > 0 else math.inf
        values = " ".join(f"{k} {v:.4g}" for k, v in postfix.items())
        return f"progress: {ph.desc} {ph.done}/{ph.total} | {values} | {rate:.3g} it/s, ETA {duration(eta)}"

    def log_line(self, line: str) -> None:
        """One line on stderr, flushed at once (a pipe or file buffers otherwise), and in train.log."""
        self.last_line = time.monotonic()
        print(line, file=sys.stderr, flush=True)
        append_log(self.run_dir, [line])

    def close_bar(self) -> None:
        if self.bar is not None:
            self.bar.close()
            self.bar = None
        self.phase = None

    def flush(self) -> None:
        if self.writer is not None:
            self.writer.flush()

    def close(self) -> None:
        self.close_bar()
        if self.writer is not None:
            self.writer.close()

