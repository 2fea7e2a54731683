"""Two runs side by side (before/after a change): a table and an HTML page."""

from __future__ import annotations

import html
from pathlib import Path

import pandas as pd


def load_means(run_dir: Path) -> pd.DataFrame:
    """Mean over seeds of every final (non-per-epoch) ok metric, per implementation."""
    frame = pd.read_csv(run_dir / "results.csv")
    final = frame[(frame.status == "ok") & frame.epoch.isna()]
    return final.groupby(["impl", "metric"]).agg(value=("value", "mean"), better=("better", "first"))


def compare(run_a: Path, run_b: Path) -> pd.DataFrame:
    """Rows (impl, metric) with A, B, the change and whether it is better or worse."""
    a, b = load_means(run_a), load_means(run_b)
    table = a[["value"]].rename(columns={"value": "A"}).join(b[["value"]].rename(columns={"value": "B"}), how="outer")
    table["better"] = a.better.combine_first(b.better)
    table["change"] = table.B - table.A
    sign = table.better.map({"higher": 1, "lower": -1}).fillna(0)
    table["verdict"] = [
        ("better" if s * c > 0 else "worse" if s * c < 0 else "same") if s and pd.notna(c) else ""
        for s, c in zip(sign, table.change)
    ]
    return table


def write_html(table: pd.DataFrame, run_a: Path, run_b: Path, out: Path) -> Path:
    page = (
        f"<!DOCTYPE html><html><head><meta charset='utf-8'><title>compare</title></head><body>"
        f"<h1>{html.escape(run_a.name)} (A) vs {html.escape(run_b.name)} (B)</h1>"
        f"{table.to_html(float_format=lambda x: f'{x:.4g}', na_rep='—')}</body></html>"
    )
    out.write_text(page)
    return out
