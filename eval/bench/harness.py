"""The benchmark harness: shared inputs, training tasks on an executor, a quiet timing phase, one results table.

Like benchopt: a framework that is not installed (or sees no GPU) becomes a
``skipped`` row with the reason, a crash or timeout a ``failed`` row, and the
other tasks go on. Training tasks may run in parallel (``run.executor``);
throughput is measured afterwards, one implementation at a time, so parallel
training never distorts a speed. Each task's rows land in the run folder as it
finishes, so an interrupted run keeps what finished and ``--resume`` completes
it — retrying failed tasks and refusing options that contradict its spec.
"""

from __future__ import annotations

import contextlib
import json
import os
import subprocess
import sys
import tempfile
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field, replace
from pathlib import Path

import numpy as np
import pandas as pd
from tqdm import tqdm

from core.paths import relative
from core.process import run_module
from eval.bench.executors import ExecutorSpec, Outcome, parse_executor, run_local
from eval.bench.extend import adopt_checkpoints
from eval.bench.progress import Progress
from eval.bench.runfolder import RunFolder
from eval.bench.tasks import prepare
from eval.config import ConfigError, Profile, profile_from_dict
from eval.contract.rows import COLUMNS, make_row
from eval.contract.task import Task
from eval.environment import describe_environment
from eval.models import plugin
from eval.timing.roofline import Speed, ratios, roofline


