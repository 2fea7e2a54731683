"""Long runs: a checkpoint after every epoch, so a task killed in its tenth hour resumes where it stopped.

A profile that declares ``[run] long = true`` gives each training task a checkpoint folder (``checkpoints/<task>``
in the run folder, `eval.bench.tasks.prepare`). After every epoch the task's plug-in saves there what the rest
of its training depends on — the parameters, the early-stopping state (`eval.models.base.BestEpoch`: its best
epoch's parameters too), the rows written so far and the state of every random stream it registered — and a
task started again (the harness's retry after a kill, or ``--resume`` of the run) continues from the epoch after
the last one saved. Each epoch of a long run draws its training noise from a stream of its own, seeded from
the task's seed and the epoch (`Checkpoints.epoch_seed`, `impls.Implementation.reseed`), so a resumed task
trains exactly as one that was never stopped (tested: ``tests/bench/test_long_runs.py``).

A checkpoint is one folder ``epoch-NNNNNN`` written beside its predecessor under a temporary name and renamed
into place (a kill never leaves half of one), then the predecessor is removed; a checkpoint of another task
(other inputs, config or seeds: its fingerprint) is refused in one line, never trained on. A finished task keeps
its last checkpoint, so ``--extend`` can train it on for more epochs (`eval.bench.extend`).
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
from dataclasses import MISSING, dataclass, fields, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol

import numpy as np

import impls
from core.files import atomic_save_npz, atomic_write_text
from eval.config import EvalConfig
from eval.contract.task import Task

if TYPE_CHECKING:
    from eval.contract.rows import Recorder


class Stopping(Protocol):
    """What a checkpoint keeps of early stopping (`eval.models.base.BestEpoch`): its counters and best weights."""

    params: impls.Params | None

    def state(self) -> dict[str, Any]: ...

    def set_state(self, state: dict[str, Any], params: impls.Params | None) -> None: ...


class CheckpointMismatch(RuntimeError):
    """A checkpoint folder holds another task's state (one line: which and what to do)."""


def latest_checkpoint(folder: Path) -> Path | None:
    """The newest finished checkpoint folder (``epoch-NNNNNN``) under ``folder``, or None; partial ones are skipped."""
    done = sorted(Path(folder).glob("epoch-[0-9]*[0-9]")) if Path(folder).is_dir() else []
    return done[-1] if done else None


def fingerprint(task: Task) -> str:
    """sha256 of everything that decides a task's training: the task as JSON, its attempt count left out, and every
    value at its class's default left out too (the task's own fields, its model config's, its ``[eval]``'s), so a
    newer version of the code that adds an option leaves a long run's checkpoints usable while the option is off."""
    values = json.loads(replace(task, attempt=1).to_json())
    for where, cls in ((None, Task), ("config", impls.model(task.context.model).config), ("evaluation", EvalConfig)):
        table = values if where is None else values[where]
        for field in fields(cls):
            if field.default is not MISSING and field.name in table and table[field.name] == _plain(field.default):
                del table[field.name]
    return hashlib.sha256(json.dumps(values, sort_keys=True).encode()).hexdigest()


def _plain(value: Any) -> Any:
    """A default as the task's JSON holds it (tuples become lists)."""
    return json.loads(json.dumps(value)) if isinstance(value, tuple | list | dict) else value


@dataclass
class Saved:
    """One checkpoint as read back: the epoch it follows and what training needs to go on."""

    epoch: int
    params: impls.Params
    rows: list[dict]
    best: dict
    best_params: impls.Params | None
    streams: dict[str, dict]
    stopped: bool  # early stopping had ended training at this epoch


