"""The history page: each score over commits, per implementation and machine, with its 95 % interval over seeds.

``history.html`` is self-contained (figures are base64 PNGs, as in ``report.html``) so that CI can publish it as
one file. It leads with the trend gate's verdict on every series (`eval.history.trend.gate`: regressions, changes
and improvements, and the commit each began at), then per score one panel (a figure and its table, the table in
its own scroll box) for each profile and dataset, since scores of different data differ in scale: the mean over
seeds per commit with its interval as error bars, one line per implementation (and machine, device, grid point
or model where the panel holds several: a series never mixes machines), the legend beside the axes.
"""

from __future__ import annotations

import base64
import html
import io
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt
import numpy as np
import pandas as pd

from core.files import atomic_write_text
from eval.history import store, trend
from eval.scoring import catalogue
from reports.tables import display_name

TABLE_COMMITS = 30  # the newest commits a table shows (the figure shows all)


def _png(figure: plt.Figure) -> str:
    buffer = io.BytesIO()
    figure.savefig(buffer, format="png", dpi=90, bbox_inches="tight")
    plt.close(figure)
    return base64.b64encode(buffer.getvalue()).decode()


def _short(commit: str) -> str:
    """``abc1234`` (``abc1234*`` for a dirty tree)."""
    return commit[:7] + ("*" if commit.endswith("+dirty") else "")


PANEL = ("profile", "dataset")  # one panel each: their scores differ in scale (Bach windows vs JSB frames)


def _labels(frame: pd.DataFrame) -> pd.Series:
    """Each series' name within a panel: the implementation, and whatever else tells the panel's series apart."""
    label = frame.impl.map(display_name)
    for column in ("device", "point", "model", "machine_label"):
        if frame[column].nunique() > 1:
            label = label + " · " + frame[column].astype(str)
    return label


def panels(frame: pd.DataFrame) -> list[tuple[str, pd.DataFrame]]:
    """A metric's rows split by (profile, dataset), each with its title, in a stable order."""
    return [(f"profile {p} · dataset {d}", rows) for (p, d), rows in frame.groupby(list(PANEL), sort=True)]


def _order(frame: pd.DataFrame) -> list[str]:
    """Every commit of a metric's series, oldest first (commit time; else when its first run finished)."""
    when = pd.to_datetime(frame.commit_time, utc=True).fillna(pd.to_datetime(frame.finished).dt.tz_localize("UTC"))
    return list(dict.fromkeys(frame.assign(_when=when).sort_values(["_when", "finished"], kind="stable").commit))


def figure(frame: pd.DataFrame, metric: str) -> plt.Figure:
    """One panel of a metric over commits: mean per commit with its interval, a line per series, the legend
    beside the axes (it covers no point)."""
    commits = _order(frame)
    position = {c: i for i, c in enumerate(commits)}
    unit, better = catalogue.describe(metric)
    fig, axis = plt.subplots(figsize=(min(5 + 0.35 * len(commits), 14), 3.2), layout="constrained")
    groups = list(frame.assign(_label=_labels(frame)).groupby("_label", sort=True))
    for j, (label, rows) in enumerate(groups):
        x = rows.commit.map(position).to_numpy() + 0.08 * (j - (len(groups) - 1) / 2)  # side by side, not on top
        y = rows["mean"].to_numpy(float)
        spread = np.vstack([y - rows.low.to_numpy(float), rows.high.to_numpy(float) - y])
        axis.errorbar(x, y, yerr=np.nan_to_num(spread), marker="o", markersize=4, capsize=3, label=label)
    axis.set_xticks(range(len(commits)), [_short(c) for c in commits], rotation=60, ha="right", fontsize=8)
    direction = {"higher": "higher is better", "lower": "lower is better"}.get(better, "to match, not to push")
    axis.set_title(f"{metric} ({direction})", fontsize=10)
    axis.set_ylabel(unit or metric)
    axis.set_xlabel("commit (oldest → newest; * dirty tree)")
    axis.grid(alpha=0.3)
    fig.legend(loc="outside right upper", fontsize=8)
    return fig


def table(frame: pd.DataFrame, metric: str) -> pd.DataFrame:
    """The newest `TABLE_COMMITS` commits (rows, newest first) by series (columns): ``mean [low, high] (n)``."""
    commits = _order(frame)[-TABLE_COMMITS:][::-1]

    def cell(row: pd.Series) -> str:
        if row.n < 2:
            return f"{row['mean']:.4g} (n={row.n})"
        return f"{row['mean']:.4g} [{row.low:.4g}, {row.high:.4g}] (n={row.n})"

    shown = frame[frame.commit.isin(commits)].assign(_label=_labels(frame), _cell=lambda f: f.apply(cell, axis=1))
    pivot = shown.pivot_table(index="commit", columns="_label", values="_cell", aggfunc="first")
    pivot = pivot.reindex([c for c in commits if c in pivot.index])
    pivot.index = [_short(c) for c in pivot.index]
    pivot.columns.name = None
    return pivot


