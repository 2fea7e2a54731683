"""The report's figures as base64 PNGs: learning curves, throughput, pitch classes, piano rolls, sweeps."""

from __future__ import annotations

import base64
import io

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt
import numpy as np
import pandas as pd

import impls
from datasets.windows import WindowSpec
from eval.models import plugin
from eval.scoring import catalogue
from eval.scoring.notes import histograms
from eval.scoring.stats import interval
from reports.tables import display_name, implementations


def png(figure) -> str:
    buffer = io.BytesIO()
    figure.savefig(buffer, format="png", dpi=90, bbox_inches="tight")
    plt.close(figure)
    return base64.b64encode(buffer.getvalue()).decode()


# per-epoch curves a run may hold, in order of preference: the first one present is drawn
CURVES = {
    "valid_pl_per_unit": "validation PL (nats/unit)",
    "valid_nll_per_frame": "validation NLL (nats/frame)",
    "cd_cost": "CD cost (training, per update)",
}


def _per_epoch(frame: pd.DataFrame, metric: str) -> pd.DataFrame:
    return frame[(frame.metric == metric) & (frame.status == "ok") & frame.epoch.notna()]


def curve_metric(frame: pd.DataFrame) -> str | None:
    """The per-epoch curve `learning_curves` draws: the model's own measure (its plug-in's ``curve``) where the
    rows hold it, else the first of `CURVES` they hold (a validation score, else the CD cost)."""
    models = frame.model.dropna().unique() if "model" in frame else []
    declared = [plugin(m).curve for m in models if m in impls.models()]
    return next((m for m in [*declared, *CURVES] if m and len(_per_epoch(frame, m))), None)


def learning_curves(frame: pd.DataFrame) -> plt.Figure | None:
    """The curve of `curve_metric` by epoch and against wall time, and the free-energy gap: each panel only where
    the rows hold it; None where there is no per-epoch curve at all."""
    metric = curve_metric(frame)
    gaps = _per_epoch(frame, "free_energy_gap")
    seconds = frame[frame.metric == "epoch_seconds"]
    if metric is None and gaps.empty:
        return None
    curves = _per_epoch(frame, metric) if metric else gaps.iloc[:0]
    panels = (["epoch", "time"] if metric else []) + (["gap"] if len(gaps) else [])
    figure, axes = plt.subplots(1, len(panels), figsize=(5 * len(panels), 3.6), layout="constrained", squeeze=False)
    axis = dict(zip(panels, axes[0]))
    label = CURVES.get(metric, f"{metric} ({catalogue.describe(metric)[0]})" if metric else "")
    kept = frame[(frame.metric == "best_epoch") & (frame.status == "ok")]  # early stopping: the epoch scored
    for (impl, seed), curve in curves.groupby(["impl", "seed"]):
        curve = curve.sort_values("epoch")
        name = f"{display_name(impl)} s{seed}"
        (line,) = axis["epoch"].plot(curve.epoch, curve.value, marker=".", label=name)
        best = curve[curve.epoch.isin(kept[(kept.impl == impl) & (kept.seed == seed)].value)]
        if len(best):
            circle = {"marker": "o", "fillstyle": "none", "markersize": 9, "color": line.get_color()}
            axis["epoch"].plot(best.epoch, best.value, **circle)
        wall = seconds[(seconds.impl == impl) & (seconds.seed == seed)].sort_values("epoch")
        elapsed = wall.drop_duplicates("epoch").set_index("epoch").value.cumsum()
        axis["time"].plot(elapsed.reindex(curve.epoch).values, curve.value, marker=".", label=name)
    if metric:
        title = "Learning curves (circled: the best epoch, kept)" if len(kept) else "Learning curves"
        axis["epoch"].set(xlabel="epoch", ylabel=label, title=title)
        axis["time"].set(xlabel="training wall time (s, parallel tasks)", ylabel=label, title="Against wall time")
    for (impl, seed), curve in gaps.groupby(["impl", "seed"]):
        axis["gap"].plot(curve.epoch, curve.value, marker=".", label=f"{display_name(impl)} s{seed}")
    if len(gaps):
        axis["gap"].set(
            xlabel="epoch", ylabel="F(valid) - F(train) (nats)", title="Free-energy gap (rising = overfitting)"
        )
    # one legend for the panels (same colours), beside them: it covers no curve
    figure.legend(*axes[0, 0].get_legend_handles_labels(), loc="outside right upper", fontsize=7)
    return figure


def throughput(frame: pd.DataFrame) -> plt.Figure | None:
    """Training speed per framework beside the roofline, in the unit the rows hold (windows/s or frames/s)."""
    timing = frame[(frame.phase == "timing") & (frame.status == "ok")]
    for unit in ("windows", "frames"):
        speeds = timing[timing.metric.isin([f"train_{unit}_per_s", f"sklearn_{unit}_per_s"])]
        if len(speeds):
            break
    else:
        return None
    means = speeds.groupby("impl").value.mean().sort_values()
    figure, axis = plt.subplots(figsize=(8, 0.5 * len(means) + 1.6), layout="constrained")
    axis.barh([display_name(i) for i in means.index], means.values, color="tab:blue")
    roofline = timing[timing.metric == f"roofline_{unit}_per_s"].value.mean()
    if np.isfinite(roofline):
        axis.axvline(roofline, color="tab:red", linestyle="--", label=f"roofline {roofline:,.0f}")
        figure.legend(loc="outside right upper", fontsize=8)
    axis.set(xlabel=f"training {unit}/s (quiet phase, steady state)", title="Throughput")
    return figure