class Checkpoints:
    """The checkpoint folder of one task, written by its worker after each epoch.

    Parameters
    ----------
    folder : Path
        ``checkpoints/<task id>`` under the task's root (the run folder, for the local executors).
    task : Task
        Its fingerprint is stored with every checkpoint and checked before one is used.
    """

    def __init__(self, folder: Path, task: Task) -> None:
        self.folder, self.task, self.fingerprint = Path(folder), task, fingerprint(task)
        self.params_type = impls.model(task.context.model).params
        self.streams: dict[str, np.random.Generator] = {}
        self.saved: Saved | None = None  # the checkpoint the task resumes from (`load`)

    def epoch_seed(self, epoch: int) -> int:
        """The seed of epoch ``epoch``'s training noise: the task's seed and the epoch, through `SeedSequence`."""
        return int(np.random.SeedSequence(self.task.impl_seed, spawn_key=(epoch,)).generate_state(1)[0])

    def stream(self, name: str, rng: np.random.Generator) -> np.random.Generator:
        """Register a NumPy random stream whose state every checkpoint keeps (e.g. the validation curve's AIS)."""
        self.streams[name] = rng
        return rng

    def load(self) -> Saved | None:
        """The last checkpoint (kept as `saved`), or None; raises `CheckpointMismatch` if it is another task's."""
        latest = latest_checkpoint(self.folder)
        if latest is None:
            return None
        state = json.loads((latest / "state.json").read_text())
        if state["fingerprint"] != self.fingerprint:
            raise CheckpointMismatch(
                f"{latest}: a checkpoint of another task (its inputs, config or seeds differ); delete "
                f"{self.folder} to train this task from its first epoch"
            )
        with np.load(latest / "params.npz", allow_pickle=False) as data:
            params = self.params_type(*(data[name] for name in self.params_type.names()))
        best_params = None
        if (latest / "best.npz").is_file():
            with np.load(latest / "best.npz", allow_pickle=False) as data:
                best_params = self.params_type(*(data[name] for name in self.params_type.names()))
        self.saved = Saved(
            state["epoch"], params, state["rows"], state["best"], best_params, state["streams"], state["stopped"]
        )
        return self.saved

    def resume(self, best: Stopping, record: Recorder) -> tuple[int, bool]:
        """Restore the loaded checkpoint's rows, early-stopping state and registered streams (call after `stream`).

        Returns the first epoch still to train (1: none saved) and whether early stopping had ended training.
        """
        saved = self.saved
        if saved is None:
            return 1, False
        record.rows[:] = saved.rows
        best.set_state(saved.best, saved.best_params)
        for name, state in saved.streams.items():
            self.streams[name].bit_generator.state = state
        return saved.epoch + 1, saved.stopped

    def save(self, epoch: int, params: impls.Params, best: Stopping, record: Recorder, stopped: bool) -> None:
        """Write the checkpoint that follows ``epoch`` (atomically) and remove the one before it; ``stopped``:
        early stopping ends training here (a task resumed from it goes straight to scoring)."""
        self.folder.mkdir(parents=True, exist_ok=True)
        previous = latest_checkpoint(self.folder)
        final = self.folder / f"epoch-{epoch:06d}"
        partial = self.folder / f".epoch-{epoch:06d}-{os.getpid()}"
        shutil.rmtree(partial, ignore_errors=True)
        partial.mkdir()
        atomic_save_npz(partial / "params.npz", compressed=False, **dict(zip(params.names(), params.arrays())))
        if best.params is not None:
            arrays = dict(zip(best.params.names(), best.params.arrays()))
            atomic_save_npz(partial / "best.npz", compressed=False, **arrays)
        state = {
            "fingerprint": self.fingerprint,
            "epoch": epoch,
            "stopped": stopped,
            "rows": record.rows,
            "best": best.state(),
            "streams": {name: rng.bit_generator.state for name, rng in self.streams.items()},
        }
        atomic_write_text(partial / "state.json", json.dumps(state))  # each file synced before the folder is renamed
        shutil.rmtree(final, ignore_errors=True)
        partial.rename(final)
        if previous is not None and previous != final:
            shutil.rmtree(previous, ignore_errors=True)
        fault = f"{self.task.task_id}:kill-after-epoch={epoch}"  # test-only (`eval.bench.worker.injected_fault`)
        if os.environ.get("RBM_BENCH_FAULT") == fault and self.task.attempt == 1:
            os.kill(os.getpid(), 9)

    def adopt(self, saved: Path, state: dict) -> None:
        """Take another run's checkpoint ``saved`` (``state``: its state.json) as this task's own: its files, and
        its rows stamped with this task's context. The caller (`eval.bench.extend`) has checked that it is this
        task's training with fewer epochs."""
        self.folder.mkdir(parents=True, exist_ok=True)
        partial = self.folder / f".adopted-{os.getpid()}"
        shutil.rmtree(partial, ignore_errors=True)
        shutil.copytree(saved, partial)
        context = self.task.context.columns()
        rows = [row | context for row in state["rows"]]
        atomic_write_text(partial / "state.json", json.dumps(state | {"fingerprint": self.fingerprint, "rows": rows}))
        partial.rename(self.folder / saved.name)
