"""The history store: every finished run's rows, kept with where and from which commit they came.

Layout and why
--------------
::

    $RBM_BENCH_HISTORY, else beside the runs folder: reports/history/ (tests' temporary runs keep theirs)
        rows/<run>.<machine>.<results sha256[:12]>.parquet   one file per recorded run, written atomically
        history.html                                         `reports.history.render_history`

One Parquet file per run, read through DuckDB views, rather than one DuckDB database file: a database file has
one writer at a time (DuckDB locks it per process), so two runs finishing at once would wait on, or fail over, its
lock, and a writer killed mid-transaction leaves recovery to the next opener. A run's file is instead written under
a temporary name and renamed (`core.files.atomic_write_bytes`): two recorders never touch the same file, a reader
sees a run's rows completely or not at all, nothing is lost when runs finish together, and a copy of the folder
(a CI cache, an artifact) is a complete store. Readers open DuckDB in memory over ``rows/*.parquet``
(``union_by_name``, so files of another schema version still line up), which costs a few milliseconds per query;
each file is checked first, and a foreign or broken one is skipped with one line (`eval.history.files`).
Recording the same run twice writes nothing new (the name holds the hash of its results); a run resumed and
finished again replaces its earlier file.

What a row holds
----------------
The run's own row (`eval.contract.rows.COLUMNS` and the environment columns the harness adds; a sweep's grid columns,
such as ``model.n_hidden``, go into one JSON ``point`` column), and: ``schema`` (`SCHEMA`), ``git_commit`` (the bare
sha) and ``dirty`` (env.json records ``<sha>+dirty`` when tracked files differed from the commit: `git status
--porcelain --untracked-files=no` at run time, `eval.environment.git_commit`; `commit_state` parses it),
``commit_time`` (the committer date, from ``git show`` in this checkout; null for a commit it does not hold: series
then order it by when its runs finished), ``finished`` (complete.json), ``machine`` (a short hash of the CPU model,
core count, GPU models and, when env.json has one, ``host``) with a readable ``machine_label``, the whole env.json
(``env``, JSON) and the sha256 of the spec and of results.csv.

Only finished runs are recorded: `record` reads rows through `eval.bench.runfolder.RunFolder.results`, which refuses
(one line, `IncompleteRun`) a run without ``complete.json`` or whose results changed since.
"""

from __future__ import annotations

import contextlib
import io
import json
import math
import os
import re
import subprocess
import threading
from collections.abc import Callable, Iterable
from datetime import UTC, datetime
from pathlib import Path

import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

from core.errors import UserError
from core.files import atomic_write_bytes, sha256_bytes
from core.paths import ROOT, runs_dir
from eval.bench.runfolder import IncompleteRun, RunFolder
from eval.contract.rows import COLUMNS
from eval.history.files import readable
from eval.scoring.stats import interval

SCHEMA = 1
_WRITING = threading.Lock()  # atomic_write's temporary name is per process: one write at a time in a process
ENVIRONMENT_COLUMNS = ("device", "precision", "mode", "framework_version", "python", "cpu", "cores", "blas", "gpu",
                       "gpu_driver", "threads")  # fmt: skip
SERIES_KEYS = ("machine", "profile", "dataset", "model", "impl", "device", "point")
# The columns the views and `series` read: a file without one of them is no file of the history (`files.problem`)
NEEDED = ("schema", "run_id", "seed", "epoch", "value", "metric", "status", *SERIES_KEYS, "machine_label", "git_commit",
          "dirty", "commit_time", "finished")  # fmt: skip
_TEXT = [c for c in COLUMNS if c not in ("seed", "epoch", "value", "attempts")]
FIELDS = pa.schema(
    [("schema", pa.int32()), ("run_id", pa.string()), ("seed", pa.int64()), ("epoch", pa.float64()),
     ("value", pa.float64()), ("attempts", pa.float64())]
    + [(c, pa.string()) for c in _TEXT if c != "run_id"]
    + [(c, pa.string()) for c in ENVIRONMENT_COLUMNS]
    + [("point", pa.string()), ("git_commit", pa.string()), ("dirty", pa.bool_()),
       ("commit_time", pa.timestamp("s", tz="UTC")), ("finished", pa.timestamp("s")), ("recorded", pa.timestamp("s")),
       ("machine", pa.string()), ("machine_label", pa.string()), ("platform", pa.string()), ("env", pa.string()),
       ("spec_sha256", pa.string()), ("results_sha256", pa.string()), ("source", pa.string())]
)  # fmt: skip


def history_dir() -> Path:
    """``$RBM_BENCH_HISTORY`` if set, else ``history`` beside the runs folder (``reports/history``; read at each call).

    Beside the runs, so that runs written elsewhere (``$RBM_BENCH_RUNS``: a test's temporary folder) are recorded
    there too, never into the checkout.
    """
    return Path(os.environ.get("RBM_BENCH_HISTORY") or runs_dir().parent / "history")


