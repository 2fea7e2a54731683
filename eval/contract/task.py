"""Tasks: what one worker process does, with its inputs named by content and its model's config typed.

A task names every input by path *and* sha256; a worker checks each hash before it trains, so no framework
ever trains on other bytes than the ones recorded. It crosses the process boundary as JSON (`to_json`) and
is rebuilt and checked field by field (`from_json`); the model's config travels as its ``[model]`` values
and is rebuilt by its own class (`Task.model_config`), so the task never names a model's type.
"""

from __future__ import annotations

from dataclasses import dataclass, field, fields
from typing import Any, Literal

import impls
from core.typed import build, from_json, to_json
from eval.config import EvalConfig


@dataclass(frozen=True)
class InputFile:
    """One input of a task: a path relative to the run folder and the sha256 of its bytes."""

    path: str
    sha256: str


@dataclass(frozen=True)
class Context:
    """The identifying columns of every row a task produces (``point``: the swept keys, one column each)."""

    run_id: str
    impl: str
    model: str
    seed: int
    profile: str
    dataset: str
    dataset_hash: str
    init_hash: str
    order_hash: str
    device: str
    precision: str
    mode: str = "default"  # the framework's execution mode (`impls.common.Mode`); the worker writes the one it ran
    point: dict[str, Any] = field(default_factory=dict)

    def columns(self) -> dict[str, Any]:
        values = {f.name: getattr(self, f.name) for f in fields(self) if f.name != "point"}
        return values | self.point


@dataclass(frozen=True)
class Task:
    """One worker process: train and score (``kind="train"``) or time (``kind="timing"``) one implementation.

    ``config`` holds the implementation's config as values (``context.model`` names its class: the model
    catalogue's ``config``); `model_config` rebuilds and checks it.
    """

    task_id: str
    kind: Literal["train", "timing"]
    impl: str
    seed: int
    context: Context
    config: dict[str, Any]
    evaluation: EvalConfig
    epochs: int
    inputs: dict[str, InputFile]
    impl_seed: int
    eval_seed: int
    threads: int
    timeout_s: float
    timing_epochs: int = 5
    train_on: Literal["train", "all"] = "train"
    retries: int = 1
    attempt: int = 1
    ablation: bool = False  # a timing task: also time every other execution mode (`ModelPlugin.ablate`)
    ablation_rounds: int = 3  # each mode timed once a round, rounds interleaved: the median and the spread kept
    patience: int = 0  # early stopping: points of the validation curve without improvement (0: off)
    checkpoints: str = ""  # a long run's checkpoint folder, relative to the task's root ("": none)

    def to_json(self) -> str:
        return to_json(self)

    @classmethod
    def from_json(cls, text: str, where: str = "task.json") -> Task:
        return from_json(cls, text, where)

    def model_config(self, **changes: Any) -> Any:
        """The implementation's config (its model's class, every value checked), with ``changes`` applied."""
        cls = impls.model(self.context.model).config
        return build(cls, self.config | changes, f"task {self.task_id}", "model")

    def learning_rates(self, rate: float | None = None) -> list[float]:
        """The rate of each epoch under the config's schedule (`learning_rates`)."""
        config = self.model_config()
        return learning_rates(config.learning_rate if rate is None else rate, self.epochs, config.lr_schedule)


def learning_rates(rate: float, epochs: int, schedule: str) -> list[float]:
    """The rate of each epoch: constant, or decaying linearly to ``rate / epochs`` in the last one."""
    if schedule == "linear":
        return [rate * (1 - e / epochs) for e in range(epochs)]
    return [rate] * epochs
