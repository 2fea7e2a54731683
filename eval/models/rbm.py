"""The window RBM's plug-in: windows in, CD epochs with PL curves, the PL and log-likelihood bracket, Gibbs samples.

The steps of a window model's task — `train` (learning curves in PL per unit, divergence checks), `score`
(pseudo-likelihood, the AIS/RAISE bracket, exact log Z for <= 20 hidden units, monitors), `draw` and
`describe` — and its quiet timing phase (windows/s, the five products and draws that make its roofline).
"""

from __future__ import annotations

import math
import time
from dataclasses import replace

import numpy as np

import datasets
from eval.config import EvalConfig
from eval.contract.rows import Recorder
from eval.contract.task import Task
from eval.models.base import BestEpoch, ModelPlugin, Roofline, parameter_problem, steady_epochs
from eval.scoring import catalogue
from eval.scoring.ais import (
    GAP_NATS,
    TRUSTED_EFFECTIVE,
    ais_bases,
    likelihood_bracket,
    misses_exact,
    paper_schedule,
    schedule,
)
from eval.scoring.likelihood import (
    EXACT_HIDDEN,
    exact_log_partition,
    exact_marginal_log_probability,
    free_energy,
    free_energy_gap,
    one_bit_pl,
    pseudo_log_likelihood,
    reconstruction_cross_entropy,
    sklearn_bits,
    theano_bits,
)
from eval.scoring.notes import note_statistics
from eval.scoring.pieces import defined, piece_statistics
from eval.scoring.sequences import joined
from eval.scoring.sets import compare_sets, memorisation
from impls import RBM, RBMConfig, RBMParams, init_params

LOG2 = math.log(2.0)