def rows_dir(store: Path | None = None) -> Path:
    return Path(store or history_dir()) / "rows"


# ---------------------------------------------------------------------------------------------- where rows came from
def commit_state(recorded: str) -> tuple[str, bool]:
    """``(sha, dirty)`` of env.json's ``git_commit`` (``<sha>``, ``<sha>+dirty`` or ``unknown``)."""
    text = str(recorded or "unknown").strip()
    return text.removesuffix("+dirty"), text.endswith("+dirty")


def commit_time(sha: str, root: Path = ROOT) -> datetime | None:
    """The committer date of ``sha`` in the repository at ``root``; None when git or the commit is not there."""
    if not re.fullmatch(r"[0-9a-f]{7,64}", sha):
        return None
    with contextlib.suppress(OSError, subprocess.SubprocessError, ValueError):
        out = subprocess.run(["git", "show", "-s", "--format=%cI", sha], cwd=root, capture_output=True, text=True,
                             timeout=10)  # fmt: skip
        if out.returncode == 0 and out.stdout.strip():
            return datetime.fromisoformat(out.stdout.strip())
    return None


def machine_identity(env: dict) -> tuple[str, str]:
    """``(id, label)`` of the machine a run's env.json describes: same CPU, cores, GPUs (and host) -> same id."""
    parts = [str(env.get(key, "")) for key in ("cpu", "cores", "gpu", "host")]
    gpu = parts[2] if parts[2] not in ("", "none") else "no GPU"
    return sha256_bytes("|".join(parts).encode())[:10], f"{parts[0] or '?'} ×{parts[1] or '?'} · {gpu}"


def _text(value: object) -> str:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return ""
    return str(value)


def _safe(name: str) -> str:
    return re.sub(r"[^A-Za-z0-9_-]+", "_", name)[:80] or "run"


# ---------------------------------------------------------------------------------------------- writing
def history_rows(folder: RunFolder, root: Path = ROOT) -> pd.DataFrame:
    """A finished run's rows as the store keeps them (`IncompleteRun`, one line, for an unfinished run)."""
    frame = folder.results()  # refuses an unfinished or altered run
    completion = folder.check_complete()
    env = folder.read_json(folder.env)
    finished = completion.get("finished")
    return _assemble(
        frame, env, folder.name, finished, sha256_bytes(folder.spec.read_bytes()),
        completion.get("files", {}).get("results.csv", ""), root,
    )  # fmt: skip


def measurement_rows(frame: pd.DataFrame, env: dict, run_id: str, root: Path = ROOT) -> pd.DataFrame:
    """Rows measured outside a run folder (``python -m eval perf-check``: pytest-benchmark ratios) as the store
    keeps them; ``env`` is `eval.environment.describe_environment` of the measuring process."""
    content = sha256_bytes(frame.to_csv(index=False).encode())
    finished = datetime.now(UTC).isoformat(timespec="seconds")  # as complete.json writes it
    return _assemble(frame.assign(run_id=run_id), env, run_id, finished, "", content, root)


def _assemble(
    frame: pd.DataFrame, env: dict, name: str, finished: str | None, spec_sha: str, results_sha: str, root: Path
) -> pd.DataFrame:
    sha, dirty = commit_state(env.get("git_commit") or (frame.git_commit.iloc[0] if "git_commit" in frame else ""))
    machine, label = machine_identity(env)
    known = {*COLUMNS, *ENVIRONMENT_COLUMNS, "git_commit"}
    grid = [c for c in frame.columns if c not in known]
    out = pd.DataFrame(index=frame.index)
    out["schema"] = SCHEMA
    for column in _TEXT + list(ENVIRONMENT_COLUMNS):
        fallback = env.get(column, "") if column in ENVIRONMENT_COLUMNS else ""
        out[column] = frame[column].map(_text) if column in frame else _text(fallback)
    out["run_id"] = out["run_id"].where(out["run_id"] != "", name)
    for column in ("seed", "epoch", "value", "attempts"):
        out[column] = pd.to_numeric(frame[column], errors="coerce") if column in frame else math.nan
    out["seed"] = out["seed"].astype("Int64")
    out["point"] = (
        frame[grid].apply(lambda row: json.dumps({k: _text(v) for k, v in row.items()}, sort_keys=True), axis=1)
        if grid else ""
    )  # fmt: skip
    out = out.assign(
        git_commit=sha, dirty=dirty, commit_time=commit_time(sha, root),
        finished=pd.Timestamp(finished) if finished else pd.NaT, recorded=pd.Timestamp.now().floor("s"),
        machine=machine, machine_label=label, platform=_text(env.get("platform")),
        env=json.dumps(env, sort_keys=True), spec_sha256=spec_sha, results_sha256=results_sha, source=name,
    )  # fmt: skip
    return out


