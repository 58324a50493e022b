"""Progress on stderr: a live bar with an ETA on a terminal, periodic plain lines elsewhere.

A terminal gets a rich progress bar (elapsed time and the time remaining). A log file, a pipe or
a CI job gets plain lines instead of a bar: the first step, then at most one line every
``interval_s`` seconds, then the last, each with the elapsed time and the estimated time left
(``elapsed / done * (total - done)``, an upper bound when early stopping may end sooner).
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

from rich.console import Console

#: Seconds between two plain progress lines.
PLAIN_INTERVAL_S = 10.0


def format_seconds(seconds: float) -> str:
    """``42s``, ``3m05s``, ``1h02m``."""
    s = max(0, int(round(seconds)))
    if s < 60:
        return f"{s}s"
    if s < 3600:
        return f"{s // 60}m{s % 60:02d}s"
    return f"{s // 3600}h{(s % 3600) // 60:02d}m"


class Ticker:
    """When a plain progress line is due, and the estimated time left.

    ``start`` is the step the run starts from (a resumed run has steps already done); the rate
    is measured over the steps done in this process only."""

    def __init__(self, total: int | None, start: int = 0, interval_s: float = PLAIN_INTERVAL_S,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.total, self.start, self.interval_s, self.clock = total, start, interval_s, clock
        self.started = clock()
        self._last: float | None = None

    def elapsed(self) -> float:
        return self.clock() - self.started

    def eta(self, done: int) -> float | None:
        """Seconds left at the rate so far; None before the first step or without a total."""
        ran = done - self.start
        if self.total is None or ran <= 0:
            return None
        return self.elapsed() / ran * max(self.total - done, 0)

    def due(self, done: int) -> bool:
        """True for the first step, the last, and once ``interval_s`` has passed since the
        previous line (the caller prints when it is)."""
        now = self.clock()
        if self._last is None or (self.total is not None and done >= self.total) or now - self._last >= self.interval_s:
            self._last = now
            return True
        return False

    def line(self, label: str, done: int, unit: str = "", status: str = "", upper_bound: bool = False) -> str:
        """``MTL: epoch 20/100, 12s elapsed, ETA 48s  y rmse=0.51``; ``upper_bound`` says "at
        most" (early stopping may end the run sooner)."""
        total = f"/{self.total}" if self.total is not None else ""
        eta = self.eta(done)
        bound = "at most " if upper_bound else ""
        left = f", ETA {bound}{format_seconds(eta)}" if eta is not None and done < (self.total or 0) else ""
        text = f"{label}: {unit}{' ' if unit else ''}{done}{total}, {format_seconds(self.elapsed())} elapsed{left}"
        return f"{text}  {status}" if status else text


def stderr_console() -> Console:
    return Console(stderr=True)


def live_bar(console: Console, transient: bool) -> Any:
    """A rich progress bar with the count, the elapsed time and the time remaining."""
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn, TimeRemainingColumn

    return Progress(TextColumn("[bold]{task.description}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(),
                    TextColumn("eta"), TimeRemainingColumn(), TextColumn("{task.fields[status]}"),
                    console=console, transient=transient)


def plain_print(console: Console, text: str) -> None:
    console.print(text, markup=False, highlight=False, soft_wrap=True)
