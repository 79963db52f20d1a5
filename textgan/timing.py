"""Wall time by phase, for `--profile`: where an evaluation's seconds go."""
from __future__ import annotations

import time
from contextlib import contextmanager


class Phases:
    """Seconds spent in named phases, in the order first entered; a phase entered twice adds up."""

    def __init__(self):
        self.seconds: dict[str, float] = {}

    @contextmanager
    def phase(self, name: str):
        start = time.perf_counter()
        try:
            yield
        finally:
            self.seconds[name] = self.seconds.get(name, 0.0) + time.perf_counter() - start

    def table(self) -> str:
        """One line a phase (seconds and share of the total), then the total."""
        total = sum(self.seconds.values())
        width = max((len(name) for name in self.seconds), default=5)
        lines = [f"{name:<{width}}  {secs:8.2f} s  {secs / total if total else 0:6.1%}"
                 for name, secs in self.seconds.items()]
        return "\n".join(lines + [f"{'total':<{width}}  {total:8.2f} s"])


class NoPhases(Phases):
    """The default: phases run untimed."""

    @contextmanager
    def phase(self, name: str):
        yield
