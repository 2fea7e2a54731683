"""A sequence model's task (the RNN-RBM): train on chunks of pieces, score every test frame, generate pieces.

The same steps as a window model's task in `eval.bench.worker` — train with divergence checks, score with the
shared float64 scorer on exported parameters, sample, describe the samples — on the same dataset artifact read
as pieces (`datasets.sequences`): training takes the seeded chunk order; scoring runs the RNN over each whole
held-out piece from ``u0`` and brackets ``log p(v(t) | v(<t))`` of every frame (batched AIS per frame from the
frame's mean-field base, on all frames or a random subset extended by the mean-field bound as control variate;
RAISE on a random subset of those; exact by enumeration for <= 20 hidden units); samples are pieces of
``[eval] piece_rows`` rows, generated frame by frame, described as windows of the data's shape (beside the
window model's samples) and as whole pieces (statistics that need more than one window).
"""

from __future__ import annotations

import resource
import time

import numpy as np

import datasets
from eval.bench.rows import Recorder
from eval.bench.tasks import Task
from eval.scoring import catalogue
from eval.scoring.ais import schedule
from eval.scoring.frames import frame_likelihood_bracket
from eval.scoring.likelihood import EXACT_HIDDEN
from eval.scoring.notes import note_statistics
from eval.scoring.pieces import defined, piece_statistics
from eval.scoring.sequences import as_windows, pieces_biases
from eval.scoring.sets import compare_sets, memorisation
from eval.timing.rnn_roofline import step_products_ms
from impls import RNNRBM, RNNRBMParams


def parameter_problem(params: RNNRBMParams, bound: float) -> str:
    """Why parameters count as diverged (NaN/inf, or larger than the profile's bound), else ''."""
    if not params.finite():
        return "parameters became NaN/inf"
    largest = max(float(np.abs(a).max()) for a in params.arrays())
    return f"max |parameter| {largest:.3g} exceeds max_abs_param {bound:g}" if largest > bound else ""


def train(model: RNNRBM, task: Task, table: np.ndarray, order: list, record: Recorder) -> str:
    """Every epoch's updates at the schedule's rate; the epoch's mean CD cost as the curve; '' or why it diverged."""
    for epoch, (updates, rate) in enumerate(zip(order, task.learning_rates(model.config.learning_rate)), start=1):
        started = time.perf_counter()
        costs = [model.train_chunks(table[update], learning_rate=rate) for update in updates]
        record.add("train", "epoch_seconds", time.perf_counter() - started, epoch)
        weights = [update.size for update in updates]
        record.add("train", "cd_cost", float(np.average([c.mean() for c in costs], weights=weights)), epoch)
        problem = parameter_problem(model.params(), task.evaluation.max_abs_param)
        if problem:
            return f"{problem} in epoch {epoch}"
    return ""


