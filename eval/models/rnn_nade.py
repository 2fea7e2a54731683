"""The RNN-NADE's plug-in: train on chunks of pieces by the exact gradient, score every test frame exactly, generate
pieces ancestrally.

The RNN-RBM's steps (`eval.models.rnn_rbm`) on the same dataset artifact read as pieces, with the NADE's exact
likelihood in place of the RBM's bracket: training takes the seeded chunk order and logs the epoch's mean NLL per
frame (its exact cost) and, every ``curve_every`` epochs, the exact NLL per frame of ``pl_valid_windows`` random
validation frames (the curve early stopping reads); scoring runs the RNN over each whole held-out piece from ``u0``
and sums ``log p(v(t) | v(<t))`` of every scored frame exactly, in float64, from exported parameters
(`eval.scoring.nade`): no partition function, so no AIS, no RAISE and no bracket. Samples are drawn ancestrally,
unit by unit and frame by frame (no chain, so no start and no Gibbs steps to choose), as pieces of
``[eval] piece_rows`` rows, described as the RNN-RBM's are. ``n_recurrent = 0`` is the frame NADE: the same steps.
"""

from __future__ import annotations

import time
from dataclasses import replace
from functools import partial

import numpy as np

import datasets
from eval.config import EvalConfig
from eval.contract.rows import Recorder
from eval.contract.task import Task
from eval.models.base import BestEpoch, ModelPlugin, Roofline, parameter_problem, steady_epochs
from eval.models.rnn_rbm import describe_pieces, scored_frames, validation_frames
from eval.scoring.nade import pieces_log_probs
from eval.timing.rnn_roofline import epoch_products, nade_products_ms
from impls import RNNNADE, RNNNADEConfig, RNNNADEParams, init_rnn_nade_params