def _table(frame: pd.DataFrame) -> pa.Table:
    return pa.Table.from_pandas(frame.reindex(columns=FIELDS.names), schema=FIELDS, preserve_index=False)


def record(run_folder: Path | str, store: Path | None = None) -> Path:
    """Keep a finished run's rows in the history.

    Parameters
    ----------
    run_folder : path
        A run folder; an unfinished or altered one is refused with one line (`IncompleteRun`), nothing written.
    store : path, optional
        The history folder (default `history_dir`).

    Returns
    -------
    Path
        The run's file (the same file when it was recorded before).
    """
    folder = RunFolder.open(run_folder)
    frame = history_rows(folder)
    if frame.empty:
        raise UserError(f"{folder.path}: a finished run without rows; nothing to record")
    return write_rows(frame, store)


def write_rows(frame: pd.DataFrame, store: Path | None = None) -> Path:
    """Write one recorded run's rows (`history_rows`, `measurement_rows`) as its Parquet file, atomically."""
    run_id, machine = _safe(frame.run_id.iloc[0]), frame.machine.iloc[0]
    digest = (frame.results_sha256.iloc[0] or "0")[:12]
    directory = rows_dir(store)
    directory.mkdir(parents=True, exist_ok=True)
    path = directory / f"{run_id}.{machine}.{digest}.parquet"
    buffer = io.BytesIO()
    pq.write_table(_table(frame), buffer, compression="zstd")
    with _WRITING:
        if not path.exists():
            atomic_write_bytes(path, buffer.getvalue())
    for older in directory.glob(f"{run_id}.{machine}.*.parquet"):  # the same run, finished again: this one counts
        if older != path:
            older.unlink(missing_ok=True)
    return path


def record_many(
    paths: Iterable[Path | str], store: Path | None = None, skip: Callable[[str], None] | None = None
) -> list[Path]:
    """`record` each run; an unfinished one is refused before anything is written, or passed to ``skip`` (a line).

    Parameters
    ----------
    paths : iterable of path
        Run folders.
    store : path, optional
        The history folder (default `history_dir`).
    skip : callable, optional
        Called with the one-line reason of each run that cannot be recorded; without it the first such run raises
        `IncompleteRun` and no run is recorded.
    """
    folders, lines = [], []
    for path in paths:
        try:
            RunFolder.open(path).check_complete()
            folders.append(path)
        except IncompleteRun as error:
            if skip is None:
                raise
            lines.append(str(error))
    for line in lines:
        skip(line)
    return [record(path, store) for path in folders]


# ---------------------------------------------------------------------------------------------- reading
def connect(store: Path | None = None):
    """An in-memory DuckDB connection with views ``rows`` (every stored row) and ``runs`` (one per run).

    Each file is checked first (`eval.history.files`): a foreign or broken one is skipped, one line on stderr; a
    newer schema than `SCHEMA`, or files of which none is readable, is a `UserError` (one line).
    """
    import duckdb

    directory = rows_dir(store)
    files = readable(directory, FIELDS, NEEDED, SCHEMA)
    con = duckdb.connect()
    if files:
        listed = ", ".join("'" + str(path).replace("'", "''") + "'" for path in files)
        try:
            con.execute(f"CREATE VIEW rows AS SELECT * FROM read_parquet([{listed}], union_by_name = true)")
        except duckdb.Error as error:
            con.close()
            first = str(error).strip().splitlines()[0]
            raise UserError(f"{directory}: cannot read the history ({first}); move the unreadable file away") from None
    else:
        con.register("empty_rows", FIELDS.empty_table())
        con.execute("CREATE VIEW rows AS SELECT * FROM empty_rows")
    con.execute(
        "CREATE VIEW runs AS SELECT run_id, machine, any_value(machine_label) AS machine_label, "
        "any_value(profile) AS profile, any_value(dataset) AS dataset, any_value(git_commit) AS git_commit, "
        "bool_or(dirty) AS dirty, min(commit_time) AS commit_time, min(finished) AS finished, count(*) AS n_rows "
        "FROM rows GROUP BY run_id, machine"
    )
    return con


def query(sql: str, parameters: list | None = None, store: Path | None = None) -> pd.DataFrame:
    """The result of ``sql`` over the views ``rows`` and ``runs`` (see `connect`) as a DataFrame."""
    import duckdb

    con = connect(store)
    try:
        return con.execute(sql, parameters or []).df()
    except duckdb.Error as error:
        raise UserError(f"history query failed: {str(error).strip().splitlines()[0]}") from None
    finally:
        con.close()


