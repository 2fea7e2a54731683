"""The RNN-RBM's plug-in: train on chunks of pieces, score every test frame, generate pieces.

The same steps as the window RBM's (`eval.models.rbm`) — train with divergence checks, score with the
shared float64 scorer on exported parameters, sample, describe the samples — on the same dataset artifact read
as pieces (`datasets.sequences`): training takes the seeded chunk order; scoring runs the RNN over each whole
held-out piece from ``u0`` and brackets ``log p(v(t) | v(<t))`` of every frame (batched AIS per frame from the
frame's mean-field base, on all frames or a random subset extended by the mean-field bound as control variate;
RAISE on a random subset of those; exact by enumeration for <= 20 hidden units); samples are pieces of
``[eval] piece_rows`` rows, generated frame by frame, described as windows of the data's shape (beside the
window model's samples) and as whole pieces (statistics that need more than one window).
"""

from __future__ import annotations

import time
from dataclasses import replace
from functools import partial

import numpy as np

import datasets
from datasets.sequences import chunks
from eval.config import EvalConfig
from eval.contract.rows import Recorder
from eval.contract.task import Task
from eval.models.base import BestEpoch, ModelPlugin, Roofline, parameter_problem, steady_epochs
from eval.models.checkpoints import Checkpoints
from eval.scoring import catalogue
from eval.scoring.ais import CERTIFIED_WIDTH, misses_exact, schedule
from eval.scoring.frames import FrameBracket, frame_likelihood_bracket
from eval.scoring.likelihood import EXACT_HIDDEN
from eval.scoring.notes import note_statistics
from eval.scoring.pieces import defined, piece_statistics
from eval.scoring.sequences import as_windows, pieces_biases
from eval.scoring.sets import compare_sets, memorisation
from eval.timing.rnn_roofline import epoch_products, step_products_ms
from impls import RNNRBM, RNNRBMConfig, RNNRBMParams, init_rnn_rbm_params
from impls.rnn_rbm.numpy import pretrained, pretrained_rnn


def certified_bracket(W: np.ndarray, b_v: np.ndarray, b_h: np.ndarray, v: np.ndarray, evaluation: EvalConfig,
                      rng: np.random.Generator) -> tuple[FrameBracket, int]:  # fmt: skip
    """The frames' AIS/RAISE bracket and the betas it took: at ``ais_betas`` / ``raise_betas``, and once more at
    ``certify_betas`` (both) where that is more and the first bracket is wider than ``CERTIFIED_WIDTH``.

    A bracket that wide cannot stand beside a published figure (`reports.published`); more, finer temperatures
    narrow it (both bounds' bias falls with the schedule's step), so the estimator is improved before giving up.
    """
    backward = schedule(evaluation.raise_betas) if evaluation.raise_betas else None
    bracket = frame_likelihood_bracket(
        W, b_v, b_h, v, schedule(evaluation.ais_betas), evaluation.ais_runs, backward, evaluation.raise_windows, rng,
        ais_frames=evaluation.ais_frames,
    )  # fmt: skip
    betas, width = evaluation.raise_betas, bracket.width_per_frame
    wide = width is not None and width > CERTIFIED_WIDTH
    if wide and evaluation.certify_betas > max(evaluation.ais_betas, evaluation.raise_betas):
        finer = schedule(evaluation.certify_betas)
        bracket = frame_likelihood_bracket(
            W, b_v, b_h, v, finer, evaluation.ais_runs, finer, evaluation.raise_windows, rng,
            ais_frames=evaluation.ais_frames,
        )  # fmt: skip
        betas = evaluation.certify_betas
    return bracket, betas


