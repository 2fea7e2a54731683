"""Long-format result rows: one measurement per row, NaN/inf flagged ``diverged``, never printed as a value.

``COLUMNS`` is the schema of ``results.csv``; `eval.bench.harness` adds the
environment columns and one column per swept profile key (``model.n_hidden``).
"""

from __future__ import annotations

import math

COLUMNS = (
    "run_id",
    "impl",
    "seed",
    "profile",
    "dataset",
    "dataset_hash",
    "init_hash",
    "order_hash",
    "epoch",
    "phase",
    "metric",
    "value",
    "unit",
    "better",
    "status",
    "reason",
    "attempts",
)
STATUSES = ("ok", "diverged", "failed", "skipped")

# metric -> (unit, better); stable identifiers the gate and `reports compare` key on
METRICS: dict[str, tuple[str, str]] = {
    "pl_per_unit": ("nats/unit", "higher"),
    "pl_per_window": ("nats/window", "higher"),
    "valid_pl_per_unit": ("nats/unit", "higher"),
    "pl_sklearn_one_bit_per_unit": ("nats/unit", "higher"),
    "pl_theano_one_bit_per_unit": ("nats/unit", "higher"),
    "valid_reconstruction_xent": ("nats/window", "lower"),
    "ais_ll_per_window": ("nats/window", "higher"),
    "ais_ll_per_row": ("nats/row", "higher"),
    "ais_ll_stderr": ("nats/window", "lower"),
    "raise_ll_per_window": ("nats/window", "higher"),
    "raise_ll_per_row": ("nats/row", "higher"),
    "raise_ll_stderr": ("nats/window", "lower"),
    "bracket_width": ("nats/window", "lower"),
    "ais_log_z": ("nats", "none"),
    "ais_log_z_stderr": ("nats", "lower"),
    "ais_effective_runs": ("runs", "higher"),
    "ais_base_gap": ("nats", "lower"),
    "ais_seconds": ("s", "lower"),
    "raise_seconds": ("s", "lower"),
    "reconstruction_xent": ("nats/window", "lower"),
    "free_energy_gap": ("nats", "lower"),
    "epoch_seconds": ("s", "lower"),
    "train_windows_per_s": ("windows/s", "higher"),
    "compile_s": ("s", "lower"),
    "gibbs_steps_per_s": ("steps/s", "higher"),
    "peak_rss_mb": ("MB", "lower"),
    "peak_device_mb": ("MB", "lower"),
    "max_abs_param": ("", "none"),
    "roofline_windows_per_s": ("windows/s", "higher"),
    "sklearn_windows_per_s": ("windows/s", "higher"),
    "five_products_ms": ("ms", "lower"),
    "ratio_to_roofline": ("ratio", "higher"),
    "draw_ms": ("ms", "lower"),
    "ceiling_ratio": ("ratio", "higher"),
    "js_pitch": ("bits", "lower"),
    "js_pitch_class": ("bits", "lower"),
    "note_density": ("fraction", "none"),
    "polyphony": ("pitches", "none"),
    "polyphony_rate": ("fraction", "none"),
    "empty_row_rate": ("fraction", "none"),
    "pitch_range": ("semitones", "none"),
    "n_pitches_used": ("pitches", "none"),
    "n_pitch_classes_used": ("classes", "none"),
    "pitch_entropy": ("bits", "none"),
    "pitch_class_entropy": ("bits", "none"),
    "scale_consistency": ("fraction", "higher"),
    "onset_rate": ("notes/row", "none"),
    "mean_note_length": ("rows", "none"),
    "invalid_onset_rate": ("fraction", "lower"),
    "nearest_train_hamming": ("bits", "none"),
    "copy_rate": ("fraction", "lower"),
    "heldout_nearest_train_hamming": ("bits", "none"),
    "heldout_copy_rate": ("fraction", "none"),
    "n_samples_kept": ("windows", "none"),
    "frechet_note_distance": ("", "lower"),
    "music_structure_js": ("bits", "lower"),
}


def describe(metric: str) -> tuple[str, str]:
    """Unit and better-direction of a metric (MGEval metrics: overlap higher, KL lower)."""
    if metric.startswith("mgeval_oa_"):
        return "area", "higher"
    if metric.startswith("mgeval_kl_"):
        return "nats", "lower"
    return METRICS.get(metric, ("", "none"))


def make_row(
    context: dict,
    phase: str,
    metric: str,
    value: float | None,
    epoch: int | None = None,
    status: str = "ok",
    reason: str = "",
) -> dict:
    """A result row; a non-finite value becomes ``status=diverged`` with an empty value.

    ``phase`` is ``train`` (curves), ``eval`` (scores), ``sample`` (statistics
    of generated windows) or ``timing`` (the quiet throughput phase).
    """
    unit, better = describe(metric)
    if status == "ok" and (value is None or not math.isfinite(float(value))):
        status, reason, value = "diverged", reason or f"{metric} is {value} (NaN/inf)", None
    return {
        **context,
        "epoch": epoch,
        "phase": phase,
        "metric": metric,
        "value": None if value is None else float(value),
        "unit": unit,
        "better": better,
        "status": status,
        "reason": reason,
    }
