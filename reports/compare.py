"""Two runs side by side (before/after a change): a table and an HTML page.

Both runs must be complete (`eval.bench.runfolder.RunFolder.results`) and of one experiment — the same data
(its sha256), model, recipe and scoring — or a change would be called better or worse that no code change made;
runs of different experiments are refused in one line unless ``allow_different`` (``--different``), and then every
verdict says so. Each score is the mean over seeds with its 95 % interval, grouped by grid point for sweeps; a
change counts as better or worse only when the two intervals do not overlap, and with one seed (no interval) the
verdict says that it is a single run's difference.
"""

from __future__ import annotations

import html
from pathlib import Path

import pandas as pd

from core.errors import UserError
from eval.bench.runfolder import RunFolder
from eval.config import profile_from_dict
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


class DifferentExperiments(UserError):
    """Two runs that differ in what they measure (one line, exit 2)."""


def _experiment(run: Path) -> dict[str, object]:
    """What a run measured, flattened: its data, model and scoring sections, epochs, and the dataset's sha256."""
    folder = RunFolder.open(run)
    spec = profile_from_dict(folder.read_json(folder.spec)).to_dict()
    flat = {f"{section}.{key}": value for section in ("data", "model", "eval") for key, value in spec[section].items()}
    flat["run.epochs"] = spec["run"]["epochs"]
    flat["dataset sha256"] = ", ".join(sorted(folder.results().dataset_hash.dropna().astype(str).unique()))[:16]
    return flat


def differences(run_a: Path, run_b: Path) -> list[str]:
    """``key A vs B`` for each way the two runs differ in what they measured (empty: one experiment)."""
    a, b = _experiment(run_a), _experiment(run_b)
    return [f"{key} {a.get(key)} vs {b.get(key)}" for key in dict.fromkeys([*a, *b]) if a.get(key) != b.get(key)]


def compare(run_a: Path, run_b: Path, allow_different: bool = False) -> pd.DataFrame:
    """Rows (impl, [grid point], metric) with A, B, the change and whether it is better, worse or within noise."""
    differ = differences(run_a, run_b)
    if differ and not allow_different:
        raise DifferentExperiments(
            f"{run_b}: not the experiment of {run_a} ({'; '.join(differ[:4])}{'; …' if len(differ) > 4 else ''}); "
            "compare runs of one recipe and dataset, or pass --different to see them labelled"
        )
    a, b = load_means(run_a), load_means(run_b)
    table = a[["value", "low", "high"]].add_prefix("A_").join(b[["value", "low", "high"]].add_prefix("B_"), how="outer")
    table["better"] = a.better.combine_first(b.better)
    table["change"] = table.B_value - table.A_value
    sign = table.better.map({"higher": 1, "lower": -1}).fillna(0)
    apart = (table.B_low > table.A_high) | (table.B_high < table.A_low)
    has_interval = table.A_low.notna() & table.B_low.notna()
    table["verdict"] = [_verdict(*values) for values in zip(sign, table.change, apart, has_interval)]
    if differ:
        table["verdict"] = [f"{v} (different experiments)" if v else v for v in table.verdict]
    return table.rename(columns={"A_value": "A", "B_value": "B"})


def _verdict(sign: float, change: float, apart: bool, has_interval: bool) -> str:
    if not sign or pd.isna(change):
        return ""
    if change == 0:
        return "same"
    if has_interval and not apart:
        return "within noise"
    direction = "better" if sign * change > 0 else "worse"
    return direction if has_interval else f"{direction} (one seed: no interval, not a finding)"


def write_html(table: pd.DataFrame, run_a: Path, run_b: Path, out: Path) -> Path:
    page = (
        f"<!DOCTYPE html><html><head><meta charset='utf-8'><title>compare</title></head><body>"
        f"<h1>{html.escape(run_a.name)} (A) vs {html.escape(run_b.name)} (B)</h1>"
        f"{table.to_html(float_format=lambda x: f'{x:.4g}', na_rep='—')}</body></html>"
    )
    RunFolder(out.parent).write_text(out, page)
    return out
