"""One (implementation, seed) run in its own process: train, score, time, write rows atomically.

``python -m eval.worker TASK.json`` — the harness writes the task (paths of the
shared inputs and their expected hashes) and reads ``runs/<impl>-s<seed>.json``.
Only the implementation's own module imports a framework; scoring uses the
shared float64 scorer on exported parameters.
"""

from __future__ import annotations

import json
import os
import resource
import sys
import time
from pathlib import Path

import numpy as np

from datasets.artifact import atomic_write_text
from datasets.windows import Dataset, WindowSpec, order_hash
from eval.compare import compare_sets, memorisation
from eval.likelihood import (
    ais_log_partition,
    base_rate_biases,
    free_energy,
    free_energy_gap,
    one_bit_pl,
    paper_schedule,
    pseudo_log_likelihood,
    quick_schedule,
    reconstruction_cross_entropy,
    sklearn_bits,
    theano_bits,
)
from eval.notes import note_statistics
from eval.rows import make_row
from impls import Params, RBMConfig, Unavailable, load


def load_inputs(task: dict) -> tuple[Dataset, Params, list[list[np.ndarray]]]:
    """The shared dataset, initial parameters and batch order; their hashes must match the harness's."""
    with np.load(task["dataset_path"]) as data:
        manifest = json.loads(Path(task["dataset_path"]).with_name("manifest.json").read_text())
        dataset = Dataset(
            data["windows"],
            data["split"],
            data["piece"],
            manifest["piece_ids"],
            WindowSpec(**manifest["spec"]),
            manifest,
        )
    with np.load(task["init_path"]) as data:
        params = Params(data["W"], data["b_v"], data["b_h"])
    with np.load(task["order_path"]) as data:
        flat, lengths, per_epoch = data["flat"], data["lengths"], data["batches_per_epoch"]
    batches = np.split(flat, np.cumsum(lengths)[:-1])
    order = [batches[a:b] for a, b in zip(np.r_[0, np.cumsum(per_epoch)[:-1]], np.cumsum(per_epoch))]
    for name, got, want in (
        ("dataset", dataset.hash, task["dataset_hash"]),
        ("init", params.hash, task["init_hash"]),
        ("order", order_hash(order), task["order_hash"]),
    ):
        if got != want:
            raise RuntimeError(f"{name} hash {got[:12]} differs from the harness's {want[:12]}")
    return dataset, params, order


def injected_fault(impl: str) -> dict:
    """Test-only hook: ``RBM_BENCH_FAULT=torch:learning_rate=-0.005`` changes one implementation's config.

    The quality gate's tests use it to prove the gate catches a learning rate of
    zero or a flipped CD update (a negative rate) in a single implementation.
    """
    fault = os.environ.get("RBM_BENCH_FAULT", "")
    name, _, assignment = fault.partition(":")
    if name != impl or "=" not in assignment:
        return {}
    field, _, value = assignment.partition("=")
    return {field: float(value)}


