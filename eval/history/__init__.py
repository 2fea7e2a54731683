"""The history of results: every finished run kept (`store`), and a gate that sees drift across commits (`trend`).

`store.record` keeps a finished run's rows in ``$RBM_BENCH_HISTORY`` (default ``reports/history``) as one Parquet
file; `store.query` and `store.series` read them through DuckDB; `trend.change` judges one series' newest commit
and names the first commit of a change; `trend.gate` judges every series at a family-wise level;
`reports.history.render_history` draws the page.
"""

from eval.history.store import SCHEMA, connect, history_dir, query, record, record_many, series
from eval.history.trend import Trend, change, gate

__all__ = ["SCHEMA", "Trend", "change", "connect", "gate", "history_dir", "query", "record", "record_many", "series"]
