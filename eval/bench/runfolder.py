"""The run folder: the one type that knows every path of a run and writes each file completely or not at all.

::

    reports/runs/<YYYYmmdd-HHMMSS>-<profile>/
        spec.json               the validated profile as run (resume reads it back)
        env.json                the environment the numbers came from
        dataset_manifest.json   what the dataset is made of, with hashes
        inputs/                 dataset artifact, initial weights and batch orders (shared by every framework)
        runs/<task>.json        one per training task or timing task, written as each finishes
        runs/<task>-params.npz  trained parameters (re-score without retraining)
        samples/<task>.npy      generated windows; report.html adds .mid and .wav
        results.csv, results.parquet
        complete.json           written last: row counts and sha256 of the results
        report.md, report.html

A run is complete only when ``complete.json`` exists and the results files
still match the row counts and hashes it records; readers (`compare`, the
gate, `render`) call `RunFolder.results` and get a one-line `IncompleteRun`
otherwise, so a half-written ``results.csv`` can never pass for a finished run.
"""

from __future__ import annotations

import io
import json
from datetime import datetime
from pathlib import Path

import numpy as np
import pandas as pd

from core.errors import UserError
from core.files import atomic_write, atomic_write_bytes, atomic_write_text, sha256_file
from core.paths import runs_dir

RESULT_FILES = ("results.csv", "results.parquet")


class IncompleteRun(UserError):
    """A run folder that is missing, unfinished or altered (one line, exit 2)."""


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

    def samples_path(self, task_id: str) -> Path:
        return self.path / "samples" / f"{task_id}.npy"

    @property
    def samples_dir(self) -> Path:
        return self.path / "samples"

    @property
    def results_csv(self) -> Path:
        return self.path / "results.csv"

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
