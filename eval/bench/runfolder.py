"""The run folder: the one type that knows every path of a run and writes each file completely or not at all.

::

    reports/runs/<YYYYmmdd-HHMMSS>-<profile>/
        spec.json               the validated profile as run (resume reads it back)
        env.json                the environment the numbers came from
        dataset_manifest.json   what the dataset is made of, with hashes
        inputs/                 dataset artifact, initial weights and batch orders (shared by every framework)
        runs/<task>.json        one per training task or timing task, written as each finishes
        runs/<task>-params.npz  trained parameters (re-score without retraining)
        runs/index.json         sha256 of every file above a result is derived from (spec, task files, samples)
        checkpoints/<task>/     a long run's last epoch per unfinished task, written by its worker (removed once
                                the task's result is stored; `eval.models.checkpoints`)
        samples/<task>.npy      generated windows; report.html adds .mid and .wav
        profiles.json           each timing task's update under its framework's profiler (`eval.timing.profile`)
        results.csv, results.parquet
        complete.json           written last: row counts and sha256 of the results
        report.md, report.html

A run is complete only when ``complete.json`` exists and the results files
still match the row counts and hashes it records; readers (`compare`, the
gate, `render`) call `RunFolder.results` and get a one-line `IncompleteRun`
otherwise, so a half-written ``results.csv`` can never pass for a finished run.

Every file a result is derived from is recorded in ``runs/index.json`` as it is written (`RunFolder.record`);
``--resume`` checks each stored file against it before keeping it (`RunFolder.check_recorded`), so an edited
score is refused, never carried into new results. One process writes a run at a time (`RunFolder.lock`).
"""

from __future__ import annotations

import contextlib
import fcntl
import io
import json
import os
from collections.abc import Iterator
from datetime import datetime
from pathlib import Path

import numpy as np
import pandas as pd

from core.errors import UserError
from core.files import atomic_write, atomic_write_bytes, atomic_write_text, sha256_file
from core.paths import runs_dir

RESULT_FILES = ("results.csv", "results.parquet")
LOCK_FILE = ".writer.lock"  # a dot-name: no reader opens it, and copying a run folder copies no lock (flock is not)


class IncompleteRun(UserError):
    """A run folder that is missing, unfinished or altered (one line, exit 2)."""


class RunLocked(IncompleteRun):
    """Another process is writing this run folder (one line, exit 2)."""