def pitch_classes(samples: dict[str, np.ndarray], data: np.ndarray, spec: WindowSpec) -> plt.Figure:
    figure, axis = plt.subplots(figsize=(9, 3), layout="constrained")
    names = ["music (test)", *samples]
    width = 0.8 / len(names)
    for index, name in enumerate(names):
        _, pitch_class = histograms(data if index == 0 else samples[name], spec)
        axis.bar(np.arange(12) + index * width, pitch_class, width, label=name)
    axis.set_xticks(np.arange(12) + 0.4, ["C", "C#", "D", "D#", "E", "F", "F#", "G", "G#", "A", "A#", "B"])
    axis.set(ylabel="share of notes", title="Pitch-class histograms")
    figure.legend(loc="outside right upper", fontsize=6)  # beside the axes, not over the bars
    return figure


def piano_rolls(samples: dict[str, np.ndarray], data: np.ndarray, spec: WindowSpec, per_set: int = 4) -> plt.Figure:
    """The first ``per_set`` windows of the test music and of each sample set, side by side."""
    sets = {"music (test)": data, **samples}
    figure, axes = plt.subplots(len(sets), 1, figsize=(10, 1.6 * len(sets)), squeeze=False, layout="constrained")
    for axis, (name, windows) in zip(axes[:, 0], sets.items()):
        rolls = [spec.to_matrix(w)[:, : spec.n_pitches].T for w in windows[:per_set]]
        axis.imshow(np.hstack(rolls) if rolls else np.zeros((spec.n_pitches, 1)), aspect="auto", origin="lower",
                    cmap="Greys", interpolation="nearest")  # fmt: skip
        axis.set(ylabel=name, yticks=[])
    axes[-1, 0].set_xlabel(f"rows (time steps), {per_set} windows each")
    return figure


def piece_rolls(pieces: dict[str, np.ndarray], music: list[np.ndarray], spec: WindowSpec) -> plt.Figure | None:
    """One whole piece per set: a held-out piece of the test music, then each model's first generated piece."""
    sets = {"music (test)": music[0] if music else None, **{n: p[0] if len(p) else None for n, p in pieces.items()}}
    sets = {name: piece for name, piece in sets.items() if piece is not None and len(piece)}
    if not sets:
        return None
    length = max(len(p) for p in sets.values())
    figure, axes = plt.subplots(len(sets), 1, figsize=(10, 1.2 * len(sets) + 0.4), squeeze=False, layout="constrained")
    rolls = {name: spec.to_matrix(piece)[:, : spec.n_pitches].T for name, piece in sets.items()}
    sounding = np.flatnonzero(np.any([roll.any(axis=1) for roll in rolls.values()], axis=0))  # one range for all
    for axis, (name, piece) in zip(axes[:, 0], sets.items()):
        roll = rolls[name]
        axis.imshow(roll, aspect="auto", origin="lower", cmap="Greys", interpolation="nearest",
                    extent=(0, len(piece), 0, spec.n_pitches))  # fmt: skip
        axis.set_xlim(0, length)
        if len(sounding):  # the pitches any set uses, not the whole keyboard; the same on every line
            axis.set_ylim(max(sounding.min() - 2, 0), min(sounding.max() + 3, spec.n_pitches))
        impl, _, seed = name.rpartition("-")  # a sample set is named <impl>-s<seed>
        label = f"{display_name(impl)} {seed}" if impl and seed.startswith("s") else name
        axis.set_ylabel(label, rotation=0, ha="right", va="center", fontsize=8)
        axis.set_yticks([])
    axes[-1, 0].set_xlabel(f"time steps (rows); each line one whole piece of up to {length} steps")
    return figure


def sweep(frame: pd.DataFrame, key: str) -> plt.Figure:
    """Each score against one swept key, per framework, with 95 % intervals over seeds."""
    metrics = catalogue.shown("sweep")
    figure, axes = plt.subplots(1, len(metrics), figsize=(4 * len(metrics), 3.2), squeeze=False)
    final = frame[(frame.status == "ok") & frame.epoch.isna() & frame[key].notna()]
    for axis, metric in zip(axes[0], metrics):
        for impl in implementations(frame):
            rows = final[(final.impl == impl) & (final.metric == metric)]
            points = sorted(rows[key].unique())
            found = [interval(rows[rows[key] == p].value.tolist()) for p in points]
            means = [f.mean for f in found]
            errors = [0 if np.isnan(f.half_width) else f.half_width for f in found]
            axis.errorbar([str(p) for p in points], means, yerr=errors, marker="o", capsize=3, label=display_name(impl))
        axis.set(xlabel=key, title=metric)
    axes[0, 0].legend(fontsize=7)
    return figure


def all_figures(frame, samples, data, spec, sweep_keys: dict, pieces: dict | None = None,
                music: list | None = None) -> dict[str, str]:  # fmt: skip
    """The report's figures by title, each only where the rows or samples give it something to draw.

    ``pieces`` (a sequence model's generated pieces, ``(n, rows, width)`` per set) and ``music`` (held-out pieces of
    the same length) replace the windowed piano rolls with whole pieces.
    """
    drawn = {"Learning curves": learning_curves(frame), "Throughput": throughput(frame)}
    if samples:
        drawn["Pitch classes"] = pitch_classes(samples, data, spec)
        if pieces:
            drawn["Piano rolls (whole pieces)"] = piece_rolls(pieces, music or [], spec)
        else:
            drawn["Piano rolls"] = piano_rolls(samples, data, spec)
    for key in sweep_keys:
        if key in frame:
            drawn[f"Scores against {key}"] = sweep(frame, key)
    return {title: png(figure) for title, figure in drawn.items() if figure is not None}