def run(task: dict) -> tuple[list[dict], dict]:
    """Train and score one implementation; returns result rows and extra artefacts (curves, samples)."""
    context = task["context"]
    rows: list[dict] = []

    def add(phase: str, metric: str, value: float | None, epoch: int | None = None, **status: str) -> None:
        rows.append(make_row(context, phase, metric, value, epoch, **status))

    try:
        cls = load(task["impl"])
    except Unavailable as error:
        add("train", "train_windows_per_s", None, status="skipped", reason=str(error))
        return rows, {}
    dataset, init, order = load_inputs(task)
    evaluation, config = task["eval"], RBMConfig.from_dict({**task["model"], **injected_fault(task["impl"])})
    rng = np.random.default_rng(np.random.SeedSequence(task["eval_seed"]))
    spec = dataset.spec
    train, valid, test = (dataset.subset(s) for s in ("train", "valid", "test"))
    valid_subset = valid[rng.choice(len(valid), min(len(valid), evaluation["pl_valid_windows"]), replace=False)]
    train_subset = train[rng.choice(len(train), min(len(train), evaluation["pl_valid_windows"]), replace=False)]
    model = cls(config, init, seed=task["impl_seed"])
    model.set_data(dataset.windows)
    epoch_seconds, diverged = [], ""
    for epoch, batches in enumerate(order, start=1):
        started = time.perf_counter()
        model.train_epoch(batches)
        epoch_seconds.append(time.perf_counter() - started)
        add("train", "epoch_seconds", epoch_seconds[-1], epoch)
        params = model.params()
        if not params.finite():
            diverged = f"parameters became NaN/inf in epoch {epoch}"
            break
        if epoch % evaluation["curve_every"] == 0 or epoch == len(order):  # monitors: learning curves
            valid_pl = pseudo_log_likelihood(params, valid_subset).mean() / spec.n_visible
            add("train", "valid_pl_per_unit", valid_pl, epoch)
            add("train", "valid_reconstruction_xent", reconstruction_cross_entropy(params, valid_subset), epoch)
            add("train", "free_energy_gap", free_energy_gap(params, train_subset, valid_subset), epoch)
    windows_per_epoch = sum(len(b) for b in order[0])
    steady = epoch_seconds[1:] or epoch_seconds
    add("timing", "train_windows_per_s", windows_per_epoch / float(np.median(steady)))
    add("timing", "compile_s", max(0.0, epoch_seconds[0] - float(np.median(steady))))
    add("timing", "five_products_ms", model.five_products_ms(config.batch_size))
    add("timing", "draw_ms", model.draw_ms(config.batch_size))
    if diverged:
        for metric in ("pl_per_unit", "ais_ll_per_row", "js_pitch_class"):
            add("eval", metric, None, status="diverged", reason=diverged)
        return rows, {"epoch_seconds": epoch_seconds}
    params = model.params()
    test_pl = pseudo_log_likelihood(params, test[: evaluation["pl_test_windows"]])
    add("eval", "pl_per_window", test_pl.mean())
    add("eval", "pl_per_unit", test_pl.mean() / spec.n_visible)
    scored = test[: evaluation["pl_test_windows"]]  # the one-bit estimators people know, beside the exact value
    sklearn_style = one_bit_pl(params, scored, sklearn_bits(len(scored), spec.n_visible, rng))
    batches, start = np.array_split(scored, max(1, len(scored) // 100)), int(rng.integers(spec.n_visible))
    theano_style = np.concatenate(
        [one_bit_pl(params, b, theano_bits(len(b), index, spec.n_visible, start)) for index, b in enumerate(batches)]
    )
    add("eval", "pl_sklearn_one_bit_per_unit", sklearn_style.mean() / spec.n_visible)
    add("eval", "pl_theano_one_bit_per_unit", theano_style.mean() / spec.n_visible)
    betas = paper_schedule() if evaluation["ais_schedule"] == "paper" else quick_schedule(evaluation["ais_betas"])
    ais = ais_log_partition(params, base_rate_biases(train), betas, evaluation["ais_runs"], rng.integers(2**63))
    ll = -free_energy(params, test) - ais.log_z
    add("eval", "ais_log_z", ais.log_z)
    add("eval", "ais_log_z_stderr", ais.log_z_stderr)
    add("eval", "ais_effective_runs", ais.effective_runs)
    caution = ""
    if ais.effective_runs < 0.1 * evaluation["ais_runs"]:  # a few runs carry all the weight: log Z is a rough guess
        caution = f"rough: AIS effective sample size {ais.effective_runs:.1f} of {evaluation['ais_runs']} runs"
    add("eval", "ais_ll_per_window", ll.mean(), reason=caution)
    add("eval", "ais_ll_per_row", ll.mean() / spec.num_timesteps, reason=caution)
    add("eval", "reconstruction_xent", reconstruction_cross_entropy(params, test))
    add("eval", "free_energy_gap", free_energy_gap(params, train[: len(valid)], valid))
    steps, start = evaluation["gibbs_steps"], evaluation["sample_start"]
    model.sample(evaluation["n_samples"], steps, start)  # warm-up (compilation) outside timing
    started = time.perf_counter()
    samples = model.sample(evaluation["n_samples"], steps, start)
    add("timing", "gibbs_steps_per_s", steps / (time.perf_counter() - started))
    if evaluation.get("drop_empty_samples"):  # the original discarded all-zero samples
        samples = samples[samples.any(1)]
    add("sample", "n_samples_kept", len(samples))
    if len(samples):
        for metric, value in {
            **note_statistics(samples, spec),
            **compare_sets(samples, test, spec, rng),
            **memorisation(samples, train, test),
        }.items():
            add("sample", metric, value)
    else:
        add("sample", "js_pitch_class", None, status="diverged", reason="every sample was empty")
    add("timing", "peak_rss_mb", resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024)
    return rows, {"epoch_seconds": epoch_seconds, "samples": samples, "params": params}


def main(argv: list[str]) -> int:
    task = json.loads(Path(argv[0]).read_text())
    rows, extra = run(task)
    out = Path(task["out_path"])
    if "samples" in extra:
        samples_path = out.parent.parent / "samples" / f"{out.stem}.npy"
        samples_path.parent.mkdir(parents=True, exist_ok=True)
        np.save(samples_path, extra["samples"])
        final = extra["params"]  # trained weights, so a run can be re-scored without retraining
        np.savez_compressed(out.with_name(f"{out.stem}-params.npz"), W=final.W, b_v=final.b_v, b_h=final.b_h)
    version = "not installed"
    if not any(r["status"] == "skipped" for r in rows):
        version = load(task["impl"]).framework_version()
    atomic_write_text(
        out, json.dumps({"rows": rows, "framework_version": version, "epoch_seconds": extra.get("epoch_seconds", [])})
    )
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
