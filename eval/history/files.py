"""Which files of the history folder are read: each one checked first, a foreign or broken one skipped and said.

The history folder is shared (a CI cache, a copy, a colleague's runs), so it may hold a file no recorder of this
code wrote: a truncated copy, another tool's Parquet, a file without a ``schema`` column or with one of text. Read
blindly, one such file broke every command that reads the history (a traceback, or one line that named no file)
and a text or missing ``schema`` even passed the version check. Each ``*.parquet`` file is therefore checked before
DuckDB reads it (`problem`): a Parquet file, an integer ``schema`` with no empty value, the columns the readers need
(`eval.history.store.NEEDED`) present, and every column the store writes (`eval.history.store.FIELDS`) of its type.
What fits each case:

* a file that fails is **skipped and reported**, one line each (the file, what is wrong, to move it away), and the
  rest is read: one corrupt file among hundreds costs its own rows, not the history;
* a file of a **newer schema** is **refused** (one line, exit 2), as before: it says a newer checkout records into
  this folder, and judging its series without those rows would judge part of the history unsaid;
* files present but **none** readable is **refused** too (one line, exit 2): an empty page or a gate with "no
  history yet" would hide that everything was skipped.

The check reads each file's footer and its ``schema`` column (a millisecond or so), once per process: files are
renamed into place, never rewritten, so a file of the same size and time was checked before. Damage inside a
data page of another column is not seen here; DuckDB's query then fails in one line (`eval.history.store.query`).
"""

from __future__ import annotations

import sys
from collections.abc import Callable, Sequence
from pathlib import Path

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from core.errors import UserError

_CHECKED: dict[tuple[str, int, int], tuple[str, str]] = {}  # (path, size, mtime) -> (verdict, line)
_REPORTED: set[tuple[str, int, int]] = set()


def _kind(kind: pa.DataType) -> str:
    """A column type as the readers tell types apart (widths and encodings aside; DuckDB unifies those)."""
    if pa.types.is_dictionary(kind):
        kind = kind.value_type
    for name, test in (("an integer", pa.types.is_integer), ("a number", pa.types.is_floating),
                       ("text", pa.types.is_string), ("text", pa.types.is_large_string),
                       ("a boolean", pa.types.is_boolean), ("empty", pa.types.is_null)):  # fmt: skip
        if test(kind):
            return name
    if pa.types.is_timestamp(kind):
        return "a time (UTC)" if kind.tz else "a time"
    return str(kind)


def _fits(found: pa.DataType, wanted: pa.DataType) -> bool:
    got, want = _kind(found), _kind(wanted)
    return got in (want, "empty") or (want == "a number" and got == "an integer")


def problem(path: Path, fields: pa.Schema, needed: Sequence[str], newest: int) -> tuple[str, str]:
    """``("ok", "")``, ``("skip", what is wrong)`` or ``("newer", the schema)`` for one history file.

    Parameters
    ----------
    path : path
        A ``*.parquet`` file of the history folder.
    fields : pyarrow.Schema
        The store's columns and their types; a column of the file that is one of them must be of its type.
    needed : sequence of str
        The columns the readers need (``schema`` among them).
    newest : int
        The newest schema this code reads.
    """
    try:
        parquet = pq.ParquetFile(path)
        columns = parquet.schema_arrow
    except (OSError, pa.ArrowException) as error:
        return "skip", f"not a readable Parquet file ({str(error).strip().splitlines()[0][:120]})"
    if "schema" not in columns.names:
        return "skip", "no schema column: not a file of the history"
    if missing := [name for name in needed if name not in columns.names]:
        return "skip", f"no {', '.join(missing)} column{'s' * (len(missing) > 1)}: not a file of the history"
    for name in columns.names:
        if name in fields.names and not _fits(columns.field(name).type, fields.field(name).type):
            return "skip", f"column {name} is {_kind(columns.field(name).type)}, not {_kind(fields.field(name).type)}"
    try:
        schema = parquet.read(columns=["schema"]).column(0)
    except (OSError, pa.ArrowException) as error:
        return "skip", f"its schema column cannot be read ({str(error).strip().splitlines()[0][:120]})"
    if schema.null_count:
        return "skip", f"schema is empty in {schema.null_count} of {len(schema)} rows"
    low, high = (pc.min(schema).as_py(), pc.max(schema).as_py()) if len(schema) else (1, 1)
    if high > newest:
        return "newer", str(high)
    if low < 1:
        return "skip", f"schema {low}: no schema of the history"
    return "ok", ""


def readable(
    directory: Path, fields: pa.Schema, needed: Sequence[str], newest: int, report: Callable[[str], None] | None = None
) -> list[Path]:
    """The ``*.parquet`` files of ``directory`` this code reads, each checked (`problem`).

    Each other one is passed to ``report`` as one line, once per process (default: printed to stderr). A file of a
    newer schema than ``newest``, or files present and none readable, is a `UserError` (one line).
    """
    report = report or (lambda line: print(line, file=sys.stderr))
    files, skipped = [], []
    for path in sorted(directory.glob("*.parquet")):
        try:
            stat = path.stat()
        except OSError:  # removed since it was listed (a run finished again replaces its file)
            continue
        key = (str(path), stat.st_size, stat.st_mtime_ns)
        if key not in _CHECKED:
            _CHECKED[key] = problem(path, fields, needed, newest)
        verdict, what = _CHECKED[key]
        if verdict == "newer":
            raise UserError(f"{path}: history schema {what}, newer than this code reads ({newest}); update the "
                            "checkout, or record into another folder ($RBM_BENCH_HISTORY)")  # fmt: skip
        if verdict == "ok":
            files.append(path)
        else:
            skipped.append((key, path, what))
    if skipped and not files:
        _, path, what = skipped[0]
        more = f", and {len(skipped) - 1} more" if len(skipped) > 1 else ""
        raise UserError(f"{directory}: no history file this code reads, {len(skipped)} skipped ({path.name}: "
                        f"{what}{more}); move them away, or record runs into another folder "
                        "($RBM_BENCH_HISTORY)")  # fmt: skip
    for key, path, what in skipped:
        if key not in _REPORTED:
            _REPORTED.add(key)
            report(f"history: skipped {path}: {what}; move it out of {directory} (the other files are read)")
    return files
