"""TensorBoard logging and the console progress bar, kept out of the training maths."""
from __future__ import annotations

import sys
from pathlib import Path

from torch.utils.tensorboard import SummaryWriter
from tqdm import tqdm


class Monitor:
    """Scalars, text samples and hparams to TensorBoard; a tqdm bar on stderr."""

    def __init__(self, run_dir: Path, progress: bool = True, enabled: bool = True):
        self.run_dir = Path(run_dir)
        self.writer = SummaryWriter(log_dir=str(self.run_dir)) if enabled else None
        self.progress = progress and enabled
        self.bar = None

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

    def advance(self, postfix: dict[str, float]) -> None:
        if self.bar is not None:
            self.bar.set_postfix({k: f"{v:.3g}" for k, v in postfix.items()}, refresh=False)
            self.bar.update(1)

    def close_bar(self) -> None:
        if self.bar is not None:
            self.bar.close()
            self.bar = None

    def flush(self) -> None:
        if self.writer is not None:
            self.writer.flush()

    def close(self) -> None:
        self.close_bar()
        if self.writer is not None:
            self.writer.close()