class RNNNADEPlugin(ModelPlugin):
    """The RNN-NADE (``kind = "rnn_nade"``): chunks of pieces in, every test frame scored exactly, pieces out."""

    name = "rnn_nade"
    curve = "valid_nll_per_frame"
    unit_of_data = "frames"
    roofline = Roofline("train_frames_per_s", "step_products_ms", None, "step_frames", own_products=False)
    reads = ("curve_every", "pl_valid_windows", "ll_windows", "n_samples", "piece_rows", "bar_rows")
    outputs = ("exact_nll_per_frame", "exact_ll_per_row", "exact_ll_per_window", "scored_frames")

    def mode_difference(self, cls: type, config: RNNNADEConfig, init: RNNNADEParams, updates: int = 3) -> float:
        """``updates`` Adam steps on ``config``'s batch of chunks (``batch_size`` x ``chunk_length`` frames; the
        gradient is exact, no noise), ``cls`` against the NumPy reference
        (`eval.timing.ablation.parameter_difference`)."""
        from eval.timing.ablation import parameter_difference
        from impls import load

        rng = np.random.default_rng(0)
        shape = (config.batch_size, config.chunk_length, config.n_visible)
        batches = [(rng.random(shape) < 0.05).astype(np.float32) for _ in range(updates)]
        reference = load("numpy", "rnn_nade")
        return parameter_difference(cls, reference, config, init, batches, update=lambda model, v: model.update(v))

    def config(self, section: RNNNADEConfig, dataset_spec: datasets.WindowSpec, device: str) -> RNNNADEConfig:
        return replace(section, n_visible=dataset_spec.row_width, device=device)

    def inputs(self, at, dataset: datasets.Dataset, seeds: list, split: str | None) -> tuple[RNNNADEParams, list]:
        """The initial weights (`init_rnn_nade_params`) and the seeded order of chunks of pieces."""
        config = self.config(at.model, dataset.spec, "cpu")
        order = datasets.chunk_order(dataset, seeds[1], config.chunk_length, config.batch_size, at.run.epochs, split)
        return init_rnn_nade_params(config, seeds[0]), order

    def training_data(self, dataset: datasets.Dataset) -> np.ndarray:
        return datasets.frame_table(dataset)

    def train(self, model: RNNNADE, task: Task, dataset: datasets.Dataset, order: list, record: Recorder,
              rng: np.random.Generator, best: BestEpoch) -> str:  # fmt: skip
        """Every epoch's updates at the schedule's rate, stopping early where ``best`` says; '' or why it diverged.

        Curves: the epoch's mean cost (``nll_cost``: exact NLL per frame of its chunks, before each step), and every
        ``curve_every`` epochs (and the last) the exact NLL per frame of ``pl_valid_windows`` random validation
        frames, each conditioned on its piece's true past (`validation_frames`).
        """
        curve = validation_frames(dataset, task.evaluation.pl_valid_windows, task.eval_seed)
        for epoch, (updates, rate) in enumerate(zip(order, task.learning_rates(model.config.learning_rate)), start=1):
            started = time.perf_counter()
            costs = model.train_epoch(updates, rate)
            record.add("train", "epoch_seconds", time.perf_counter() - started, epoch)
            record.add("train", "nll_cost", float(np.average(costs, weights=[u.size for u in updates])), epoch)
            params = model.params()
            problem = parameter_problem(params, task.evaluation.max_abs_param)
            if problem:
                return f"{problem} in epoch {epoch}"
            if curve is not None and (epoch % task.evaluation.curve_every == 0 or epoch == len(order)):
                pieces, chosen, _ = curve
                nll = -float(pieces_log_probs(params, pieces, chosen).mean())
                record.add("train", "valid_nll_per_frame", nll, epoch)
                if best.check(epoch, nll, params):
                    break
        return ""

    def score(self, params: RNNNADEParams, task: Task, dataset: datasets.Dataset, record: Recorder, rng) -> str:
        """The exact NLL per frame (= per row: a row is a frame) of every scored frame; '' or why it diverged.

        The frames scored are those of the first ``ll_windows`` held-out windows (every one on the published
        benchmarks' profiles), each conditioned on its piece's whole true past.
        """
        evaluation = task.evaluation
        split = evaluation.score_split
        reason = "" if split == "test" else f"scored on the {split} split (no held-out songs)"
        table, scored = datasets.frame_table(dataset), scored_frames(dataset, split, evaluation.ll_windows)
        pieces = [table[frames] for frames in datasets.piece_frames(dataset, split)]
        started = time.perf_counter()
        nll = -float(pieces_log_probs(params, pieces, np.flatnonzero(scored)).mean())
        if not np.isfinite(nll):
            return "the exact log-likelihood is NaN/inf"
        rows = dataset.spec.num_timesteps  # a window of the data's shape: the window model's unit, for the table
        record.add("eval", "exact_nll_per_frame", nll, reason=reason)
        record.add("eval", "exact_ll_per_row", -nll, reason=reason)
        record.add("eval", "exact_ll_per_window", -nll * rows, reason=reason)
        record.add("eval", "scored_frames", int(scored.sum()))
        record.add("timing", "exact_seconds", time.perf_counter() - started)
        return ""

    def draw(self, model: RNNNADE, task: Task, record: Recorder) -> np.ndarray:
        """``n_samples`` pieces of ``piece_rows`` rows by ancestral sampling (unit by unit, frame by frame, the RNN fed
        each sampled frame), from the implementation's own generator; timed after a warm-up."""
        evaluation = task.evaluation
        n, rows = evaluation.n_samples, evaluation.piece_rows
        model.generate(n, rows)  # warm-up: a compiled framework compiles this shape
        started = time.perf_counter()
        pieces = model.generate(n, rows)
        record.add(
            "timing", "generated_frames_per_s", pieces.shape[0] * pieces.shape[1] / (time.perf_counter() - started)
        )
        record.add("sample", "n_samples_kept", len(pieces))
        return pieces

    def sampling(self, evaluation: EvalConfig, section: RNNNADEConfig) -> str:
        """Pieces drawn ancestrally: no chain, so no start and no steps to choose."""
        past = "then fed to the RNN" if section.n_recurrent else "independent of the frames before it (no recurrence)"
        return (
            f"Samples: {evaluation.n_samples} pieces of {evaluation.piece_rows} rows by ancestral sampling: each frame "
            f"drawn exactly from its NADE, unit by unit (no chain, no start, no Gibbs steps), {past}. The note "
            "statistics read them as windows of the data's shape; the bar statistics as whole pieces."
        )

    def describe(self, pieces: np.ndarray, dataset: datasets.Dataset, task: Task, record: Recorder, rng) -> None:
        """The window model's sample statistics on the pieces cut into windows, and whole-piece statistics."""
        describe_pieces(pieces, dataset, task.evaluation.score_split, task.evaluation.bar_rows, record, rng)

    def time_training(self, model: RNNNADE, task: Task, dataset: datasets.Dataset, order: list,
                      record: Recorder) -> None:  # fmt: skip
        """The quiet phase: steady-state frames/s (`steady_epochs`) and the products of the epoch's mean update
        alone (the harness's roofline: the masked product and the RNN's, `nade_products_ms`, `epoch_products`)."""
        steady, compile_s = steady_epochs(model.train_epoch, order, task.timing_epochs)
        record.add("timing", "train_frames_per_s", sum(u.size for u in order[0]) / steady)
        record.add("timing", "compile_s", compile_s)
        frames, products_ms = epoch_products(partial(nade_products_ms, model.config), order[0])
        record.add("timing", "step_frames", frames)
        record.add("timing", "step_products_ms", products_ms)


PLUGIN = RNNNADEPlugin()
