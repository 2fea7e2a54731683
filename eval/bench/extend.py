"""More training without training again: ``--extend RUN --epochs N`` continues a finished long run's tasks.

A long run (``[run] long = true``) keeps each task's last checkpoint when the task finishes
(`eval.models.checkpoints`). A new run of the same profile with more epochs trains its first epochs exactly as
the finished run did — the same inputs, the same batch order for those epochs, each epoch's noise from its own
seed — so each of its tasks may start from the finished task's last checkpoint instead of epoch 1, and ends where
a run of ``N`` epochs from scratch ends, draw for draw (``tests/bench/test_long_runs.py``). That is checked, never
assumed: the checkpoint's fingerprint must be the new task's as the old run built it (its epochs, run id and order
file put back), the new order's first epochs must be the old order, and the rates of those epochs must agree (a
schedule that decays over the whole run does not). The new run is a run folder of its own; ``extended_from.json``
names the run its first epochs come from.
"""

from __future__ import annotations

import json
from dataclasses import replace

import datasets
from eval.bench.runfolder import RunFolder
from eval.bench.tasks import input_file, load_order
from eval.config import ConfigError, Profile, profile_from_dict
from eval.contract.task import Task
from eval.models.checkpoints import Checkpoints, fingerprint, latest_checkpoint

ALLOWED = ("epochs", "executor")  # what --extend may change: how long, and where tasks run


def extended_profile(source: RunFolder, overrides: dict[str, dict]) -> Profile:
    """The finished run's profile with more epochs (and, optionally, another executor); anything else is refused."""
    profile = profile_from_dict(source.read_json(source.spec))
    if not profile.run.long:
        raise ConfigError(
            f"{source.spec}: --extend continues a long run ([run] long = true), and this run kept no checkpoints; "
            "run its profile with --epochs instead"
        )
    for section, values in overrides.items():
        for key, value in values.items():
            if value is not None and not (section == "run" and key in ALLOWED):
                raise ConfigError(
                    f"--{key.replace('_', '-')} would change what {source.name} trained; --extend takes only "
                    "--epochs and --executor (start a new run for another recipe)"
                )
    epochs = overrides.get("run", {}).get("epochs")
    if epochs is None or epochs <= profile.run.epochs:
        raise ConfigError(f"{source.path}: --extend needs --epochs above the run's {profile.run.epochs}")
    return profile.override(f"--extend {source.name}", run={k: overrides["run"].get(k) for k in ALLOWED})


def adopt_checkpoints(source: RunFolder, folder: RunFolder, tasks: list[Task]) -> int:
    """Give every long task of the new run ``folder`` the last checkpoint of the same task in ``source``.

    Returns the epoch the tasks go on after. A task that already has a checkpoint of its own (an extension that was
    interrupted and is resumed) keeps it. Raises `ConfigError` (one line) when a checkpoint is missing or is not
    the same training with fewer epochs.
    """
    before_epochs = profile_from_dict(source.read_json(source.spec)).run.epochs
    for task in tasks:
        if not task.checkpoints:
            continue
        mine = Checkpoints(folder.path / task.checkpoints, task)
        if mine.load() is not None:
            continue
        saved = latest_checkpoint(source.path / task.checkpoints)
        if saved is None:
            raise ConfigError(
                f"{source.path / task.checkpoints}: no checkpoint kept (a run from before checkpoints were kept, or "
                f"a task that failed); run the profile with --epochs {task.epochs} instead"
            )
        state = json.loads((saved / "state.json").read_text())
        old_order_path = source.path / task.inputs["order"].path
        old_order = load_order(old_order_path)
        old_hash = datasets.order_hash(old_order)
        run_id = state["rows"][0]["run_id"] if state["rows"] else source.name  # the id its rows were written with
        before = replace(
            task,
            epochs=before_epochs,
            context=replace(task.context, run_id=run_id, order_hash=old_hash),
            inputs={**task.inputs, "order": input_file(source, old_order_path)},
        )
        if fingerprint(before) != state["fingerprint"]:
            raise ConfigError(
                f"{saved}: not task {task.task_id} of this profile with fewer epochs (its inputs, config or seeds "
                f"differ); run the profile with --epochs {task.epochs} instead"
            )
        order = load_order(folder.path / task.inputs["order"].path)
        if datasets.order_hash(order[:before_epochs]) != old_hash:
            raise ConfigError(f"{saved}: the new batch order's first {before_epochs} epochs are not the run's")
        if task.learning_rates()[:before_epochs] != before.learning_rates():
            raise ConfigError(
                f"{saved}: the rate schedule of the first {before_epochs} epochs changes with the run's length "
                "(a decaying schedule); run the profile with --epochs instead"
            )
        mine.adopt(saved, state)
    folder.write_json(folder.path / "extended_from.json", {"run_id": source.name, "epochs": before_epochs})
    folder.record(folder.path / "extended_from.json")
    return before_epochs
