"""Progress of a phase of tasks: a tqdm bar on a terminal, one plain line per finished task anywhere else.

tqdm switches itself off when stderr is not a terminal (``disable=None``), so a CI log showed nothing for the
whole run. Off a terminal each finished task prints one line instead::

    training numpy-s0 done in 41 s (3 of 12; 9 left)

When tasks run concurrently the time since the previous finish is not a task's time, so the line gives the
phase's elapsed time instead (``training numpy-s1 done, 83 s into the phase (4 of 12; 8 left)``).
"""

from __future__ import annotations

import sys
import time
from typing import IO

from tqdm import tqdm


def _seconds(value: float) -> str:
    if value < 60:
        return f"{value:.0f} s"
    minutes, seconds = divmod(round(value), 60)
    return f"{minutes} min {seconds:02d} s"


class Progress:
    """Count finished tasks of one phase; ``log=False`` prints nothing."""

    def __init__(
        self,
        total: int,
        desc: str,
        log: bool = True,
        stream: IO[str] | None = None,
        unit: str = "task",
        concurrent: bool = False,
    ) -> None:
        self.total, self.desc, self.concurrent = total, desc, concurrent
        self.stream = stream if stream is not None else sys.stderr
        self.finished = 0
        self.started = self.last = time.perf_counter()
        terminal = bool(getattr(self.stream, "isatty", lambda: False)())
        self.mode = "off" if not log else "bar" if terminal else "lines"
        self.bar = tqdm(total=total, desc=desc, unit=unit, file=self.stream) if self.mode == "bar" else None

    def __enter__(self) -> Progress:
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def close(self) -> None:
        if self.bar is not None:
            self.bar.close()
            self.bar = None

    def _line(self, task_id: str) -> str:
        """What one finished task prints off a terminal (and counts it)."""
        now = time.perf_counter()
        self.finished += 1
        left = max(0, self.total - self.finished)
        if self.concurrent:
            took = f", {_seconds(now - self.started)} into the phase"
        else:
            took = f" in {_seconds(now - self.last)}"
        self.last = now
        return f"{self.desc} {task_id} done{took} ({self.finished} of {self.total}; {left} left)"

    def done(self, task_id: str) -> None:
        """One task finished."""
        text = self._line(task_id)
        if self.mode == "bar":
            self.bar.set_postfix_str(task_id, refresh=False)
            self.bar.update()
        elif self.mode == "lines":
            print(text, file=self.stream, flush=True)
