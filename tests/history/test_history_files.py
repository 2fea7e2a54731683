"""A history folder holding files no recorder of this code wrote, through ``python -m reports history``.

A foreign, truncated or schema-less Parquet file among the recorded runs is skipped and said in one line each (the
file, what is wrong, to move it away), and the rest is read; a newer schema is still refused in one line, also
beside broken files; a folder of which nothing is readable is one line and exit 2, not a traceback (a ``schema`` of
text once passed the version check and crashed it).
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq
import pytest

from eval.history import store
from tests.history.test_history import COMMITS, SEEDS, fake_run

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture
def history(tmp_path, monkeypatch) -> Path:
    """A private history folder (``$RBM_BENCH_HISTORY``, read by the command's process too)."""
    path = tmp_path / "history"
    monkeypatch.setenv("RBM_BENCH_HISTORY", str(path))
    return path


def recorded(tmp_path: Path, n: int = 2) -> list[Path]:
    """``n`` finished runs, one commit each, recorded into the history."""
    scores = {("numpy", "pl_per_unit"): [-0.15] * SEEDS}
    return [store.record(fake_run(tmp_path, f"run{i}", COMMITS[i], scores)) for i in range(n)]


def reports_history(out: Path) -> subprocess.CompletedProcess:
    command = [sys.executable, "-m", "reports", "history", "--out", str(out)]
    return subprocess.run(command, cwd=ROOT, env=os.environ, capture_output=True, text=True, timeout=300)


def altered(table: pa.Table, name: str, column: pa.Array | None) -> pa.Table:
    """``table`` with column ``name`` replaced by ``column`` (None: removed)."""
    at = table.schema.get_field_index(name)
    return table.remove_column(at) if column is None else table.set_column(at, name, column)


def foreign_files(good: Path) -> dict[str, str]:
    """Files beside the recorded ``good`` one that no recorder writes: ``{name: what its line must say}``."""
    table, rows = pq.read_table(good), good.parent
    pq.write_table(pa.table({"track": ["a", "b"], "bpm": [120, 96]}), rows / "other-tool.parquet")
    pq.write_table(altered(table, "schema", pc.cast(table["schema"], pa.string())), rows / "text-schema.parquet")
    pq.write_table(altered(table, "value", pc.cast(table["value"], pa.string())), rows / "text-value.parquet")
    pq.write_table(altered(table, "metric", None), rows / "no-metric.parquet")
    (rows / "cut.parquet").write_bytes(good.read_bytes()[: good.stat().st_size // 2])  # a copy cut short
    return {
        "other-tool.parquet": "no schema column",
        "text-schema.parquet": "column schema is text, not an integer",
        "text-value.parquet": "column value is text, not a number",
        "no-metric.parquet": "no metric column",
        "cut.parquet": "not a readable Parquet file",
    }


def test_foreign_and_broken_files_are_skipped_each_in_one_line_and_the_rest_is_read(tmp_path, history):
    good = recorded(tmp_path)
    expected = foreign_files(good[0])
    done = reports_history(tmp_path / "page")
    assert done.returncode == 0 and "Traceback" not in done.stderr, done.stderr[-2000:]
    lines = done.stderr.strip().splitlines()
    assert len(lines) == len(expected), lines  # one line per skipped file, nothing else
    for name, what in expected.items():
        (line,) = [line for line in lines if f"/{name}:" in line]
        assert what in line and f"move it out of {good[0].parent}" in line, line
    page = (tmp_path / "page" / "history.html").read_text()
    assert all(commit[:7] in page for commit in COMMITS[:2])  # both recorded runs are on the page
    assert "Nothing recorded yet" not in page


@pytest.mark.parametrize("beside", ["nothing else", "a recorded run and a broken file"])
def test_what_cannot_be_read_around_is_refused_in_one_line(tmp_path, history, beside):
    """Nothing readable at all: one line, exit 2. A newer schema: refused as before, even beside a broken file."""
    (good,) = recorded(tmp_path, 1)
    table = pq.read_table(good)
    if beside == "nothing else":  # only a schema of text (it passed the old version check, then crashed)
        foreign = good.with_name("text-schema.parquet")
        pq.write_table(altered(table, "schema", pc.cast(table["schema"], pa.string())), foreign)
        good.unlink()
        expected = [
            f"{foreign.parent}: no history file this code reads, 1 skipped",
            "text-schema.parquet: column schema is text",
        ]
    else:
        future = altered(table, "schema", pa.array([store.SCHEMA + 1] * len(table), pa.int32()))
        pq.write_table(future, good.with_name("future.x.y.parquet"))
        good.with_name("cut.parquet").write_bytes(b"PAR1 cut short")
        newer = f"history schema {store.SCHEMA + 1}, newer than this code reads ({store.SCHEMA})"
        expected = [f"{good.with_name('future.x.y.parquet')}: {newer}"]
    done = reports_history(tmp_path / "page")
    assert done.returncode == 2 and "Traceback" not in done.stderr, done.stderr[-2000:]
    (line,) = done.stderr.strip().splitlines()
    assert line.startswith("error: ") and all(part in line for part in expected), line
    assert not (tmp_path / "page" / "history.html").exists()
