"""Re-score a finished run's saved parameters at finer temperatures, without training again.

A long run (the paper recipes: 40-90 minutes a seed) keeps every seed's trained parameters
(``runs/<task>-params.npz``). Where one seed's likelihood bracket came out wider than
`eval.scoring.ais.CERTIFIED_WIDTH`, the report prints "not certified" instead of the number;
``python -m reports rescore RUN --betas N`` scores those seeds again with ``N`` AIS and RAISE temperatures (the
estimator improved, as `eval.models.rnn_rbm.certified_bracket` does during a run whose profile sets
``[eval] certify_betas``), replaces their score rows, records ``certify_betas = N`` in the run's spec and rewrites
the results. Seeds already certified keep their rows: nothing else in the run changes.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np

import impls
from core.errors import UserError
from eval.bench.harness import results_frame, resume_profile, stored_result
from eval.bench.runfolder import RunFolder
from eval.bench.tasks import prepare
from eval.contract.rows import Recorder
from eval.contract.task import Task
from eval.models import plugin
from eval.scoring.ais import CERTIFIED_WIDTH


class NothingToRescore(UserError):
    """The run's model has no bracket to re-score."""


@dataclass(frozen=True)
class Rescored:
    """One seed's bracket before and after (nats per frame), or why it was left as it was."""

    task_id: str
    before: float | None
    after: float | None = None
    kept: str = ""  # why the seed was not scored again

    @property
    def failed(self) -> bool:
        """Too wide, and not scored again (diverged at more betas, or no parameters saved): the ask was not met."""
        return self.kept.startswith(("diverged", "no saved parameters"))

    def line(self, betas: int) -> str:
        if self.kept:
            return f"{self.task_id}: kept ({self.kept})"
        return f"{self.task_id}: bracket {self.before:.3f} -> {self.after:.3f} nats/frame at {betas} betas"


def _width(rows: list[dict]) -> float | None:
    widths = [r["value"] for r in rows if r["metric"] == "bracket_width_per_frame" and r["status"] == "ok"]
    return float(widths[0]) if widths else None


def _rescore_task(folder: RunFolder, task: Task, stored: dict, dataset, betas: int) -> tuple[list[dict], Rescored]:
    """The task's rows with its score rows recomputed at ``betas`` temperatures (and the before/after widths)."""
    params_type = impls.model(task.context.model).params
    with np.load(folder.params_path(task.task_id), allow_pickle=False) as data:
        params = params_type(*(data[name] for name in params_type.names()))
    evaluation = replace(task.evaluation, ais_betas=betas, raise_betas=betas, certify_betas=0)
    record = Recorder(replace(task, evaluation=evaluation))
    rng = np.random.default_rng(np.random.SeedSequence(task.eval_seed, spawn_key=(betas,)))  # its own stream
    diverged = plugin(task.context.model).score(params, replace(task, evaluation=evaluation), dataset, record, rng)
    if diverged:
        return stored["rows"], Rescored(task.task_id, _width(stored["rows"]), kept=f"diverged at {betas} betas")
    record.add("eval", "bracket_betas", betas)
    new = {(r["phase"], r["metric"]) for r in record.rows}
    rows = [r for r in stored["rows"] if (r["phase"], r["metric"]) not in new] + record.rows
    return rows, Rescored(task.task_id, _width(stored["rows"]), _width(rows))


def rescore(path: Path, betas: int, log: bool = True) -> list[Rescored]:
    """Score every seed of the finished run ``path`` whose bracket is wider than ``CERTIFIED_WIDTH`` again at
    ``betas`` temperatures; rewrite its results. `UserError` (one line) for a run that cannot be re-scored."""
    folder = RunFolder.open(path)
    with folder.lock():
        folder.check_complete()
        folder.check_recorded(folder.spec, "start a new run")
        profile = resume_profile(folder, {})
        model = plugin(profile.model.kind)
        if "certify_betas" not in model.reads:
            raise NothingToRescore(f"{path}: the {model.name} model's scorer has no bracket to re-score at more betas")
        if betas <= max(profile.eval.ais_betas, profile.eval.raise_betas):
            raise NothingToRescore(
                f"{path}: --betas {betas} is no finer than the run's own ({profile.eval.raise_betas}); give more"
            )
        profile = profile.override(f"{folder.spec}: rescore", eval={"certify_betas": betas})
        dataset, tasks, timing_tasks = prepare(profile, folder, log)
        results, outcome = {}, []
        what = "delete the task's runs/<task>.json to recompute it, or start a new run"
        for task in [*tasks, *timing_tasks]:
            stored = stored_result(folder, task)
            if stored is None:
                raise NothingToRescore(f"{folder.result_path(task.task_id)}: missing; resume the run first")
            results[task.task_id] = stored
        for task in tasks:
            stored, width = results[task.task_id], _width(results[task.task_id]["rows"])
            if width is None:
                outcome.append(Rescored(task.task_id, width, kept="no bracket"))
                continue
            if width <= CERTIFIED_WIDTH:
                outcome.append(Rescored(task.task_id, width, kept=f"certified already: {width:.3f} nats/frame"))
                continue
            if not folder.params_path(task.task_id).is_file():
                outcome.append(Rescored(task.task_id, width, kept="no saved parameters"))
                continue
            rows, done = _rescore_task(folder, task, stored, dataset, betas)
            results[task.task_id] = stored | {"rows": rows}
            folder.invalidate()
            folder.write_json(folder.result_path(task.task_id), results[task.task_id])
            folder.record(folder.result_path(task.task_id))
            outcome.append(done)
        folder.write_json(folder.spec, profile.to_dict())  # the run now says how its brackets were scored
        folder.record(folder.spec)
        environment = folder.read_json(folder.env)  # the machine that trained: the rows describe its run
        keep = (folder.path / "runs" / "sklearn.json").exists()  # scikit-learn's reference, measured by the run
        frame = results_frame(folder, profile, tasks, timing_tasks, results, environment, keep_reference=keep)
        folder.check_all_recorded(what)
        folder.write_results(frame)
    return outcome