class WindowRBM(ModelPlugin):
    """The window RBM (``kind = "rbm"``): the suite's default model."""

    name = "rbm"
    curve = "valid_pl_per_unit"
    unit_of_data = "windows"
    roofline = Roofline("train_windows_per_s", "five_products_ms", "draw_ms", lambda config: config["batch_size"])
    sklearn_reference = True
    reads = (
        "curve_every", "pl_valid_windows", "pl_test_windows", "ll_windows", "ais_schedule", "ais_betas", "ais_runs",
        "raise_betas", "raise_windows", "ais_sweep_every", "n_samples", "gibbs_steps", "sample_start",
        "drop_empty_samples", "piece_rows", "bar_rows",
    )  # fmt: skip
    outputs = (
        "pl_per_window", "pl_per_unit", "pl_sklearn_one_bit_per_unit", "pl_theano_one_bit_per_unit",
        "ais_log_z", "ais_log_z_stderr", "ais_effective_runs", "ais_base_gap", "ais_ll_per_window", "ais_ll_per_row",
        "ais_ll_stderr", "raise_ll_per_window", "raise_ll_per_row", "raise_ll_stderr", "bracket_width",
        "ais_nll_per_frame", "raise_nll_per_frame", "bracket_width_per_frame", "exact_nll_per_frame",
        "exact_marginal_nll_per_frame", "padding_cost_per_frame",
        "reconstruction_xent", "free_energy_gap",
    )  # fmt: skip

    def config(self, section: RBMConfig, dataset_spec: datasets.WindowSpec, device: str) -> RBMConfig:
        return replace(section, n_visible=dataset_spec.n_visible, device=device)

    def calibration_fault(self, section: RBMConfig) -> tuple[dict[str, float], str]:
        """Momentum 0.5 (0.9 when the profile's is 0.5): a framework that ignores the profile's momentum, the fault
        a PyTorch port once had."""
        wrong = 0.5 if section.momentum != 0.5 else 0.9
        return {"model.momentum": wrong}, (
            f"momentum {wrong:g} instead of {section.momentum:g} (a framework that ignores the profile's momentum)"
        )

    def inputs(self, at, dataset: datasets.Dataset, seeds: list, split: str | None) -> tuple[RBMParams, list]:
        """``init_params`` of the section's scheme, and the seeded batch order of the point's mode and split."""
        config = self.config(at.model, dataset.spec, "cpu")
        order = datasets.batch_order(dataset, seeds[1], config.batch_size, at.run.epochs, at.data.order, split=split)
        return init_params(config, seeds[0]), order

    def train(self, model: RBM, task: Task, dataset: datasets.Dataset, order: list, record: Recorder, rng,
              best: BestEpoch) -> str:  # fmt: skip
        """All epochs with the schedule's rates and the monitors, stopping early where ``best`` says; returns the
        divergence reason ('' if none)."""
        evaluation, spec = task.evaluation, dataset.spec
        train_windows, valid = dataset.subset("train"), dataset.subset("valid")
        monitor = min(len(valid), evaluation.pl_valid_windows)
        valid_subset = valid[rng.choice(len(valid), monitor, replace=False)] if monitor else valid
        train_subset = train_windows[
            rng.choice(len(train_windows), min(len(train_windows), evaluation.pl_valid_windows), replace=False)
        ]
        for epoch, (batches, rate) in enumerate(zip(order, task.learning_rates(model.config.learning_rate)), start=1):
            started = time.perf_counter()
            model.train_epoch(batches, rate)
            record.add("train", "epoch_seconds", time.perf_counter() - started, epoch)
            params = model.params()
            problem = parameter_problem(params, evaluation.max_abs_param)
            if problem:
                return f"{problem} in epoch {epoch}"
            if len(valid_subset) and (epoch % evaluation.curve_every == 0 or epoch == len(order)):
                per_unit = pseudo_log_likelihood(params, valid_subset).mean() / spec.n_visible
                record.add("train", "valid_pl_per_unit", per_unit, epoch)
                record.add(
                    "train", "valid_reconstruction_xent", reconstruction_cross_entropy(params, valid_subset), epoch
                )
                record.add("train", "free_energy_gap", free_energy_gap(params, train_subset, valid_subset), epoch)
                if best.check(epoch, per_unit, params):
                    break
        return ""

    def score(self, params: RBMParams, task: Task, dataset: datasets.Dataset, record: Recorder, rng) -> str:
        """Pseudo-likelihood, the log-likelihood bracket and monitors; returns a divergence reason ('' if none)."""
        evaluation, spec = task.evaluation, dataset.spec
        scored_split = evaluation.score_split
        scored = dataset.subset(scored_split)[: evaluation.pl_test_windows]
        reason = "" if scored_split == "test" else f"scored on the {scored_split} split (no held-out songs)"
        problem = self.pseudo_likelihoods(params, scored, spec, record, rng, reason)
        if problem:
            return problem
        self.bracket(params, task, dataset, record, rng, reason)
        record.add("eval", "reconstruction_xent", reconstruction_cross_entropy(params, scored))
        for metric, value in catalogue.computed("params", params, scored, spec).items():  # the catalogue's own
            record.add("eval", metric, value, reason=reason)
        valid = dataset.subset("valid")
        if len(valid):
            record.add("eval", "free_energy_gap", free_energy_gap(params, dataset.subset("train")[: len(valid)], valid))
        return ""

    @staticmethod
    def pseudo_likelihoods(params: RBMParams, scored: np.ndarray, spec: datasets.WindowSpec, record: Recorder,
                           rng: np.random.Generator, reason: str) -> str:  # fmt: skip
        """Exact PL per window and unit, and the two one-bit estimates (scikit-learn's, Theano's); '' or why the
        model is no model (worse than coin flips)."""
        pl = pseudo_log_likelihood(params, scored)
        per_unit = pl.mean() / spec.n_visible
        if abs(per_unit) > LOG2:  # worse than a fair coin for every bit: no model, whatever the numbers say
            return f"pl_per_unit {per_unit:.3g} is beyond -log 2 (worse than coin flips)"
        record.add("eval", "pl_per_window", pl.mean(), reason=reason)
        record.add("eval", "pl_per_unit", per_unit, reason=reason)
        sklearn_style = one_bit_pl(params, scored, sklearn_bits(len(scored), spec.n_visible, rng))
        batches, start = np.array_split(scored, max(1, len(scored) // 100)), int(rng.integers(spec.n_visible))
        theano_style = np.concatenate(
            [
                one_bit_pl(params, b, theano_bits(len(b), index, spec.n_visible, start))
                for index, b in enumerate(batches)
            ]
        )
        record.add("eval", "pl_sklearn_one_bit_per_unit", sklearn_style.mean() / spec.n_visible)
        record.add("eval", "pl_theano_one_bit_per_unit", theano_style.mean() / spec.n_visible)
        return ""

    @staticmethod
    def caution(bracket, runs: int) -> str:
        """Why the bracket's AIS side is to be read with care ('' if it need not be)."""
        caution = ""
        if bracket.effective_runs < TRUSTED_EFFECTIVE * runs:  # a few runs carry the weight: the error undercounts
            caution = (
                f"rough: AIS effective sample size {bracket.effective_runs:.1f} of {runs} runs (below "
                f"{TRUSTED_EFFECTIVE:.0%} its standard error undercounts the spread of repeated runs)"
            )
        elif bracket.width is not None and bracket.width < -max(1.0, 3 * (bracket.raise_stderr or 0)):
            caution = f"inverted bracket: RAISE above AIS by {-bracket.width:.2f} nats (the annealing misses mass)"
        if bracket.base_gap > GAP_NATS:  # the starts reached different mass: a multimodal model
            note = f"AIS from the {bracket.start} start (the pilots' log Z differ by {bracket.base_gap:.1f} nats)"
            caution = f"{caution}; {note}" if caution else note
        return caution

    def bracket(self, params: RBMParams, task: Task, dataset: datasets.Dataset, record: Recorder,
                rng: np.random.Generator, reason: str) -> None:  # fmt: skip
        """The AIS/RAISE bracket of the first ``ll_windows`` held-out windows, per window, row and frame; the exact
        answer where the hidden units are few enough to enumerate."""
        evaluation, rows = task.evaluation, dataset.spec.num_timesteps
        ll_windows = dataset.subset(evaluation.score_split)[: evaluation.ll_windows]
        ll_frames = int(dataset.frames[dataset.indices(evaluation.score_split)][: evaluation.ll_windows].sum())
        forward = paper_schedule() if evaluation.ais_schedule == "paper" else schedule(evaluation.ais_betas)
        backward = schedule(evaluation.raise_betas) if evaluation.raise_betas else None  # inverse temperatures
        bracket = likelihood_bracket(
            params, ll_windows, ais_bases(dataset.subset("train")), forward, evaluation.ais_runs, backward, rng,
            sweep_every=evaluation.ais_sweep_every, raise_windows=evaluation.raise_windows,
        )  # fmt: skip
        exact = log_z = None
        if params.W.shape[1] <= EXACT_HIDDEN:  # few enough hidden units to enumerate: the exact answer, the oracle
            log_z = exact_log_partition(params)
            exact = -free_energy(params, ll_windows).mean() - log_z
        miss = misses_exact(exact, bracket.ais, bracket.ais_stderr, bracket.raise_, bracket.raise_stderr)
        caution = "; ".join(note for note in (self.caution(bracket, evaluation.ais_runs), miss) if note)
        reason_raise = "; ".join(note for note in (reason, miss) if note)
        record.add("eval", "ais_log_z", bracket.log_z)
        record.add("eval", "ais_log_z_stderr", bracket.log_z_stderr)
        record.add("eval", "ais_effective_runs", bracket.effective_runs)
        record.add("eval", "ais_base_gap", bracket.base_gap)
        record.add("eval", "ais_ll_per_window", bracket.ais, reason=caution or reason)
        record.add("eval", "ais_ll_per_row", bracket.ais / rows, reason=caution or reason)
        record.add("eval", "ais_ll_stderr", bracket.ais_stderr)
        record.add("timing", "ais_seconds", bracket.ais_seconds)
        if bracket.raise_ is not None:
            record.add("eval", "raise_ll_per_window", bracket.raise_, reason=reason_raise)
            record.add("eval", "raise_ll_per_row", bracket.raise_ / rows, reason=reason_raise)
            if bracket.raise_stderr is not None:
                record.add("eval", "raise_ll_stderr", bracket.raise_stderr)
            record.add("eval", "bracket_width", bracket.width)
            record.add("timing", "raise_seconds", bracket.raise_seconds)
        # The published benchmarks' unit: total NLL of every scored frame over their number (a padded window's silent
        # rows are not frames; their probability lowers the window's, so its NLL per frame errs high: conservative).
        per_frame = len(ll_windows) / ll_frames
        record.add("eval", "ais_nll_per_frame", -bracket.ais * per_frame, reason=caution or reason)
        if bracket.raise_ is not None:
            record.add("eval", "raise_nll_per_frame", -bracket.raise_ * per_frame, reason=reason_raise)
            record.add("eval", "bracket_width_per_frame", bracket.width * per_frame)
        if exact is not None:
            record.add("eval", "exact_nll_per_frame", -exact * per_frame, reason=reason)
            own_rows = dataset.frames[dataset.indices(evaluation.score_split)][: evaluation.ll_windows]
            self.padding_cost(params, ll_windows, own_rows, dataset.spec.row_width, -exact * per_frame, log_z, record)

    @staticmethod
    def padding_cost(params: RBMParams, windows: np.ndarray, own_rows: np.ndarray, row_width: int, padded_nll: float,
                     log_z: float, record: Recorder) -> None:  # fmt: skip
        """Where some scored windows are padded (``pad_last``) and the hidden units few enough to enumerate: the exact
        NLL per frame with each padded window's own rows scored by their marginal (the silence summed out), and what
        scoring the silence instead costs per frame (the README states it, measured)."""
        if (own_rows == windows.shape[1] // row_width).all():
            return
        own = own_rows * row_width
        marginal = -exact_marginal_log_probability(params, windows, own, log_z=log_z).sum() / own_rows.sum()
        record.add("eval", "exact_marginal_nll_per_frame", marginal)
        record.add("eval", "padding_cost_per_frame", padded_nll - marginal)

    def draw(self, model: RBM, task: Task, record: Recorder) -> np.ndarray:
        """Samples the way the profile says (start and Gibbs steps), timed after a warm-up call."""
        evaluation = task.evaluation
        steps, start, n = evaluation.gibbs_steps, evaluation.sample_start, evaluation.n_samples
        model.sample(min(n, 4), min(steps, 2), start)  # warm-up (compilation) outside the timing
        started = time.perf_counter()
        samples = model.sample(n, steps, start)
        if steps:
            record.add("timing", "gibbs_steps_per_s", steps / (time.perf_counter() - started))
        if evaluation.drop_empty_samples:  # the original discarded all-zero samples
            samples = samples[samples.any(1)]
        record.add("sample", "n_samples_kept", len(samples))
        return samples

    def sampling(self, evaluation: EvalConfig, section: RBMConfig) -> str:
        """Chains of windows: where they start and how many Gibbs steps they run."""
        start = {
            "persistent": "from the persistent chains of PCD",
            "random": "from fair coin flips",
            "zeros": "from an all-zero visible layer (the original)",
        }[evaluation.sample_start]
        return f"Samples: {evaluation.n_samples} chains started {start}, then {evaluation.gibbs_steps} Gibbs steps."

    def describe(self, samples: np.ndarray, dataset: datasets.Dataset, task: Task, record: Recorder, rng) -> None:
        """Note statistics, set comparisons, the sample-quality score (`music_structure_js`) and memorisation."""
        if not len(samples):
            record.add("sample", "js_pitch_class", None, status="diverged", reason="every sample was empty")
            return
        evaluation = task.evaluation
        held_out, train = dataset.subset(evaluation.score_split), dataset.subset("train")
        values = {
            **note_statistics(samples, dataset.spec),
            **compare_sets(samples, held_out, dataset.spec, rng),
            **catalogue.computed("samples", samples, held_out, dataset.spec),  # the catalogue's sample scores
            **memorisation(samples, train, held_out),
            **defined(
                piece_statistics(
                    joined(samples, dataset.spec, evaluation.piece_rows), dataset.spec, evaluation.bar_rows
                )
            ),
        }
        for metric, value in values.items():
            record.add("sample", metric, value)

    def mode_difference(self, cls: type, config: RBMConfig, init: RBMParams, updates: int = 3) -> float:
        """``updates`` CD updates of ``config``'s batch from the same data and explicit noise, ``cls`` (an
        implementation in one mode) against the NumPy reference (`eval.timing.ablation.parameter_difference`)."""
        from eval.timing.ablation import parameter_difference
        from impls import load
        from impls.rbm.interface import CDNoise

        rng = np.random.default_rng(0)
        shape = (config.batch_size, config.n_visible)
        batches = [(rng.random(shape) < 0.05).astype(np.float32) for _ in range(updates)]
        noises = [CDNoise.draw(rng, config, config.batch_size) for _ in range(updates)]
        return parameter_difference(cls, load("numpy").in_mode("plain"), config, init, zip(batches, noises))

    def time_training(self, model: RBM, task: Task, dataset: datasets.Dataset, order: list, record: Recorder) -> None:
        """The quiet phase: steady-state windows/s over a few epochs (the first, with compilation, reported apart)."""
        steady, compile_s = steady_epochs(model.train_epoch, order, task.timing_epochs)
        record.add("timing", "train_windows_per_s", sum(len(b) for b in order[0]) / steady)
        record.add("timing", "compile_s", compile_s)
        batch = model.config.batch_size
        record.add("timing", "five_products_ms", model.five_products_ms(batch))
        record.add("timing", "draw_ms", model.draw_ms(batch))
        if (device_mb := model.peak_device_mb()) is not None:
            record.add("timing", "peak_device_mb", device_mb)


PLUGIN = WindowRBM()