def scored_frames(dataset: datasets.Dataset, split: str, windows: int) -> np.ndarray:
    """Which of the split's frames (in `datasets.piece_frames` order) the bracket scores: those of its first
    ``windows`` windows, the rows a window model's bracket scores (``[eval] ll_windows``)."""
    first = dataset.indices(split)[:windows]
    frames = np.concatenate(datasets.piece_frames(dataset, split))
    return np.isin(frames // dataset.spec.num_timesteps, first)


def validation_frames(dataset: datasets.Dataset, count: int, eval_seed: int) -> tuple | None:
    """A sequence model's curve: the validation pieces, which ``count`` of their frames it scores (at random), and
    its random stream, spawned from the task's evaluation seed apart from the scorer's (None: no validation split)."""
    pieces = datasets.piece_frames(dataset, "valid")
    if not pieces:
        return None
    rng = np.random.default_rng(np.random.SeedSequence(eval_seed, spawn_key=(1,)))  # not the scorer's
    total = sum(len(p) for p in pieces)
    chosen = np.sort(rng.choice(total, min(total, count), replace=False))
    table = datasets.frame_table(dataset)
    return [table[frames] for frames in pieces], chosen, rng


def describe_pieces(pieces: np.ndarray, dataset: datasets.Dataset, split: str, bar_rows: int, record: Recorder,
                    rng: np.random.Generator) -> None:  # fmt: skip
    """A sequence model's samples: the window model's sample statistics on the pieces cut into windows of the
    data's shape (against the ``split`` held out), and whole-piece statistics (``bar_rows`` rows to a bar)."""
    spec = dataset.spec
    windows = as_windows(pieces, spec.num_timesteps)
    held_out, train_windows = dataset.subset(split), dataset.subset("train")
    values = {
        **note_statistics(windows, spec),
        **compare_sets(windows, held_out, spec, rng),
        **catalogue.computed("samples", windows, held_out, spec),
        **memorisation(windows, train_windows, held_out),
        **defined(piece_statistics(list(pieces), spec, bar_rows)),
    }
    for metric, value in values.items():
        record.add("sample", metric, value)


class RNNRBMPlugin(ModelPlugin):
    """The RNN-RBM (``kind = "rnn_rbm"``): chunks of pieces in, every test frame scored, pieces out."""

    name = "rnn_rbm"
    curve = "valid_nll_per_frame"
    unit_of_data = "frames"
    roofline = Roofline("train_frames_per_s", "step_products_ms", "draw_ms", "step_frames", own_products=False)
    checkpoints = True
    reads = (
        "curve_every", "pl_valid_windows", "ll_windows", "ais_betas", "ais_runs", "raise_betas", "raise_windows",
        "ais_frames", "certify_betas", "n_samples", "piece_rows", "bar_rows", "sample_start",
    )  # fmt: skip
    outputs = (
        "ais_nll_per_frame", "ais_ll_per_row", "ais_ll_per_window", "ais_ll_stderr", "ais_effective_runs",
        "ais_min_effective_runs", "ais_frames", "scored_frames", "mean_field_gap", "raise_nll_per_frame",
        "raise_ll_per_row", "raise_ll_per_window", "raise_ll_stderr", "bracket_width_per_frame", "bracket_width",
        "exact_nll_per_frame", "bracket_betas",
    )  # fmt: skip

    def mode_difference(self, cls: type, config: RNNRBMConfig, init: RNNRBMParams, updates: int = 3) -> float:
        """``updates`` CD-k + BPTT updates of ``config``'s batch of chunks (``batch_size`` x ``chunk_length`` frames)
        from the same data and explicit noise, ``cls`` against the NumPy reference
        (`eval.timing.ablation.parameter_difference`)."""
        from eval.timing.ablation import parameter_difference
        from impls import load
        from impls.rnn_rbm.interface import RNNRBMNoise

        rng = np.random.default_rng(0)
        shape = (config.batch_size, config.chunk_length, config.n_visible)
        batches = [(rng.random(shape) < 0.05).astype(np.float32) for _ in range(updates)]
        noises = [RNNRBMNoise.draw(rng, config, *shape[:2]) for _ in range(updates)]
        reference = load("numpy", "rnn_rbm").in_mode("plain")  # the specification
        return parameter_difference(cls, reference, config, init, zip(batches, noises))

    def config(self, section: RNNRBMConfig, dataset_spec: datasets.WindowSpec, device: str) -> RNNRBMConfig:
        return replace(section, n_visible=dataset_spec.row_width, device=device)

    def inputs(self, at, dataset: datasets.Dataset, seeds: list, split: str | None) -> tuple[RNNRBMParams, list]:
        """Its own initial weights (pre-trained if the section says so: part of the shared, hashed weights) and
        the seeded order of chunks of pieces."""
        config = self.config(at.model, dataset.spec, "cpu")
        params = init_rnn_rbm_params(config, seeds[0])
        rbm_seed, rnn_seed = seeds[0].spawn(2)
        if config.pretrain_epochs:
            frames = datasets.frame_table(dataset)[np.concatenate(datasets.piece_frames(dataset, "train"))]
            rate = config.pretrain_learning_rate
            params = pretrained(params, frames, config.pretrain_epochs, rbm_seed, rate)
        if config.pretrain_rnn_epochs:
            table = datasets.frame_table(dataset)
            cut = [table[c] for c in chunks(datasets.piece_frames(dataset, "train"), config.chunk_length)]
            rate = config.pretrain_rnn_learning_rate
            params = pretrained_rnn(params, cut, config.pretrain_rnn_epochs, rnn_seed, rate)
        order = datasets.chunk_order(dataset, seeds[1], config.chunk_length, config.batch_size, at.run.epochs, split)
        return params, order

    def training_data(self, dataset: datasets.Dataset) -> np.ndarray:
        return datasets.frame_table(dataset)

    def train(self, model: RNNRBM, task: Task, dataset: datasets.Dataset, order: list, record: Recorder,
              rng: np.random.Generator, best: BestEpoch, checkpoints: Checkpoints | None = None) -> str:  # fmt: skip
        """Every epoch's updates at the schedule's rate, stopping early where ``best`` says; '' or why it diverged.

        Curves: the epoch's mean CD cost, and every ``curve_every`` epochs (and the last) the NLL per frame of
        ``pl_valid_windows`` random validation frames, each conditioned on its piece's true past (exact for
        <= 20 hidden units, else AIS from the frame's mean-field base), from a stream of its own. A long run
        (``checkpoints``) goes on after its last saved epoch, each epoch's noise from its own seed.
        """
        curve = validation_frames(dataset, task.evaluation.pl_valid_windows, task.eval_seed)
        first, stopped = 1, False
        if checkpoints is not None:
            if curve is not None:
                checkpoints.stream("curve", curve[2])
            first, stopped = checkpoints.resume(best, record)
        for epoch, (updates, rate) in enumerate(zip(order, task.learning_rates(model.config.learning_rate)), start=1):
            if stopped or epoch < first:
                continue
            if checkpoints is not None:
                model.reseed(checkpoints.epoch_seed(epoch))
            started = time.perf_counter()
            costs = model.train_epoch(updates, rate)
            record.add("train", "epoch_seconds", time.perf_counter() - started, epoch)
            weights = [update.size for update in updates]
            record.add("train", "cd_cost", float(np.average(costs, weights=weights)), epoch)
            params = model.params()
            problem = parameter_problem(params, task.evaluation.max_abs_param)
            if problem:
                return f"{problem} in epoch {epoch}"
            if curve is not None and (epoch % task.evaluation.curve_every == 0 or epoch == len(order)):
                nll = self.validation_nll(params, task, *curve)
                record.add("train", "valid_nll_per_frame", nll, epoch)
                stopped = best.check(epoch, nll, params)
            if checkpoints is not None:
                checkpoints.save(epoch, params, best, record, stopped)
            if stopped:
                break
        return ""

    @staticmethod
    def validation_nll(params: RNNRBMParams, task: Task, pieces: list, chosen: np.ndarray, rng) -> float:
        """Mean NLL per frame of the chosen validation frames (exact where the hidden units allow, else AIS)."""
        v, b_v, b_h = (a[chosen] for a in pieces_biases(params, pieces))
        evaluation = task.evaluation
        bracket = frame_likelihood_bracket(
            params.W, b_v, b_h, v, schedule(evaluation.ais_betas), evaluation.ais_runs, None, 0, rng
        )
        exact = bracket.exact_nll_per_frame if params.W.shape[1] <= EXACT_HIDDEN else None
        return exact if exact is not None else bracket.ais_nll_per_frame

    def score(self, params: RNNRBMParams, task: Task, dataset: datasets.Dataset, record: Recorder, rng) -> str:
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
        bracket, betas = certified_bracket(params.W, b_v, b_h, v, evaluation, rng)
        if not np.isfinite(bracket.ais_nll_per_frame):
            return "the per-frame AIS log-likelihood is NaN/inf"
        caution = ""
        if bracket.min_effective_runs < 0.1 * evaluation.ais_runs:
            caution = (
                f"rough on some frames: AIS effective runs down to {bracket.min_effective_runs:.1f} of "
                f"{evaluation.ais_runs} (median {bracket.effective_runs:.1f})"
            )
        exact = bracket.exact_nll_per_frame if params.W.shape[1] <= EXACT_HIDDEN else None
        miss = misses_exact(
            None if exact is None else -exact, -bracket.ais_nll_per_frame, bracket.ais_stderr,
            None if bracket.raise_nll_per_frame is None else -bracket.raise_nll_per_frame, bracket.raise_stderr,
        )  # fmt: skip
        caution = "; ".join(note for note in (caution, miss) if note)
        reason_raise = "; ".join(note for note in (reason, miss) if note)
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
            record.add("eval", "raise_nll_per_frame", bracket.raise_nll_per_frame, reason=reason_raise)
            record.add("eval", "raise_ll_per_row", -bracket.raise_nll_per_frame, reason=reason_raise)
            record.add("eval", "raise_ll_per_window", -bracket.raise_nll_per_frame * rows, reason=reason_raise)
            if bracket.raise_stderr is not None:
                record.add("eval", "raise_ll_stderr", bracket.raise_stderr * rows)
            record.add("eval", "bracket_width_per_frame", bracket.width_per_frame)
            record.add("eval", "bracket_width", bracket.width_per_frame * rows)
            record.add("eval", "bracket_betas", betas)
            record.add("timing", "raise_seconds", bracket.raise_seconds)
        if exact is not None:
            record.add("eval", "exact_nll_per_frame", exact, reason=reason)
        return ""

    def draw(self, model: RNNRBM, task: Task, record: Recorder) -> np.ndarray:
        """``n_samples`` pieces of ``piece_rows`` rows, each frame by ``cd_steps`` Gibbs steps from ``sample_start``
        (silence, or a random frame of fair coins drawn from a stream of its own); timed after a warm-up."""
        evaluation = task.evaluation
        n, rows, start = evaluation.n_samples, evaluation.piece_rows, None
        if evaluation.sample_start == "random":
            rng = np.random.default_rng(np.random.SeedSequence(task.eval_seed, spawn_key=(2,)))
            start = (rng.random((n, rows, model.config.n_visible)) < 0.5).astype(float)
        model.generate(n, rows, start=start)  # warm-up: a compiled framework compiles this shape
        started = time.perf_counter()
        pieces = model.generate(n, rows, start=start)
        record.add(
            "timing", "generated_frames_per_s", pieces.shape[0] * pieces.shape[1] / (time.perf_counter() - started)
        )
        record.add("sample", "n_samples_kept", len(pieces))
        return pieces

    def sampling(self, evaluation: EvalConfig, section: RNNRBMConfig) -> str:
        """Pieces generated frame by frame, each frame by Gibbs steps of its conditional RBM from a chosen start."""
        start = "silence" if evaluation.sample_start == "zeros" else "a frame of fair coin flips"
        return (
            f"Samples: {evaluation.n_samples} pieces of {evaluation.piece_rows} rows, generated frame by frame: each "
            f"frame by {section.cd_steps} Gibbs steps of its conditional RBM from {start}, then fed to the RNN. The "
            "note statistics read them as windows of the data's shape; the bar statistics as whole pieces."
        )

    def describe(self, pieces: np.ndarray, dataset: datasets.Dataset, task: Task, record: Recorder, rng) -> None:
        """The window model's sample statistics on the pieces cut into windows, and whole-piece statistics."""
        describe_pieces(pieces, dataset, task.evaluation.score_split, task.evaluation.bar_rows, record, rng)

    def time_training(self, model: RNNRBM, task: Task, dataset: datasets.Dataset, order: list,
                      record: Recorder) -> None:  # fmt: skip
        """The quiet phase: steady-state frames/s (`steady_epochs`), the products of the epoch's mean update alone
        (the harness's roofline, `epoch_products`) and its noise draws with the framework's own generator (the
        ceiling's: the largest update's, scaled to the mean update's frames, as the draws are one per unit)."""
        steady, compile_s = steady_epochs(model.train_epoch, order, task.timing_epochs)
        speed = sum(u.size for u in order[0]) / steady
        record.add("timing", "train_frames_per_s", speed)
        record.add("timing", "compile_s", compile_s)
        frames, products_ms = epoch_products(partial(step_products_ms, model.config), order[0])
        record.add("timing", "step_frames", frames)
        record.add("timing", "step_products_ms", products_ms)
        largest = max(order[0], key=np.size)
        record.add("timing", "draw_ms", model.draw_ms(*largest.shape) * frames / largest.size)


PLUGIN = RNNRBMPlugin()
