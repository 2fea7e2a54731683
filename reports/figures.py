"""The report's figures as base64 PNGs: learning curves, throughput, pitch classes, piano rolls, sweeps."""

from __future__ import annotations

import base64
import io

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt
import numpy as np
import pandas as pd

from datasets.windows import WindowSpec
from eval.scoring import catalogue
from eval.scoring.notes import histograms
from eval.scoring.stats import interval
from reports.tables import display_name, implementations


def png(figure) -> str:
    buffer = io.BytesIO()
    figure.savefig(buffer, format="png", dpi=90, bbox_inches="tight")
    plt.close(figure)
    return base64.b64encode(buffer.getvalue()).decode()


def learning_curves(frame: pd.DataFrame) -> plt.Figure:
    figure, (by_epoch, by_time, gap) = plt.subplots(1, 3, figsize=(15, 3.6), layout="constrained")
    curves = frame[(frame.metric == "valid_pl_per_unit") & (frame.status == "ok") & frame.epoch.notna()]
    seconds = frame[frame.metric == "epoch_seconds"]
    for (impl, seed), curve in curves.groupby(["impl", "seed"]):
        wall = seconds[(seconds.impl == impl) & (seconds.seed == seed)].sort_values("epoch")
        elapsed = wall.drop_duplicates("epoch").set_index("epoch").value.cumsum()
        by_epoch.plot(curve.epoch, curve.value, marker=".", label=f"{display_name(impl)} s{seed}")
        by_time.plot(
            elapsed.reindex(curve.epoch).values, curve.value, marker=".", label=f"{display_name(impl)} s{seed}"
        )
    gaps = frame[(frame.metric == "free_energy_gap") & frame.epoch.notna() & (frame.status == "ok")]
    for (impl, seed), curve in gaps.groupby(["impl", "seed"]):
        gap.plot(curve.epoch, curve.value, marker=".", label=f"{display_name(impl)} s{seed}")
    gap.set(xlabel="epoch", ylabel="F(valid) - F(train) (nats)", title="Free-energy gap (rising = overfitting)")
    by_epoch.set(xlabel="epoch", ylabel="validation PL (nats/unit)", title="Learning curves")
    by_time.set(xlabel="training wall time (s, parallel tasks)", ylabel="validation PL (nats/unit)",
                title="Against wall time")  # fmt: skip
    if by_epoch.lines:  # one legend for the three panels (same colours), beside them: it covers no curve
        figure.legend(*by_epoch.get_legend_handles_labels(), loc="outside right upper", fontsize=7)
    return figure


def throughput(frame: pd.DataFrame) -> plt.Figure:
    timing = frame[(frame.phase == "timing") & (frame.status == "ok")]
    speeds = timing[timing.metric.isin(["train_windows_per_s", "sklearn_windows_per_s"])]
    means = speeds.groupby("impl").value.mean().sort_values()
    figure, axis = plt.subplots(figsize=(7, 3))
    axis.barh([display_name(i) for i in means.index], means.values, color="tab:blue")
    roofline = timing[timing.metric == "roofline_windows_per_s"].value.mean()
    if np.isfinite(roofline):
        axis.axvline(roofline, color="tab:red", linestyle="--", label=f"roofline {roofline:,.0f}")
        axis.legend()
    axis.set(xlabel="training windows/s (quiet phase, steady state)", title="Throughput")
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
    sets = {"music (test)": data, **samples}
    figure, axes = plt.subplots(len(sets), 1, figsize=(10, 1.6 * len(sets)), squeeze=False)
    for axis, (name, windows) in zip(axes[:, 0], sets.items()):
        rolls = [spec.to_matrix(w)[:, : spec.n_pitches].T for w in windows[:per_set]]
        axis.imshow(np.hstack(rolls) if rolls else np.zeros((spec.n_pitches, 1)), aspect="auto", origin="lower",
                    cmap="Greys", interpolation="nearest")  # fmt: skip
        axis.set(ylabel=name, yticks=[])
    axes[-1, 0].set_xlabel(f"rows (sixteenth notes), {per_set} windows each")
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


def all_figures(frame, samples, data, spec, sweep_keys: dict) -> dict[str, str]:
    out = {"Learning curves": png(learning_curves(frame)), "Throughput": png(throughput(frame))}
    if samples:
        out["Pitch classes"] = png(pitch_classes(samples, data, spec))
        out["Piano rolls"] = png(piano_rolls(samples, data, spec))
    for key in sweep_keys:
        if key in frame:
            out[f"Scores against {key}"] = png(sweep(frame, key))
    return out