def _final(frame: pd.DataFrame) -> pd.DataFrame:
    """One value per run, series and seed: the score (no epoch) where there is one, else the last epoch's."""
    frame = frame.assign(_order=frame.epoch.fillna(math.inf))
    keys = [*SERIES_KEYS, "run_id", "seed"]
    return frame.sort_values("_order").groupby(keys, dropna=False, sort=False).tail(1).drop(columns="_order")


def _series_filter(
    metric: str, impl: str | None, profile: str | None, dataset: str | None, device: str | None,
    machine: str | None, clean_only: bool,
) -> tuple[str, list]:  # fmt: skip
    """`series`'s WHERE clause and its parameters: the metric's ok, finite rows, narrowed as asked."""
    conditions, parameters = ["metric = ?", "status = 'ok'", "isfinite(value)"], [metric]
    for column, wanted in (("impl", impl), ("profile", profile), ("dataset", dataset), ("device", device)):
        if wanted is not None:
            conditions.append(f"{column} = ?")
            parameters.append(wanted)
    if machine is not None:
        conditions.append("(machine = ? OR machine_label = ?)")
        parameters += [machine, machine]
    if clean_only:
        conditions.append("NOT dirty")
    return " AND ".join(conditions), parameters


def _commit_points(rows: pd.DataFrame) -> pd.DataFrame:
    """One row per series and commit: its seeds' values (ordered by seed, run) and their interval."""
    points = []
    for key, group in rows.groupby([*SERIES_KEYS, "commit"], dropna=False, sort=False):
        values = group.sort_values(["seed", "run_id"]).value.tolist()
        ci = interval(values)
        points.append(
            dict(zip([*SERIES_KEYS, "commit"], key)) | {
                "machine_label": group.machine_label.iloc[0], "git_commit": group.git_commit.iloc[0],
                "dirty": bool(group.dirty.iloc[0]), "commit_time": group.commit_time.min(),
                "finished": group.finished.min(), "runs": group.run_id.nunique(), "n": ci.n, "mean": ci.mean,
                "low": ci.low, "high": ci.high, "values": values,
            }
        )  # fmt: skip
    return pd.DataFrame(points)


def _in_commit_order(frame: pd.DataFrame) -> pd.DataFrame:
    """Each series' points by commit time, or by first finished run for a commit git does not know; index reset."""
    when = pd.to_datetime(frame.commit_time, utc=True)
    frame["_when"] = when.fillna(pd.to_datetime(frame.finished).dt.tz_localize("UTC"))
    frame = frame.sort_values([*SERIES_KEYS, "_when", "finished"], kind="stable").drop(columns="_when")
    return frame.reset_index(drop=True)


def series(
    metric: str,
    impl: str | None = None,
    profile: str | None = None,
    dataset: str | None = None,
    device: str | None = None,
    machine: str | None = None,
    clean_only: bool = False,
    store: Path | None = None,
) -> pd.DataFrame:
    """One metric over commits: per commit, its mean and 95 % interval over seeds (`eval.scoring.stats.interval`).

    Parameters
    ----------
    metric : str
        The score (``metric`` column).
    impl, profile, dataset, device : str, optional
        Keep only these.
    machine : str, optional
        A machine id or its label. Machines are never mixed: each is its own series whatever is asked.
    clean_only : bool
        Leave out runs of a dirty tree (they are otherwise their own point, ``<sha>+dirty``).

    Returns
    -------
    pandas.DataFrame
        One row per series (`SERIES_KEYS`) and commit, ordered by commit time (commits git does not know: by when
        their first run finished): ``commit`` (``<sha>`` or ``<sha>+dirty``), ``git_commit``, ``dirty``,
        ``commit_time``, ``finished``, ``runs``, ``n``, ``mean``, ``low``, ``high``, ``values`` (per seed; runs of
        one commit pool their seeds). Only ``ok`` rows with a finite value count.
    """
    where, parameters = _series_filter(metric, impl, profile, dataset, device, machine, clean_only)
    columns = ", ".join([*SERIES_KEYS, "machine_label", "run_id", "seed", "epoch", "value", "git_commit", "dirty",
                         "commit_time", "finished"])  # fmt: skip
    rows = query(f"SELECT {columns} FROM rows WHERE {where}", parameters, store)
    out_columns = [*SERIES_KEYS, "machine_label", "commit", "git_commit", "dirty", "commit_time", "finished", "runs",
                   "n", "mean", "low", "high", "values"]  # fmt: skip
    if rows.empty:
        return pd.DataFrame(columns=out_columns)
    rows = _final(rows.fillna({k: "" for k in SERIES_KEYS}))
    rows["commit"] = rows.git_commit + rows.dirty.map({True: "+dirty", False: ""})
    return _in_commit_order(_commit_points(rows))[out_columns]
