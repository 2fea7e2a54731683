"""One task in its own process: ``python -m eval.bench.worker TASK.json ROOT OUT``.

A training task runs four steps — `train` (with learning curves and
divergence checks), `score` (pseudo-likelihood, the log-likelihood bracket,
monitors), `draw_samples` and `describe_samples` — and a timing task measures
steady-state throughput in the quiet phase. Inputs are read from ``ROOT``
(the run folder, or a worker machine's copy) after their hashes are checked;
outputs go to ``OUT`` (``result.json``, ``samples.npy``, ``params.npz``), which
the client copies into the run folder. Only the implementation's own module
imports a framework; scoring is the shared float64 scorer on exported parameters.
"""

from __future__ import annotations

import json
import math
import os
import resource
import sys
import time
from dataclasses import fields, replace
from pathlib import Path

import numpy as np

import datasets
from core.files import atomic_write_text, sha256_file
from eval.bench import sequence_task
from eval.bench.rows import InputMismatch, Recorder
from eval.bench.tasks import Task, load_order, rnn_param_names
from eval.scoring import catalogue
from eval.scoring.ais import GAP_NATS, ais_bases, likelihood_bracket, paper_schedule, schedule
from eval.scoring.likelihood import (
    EXACT_HIDDEN,
    exact_log_partition,
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
from impls import RBM, Params, RNNRBMParams, Unavailable, load

LOG2 = math.log(2.0)


def load_inputs(task: Task, root: Path) -> tuple[datasets.Dataset, Params | RNNRBMParams, list[list[np.ndarray]]]:
    """The shared dataset, initial parameters and batch order, each checked against the recorded sha256."""
    for name, item in task.inputs.items():
        path = root / item.path
        if not path.is_file():
            raise InputMismatch(f"input {name} ({item.path}) is missing on this machine")
        if sha256_file(path) != item.sha256:
            raise InputMismatch(
                f"input {name} ({item.path}) has sha256 {sha256_file(path)[:12]}, not {item.sha256[:12]}"
            )
    dataset = datasets.load(root / task.inputs["dataset"].path, expected_hash=task.context.dataset_hash)
    with np.load(root / task.inputs["init"].path, allow_pickle=False) as data:
        if task.rnn is None:
            params = Params(data["W"], data["b_v"], data["b_h"])
        else:
            params = RNNRBMParams(*(data[name] for name in rnn_param_names()))
    order = load_order(root / task.inputs["order"].path)
    for name, got in (("init", params.hash), ("order", datasets.order_hash(order))):
        recorded = getattr(task.context, f"{name}_hash")
        if got != recorded:
            raise InputMismatch(f"{name} hash {got[:12]} differs from the run's {recorded[:12]}")
    return dataset, params, order


def injected_fault(task: Task) -> dict[str, float]:
    """Test-only hook: ``RBM_BENCH_FAULT=torch:learning_rate=-0.005`` changes one implementation's config.

    The quality gate's tests use it to prove the gate catches a learning rate of
    zero or a flipped CD update (a negative rate) in a single implementation;
    ``RBM_BENCH_FAULT=numpy-s0:kill`` kills the task's process and ``numpy-s0:kill-parent``
    the process that started it (a Dask worker), on its first attempt only, to test retries.
    """
    fault = os.environ.get("RBM_BENCH_FAULT", "")
    name, _, assignment = fault.partition(":")
    if name == task.task_id and assignment in ("kill", "kill-parent") and task.attempt == 1:
        os.kill(os.getppid() if assignment == "kill-parent" else os.getpid(), 9)  # the parent: a Dask worker
    if name != task.impl or "=" not in assignment:
        return {}
    field, _, value = assignment.partition("=")
    return {field: float(value)}


def parameter_problem(params: Params, bound: float) -> str:
    """Why parameters count as diverged (NaN/inf, or larger than the profile's bound), else ''."""
    if not params.finite():
        return "parameters became NaN/inf"
    largest = max(float(np.abs(a).max()) for a in (params.W, params.b_v, params.b_h))
    return f"max |parameter| {largest:.3g} exceeds max_abs_param {bound:g}" if largest > bound else ""


def train(model: RBM, task: Task, dataset: datasets.Dataset, order: list, record: Recorder, rng) -> str:
    """All epochs with the schedule's rates and the monitors; returns the divergence reason ('' if none)."""
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
            record.add(
                "train", "valid_pl_per_unit", pseudo_log_likelihood(params, valid_subset).mean() / spec.n_visible, epoch
            )
            record.add("train", "valid_reconstruction_xent", reconstruction_cross_entropy(params, valid_subset), epoch)
            record.add("train", "free_energy_gap", free_energy_gap(params, train_subset, valid_subset), epoch)
    return ""


def score(params: Params, task: Task, dataset: datasets.Dataset, record: Recorder, rng) -> str:
    """Pseudo-likelihood, the log-likelihood bracket and monitors; returns a divergence reason ('' if none)."""
    evaluation, spec = task.evaluation, dataset.spec
    scored_split = evaluation.score_split
    held_out = dataset.subset(scored_split)
    scored = held_out[: evaluation.pl_test_windows]
    pl = pseudo_log_likelihood(params, scored)
    per_unit = pl.mean() / spec.n_visible
    if abs(per_unit) > LOG2:  # worse than a fair coin for every bit: no model, whatever the numbers say
        return f"pl_per_unit {per_unit:.3g} is beyond -log 2 (worse than coin flips)"
    reason = "" if scored_split == "test" else f"scored on the {scored_split} split (no held-out songs)"
    record.add("eval", "pl_per_window", pl.mean(), reason=reason)
    record.add("eval", "pl_per_unit", per_unit, reason=reason)
    sklearn_style = one_bit_pl(params, scored, sklearn_bits(len(scored), spec.n_visible, rng))
    batches, start = np.array_split(scored, max(1, len(scored) // 100)), int(rng.integers(spec.n_visible))
    theano_style = np.concatenate(
        [one_bit_pl(params, b, theano_bits(len(b), index, spec.n_visible, start)) for index, b in enumerate(batches)]
    )
    record.add("eval", "pl_sklearn_one_bit_per_unit", sklearn_style.mean() / spec.n_visible)
    record.add("eval", "pl_theano_one_bit_per_unit", theano_style.mean() / spec.n_visible)
    ll_windows = held_out[: evaluation.ll_windows]
    ll_frames = int(dataset.frames[dataset.indices(scored_split)][: evaluation.ll_windows].sum())
    forward = paper_schedule() if evaluation.ais_schedule == "paper" else schedule(evaluation.ais_betas)
    backward = schedule(evaluation.raise_betas) if evaluation.raise_betas else None  # inverse temperatures
    bases = ais_bases(dataset.subset("train"))
    bracket = likelihood_bracket(
        params,
        ll_windows,
        bases,
        forward,
        evaluation.ais_runs,
        backward,
        rng,
        sweep_every=evaluation.ais_sweep_every,
        raise_windows=evaluation.raise_windows,
    )
    caution = ""
    if bracket.effective_runs < 0.1 * evaluation.ais_runs:  # a few runs carry all the weight: log Z is a guess
        caution = f"rough: AIS effective sample size {bracket.effective_runs:.1f} of {evaluation.ais_runs} runs"
    elif bracket.width is not None and bracket.width < -max(1.0, 3 * (bracket.raise_stderr or 0)):
        caution = f"inverted bracket: RAISE above AIS by {-bracket.width:.2f} nats (the annealing misses mass)"
    if bracket.base_gap > GAP_NATS:  # the starts reached different mass: a multimodal model
        note = f"AIS from the {bracket.start} start (the pilots' log Z differ by {bracket.base_gap:.1f} nats)"
        caution = f"{caution}; {note}" if caution else note
    rows = spec.num_timesteps
    record.add("eval", "ais_log_z", bracket.log_z)
    record.add("eval", "ais_log_z_stderr", bracket.log_z_stderr)
    record.add("eval", "ais_effective_runs", bracket.effective_runs)
    record.add("eval", "ais_base_gap", bracket.base_gap)
    record.add("eval", "ais_ll_per_window", bracket.ais, reason=caution or reason)
    record.add("eval", "ais_ll_per_row", bracket.ais / rows, reason=caution or reason)
    record.add("eval", "ais_ll_stderr", bracket.ais_stderr)
    record.add("timing", "ais_seconds", bracket.ais_seconds)
    if bracket.raise_ is not None:
        record.add("eval", "raise_ll_per_window", bracket.raise_, reason=reason)
        record.add("eval", "raise_ll_per_row", bracket.raise_ / rows, reason=reason)
        if bracket.raise_stderr is not None:
            record.add("eval", "raise_ll_stderr", bracket.raise_stderr)
        record.add("eval", "bracket_width", bracket.width)
        record.add("timing", "raise_seconds", bracket.raise_seconds)
    # The published benchmarks' unit: total NLL of every scored frame over their number (a padded window's silent
    # rows are not frames; their probability lowers the window's, so its NLL per frame errs high: conservative).
    per_frame = len(ll_windows) / ll_frames
    record.add("eval", "ais_nll_per_frame", -bracket.ais * per_frame, reason=caution or reason)
    if bracket.raise_ is not None:
        record.add("eval", "raise_nll_per_frame", -bracket.raise_ * per_frame, reason=reason)
        record.add("eval", "bracket_width_per_frame", bracket.width * per_frame)
    if params.W.shape[1] <= EXACT_HIDDEN:  # few enough hidden units to enumerate: the exact answer, the oracle
        exact = -(-free_energy(params, ll_windows).mean() - exact_log_partition(params))
        record.add("eval", "exact_nll_per_frame", exact * per_frame, reason=reason)
    record.add("eval", "reconstruction_xent", reconstruction_cross_entropy(params, scored))
    for metric, value in catalogue.computed("params", params, scored, spec).items():  # the catalogue's own
        record.add("eval", metric, value, reason=reason)
    valid = dataset.subset("valid")
    if len(valid):
        record.add("eval", "free_energy_gap", free_energy_gap(params, dataset.subset("train")[: len(valid)], valid))
    return ""


def draw_samples(model: RBM, task: Task, record: Recorder) -> np.ndarray:
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


def describe_samples(samples: np.ndarray, dataset: datasets.Dataset, task: Task, record: Recorder, rng) -> None:
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
            piece_statistics(joined(samples, dataset.spec, evaluation.piece_rows), dataset.spec, evaluation.bar_rows)
        ),
    }
    for metric, value in values.items():
        record.add("sample", metric, value)


def build_model(task: Task) -> tuple[type[RBM] | None, str]:
    """The implementation's model for this task, or (None, the skip reason)."""
    try:
        cls = load(task.impl, task.context.model)
    except Unavailable as error:
        return None, str(error)
    unavailable = cls.device_unavailable(task.model.device)
    if unavailable:
        return None, unavailable
    return cls, ""


def run(task: Task, root: Path) -> tuple[list[dict], dict]:
    """Train and score one implementation; returns result rows and extra artefacts (curves, samples)."""
    record = Recorder(task)
    cls, skipped = build_model(task)
    if cls is None:
        record.add("train", "train_windows_per_s", None, status="skipped", reason=skipped)
        return record.rows, {}
    dataset, init, order = load_inputs(task, root)
    rng = np.random.default_rng(np.random.SeedSequence(task.eval_seed))
    if task.rnn is not None:  # a sequence model: chunks of pieces in, every test frame scored, pieces out
        model = cls(replace(task.rnn, **injected_fault(task)), init, seed=task.impl_seed)
        return sequence_task.run(model, task, dataset, order, record, rng)
    config = replace(task.model, **injected_fault(task))
    model = cls(config, init, seed=task.impl_seed)
    model.set_data(dataset.windows)
    extra = {"settings": model.precision_settings()}
    if task.kind == "timing":
        time_training(model, task, dataset, order, record)
        return record.rows, extra
    diverged = train(model, task, dataset, order, record, rng)
    params = model.params()
    record.add("train", "max_abs_param", max(float(np.abs(a).max()) for a in (params.W, params.b_v, params.b_h)))
    diverged = diverged or score(params, task, dataset, record, rng)
    if diverged:
        record.flag(catalogue.headline(), diverged)
        return record.rows, extra
    samples = draw_samples(model, task, record)
    describe_samples(samples, dataset, task, record, rng)
    record.add("train", "peak_rss_mb", resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024)
    if (device_mb := model.peak_device_mb()) is not None:
        record.add("train", "peak_device_mb", device_mb)
    return record.rows, extra | {"samples": samples, "params": params}


def time_training(model: RBM, task: Task, dataset: datasets.Dataset, order: list, record: Recorder) -> None:
    """The quiet phase: steady-state windows/s over a few epochs (the first, with compilation, reported apart)."""
    epochs = (
        order[: task.timing_epochs]
        if len(order) >= task.timing_epochs
        else (order * task.timing_epochs)[: task.timing_epochs]
    )
    seconds = []
    for batches in epochs:
        started = time.perf_counter()
        model.train_epoch(batches)
        seconds.append(time.perf_counter() - started)
    steady = float(np.median(seconds[1:]))
    windows = sum(len(b) for b in epochs[0])
    record.add("timing", "train_windows_per_s", windows / steady)
    record.add("timing", "compile_s", max(0.0, seconds[0] - steady))
    batch = task.model.batch_size
    record.add("timing", "five_products_ms", model.five_products_ms(batch))
    record.add("timing", "draw_ms", model.draw_ms(batch))
    if (device_mb := model.peak_device_mb()) is not None:
        record.add("timing", "peak_device_mb", device_mb)


def main(argv: list[str]) -> int:
    task = Task.from_json(Path(argv[0]).read_text(), argv[0])
    root, out = Path(argv[1]), Path(argv[2])
    try:
        rows, extra = run(task, root)
    except (InputMismatch, datasets.DatasetError) as error:  # never train on other bytes: one failed row
        print(f"InputMismatch: {error}", file=sys.stderr)
        return 3
    if "samples" in extra:
        np.save(out / "samples.npy", extra["samples"])
        final = extra["params"]  # trained weights, so a run can be re-scored without retraining
        np.savez_compressed(out / "params.npz", **{f.name: getattr(final, f.name) for f in fields(final)})
    skipped = any(r["status"] == "skipped" for r in rows)
    version = "not installed" if skipped else load(task.impl, task.context.model).framework_version()
    result = {"rows": rows, "framework_version": version, "settings": extra.get("settings", {})}
    atomic_write_text(out / "result.json", json.dumps(result))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
