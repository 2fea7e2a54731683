"""The score catalogue: every metric the suite records, listed here once with what everyone needs to know of it.

Rows take their unit and direction from here, the quality gate checks the ``gated`` ones, the verdict tests the
ones with a ``margin`` (measured per model and dataset: ``reports/baselines/margins/``, written by ``python -m eval
margins``, holds each one's value, unit and basis; a profile's ``[verdict] margins`` may override it), the report
shows each in the tables
its ``shown`` names. A score with a ``compute`` function is computed by the worker and by the report's anchors
(held-out music, coin flips) with no other code: adding such a score is one `Score` entry. The others are
measured by the worker's steps (``needs = "run"``): the likelihood bracket, timings, curves, note statistics.
A name ending in ``*`` describes a family (``mgeval_oa_*``).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from fnmatch import fnmatchcase
from typing import Any

from eval.scoring.quality import music_structure_js
from eval.scoring.sets import frechet_note_distance


@dataclass(frozen=True)
class Score:
    """One metric.

    Attributes
    ----------
    name : str
        Stable identifier, the ``metric`` column of rows; a trailing ``*`` names a family.
    unit : str
        As rows and tables print it (``nats/row``, ``windows/s``, ...).
    better : {"higher", "lower", "none"}
        Which way is better; ``none``: a statistic to match, not to push (the gate fails a move either way).
    margin : float or None
        Not None: the score is in the cross-framework verdict. The number is the guess declared before margins
        were measured, kept for the record and never applied: a run is judged with the calibration of its own
        (model, dataset) (`eval.scoring.calibrations`) or its profile's ``[verdict] margins``, else not judged.
        None: not in the verdict.
    gated : bool
        Checked by the sample-quality gate against its baseline and against the reference framework.
    shown : tuple of str
        Report tables that show it: ``samples`` (beside music), ``sweep`` (over a sweep's grid), ``published``
        (beside the published results of a polyphonic benchmark).
    needs : {"run", "samples", "params"}
        ``samples``: ``compute(samples, music, spec)`` on generated windows against held-out windows;
        ``params``: ``compute(params, music, spec)`` on trained parameters; ``run``: measured by the worker.
    compute : callable or None
        How to compute it, for ``needs`` other than ``run``; returns a float (NaN/inf become ``diverged``).
    """

    name: str
    unit: str = ""
    better: str = "none"
    margin: float | None = None
    gated: bool = False
    shown: tuple[str, ...] = ()
    needs: str = "run"
    compute: Callable[..., float] | None = None

    def __post_init__(self) -> None:
        if self.better not in ("higher", "lower", "none"):
            raise ValueError(f"score {self.name}: better is {self.better!r}; use higher, lower or none")
        if self.needs not in ("run", "samples", "params") or (self.needs == "run") != (self.compute is None):
            raise ValueError(f"score {self.name}: needs {self.needs!r} goes with a compute function unless 'run'")
        if self.margin is not None and not self.margin > 0:
            raise ValueError(f"score {self.name}: margin {self.margin} must be positive")


S = Score
SCORES: tuple[Score, ...] = (
    # pseudo-likelihood and reconstruction (exact, float64)
    S("pl_per_unit", "nats/unit", "higher", margin=0.01, gated=True, shown=("sweep",)),
    S("pl_per_window", "nats/window", "higher"),
    S("valid_pl_per_unit", "nats/unit", "higher"),
    S("pl_sklearn_one_bit_per_unit", "nats/unit", "higher"),
    S("pl_theano_one_bit_per_unit", "nats/unit", "higher"),
    S("valid_reconstruction_xent", "nats/window", "lower"),
    S("reconstruction_xent", "nats/window", "lower"),
    S("free_energy_gap", "nats", "lower"),
    # the log-likelihood bracket: AIS (optimistic) and RAISE (conservative)
    S("ais_ll_per_window", "nats/window", "higher"),
    S("ais_ll_per_row", "nats/row", "higher", margin=1.0, gated=True, shown=("sweep",)),
    S("ais_ll_stderr", "nats/window", "lower"),
    S("raise_ll_per_window", "nats/window", "higher"),
    S("raise_ll_per_row", "nats/row", "higher", margin=1.0, gated=True),
    S("raise_ll_stderr", "nats/window", "lower"),
    S("bracket_width", "nats/window", "lower"),
    # the published benchmarks' unit: NLL per frame over every scored frame (data.pad_last scores them all)
    S("ais_nll_per_frame", "nats/frame", "lower", shown=("published",)),
    S("raise_nll_per_frame", "nats/frame", "lower", shown=("published",)),
    S("bracket_width_per_frame", "nats/frame", "lower", shown=("published",)),
    S("bracket_betas", "betas", "none"),  # the temperatures of the bracket scored (more where the first was too wide)
    S("exact_nll_per_frame", "nats/frame", "lower", shown=("published",)),
    # a padded window's own rows by their marginal (silence summed out), and what scoring silence costs (<= 20 hidden)
    S("exact_marginal_nll_per_frame", "nats/frame", "lower"),
    S("padding_cost_per_frame", "nats/frame", "none"),
    # an exact likelihood (the RNN-NADE's, normalised: no bracket), per row and per window of the data's shape
    S("exact_ll_per_row", "nats/row", "higher", margin=1.0),
    S("exact_ll_per_window", "nats/window", "higher"),
    S("ais_log_z", "nats", "none"),
    S("ais_log_z_stderr", "nats", "lower"),
    S("ais_effective_runs", "runs", "higher"),
    S("ais_base_gap", "nats", "lower"),
    S("ais_min_effective_runs", "runs", "higher"),  # a sequence model: the worst frame's AIS
    S("ais_frames", "frames", "none"),  # a sequence model: frames AIS ran on (the rest by the control variate)
    S("scored_frames", "frames", "none"),
    S("mean_field_gap", "nats/frame", "none"),  # mean log Z_AIS - the mean-field bound over the AIS frames
    S("cd_cost", "nats/frame", "none"),  # a sequence model's training cost, mean F(v) - F(v*) of an epoch
    S("nll_cost", "nats/frame", "lower"),  # the RNN-NADE's training cost: an epoch's mean exact NLL per frame
    S("valid_nll_per_frame", "nats/frame", "lower"),  # a sequence model's curve: NLL of random validation frames
    S("best_epoch", "epoch", "none"),  # early stopping ([run] patience): the epoch whose parameters were kept
    S("epochs_trained", "epochs", "none"),  # ... and the epochs trained before patience ran out
    # samples: the two sample scores, computed from the catalogue
    S("music_structure_js", "bits", "lower", margin=0.02, gated=True, shown=("samples",), needs="samples",
      compute=music_structure_js),
    S("frechet_note_distance", "", "lower", margin=5.0, gated=True, shown=("samples", "sweep"), needs="samples",
      compute=frechet_note_distance),
    # samples: note statistics (eval.scoring.notes) and set comparisons (eval.scoring.sets)
    S("note_density", "fraction", "none", margin=0.005, gated=True, shown=("samples",)),
    S("polyphony", "pitches", "none", margin=0.4, gated=True, shown=("samples",)),
    S("polyphony_rate", "fraction", "none"),
    S("empty_row_rate", "fraction", "none"),
    S("pitch_range", "semitones", "none", margin=4.0, shown=("samples",)),
    S("n_pitches_used", "pitches", "none", shown=("samples",)),
    S("n_pitch_classes_used", "classes", "none"),
    S("pitch_entropy", "bits", "none"),
    S("pitch_class_entropy", "bits", "none"),
    S("scale_consistency", "fraction", "higher", margin=0.03, gated=True, shown=("samples",)),
    S("onset_rate", "notes/row", "none"),
    S("mean_note_length", "rows", "none", shown=("samples",)),
    S("invalid_onset_rate", "fraction", "lower", shown=("samples",)),
    S("js_pitch", "bits", "lower"),
    S("js_pitch_class", "bits", "lower", gated=True, shown=("samples",)),
    S("mgeval_oa_*", "area", "higher"),
    S("mgeval_kl_*", "nats", "lower"),
    S("nearest_train_hamming", "bits", "none"),
    S("copy_rate", "fraction", "lower", shown=("samples",)),
    S("heldout_nearest_train_hamming", "bits", "none"),
    S("heldout_copy_rate", "fraction", "none"),
    S("n_samples_kept", "windows", "none"),
    # samples as whole pieces (eval.scoring.pieces): statistics that need more than one window
    S("bar_repetition", "fraction", "none", shown=("samples",)),
    S("bar_self_similarity", "fraction", "none"),
    S("bar_self_similarity_excess", "fraction", "none", shown=("samples",)),
    S("groove_consistency", "fraction", "none", shown=("samples",)),
    S("pitch_class_drift", "bits", "none"),
    # training and timing
    S("max_abs_param", "", "none"),
    S("epoch_seconds", "s", "lower"),
    S("ais_seconds", "s", "lower"),
    S("raise_seconds", "s", "lower"),
    S("exact_seconds", "s", "lower"),  # the exact likelihood of every scored frame (the RNN-NADE)
    S("train_windows_per_s", "windows/s", "higher", shown=("sweep",)),
    S("train_frames_per_s", "frames/s", "higher"),  # a sequence model's throughput: frames of its chunks
    S("roofline_frames_per_s", "frames/s", "higher"),
    S("generated_frames_per_s", "frames/s", "higher"),
    S("compile_s", "s", "lower"),
    # an execution mode's largest parameter difference from the NumPy reference after three updates from the same
    # noise, relative (|a - b| / (1 + |b|)); the ablation's equivalence check (eval.timing.ablation)
    S("mode_max_difference", "relative", "lower"),
    # an execution mode's speed over the ablation's rounds: (max - min) / median (eval.models.base.ModelPlugin.ablate)
    S("mode_speed_spread", "relative", "lower"),
    S("gibbs_steps_per_s", "steps/s", "higher"),
    S("peak_rss_mb", "MB", "lower"),
    S("peak_device_mb", "MB", "lower"),
    S("roofline_windows_per_s", "windows/s", "higher"),
    S("sklearn_windows_per_s", "windows/s", "higher"),
    S("five_products_ms", "ms", "lower"),
    S("step_products_ms", "ms", "lower"),  # a sequence model: the dense products of its epoch's mean update, alone
    S("step_frames", "frames", "none"),  # the frames of that mean update (the music bounds a chunk)
    S("draw_ms", "ms", "lower"),
    S("ratio_to_roofline", "ratio", "higher"),
    S("train_step_ratio", "ratio", "higher"),  # pytest-benchmark's training step over the roofline (tox -e perf)
    S("ceiling_ratio", "ratio", "higher"),
    S("ratio_to_ceiling", "ratio", "higher"),
)  # fmt: skip
del S


def scores() -> tuple[Score, ...]:
    """The catalogue (read at each call, so a test may extend it)."""
    return SCORES


def lookup(metric: str) -> Score | None:
    """The catalogue entry of a metric (or of its family), None for an unknown one."""
    for score in SCORES:
        if score.name == metric or (score.name.endswith("*") and fnmatchcase(metric, score.name)):
            return score
    return None


def describe(metric: str) -> tuple[str, str]:
    """Unit and better-direction of a metric (``("", "none")`` for one the catalogue does not know)."""
    score = lookup(metric)
    return (score.unit, score.better) if score else ("", "none")


def gated() -> tuple[str, ...]:
    return tuple(s.name for s in SCORES if s.gated)


def shown(table: str) -> tuple[str, ...]:
    return tuple(s.name for s in SCORES if table in s.shown)


def verdict_scores() -> tuple[str, ...]:
    """The scores the cross-framework verdict tests (those with a declared ``margin``), in catalogue order."""
    return tuple(s.name for s in SCORES if s.margin is not None)


def headline() -> tuple[str, ...]:
    """The scores flagged ``diverged`` when training diverged: everything the verdict or the gate reads."""
    return tuple(s.name for s in SCORES if s.gated or s.margin is not None)


def computed(needs: str, *args: Any) -> dict[str, float]:
    """Every catalogue score that ``needs`` this input, computed on ``args`` (``samples, music, spec``)."""
    return {s.name: s.compute(*args) for s in SCORES if s.needs == needs}