def scored_frames(dataset: datasets.Dataset, split: str, windows: int) -> np.ndarray:
    """Which of the split's frames (in `datasets.piece_frames` order) the bracket scores: those of its first
    ``windows`` windows, the rows a window model's bracket scores (``[eval] ll_windows``)."""
    first = dataset.indices(split)[:windows]
    frames = np.concatenate(datasets.piece_frames(dataset, split))
    return np.isin(frames // dataset.spec.num_timesteps, first)


def score(params: RNNRBMParams, task: Task, dataset: datasets.Dataset, record: Recorder, rng) -> str:
    """The per-frame bracket, in nats per frame (= per row); '' or why it diverged.

    The frames scored are those of the first ``ll_windows`` held-out windows (every one on the published
    benchmarks' profiles), each conditioned on its piece's whole true past.
    """
    evaluation = task.evaluation
    split = evaluation.score_split
    reason = "" if split == "test" else f"scored on the {split} split (no held-out songs)"
    table, scored = datasets.frame_table(dataset), scored_frames(dataset, split, evaluation.ll_windows)
    pieces = datasets.piece_frames(dataset, split)
    v, b_v, b_h = pieces_biases(params, [table[frames] for frames in pieces])  # the RNN over each whole piece
    v, b_v, b_h = (a[scored] for a in (v, b_v, b_h))
    backward = schedule(evaluation.raise_betas) if evaluation.raise_betas else None
    bracket = frame_likelihood_bracket(
        params.W, b_v, b_h, v, schedule(evaluation.ais_betas), evaluation.ais_runs, backward,
        evaluation.raise_windows, rng, ais_frames=evaluation.ais_frames,
    )  # fmt: skip
    if not np.isfinite(bracket.ais_nll_per_frame):
        return "the per-frame AIS log-likelihood is NaN/inf"
    caution = ""
    if bracket.min_effective_runs < 0.1 * evaluation.ais_runs:
        caution = (
            f"rough on some frames: AIS effective runs down to {bracket.min_effective_runs:.1f} of "
            f"{evaluation.ais_runs} (median {bracket.effective_runs:.1f})"
        )
    rows = dataset.spec.num_timesteps  # a window of the data's shape: the window model's unit, for the table
    record.add("eval", "ais_nll_per_frame", bracket.ais_nll_per_frame, reason=caution or reason)
    record.add("eval", "ais_ll_per_row", -bracket.ais_nll_per_frame, reason=caution or reason)
    record.add("eval", "ais_ll_per_window", -bracket.ais_nll_per_frame * rows, reason=caution or reason)
    record.add("eval", "ais_ll_stderr", bracket.ais_stderr * rows)
    record.add("eval", "ais_effective_runs", bracket.effective_runs)
    record.add("eval", "ais_min_effective_runs", bracket.min_effective_runs)
    record.add("eval", "ais_frames", bracket.ais_frames)
    record.add("eval", "scored_frames", bracket.frames)
    if bracket.mean_field_gap is not None:
        record.add("eval", "mean_field_gap", bracket.mean_field_gap)
    record.add("timing", "ais_seconds", bracket.ais_seconds)
    if bracket.raise_nll_per_frame is not None:
        record.add("eval", "raise_nll_per_frame", bracket.raise_nll_per_frame, reason=reason)
        record.add("eval", "raise_ll_per_row", -bracket.raise_nll_per_frame, reason=reason)
        record.add("eval", "raise_ll_per_window", -bracket.raise_nll_per_frame * rows, reason=reason)
        if bracket.raise_stderr is not None:
            record.add("eval", "raise_ll_stderr", bracket.raise_stderr * rows)
        record.add("eval", "bracket_width_per_frame", bracket.width_per_frame)
        record.add("eval", "bracket_width", bracket.width_per_frame * rows)
        record.add("timing", "raise_seconds", bracket.raise_seconds)
    if bracket.exact_nll_per_frame is not None and params.W.shape[1] <= EXACT_HIDDEN:
        record.add("eval", "exact_nll_per_frame", bracket.exact_nll_per_frame, reason=reason)
    return ""


def generate(model: RNNRBM, task: Task, record: Recorder) -> np.ndarray:
    """``n_samples`` pieces of ``piece_rows`` rows, each frame by ``cd_k`` Gibbs steps; timed after a warm-up."""
    evaluation = task.evaluation
    model.generate(evaluation.n_samples, evaluation.piece_rows)  # warm-up: a compiled framework compiles this shape
    started = time.perf_counter()
    pieces = model.generate(evaluation.n_samples, evaluation.piece_rows)
    record.add("timing", "generated_frames_per_s", pieces.shape[0] * pieces.shape[1] / (time.perf_counter() - started))
    record.add("sample", "n_samples_kept", len(pieces))
    return pieces


def describe(pieces: np.ndarray, dataset: datasets.Dataset, task: Task, record: Recorder, rng) -> None:
    """The window model's sample statistics on the pieces cut into windows, and whole-piece statistics."""
    spec = dataset.spec
    windows = as_windows(pieces, spec.num_timesteps)
    held_out, train_windows = dataset.subset(task.evaluation.score_split), dataset.subset("train")
    values = {
        **note_statistics(windows, spec),
        **compare_sets(windows, held_out, spec, rng),
        **catalogue.computed("samples", windows, held_out, spec),
        **memorisation(windows, train_windows, held_out),
        **defined(piece_statistics(list(pieces), spec, task.evaluation.bar_rows)),
    }
    for metric, value in values.items():
        record.add("sample", metric, value)


def time_training(model: RNNRBM, task: Task, table: np.ndarray, order: list, record: Recorder) -> None:
    """The quiet phase: steady-state frames/s over a few epochs (the first, with compilation, reported apart)."""
    epochs = (order * task.timing_epochs)[: task.timing_epochs]
    seconds = []
    for updates in epochs:
        started = time.perf_counter()
        for update in updates:
            model.train_chunks(table[update])
        seconds.append(time.perf_counter() - started)
    steady = float(np.median(seconds[1:]))
    speed = sum(u.size for u in epochs[0]) / steady
    record.add("timing", "train_frames_per_s", speed)
    record.add("timing", "compile_s", max(0.0, seconds[0] - steady))
    config = model.config  # the roofline at the profile's full update shape, measured in this quiet process
    roof = config.batch_size * config.chunk_length / step_products_ms(config, config.batch_size, config.chunk_length)
    record.add("timing", "roofline_frames_per_s", roof * 1e3)
    record.add("timing", "ratio_to_roofline", speed / (roof * 1e3))


def run(
    model: RNNRBM, task: Task, dataset: datasets.Dataset, order: list, record: Recorder, rng: np.random.Generator
) -> tuple[list[dict], dict]:
    """Train, score, generate and describe one sequence model; returns result rows and artefacts."""
    table = datasets.frame_table(dataset)
    if task.kind == "timing":
        time_training(model, task, table, order, record)
        return record.rows, {}
    diverged = train(model, task, table, order, record)
    params = model.params()
    record.add("train", "max_abs_param", max(float(np.abs(a).max()) for a in params.arrays()))
    diverged = diverged or score(params, task, dataset, record, rng)
    if diverged:
        record.flag(catalogue.headline(), diverged)
        return record.rows, {}
    pieces = generate(model, task, record)
    describe(pieces, dataset, task, record, rng)
    record.add("train", "peak_rss_mb", resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024)
    return record.rows, {"samples": pieces, "params": params}