class RunFolder:
    """Paths and atomic writes of one run folder."""

    def __init__(self, path: Path | str) -> None:
        self.path = Path(path)

    # ------------------------------------------------------------------ creation
    @classmethod
    def create(cls, name: str, parent: Path | None = None, path: Path | None = None) -> RunFolder:
        """A new, empty run folder (``<timestamp>-<name>`` under ``parent``); never reuses an existing one."""
        path = Path(path) if path else (parent or runs_dir()) / f"{datetime.now().strftime('%Y%m%d-%H%M%S')}-{name}"
        while path.exists():
            path = path.with_name(path.name + "-1")
        path.mkdir(parents=True)
        return cls(path)

    @classmethod
    def open(cls, path: Path | str) -> RunFolder:
        """An existing run folder (finished or not); `IncompleteRun` if it is not one."""
        folder = cls(path)
        if not folder.spec.is_file():
            raise IncompleteRun(f"{folder.path}: not a run folder (no spec.json); give reports/runs/<run>")
        return folder

    # ------------------------------------------------------------------ paths
    @property
    def name(self) -> str:
        return self.path.name

    @property
    def spec(self) -> Path:
        return self.path / "spec.json"

    @property
    def env(self) -> Path:
        return self.path / "env.json"

    @property
    def dataset_manifest(self) -> Path:
        return self.path / "dataset_manifest.json"

    @property
    def inputs(self) -> Path:
        return self.path / "inputs"

    @property
    def dataset_dir(self) -> Path:
        return self.inputs / "dataset"

    def init_path(self, key: str) -> Path:
        return self.inputs / f"init-{key}.npz"

    def order_path(self, key: str) -> Path:
        return self.inputs / f"order-{key}.npz"

    def result_path(self, task_id: str) -> Path:
        return self.path / "runs" / f"{task_id}.json"

    def params_path(self, task_id: str) -> Path:
        return self.path / "runs" / f"{task_id}-params.npz"

    def checkpoint_dir(self, task_id: str) -> Path:
        return self.path / "checkpoints" / task_id

    def samples_path(self, task_id: str) -> Path:
        return self.path / "samples" / f"{task_id}.npy"

    @property
    def index(self) -> Path:
        return self.path / "runs" / "index.json"

    @property
    def samples_dir(self) -> Path:
        return self.path / "samples"

    @property
    def results_csv(self) -> Path:
        return self.path / "results.csv"

    @property
    def profiles(self) -> Path:
        return self.path / "profiles.json"

    def read_profiles(self) -> dict[str, dict]:
        """Each timing task's update under its framework's profiler (`eval.timing.profile`), by task; {} for a run
        from before profiles (or a copy without them)."""
        return self.read_json(self.profiles) if self.profiles.is_file() else {}

    @property
    def complete_marker(self) -> Path:
        return self.path / "complete.json"

    @property
    def report_md(self) -> Path:
        return self.path / "report.md"

    @property
    def report_html(self) -> Path:
        return self.path / "report.html"

    # ------------------------------------------------------------------ writing
    def _ensure(self, path: Path) -> Path:
        path.parent.mkdir(parents=True, exist_ok=True)
        return path

    def write_json(self, path: Path, value: object) -> None:
        atomic_write_text(self._ensure(path), json.dumps(value, indent=1, default=str))

    def write_text(self, path: Path, text: str) -> None:
        atomic_write_text(self._ensure(path), text)

    def write_bytes(self, path: Path, data: bytes) -> None:
        atomic_write_bytes(self._ensure(path), data)

    def write_npz(self, path: Path, **arrays: np.ndarray) -> None:
        def write(temporary: Path) -> None:
            with open(temporary, "wb") as handle:
                np.savez(handle, **arrays)

        atomic_write(self._ensure(path), write)

    def write_results(self, frame: pd.DataFrame) -> None:
        """results.csv and results.parquet, then complete.json with their row counts and hashes."""
        self.invalidate()
        buffer = io.StringIO()
        frame.to_csv(buffer, index=False)
        self.write_text(self.results_csv, buffer.getvalue())
        parquet = io.BytesIO()
        frame.to_parquet(parquet, index=False)
        self.write_bytes(self.path / "results.parquet", parquet.getvalue())
        self.write_json(
            self.complete_marker,
            {
                "rows": len(frame),
                "columns": list(frame.columns),
                "files": {name: sha256_file(self.path / name) for name in RESULT_FILES},
                "finished": datetime.now().isoformat(timespec="seconds"),
            },
        )

    def invalidate(self) -> None:
        """Mark the run unfinished (before results are rewritten, e.g. on resume)."""
        self.complete_marker.unlink(missing_ok=True)

    # ------------------------------------------------------------------ one writer
    @contextlib.contextmanager
    def lock(self) -> Iterator[None]:
        """Hold the run's writer lock (``flock`` on a file in the folder) or raise `RunLocked` at once.

        The kernel releases it when the process ends, however it ends, so a killed writer leaves no stale lock.
        """
        path = self.path / LOCK_FILE
        handle = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)  # not inherited by child processes (PEP 446)
        try:
            try:
                fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                holder = os.pread(handle, 32, 0).decode(errors="replace").strip() or "unknown"
                raise RunLocked(
                    f"{self.path}: another process is writing this run (pid {holder}); wait for it or resume later"
                ) from None
            os.ftruncate(handle, 0)
            os.pwrite(handle, str(os.getpid()).encode(), 0)
            yield
        finally:
            os.close(handle)

    # ------------------------------------------------------------------ the hashes of stored files
    def _key(self, path: Path) -> str:
        return Path(path).relative_to(self.path).as_posix()

    def recorded(self) -> dict[str, str]:
        """``{path relative to the run: sha256}`` of every file recorded so far."""
        if not self.index.is_file():
            return {}
        try:
            index = json.loads(self.index.read_text())
        except (json.JSONDecodeError, UnicodeDecodeError):
            index = None
        if not isinstance(index, dict):
            raise IncompleteRun(f"{self.index}: corrupt; delete it to recompute every task, or start a new run")
        return index

    def record(self, *paths: Path) -> None:
        """Add the sha256 of each (just written) file to the run's index."""
        index = self.recorded()
        for path in paths:
            index[self._key(path)] = sha256_file(path)
        self.write_json(self.index, index)

    def check_recorded(self, path: Path, what_to_do: str, index: dict[str, str] | None = None) -> bool:
        """True when ``path`` matches its recorded sha256, False when it was never recorded (not to be trusted:
        compute it again); `IncompleteRun` naming the file and ``what_to_do`` when it is missing or changed."""
        digest = (self.recorded() if index is None else index).get(self._key(path))
        if digest is None:
            return False
        if not path.is_file() or sha256_file(path) != digest:
            state = "changed since the run wrote it" if path.exists() else "missing, though the run wrote it"
            raise IncompleteRun(f"{path}: {state} (runs/index.json); {what_to_do}")
        return True

    def check_all_recorded(self, what_to_do: str = "start a new run") -> None:
        """Every recorded file still as written (before results are derived from them)."""
        index = self.recorded()  # read once, not once per file
        for key in index:
            self.check_recorded(self.path / key, what_to_do, index)

    # ------------------------------------------------------------------ reading
    def read_json(self, path: Path) -> dict:
        try:
            return json.loads(path.read_text())
        except FileNotFoundError:
            raise IncompleteRun(f"{path}: missing; the run is incomplete (resume it with --resume)") from None
        except (json.JSONDecodeError, UnicodeDecodeError) as error:
            raise IncompleteRun(f"{path}: corrupt ({error}); resume the run to rewrite it") from None

    def check_complete(self) -> dict:
        """The completion record, after checking that every results file still matches it."""
        if not self.complete_marker.is_file():
            raise IncompleteRun(
                f"{self.path}: the run is incomplete (no complete.json); finish it with "
                f"tox -e bench -- --resume {self.path}"
            )
        record = self.read_json(self.complete_marker)
        for name, digest in record.get("files", {}).items():
            path = self.path / name
            if not path.is_file() or sha256_file(path) != digest:
                raise IncompleteRun(
                    f"{path}: truncated or changed since the run finished ({record['rows']} rows expected); "
                    f"re-create it with --resume {self.path}"
                )
        return record

    def results(self) -> pd.DataFrame:
        """The run's rows; `IncompleteRun` unless the run finished and its files are intact."""
        record = self.check_complete()
        frame = pd.read_csv(self.results_csv, low_memory=False)
        if len(frame) != record["rows"]:
            raise IncompleteRun(f"{self.results_csv}: {len(frame)} rows, {record['rows']} expected; resume the run")
        return frame
