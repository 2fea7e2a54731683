"""Prepare a run: the shared inputs once, then one `Task` per (grid point, seed, implementation).

`prepare` builds the dataset once, has the model's plug-in (`eval.models`) draw each seed's initial
weights and batch order once (one `SeedSequence` per seed, spawned per use), stores them in the run
folder's ``inputs/`` and returns one `Task` per (grid point, seed, implementation) plus one timing task per
(grid point, implementation). The task itself (`eval.contract.task`) names every input by path and sha256.
"""

from __future__ import annotations

import shutil
from dataclasses import asdict
from pathlib import Path

import numpy as np

import datasets
from core.files import sha256_file
from eval.bench.runfolder import RunFolder
from eval.config import ConfigError, Profile, sweep_points
from eval.config.checks import check_update_memory
from eval.contract.task import Context, InputFile, Task
from eval.models import plugin
from impls import framework


def window_spec(profile: Profile) -> datasets.WindowSpec:
    return profile.data.window_spec()


def model_config(profile: Profile, spec: datasets.WindowSpec, impl: str | None = None):
    """The implementation's config: the profile's ``[model]``, its data's size, the framework's device."""
    device = profile.run.device if impl is None else framework(impl).device_for(profile.run.device)
    return plugin(profile.model.kind).config(profile.model, spec, device)


def _save_order(folder: RunFolder, path: Path, order: list[list[np.ndarray]]) -> None:
    batches = [b for epoch in order for b in epoch]
    chunked = {}  # a sequence model's updates are (chunks, frames) arrays: their widths are kept too
    if any(np.ndim(b) == 2 for b in batches):
        chunked["widths"] = np.asarray([np.shape(b)[1] for b in batches], np.int64)
    folder.write_npz(
        path,
        flat=np.concatenate([np.ravel(b) for b in batches]).astype(np.int64),
        lengths=np.asarray([np.size(b) for b in batches], np.int64),
        batches_per_epoch=np.asarray([len(epoch) for epoch in order], np.int64),
        **chunked,
    )


def load_order(path: Path) -> list[list[np.ndarray]]:
    with np.load(path, allow_pickle=False) as data:
        flat, lengths, per_epoch = data["flat"], data["lengths"], data["batches_per_epoch"]
        widths = data["widths"] if "widths" in data.files else None
    batches = np.split(flat, np.cumsum(lengths)[:-1])
    if widths is not None:
        batches = [b.reshape(-1, w) for b, w in zip(batches, widths)]
    ends = np.cumsum(per_epoch)
    return [batches[a:b] for a, b in zip(np.r_[0, ends[:-1]], ends)]


def _point_id(index: int, point: dict) -> str:
    return f"p{index}" if point else ""


def input_file(folder: RunFolder, path: Path) -> InputFile:
    """A file of the run folder as a task's input: its path relative to the folder and its sha256."""
    return InputFile(str(path.relative_to(folder.path)), sha256_file(path))


def _dataset_inputs(profile: Profile, folder: RunFolder, log: bool) -> tuple[datasets.Dataset, dict[str, InputFile]]:
    """The dataset, built once and copied into the run folder (render and resume need no cache), as inputs."""
    dataset = datasets.build(profile.data.source, window_spec(profile), log=log)
    if not len(dataset.indices("train")) or not len(dataset.indices(profile.eval.score_split)):
        raise ConfigError(
            f"{profile.data.source}: the dataset has no training or no {profile.eval.score_split} windows"
        )
    source_dir = Path(dataset.manifest["artifact_path"]).parent
    folder.dataset_dir.mkdir(parents=True, exist_ok=True)
    for name in ("dataset.npz", "manifest.json"):
        if not (folder.dataset_dir / name).exists():
            folder.write_bytes(folder.dataset_dir / name, (source_dir / name).read_bytes())
    names = {"dataset": "dataset.npz", "manifest": "manifest.json"}
    return dataset, {key: input_file(folder, folder.dataset_dir / name) for key, name in names.items()}


def prepare(profile: Profile, folder: RunFolder, log: bool = True) -> tuple[datasets.Dataset, list[Task], list[Task]]:
    """Build the shared inputs into ``folder/inputs``; return the dataset, the training tasks and the timing tasks."""
    dataset, dataset_input = _dataset_inputs(profile, folder, log)
    spec = window_spec(profile)
    tasks, timings = [], []
    for index, point in enumerate(sweep_points(profile)):
        at = profile.at(point) if point else profile
        model = plugin(at.model.kind)
        suffix = _point_id(index, point)
        for seed in profile.run.seeds:
            init_seed, order_seed, impl_seed, eval_seed = np.random.SeedSequence(seed).spawn(4)
            key = f"s{seed}{'-' + suffix if suffix else ''}"
            split = "train" if at.data.train_on == "train" else None
            params, order = model.inputs(at, dataset, [init_seed, order_seed], split)
            if not all(len(epoch) for epoch in order):
                raise ConfigError(f"fewer training windows than one batch ({at.model.batch_size}); lower batch_size")
            units = max(update.size for update in order[0])  # the largest update: chunks are bounded by the music
            n_visible = model.config(at.model, dataset.spec, "cpu").n_visible
            check_update_memory(at.model, n_visible, units, f"profile {profile.name}")
            folder.write_npz(folder.init_path(key), **dict(zip(params.names(), params.arrays())))
            _save_order(folder, folder.order_path(key), order)
            inputs = dataset_input | {
                "init": input_file(folder, folder.init_path(key)),
                "order": input_file(folder, folder.order_path(key)),
            }
            hashes = {"dataset_hash": dataset.hash, "init_hash": params.hash, "order_hash": datasets.order_hash(order)}
            for impl in profile.run.impls:
                mine = model_config(at, spec, impl)
                context = Context(
                    run_id=folder.name, impl=impl, model=at.model.kind, seed=seed, profile=profile.name,
                    dataset=dataset.manifest["source"], **hashes, device=mine.device, precision=mine.precision,
                    mode=at.run.modes.get(impl, "default"), point=point,
                )  # fmt: skip
                common = {
                    "impl": impl,
                    "seed": seed,
                    "context": context,
                    "config": asdict(mine),
                    "evaluation": at.eval,
                    "epochs": at.run.epochs,
                    "inputs": inputs,
                    "impl_seed": int(impl_seed.generate_state(1)[0]),
                    "eval_seed": int(eval_seed.generate_state(1)[0]),
                    "threads": at.run.threads,
                    "timeout_s": at.run.timeout_s,
                    "timing_epochs": at.run.timing_epochs,
                    "train_on": at.data.train_on,
                    "retries": at.run.retries,
                    "patience": at.run.patience,
                }
                task_id = f"{impl}-{key}"
                checkpoints = str(folder.checkpoint_dir(task_id).relative_to(folder.path)) if at.run.long else ""
                tasks.append(Task(task_id=task_id, kind="train", **common, checkpoints=checkpoints))
                if seed == profile.run.seeds[0]:
                    timing_id = f"timing-{impl}{'-' + suffix if suffix else ''}"
                    ablation = {"ablation": at.run.ablation, "ablation_rounds": at.run.ablation_rounds}
                    timings.append(Task(task_id=timing_id, kind="timing", **ablation, **common))
    return dataset, tasks, timings


def copy_inputs(task: Task, source: Path, destination: Path) -> None:
    """Copy a task's input files from one root to another (tests and remote workers)."""
    for item in task.inputs.values():
        target = destination / item.path
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(source / item.path, target)
