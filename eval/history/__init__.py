"""The history of results: every finished run kept (`store`), and a gate that sees drift across commits (`trend`).

`store.record` keeps a finished run's rows in ``$RBM_BENCH_HISTORY`` (default ``reports/history``) as one Parquet
file; `store.query` and `store.series` read them through DuckDB; `trend.change` judges one series' newest commit
and names the first commit of a change (its statistics in `changepoint`); `trend.gate` judges every series at a
family-wise level; `reports.history.render_history` draws the page.
"""

import sys
from pathlib import Path

from core.errors import UserError, os_error_line
from eval.history.store import SCHEMA, connect, history_dir, query, record, record_many, series
from eval.history.trend import Trend, change, gate


def keep_in_history(run: Path) -> None:
    """Record a finished run in the history; a history that cannot take it leaves the run as is (one line)."""
    try:
        print(f"recorded in the history: {record(run)}")
    except UserError as error:  # a newer store, a run whose files changed: the run stands, unrecorded
        print(f"history: not recorded ({error})", file=sys.stderr)
    except OSError as error:
        print(f"history: not recorded ({os_error_line(error)})", file=sys.stderr)


__all__ = [
    "SCHEMA", "Trend", "change", "connect", "gate", "history_dir", "keep_in_history", "query", "record",
    "record_many", "series",
]  # fmt: skip