def default_metrics(store_dir: Path | None = None) -> list[str]:
    """The scores the verdict or the gates read (`catalogue.headline`) that the history holds, in catalogue order."""
    held = set(store.query("SELECT DISTINCT metric FROM rows WHERE status = 'ok'", store=store_dir).metric)
    return [m for m in catalogue.headline() if m in held]


def render_history(
    out_dir: Path | str | None = None,
    profile: str | None = None,
    dataset: str | None = None,
    device: str | None = None,
    machine: str | None = None,
    metrics: list[str] | None = None,
    impl: str | None = None,
    store_dir: Path | None = None,
) -> Path:
    """Write ``history.html`` into ``out_dir`` (default: the history folder) and return its path.

    Parameters
    ----------
    out_dir : path, optional
        Where the page goes (created if needed).
    profile, dataset, device, machine, impl : str, optional
        Show only these (``machine``: its id or label).
    metrics : list of str, optional
        The scores to draw; default `default_metrics`.
    store_dir : path, optional
        The history folder to read (default ``$RBM_BENCH_HISTORY`` or ``reports/history``).
    """
    out = Path(out_dir or store.history_dir())
    out.mkdir(parents=True, exist_ok=True)
    filters = {"impl": impl, "profile": profile, "dataset": dataset, "device": device, "machine": machine}
    frames = {m: store.series(m, **filters, store=store_dir) for m in metrics or default_metrics(store_dir)}
    frames = {metric: frame for metric, frame in frames.items() if not frame.empty}
    verdicts = trend.gate(frames)
    shown = {k: v for k, v in filters.items() if v}
    parts = [
        "<!DOCTYPE html><html><head><meta charset='utf-8'><title>RBM Music Bench history</title><style>"
        "body{font-family:sans-serif;max-width:1150px;margin:auto;line-height:1.4}"
        "table{border-collapse:collapse;font-size:13px}td,th{border:1px solid #ccc;padding:2px 6px;"
        "white-space:nowrap}.wide{overflow:auto;max-width:100%;max-height:480px;margin:8px 0}"
        ".panels{display:flex;flex-wrap:wrap;gap:16px}.panel{flex:1 1 520px;min-width:0}"
        "figure{margin:8px 0}figcaption{font-size:14px;font-weight:bold}"
        "img{max-width:100%;height:auto}</style></head><body>",
        "<h1>RBM Music Bench: history</h1>",
        f"<p>{len(frames)} scores; filters: {html.escape(', '.join(f'{k}={v}' for k, v in shown.items()) or 'none')}."
        " Each point is one commit's mean over seeds, with its 95 % interval (Student t); a series never mixes "
        "machines.</p>",
    ]
    if len(verdicts):
        flagged = verdicts[verdicts.status.isin(["regression", "change", "improvement"])]
        parts.append(
            f"<h2>Trend gate</h2><p>{int(verdicts.failed.sum())} of {len(verdicts)} series fail (family-wise "
            f"false-alarm rate at most {trend.FAMILY_ALPHA:.0%}; see eval/history/trend.py).</p>"
        )
        if len(flagged):
            labels = {m: f.set_index("machine").machine_label.to_dict() for m, f in frames.items()}
            flagged = flagged.assign(
                impl=flagged.impl.map(display_name),
                machine=[labels[m].get(machine, machine) for m, machine in zip(flagged.metric, flagged.machine)],
                first_commit=flagged.first_commit.map(_short),
                newest_commit=flagged.newest_commit.map(_short),
            )
            columns = ["metric", "impl", "machine", "status", "first_commit", "newest_commit", "shift", "margin"]
            found = flagged[[*columns, "p_value"]].to_html(index=False, float_format="{:.4g}".format)
            parts.append(f"<div class='wide'>{found}</div>")
    for metric, frame in frames.items():
        parts.append(f"<h2>{html.escape(metric)}</h2>")
        parts.append("<div class='panels'>")
        for title, rows in panels(frame):  # each (profile, dataset) on its own axis: scales differ between data
            image = _png(figure(rows, metric))
            parts.append(
                f"<div class='panel'><figure><figcaption>{html.escape(title)}</figcaption>"
                f"<img alt='{html.escape(metric)} over commits, {html.escape(title)}' "
                f"src='data:image/png;base64,{image}'></figure>"
                f"<div class='wide'>{table(rows, metric).to_html(na_rep='—', escape=True)}</div></div>"
            )
        parts.append("</div>")
    if not frames:
        parts.append("<p>Nothing recorded yet: record finished runs with <code>python -m reports history import "
                     "RUN</code>.</p>")  # fmt: skip
    parts.append("</body></html>")
    path = out / "history.html"
    atomic_write_text(path, "\n".join(parts))
    return path
