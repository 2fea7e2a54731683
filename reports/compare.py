"""Two runs side by side (before/after a change): a table and an HTML page.

Both runs must be complete (`eval.bench.runfolder.RunFolder.results`); each
score is the mean over seeds with its 95 % interval, grouped by grid point
for sweeps, and a change counts as better or worse only when the two
intervals do not overlap.
"""

from __future__ import annotations

import html
from pathlib import Path

import pandas as pd

from eval.bench.runfolder import RunFolder
from eval.scoring.stats import interval


def _grid_columns(frame: pd.DataFrame) -> list[str]:
    return [c for c in frame.columns if "." in c and c.split(".")[0] in ("data", "model", "run", "eval")]


def load_means(run_dir: Path) -> pd.DataFrame:
    """Mean and 95 % interval over seeds of every final ok metric, per implementation (and grid point)."""
    frame = RunFolder.open(run_dir).results()
    final = frame[(frame.status == "ok") & frame.epoch.isna()]
    keys = ["impl", *_grid_columns(final), "metric"]
    rows = []
    for group, values in final.groupby(keys, dropna=False):
        found = interval(values.value.tolist())
        rows.append((*group, found.mean, found.low, found.high, values.better.iloc[0]))
    return pd.DataFrame(rows, columns=[*keys, "value", "low", "high", "better"]).set_index(keys)


def compare(run_a: Path, run_b: Path) -> pd.DataFrame:
    """Rows (impl, [grid point], metric) with A, B, the change and whether it is better, worse or within noise."""
    a, b = load_means(run_a), load_means(run_b)
    table = a[["value", "low", "high"]].add_prefix("A_").join(b[["value", "low", "high"]].add_prefix("B_"), how="outer")
    table["better"] = a.better.combine_first(b.better)
    table["change"] = table.B_value - table.A_value
    sign = table.better.map({"higher": 1, "lower": -1}).fillna(0)
    apart = (table.B_low > table.A_high) | (table.B_high < table.A_low)
    has_interval = table.A_low.notna() & table.B_low.notna()
    table["verdict"] = [_verdict(*values) for values in zip(sign, table.change, apart, has_interval)]
    return table.rename(columns={"A_value": "A", "B_value": "B"})


def _verdict(sign: float, change: float, apart: bool, has_interval: bool) -> str:
    if not sign or pd.isna(change):
        return ""
    if change == 0:
        return "same"
    if has_interval and not apart:
        return "within noise"
    return "better" if sign * change > 0 else "worse"


def write_html(table: pd.DataFrame, run_a: Path, run_b: Path, out: Path) -> Path:
    page = (
        f"<!DOCTYPE html><html><head><meta charset='utf-8'><title>compare</title></head><body>"
        f"<h1>{html.escape(run_a.name)} (A) vs {html.escape(run_b.name)} (B)</h1>"
        f"{table.to_html(float_format=lambda x: f'{x:.4g}', na_rep='—')}</body></html>"
    )
    RunFolder(out.parent).write_text(out, page)
    return out
