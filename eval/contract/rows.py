"""Long-format result rows: one measurement per row, NaN/inf flagged ``diverged``, never printed as a value.

``COLUMNS`` is the schema of ``results.csv``; each metric's unit and direction come from the score
catalogue (`eval.scoring.catalogue`); `eval.bench.harness` adds the
environment columns and one column per swept profile key (``model.n_hidden``).
"""

from __future__ import annotations

import math
from typing import TYPE_CHECKING

from eval.scoring.catalogue import describe

if TYPE_CHECKING:
    from eval.contract.task import Task

COLUMNS = (
    "run_id",
    "impl",
    "model",
    "seed",
    "profile",
    "dataset",
    "dataset_hash",
    "init_hash",
    "order_hash",
    "epoch",
    "phase",
    "metric",
    "value",
    "unit",
    "better",
    "status",
    "reason",
    "attempts",
)
STATUSES = ("ok", "diverged", "failed", "skipped")


def make_row(
    context: dict,
    phase: str,
    metric: str,
    value: float | None,
    epoch: int | None = None,
    status: str = "ok",
    reason: str = "",
) -> dict:
    """A result row; a non-finite value becomes ``status=diverged`` with an empty value.

    ``phase`` is ``train`` (curves), ``eval`` (scores), ``sample`` (statistics
    of generated windows) or ``timing`` (the quiet throughput phase).
    """
    unit, better = describe(metric)
    if status == "ok" and (value is None or not math.isfinite(float(value))):
        status, reason, value = "diverged", reason or f"{metric} is {value} (NaN/inf)", None
    return {
        **context,
        "epoch": epoch,
        "phase": phase,
        "metric": metric,
        "value": None if value is None else float(value),
        "unit": unit,
        "better": better,
        "status": status,
        "reason": reason,
    }


class InputMismatch(RuntimeError):
    """An input's bytes differ from the hash the run recorded: refuse to train on them."""


class Recorder:
    """Collects a task's rows, all with the task's context."""

    def __init__(self, task: Task) -> None:
        self.context = task.context.columns()
        self.attempt = task.attempt
        self.rows: list[dict] = []

    def add(self, phase: str, metric: str, value: float | None, epoch: int | None = None, **status: str) -> None:
        self.rows.append(make_row(self.context, phase, metric, value, epoch, **status) | {"attempts": self.attempt})

    def flag(self, metrics: tuple[str, ...], reason: str) -> None:
        for metric in metrics:
            self.add("eval", metric, None, status="diverged", reason=reason)