def executor_for(spec: ExecutorSpec, threads: int) -> Callable[[list[Task], Path], Iterator[Outcome]]:
    """A function ``(tasks, root) -> outcomes`` for this executor."""
    if spec.kind == "serial":
        return lambda tasks, root: run_local(tasks, root, 1)
    if spec.kind == "local":
        workers = spec.workers or max(1, (os.cpu_count() or 1) // threads)
        return lambda tasks, root: run_local(tasks, root, workers)
    from eval.bench.dask_executor import run_dask  # distributed is imported only for a Dask run

    return lambda tasks, root: run_dask(tasks, root, spec)


@dataclass
class BenchResult:
    """What a run produced, and what a CI needs to decide its exit code."""

    folder: RunFolder
    frame: pd.DataFrame
    failed: list[str] = field(default_factory=list)  # "task: reason"
    skipped: list[str] = field(default_factory=list)
    diverged: list[str] = field(default_factory=list)
    retried: list[str] = field(default_factory=list)
    ran: int = 0  # tasks that ran (not skipped): 0 means the run measured nothing


PLACEMENT = ("executor",)  # [run] keys that say where tasks run, not what they compute: a resume may change them


def resume_profile(folder: RunFolder, overrides: dict[str, dict]) -> Profile:
    """The profile a run was started with; options that contradict it are refused (start a new run instead).

    Where tasks run may change between attempts (``--executor``: a scheduler that is gone can be replaced); what
    they compute may not.
    """
    profile = profile_from_dict(folder.read_json(folder.spec))
    placement = {k: v for k, v in overrides.get("run", {}).items() if k in PLACEMENT and v is not None}
    if placement:
        profile = profile.override(f"{folder.spec}: --resume", run=placement)
    for section, values in overrides.items():
        for key, value in values.items():
            if value is None or (section == "run" and key in PLACEMENT):
                continue
            recorded = getattr(getattr(profile, section), key)
            wanted = tuple(value) if isinstance(value, list) else value
            if wanted != recorded:
                shown = list(recorded) if isinstance(recorded, tuple) else recorded
                raise ConfigError(
                    f"{folder.spec}: --{key.replace('_', '-')} {value} contradicts the run's {key} {shown}; "
                    "resume without it or start a new run"
                )
    return profile


def stored_result(folder: RunFolder, task: Task) -> dict | None:
    """A task's stored result, if it may be kept; None when it must be computed (again).

    A result with a failed row is returned to be retried (nothing in it is kept). Any other is kept only when it,
    its parameters and its samples match the sha256 the run recorded as it wrote them: an edited file is refused
    (`IncompleteRun`, never re-blessed), and one never recorded (a kill between writing and recording) is recomputed.
    """
    path = folder.result_path(task.task_id)
    if not path.exists():
        return None
    try:
        stored = json.loads(path.read_text())
    except (json.JSONDecodeError, UnicodeDecodeError):
        stored = None
    if isinstance(stored, dict) and any(r.get("status") == "failed" for r in stored.get("rows", [])):
        return stored
    if not folder.check_recorded(path, f"delete it to recompute {task.task_id}, or start a new run"):
        return None
    for other in (folder.params_path(task.task_id), folder.samples_path(task.task_id)):
        folder.check_recorded(other, f"delete {path} to recompute {task.task_id}, or start a new run")
    return stored if isinstance(stored, dict) else folder.read_json(path)  # read once; a bad file says why


def _store(folder: RunFolder, outcome: Outcome) -> dict:
    """Write one outcome into the run folder (atomically) and record its files' hashes; a failure becomes a
    ``failed`` row."""
    task = outcome.task
    written = []
    if outcome.failure:
        row = make_row(
            task.context.columns(), "train", "train_windows_per_s", None, status="failed", reason=outcome.failure
        )
        result = {"rows": [row | {"attempts": task.attempt}], "framework_version": "", "settings": {}}
    else:
        result = json.loads(outcome.files["result.json"])
        if "samples.npy" in outcome.files:
            folder.write_bytes(folder.samples_path(task.task_id), outcome.files["samples.npy"])
            written.append(folder.samples_path(task.task_id))
        if "params.npz" in outcome.files:
            folder.write_bytes(folder.params_path(task.task_id), outcome.files["params.npz"])
            written.append(folder.params_path(task.task_id))
    folder.write_json(folder.result_path(task.task_id), result | {"attempts": task.attempt})
    folder.record(*written, folder.result_path(task.task_id))
    # a long task's last checkpoint stays after its result is stored: `--extend` trains on from it (eval.bench.extend)
    return result


def reference_rows(folder: RunFolder, task: Task) -> list[dict]:
    """scikit-learn's BernoulliRBM throughput on this shape, in its own process, in the quiet phase."""
    context = {**task.context.columns(), "impl": "sklearn", "device": "cpu"}
    shape = [str(task.config[k]) for k in ("n_visible", "n_hidden", "batch_size")]
    with tempfile.TemporaryDirectory() as scratch:
        out = Path(scratch) / "sklearn.json"
        with contextlib.suppress(subprocess.TimeoutExpired):
            run_module("eval.timing.sklearn_reference", [str(out), *shape], task.threads, timeout=600)
        if not out.exists():
            return [make_row(context, "timing", "sklearn_windows_per_s", None, status="failed", reason="crashed")]
        measured = json.loads(out.read_text())
    speed = measured["batch"] / measured["sklearn_step_ms"] * 1e3
    return [make_row(context, "timing", "sklearn_windows_per_s", speed)]


def derived_rows(frame: pd.DataFrame, timing_tasks: list[Task]) -> list[dict]:
    """Roofline, ratio to it, ceiling and ratio to the ceiling, per grid point and model: the one rule of
    `eval.timing.roofline`, read from the timing rows the model's plug-in names (its ``roofline``); and the same
    ratios for each execution mode of an ablation (``ablation`` rows), against the same roofline."""
    rows = derived_for(frame, timing_tasks, "timing")
    if "mode" in frame and (frame.phase == "ablation").any():
        for mode in sorted(set(frame[frame.phase == "ablation"]["mode"])):
            mine = frame[(frame.phase != "ablation") | (frame["mode"] == mode)]
            rows += [r for r in derived_for(mine, timing_tasks, "ablation") if r["impl"] != "roofline"]
    return rows


def derived_for(frame: pd.DataFrame, timing_tasks: list[Task], phase: str) -> list[dict]:
    """`derived_rows` of one phase's speeds (the roofline: the fastest products of every timing row)."""
    ok = frame[(frame.status == "ok") & (frame.phase == phase)]
    every = frame[(frame.status == "ok") & frame.phase.isin(["timing", "ablation"])]
    rows = []
    groups: dict[tuple[str, str], list[Task]] = {}
    for task in timing_tasks:
        if plugin(task.context.model).roofline is not None:
            groups.setdefault((json.dumps(task.context.point, sort_keys=True), task.context.model), []).append(task)
    for (_, model), tasks in groups.items():
        found, speeds, counted, modes, products = plugin(model), [], [], [], []
        rule = found.roofline
        for task in tasks:
            # one run's rows, not matched on run_id: a moved or renamed run keeps the id its rows were written with
            mine, all_modes = ok[ok.impl == task.impl], every[every.impl == task.impl]
            for key, value in task.context.point.items():
                mine = mine[mine[key] == value] if key in mine else mine
                all_modes = all_modes[all_modes[key] == value] if key in all_modes else all_modes
            products += all_modes[all_modes.metric == rule.products].value.tolist()
            values = {m: float(g.value.iloc[0]) for m, g in mine.groupby("metric")}
            modes.append(str(mine["mode"].iloc[0]) if "mode" in mine and len(mine) else task.context.mode)
            draws = values.get(rule.draws) if rule.draws else None
            speeds.append(Speed(task.impl, values.get(rule.speed), values.get(rule.products), draws))
            counted += [values[rule.units]] if isinstance(rule.units, str) and rule.units in values else []
        units = rule.units(tasks[0].config) if callable(rule.units) else counted[0] if counted else 0
        if not rule.own_products and products:  # the same NumPy products in every task: each ceiling takes the fastest
            speeds = [replace(s, products_ms=min(products)) for s in speeds]
        fastest = [Speed("any mode", None, min(products), None)] if products else []  # every mode's products count
        _, roof = roofline(speeds + fastest, units)
        if not np.isfinite(roof):
            continue
        base = {**tasks[0].context.columns(), "impl": "roofline", "device": tasks[0].context.device}
        rows.append(make_row(base, phase, f"roofline_{found.unit_of_data}_per_s", roof))
        for task, mode, ratio in zip(tasks, modes, ratios(speeds + fastest, units)):
            for metric, number in (
                ("ratio_to_roofline", ratio.ratio_to_roofline),
                ("ceiling_ratio", ratio.ceiling),
                ("ratio_to_ceiling", ratio.ratio_to_ceiling),
            ):
                if number is not None:
                    rows.append(make_row(task.context.columns() | {"mode": mode}, phase, metric, number))
    return rows


def run_bench(
    profile: Profile | None,
    folder: RunFolder | None = None,
    log: bool = True,
    overrides: dict[str, dict] | None = None,
    extend: RunFolder | None = None,
) -> BenchResult:
    """Run (or, given an existing ``folder``, resume) every task of a profile; returns the run and its rows.
    ``extend``: a finished long run whose tasks this one continues (`eval.bench.extend`: ``profile`` is its profile
    with more epochs).

    One process writes a run at a time (`RunFolder.lock`, held throughout). A resume checks every stored file it
    keeps against the run's recorded hashes, and un-finishes a finished run (removes complete.json) only after
    those checks, once it is about to write: a resume that fails before then leaves the run as it was.
    """
    refused = os.environ.get("RBM_BENCH_NO_BENCH")
    if refused:  # the test suite's unit tier sets it (tests/conftest.py): a test that starts the bench says so
        raise RuntimeError(f"the bench was started where it must not be: {refused}")
    if folder is not None and folder.spec.exists():
        with folder.lock():
            folder.check_recorded(folder.spec, "start a new run")
            return _bench(resume_profile(folder, overrides or {}), folder, log)
    plugin(profile.model.kind).refuse_unread(profile)  # before any folder exists
    folder = RunFolder.create(profile.name, path=folder.path if folder else None)
    with folder.lock():
        folder.write_json(folder.spec, profile.to_dict())
        folder.record(folder.spec)
        return _bench(profile, folder, log, extend)


def results_frame(folder: RunFolder, profile: Profile, tasks: list[Task], timing_tasks: list[Task], results: dict,
                  environment: dict, keep_reference: bool) -> pd.DataFrame:  # fmt: skip
    """Every task's rows, scikit-learn's reference and the derived roofline rows, with the environment columns."""
    sklearn = folder.path / "runs" / "sklearn.json"
    rows = [row for stored in results.values() for row in stored["rows"]]
    window_timings = [t for t in timing_tasks if plugin(t.context.model).sklearn_reference]
    references = {json.dumps(t.context.point, sort_keys=True): t for t in window_timings}
    if keep_reference:
        reference = folder.read_json(sklearn)["rows"]
    else:
        reference = [row for task in references.values() for row in reference_rows(folder, task)]
        folder.write_json(sklearn, {"rows": reference})
        folder.record(sklearn)
    rows += reference
    frame = pd.DataFrame(rows)
    frame = frame.reindex(columns=[*COLUMNS, *[c for c in frame.columns if c not in COLUMNS]])
    frame = pd.concat([frame, pd.DataFrame(derived_rows(frame, timing_tasks))], ignore_index=True)
    versions = {t.impl: results[t.task_id].get("framework_version", "") for t in tasks if t.task_id in results}
    frame["framework_version"] = frame.impl.map(versions).fillna("")
    for key in ("python", "cpu", "cores", "blas", "git_commit", "gpu", "gpu_driver"):
        frame[key] = environment.get(key, "")
    frame["threads"] = profile.run.threads
    return frame


def _tally(result: BenchResult, tasks: list[Task], results: dict, timing_tasks: list[Task] = ()) -> None:
    """Count the tasks that ran and list each failed, skipped or diverged task once, with its reason; a failed
    timing task is a failure too (its speed is a result the run promised), though it trains nothing."""
    for task in timing_tasks:
        for row in results.get(task.task_id, {"rows": []})["rows"]:
            line = f"{task.task_id}: {row['reason']}"
            if row["status"] == "failed" and line not in result.failed:
                result.failed.append(line)
    for task in tasks:
        stored = results.get(task.task_id, {"rows": []})
        result.ran += any(row["status"] != "skipped" for row in stored["rows"])
        for row in stored["rows"]:
            line = f"{task.task_id}: {row['reason']}"
            if row["status"] == "failed" and line not in result.failed:
                result.failed.append(line)
            elif row["status"] == "skipped" and line not in result.skipped:
                result.skipped.append(line)
            elif row["status"] == "diverged" and line not in result.diverged:
                result.diverged.append(line)


def _bench(profile: Profile, folder: RunFolder, log: bool, extend: RunFolder | None = None) -> BenchResult:
    """`run_bench` under the run's lock: check what is stored, then (and only then) change the run."""
    say = (lambda message: tqdm.write(message, file=sys.stderr)) if log else (lambda message: None)
    dataset, tasks, timing_tasks = prepare(profile, folder, log)
    if extend is not None:
        before = adopt_checkpoints(extend, folder, tasks)
        say(f"extending {extend.name}: every task goes on after its epoch {before}")
    environment = describe_environment()
    result = BenchResult(folder, pd.DataFrame())
    todo, results = [], {}
    timed = {task.task_id: stored_result(folder, task) for task in timing_tasks}
    sklearn = folder.path / "runs" / "sklearn.json"
    keep_reference = sklearn.exists() and folder.check_recorded(sklearn, "delete it to measure again")
    for task in tasks:
        stored = stored_result(folder, task)
        if stored and not any(r["status"] == "failed" for r in stored["rows"]):
            results[task.task_id] = stored  # finished tasks of an interrupted run are kept, not redone
            continue
        if stored:
            result.retried.append(task.task_id)
        todo.append(task)
    folder.invalidate()  # every stored file is checked: from here on the run changes
    own_copy = relative(folder.dataset_dir / "dataset.npz", folder.path)  # not the cache's absolute path
    folder.write_json(folder.dataset_manifest, dataset.manifest | {"artifact_path": own_copy})
    folder.write_json(folder.env, environment)
    if result.retried:
        say(f"retrying {len(result.retried)} failed task(s): {', '.join(result.retried)}")
    executor = parse_executor(profile.run.executor)
    run = executor_for(executor, profile.run.threads)
    with Progress(len(todo), "training", log, concurrent=executor.workers != 1) as progress:
        for outcome in run(todo, folder.path):
            results[outcome.task.task_id] = _store(folder, outcome)
            progress.done(outcome.task.task_id)
    with Progress(len(timing_tasks), "timing (quiet)", log) as progress:
        for task in timing_tasks:
            stored = timed[task.task_id]
            if not stored or any(r["status"] == "failed" for r in stored["rows"]):
                (outcome,) = run_local([task], folder.path, 1)  # one at a time: nothing else runs while it measures
                stored = _store(folder, outcome)
            results[task.task_id] = stored
            progress.done(task.task_id)
    profiled = {t.task_id: {"impl": t.impl} | results[t.task_id]["profile"] for t in timing_tasks
                if "profile" in results[t.task_id]}  # fmt: skip
    folder.write_json(folder.profiles, profiled)  # each framework's update under its profiler (eval.timing.profile)
    frame = results_frame(folder, profile, tasks, timing_tasks, results, environment, keep_reference)
    folder.check_all_recorded("delete the task's runs/<task>.json to recompute it, or start a new run")
    folder.write_results(frame)
    result.frame = frame
    _tally(result, tasks, results, timing_tasks)
    return result
