"""One task in its own process: ``python -m eval.bench.worker TASK.json ROOT OUT``.

The worker knows no model: it checks the task's inputs against their hashes (read from ``ROOT``, the run
folder or a worker machine's copy), builds the implementation the catalogue names with the config the task
carries, and hands it to the model's plug-in (`eval.models`), which trains, scores, samples and describes
it (or, for a timing task, measures its steady-state throughput in the quiet phase). Outputs go to ``OUT``
(``result.json``, ``samples.npy``, ``params.npz``), which the client copies into the run folder. Only the
implementation's own module imports a framework; scoring is the shared float64 scorer on exported parameters.
"""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path

import numpy as np

import datasets
import impls
from core.files import atomic_write_text, sha256_file
from core.process import cores_in_use
from eval.bench.tasks import load_order
from eval.contract.rows import InputMismatch, Recorder
from eval.contract.task import Task
from eval.models import plugin
from eval.models.checkpoints import CheckpointMismatch, Checkpoints
from impls import Unavailable, load


def load_inputs(task: Task, root: Path) -> tuple[datasets.Dataset, impls.Params, list[list[np.ndarray]]]:
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
    params_type = impls.model(task.context.model).params
    with np.load(root / task.inputs["init"].path, allow_pickle=False) as data:
        params = params_type(*(data[name] for name in params_type.names()))
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
    the process that started it (a Dask worker), on its first attempt only, to test retries;
    ``numpy-s0:kill-after-epoch=2`` kills a long run's task once its checkpoint of epoch 2 is written
    (`eval.models.checkpoints`), on its first attempt only, to test resuming.
    """
    fault = os.environ.get("RBM_BENCH_FAULT", "")
    name, _, assignment = fault.partition(":")
    if name == task.task_id and assignment in ("kill", "kill-parent") and task.attempt == 1:
        os.kill(os.getppid() if assignment == "kill-parent" else os.getpid(), 9)  # the parent: a Dask worker
    if name != task.impl or "=" not in assignment:
        return {}
    field, _, value = assignment.partition("=")
    return {field: int(value) if value.lstrip("-").isdigit() else float(value)}


def build_model(task: Task) -> tuple[type[impls.Implementation] | None, str]:
    """The implementation's class for this task, or (None, the skip reason)."""
    if task.context.model not in impls.framework(task.impl).models:
        return None, f"skipped: {task.impl} has no {task.context.model} (no impls/{task.context.model}/{task.impl}.py)"
    try:
        cls = load(task.impl, task.context.model)
    except Unavailable as error:
        return None, str(error)
    unavailable = cls.device_unavailable(task.context.device)
    if unavailable:
        return None, unavailable
    return cls, ""


def run(task: Task, root: Path) -> tuple[list[dict], dict]:
    """Train and score (or time) one implementation; returns result rows and extra artefacts (samples, params)."""
    record = Recorder(task)
    cls, skipped = build_model(task)
    if cls is None:
        record.add("train", "train_windows_per_s", None, status="skipped", reason=skipped)
        return record.rows, {}
    try:
        cls = cls.in_mode(task.context.mode)
        cls.mode_for(task.context.device)
    except ValueError as error:  # a mode the profile's [run] modes names that this implementation lacks
        record.add("train", "train_windows_per_s", None, status="failed", reason=f"{error}: fix [run] modes")
        return record.rows, {}
    dataset, init, order = load_inputs(task, root)
    rng = np.random.default_rng(np.random.SeedSequence(task.eval_seed))
    model = cls(task.model_config(**injected_fault(task)), init, seed=task.impl_seed)
    record.context["mode"] = model.mode  # "default" becomes the mode it names
    checkpoints = Checkpoints(root / task.checkpoints, task) if task.checkpoints else None
    extra = plugin(task.context.model).run(model, task, dataset, order, record, rng, checkpoints)
    if task.kind == "timing" and task.ablation:
        plugin(task.context.model).ablate(cls, task, dataset, order, init, record)
    return record.rows, extra | {"settings": model.precision_settings() | {"process.cores": cores_in_use()}}


def main(argv: list[str]) -> int:
    task = Task.from_json(Path(argv[0]).read_text(), argv[0])
    root, out = Path(argv[1]), Path(argv[2])
    try:
        rows, extra = run(task, root)
    except (InputMismatch, datasets.DatasetError) as error:  # never train on other bytes: one failed row
        print(f"InputMismatch: {error}", file=sys.stderr)
        return 3
    except CheckpointMismatch as error:  # never go on from another task's weights
        print(f"CheckpointMismatch: {error}", file=sys.stderr)
        return 3
    if "samples" in extra:
        np.save(out / "samples.npy", extra["samples"])
        final = extra["params"]  # trained weights, so a run can be re-scored without retraining
        np.savez_compressed(out / "params.npz", **dict(zip(final.names(), final.arrays())))
    skipped = any(r["status"] == "skipped" for r in rows)
    version = "not installed" if skipped else load(task.impl, task.context.model).framework_version()
    result = {"rows": rows, "framework_version": version, "settings": extra.get("settings", {})}
    if "profile" in extra:  # a timing task's update under its framework's profiler (eval.timing.profile)
        result["profile"] = extra["profile"]
    atomic_write_text(out / "result.json", json.dumps(result))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
