"""Tasks: what one worker process does, with its inputs named by content.

`prepare` builds the dataset once, draws each seed's initial weights and batch
order once (one `SeedSequence` per seed, spawned per use), stores them in the
run folder's ``inputs/`` and returns one `Task` per (grid point, seed,
implementation) plus one timing task per (grid point, implementation). A task
names every input by path *and* sha256; a worker checks each hash before it
trains, so no framework ever trains on other bytes than the ones recorded.
"""

from __future__ import annotations

import shutil
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any, Literal

import numpy as np

import datasets
import impls
from core.files import sha256_file
from core.typed import from_json, to_json
from eval.bench.runfolder import RunFolder
from eval.config import ConfigError, EvalConfig, Profile, sweep_points
from impls import RBMConfig, RNNRBMConfig, framework, init_params, init_rnn_rbm_params
from impls.rnn_rbm.numpy import pretrained


@dataclass(frozen=True)
class InputFile:
    """One input of a task: a path relative to the run folder and the sha256 of its bytes."""

    path: str
    sha256: str


@dataclass(frozen=True)
class Context:
    """The identifying columns of every row a task produces (``point``: the swept keys, one column each)."""

    run_id: str
    impl: str
    model: str
    seed: int
    profile: str
    dataset: str
    dataset_hash: str
    init_hash: str
    order_hash: str
    device: str
    precision: str
    point: dict[str, Any] = field(default_factory=dict)

    def columns(self) -> dict[str, Any]:
        values = {f.name: getattr(self, f.name) for f in fields(self) if f.name != "point"}
        return values | self.point


@dataclass(frozen=True)
class Task:
    """One worker process: train and score (``kind="train"``) or time (``kind="timing"``) one implementation.

    Typed from end to end: it crosses the process boundary as JSON (`to_json`) and is rebuilt and checked field
    by field against these declarations (`from_json`), so a worker never reads a value by string key.
    """

    task_id: str
    kind: Literal["train", "timing"]
    impl: str
    seed: int
    context: Context
    model: RBMConfig  # the implementation's configuration (n_visible from the data, device from the catalogue)
    evaluation: EvalConfig
    epochs: int
    lr_schedule: Literal["constant", "linear"]
    inputs: dict[str, InputFile]
    impl_seed: int
    eval_seed: int
    threads: int
    timeout_s: float
    timing_epochs: int = 5
    train_on: Literal["train", "all"] = "train"
    retries: int = 1
    attempt: int = 1
    rnn: RNNRBMConfig | None = None  # a sequence model's configuration (``[model] kind = "rnn_rbm"``)

    def to_json(self) -> str:
        return to_json(self)

    @classmethod
    def from_json(cls, text: str, where: str = "task.json") -> Task:
        return from_json(cls, text, where)

    def learning_rates(self, rate: float | None = None) -> list[float]:
        """The rate of each epoch under this task's schedule (`learning_rates`)."""
        return learning_rates(self.model.learning_rate if rate is None else rate, self.epochs, self.lr_schedule)


def learning_rates(rate: float, epochs: int, schedule: str) -> list[float]:
    """The rate of each epoch: constant, or decaying linearly to ``rate / epochs`` in the last one."""
    if schedule == "linear":
        return [rate * (1 - e / epochs) for e in range(epochs)]
    return [rate] * epochs


def window_spec(profile: Profile) -> datasets.WindowSpec:
    return profile.data.window_spec()


def model_config(profile: Profile, n_visible: int, impl: str | None = None) -> RBMConfig:
    """The implementation's configuration: the profile's model, its data's size, the framework's device."""
    device = profile.run.device if impl is None else framework(impl).device_for(profile.run.device)
    return profile.model.model_config(n_visible, device)


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


def prepare(profile: Profile, folder: RunFolder, log: bool = True) -> tuple[datasets.Dataset, list[Task], list[Task]]:
    """Build the shared inputs into ``folder/inputs``; return the dataset, the training tasks and the timing tasks."""
    spec = window_spec(profile)
    dataset = datasets.build(profile.data.source, spec, log=log)
    if not len(dataset.indices("train")) or not len(dataset.indices(profile.eval.score_split)):
        raise ConfigError(
            f"{profile.data.source}: the dataset has no training or no {profile.eval.score_split} windows"
        )
    source_dir = Path(dataset.manifest["artifact_path"]).parent
    folder.dataset_dir.mkdir(parents=True, exist_ok=True)
    for name in ("dataset.npz", "manifest.json"):  # the run keeps its own copy: render and resume need no cache
        if not (folder.dataset_dir / name).exists():
            folder.write_bytes(folder.dataset_dir / name, (source_dir / name).read_bytes())
    rel = lambda p: str(p.relative_to(folder.path))
    dataset_input = {
        "dataset": InputFile(rel(folder.dataset_dir / "dataset.npz"), sha256_file(folder.dataset_dir / "dataset.npz")),
        "manifest": InputFile(
            rel(folder.dataset_dir / "manifest.json"), sha256_file(folder.dataset_dir / "manifest.json")
        ),
    }
    tasks, timings = [], []
    for index, point in enumerate(sweep_points(profile)):
        at = profile.at(point) if point else profile
        config = model_config(at, spec.n_visible)
        suffix = _point_id(index, point)
        for seed in profile.run.seeds:
            init_seed, order_seed, impl_seed, eval_seed = np.random.SeedSequence(seed).spawn(4)
            key = f"s{seed}{'-' + suffix if suffix else ''}"
            split = "train" if at.data.train_on == "train" else None
            sequences = impls.models()[at.model.kind].data == "sequences"
            if sequences:  # an RNN-RBM: its own initial weights, and chunks of pieces instead of windows
                rnn = at.model.rnn_config(spec.row_width, profile.run.device)
                params = init_rnn_rbm_params(rnn, init_seed)
                if at.model.pretrain_epochs:  # part of the shared initial weights: drawn once, hashed, for all
                    frames = datasets.frame_table(dataset)[np.concatenate(datasets.piece_frames(dataset, "train"))]
                    rate = at.model.pretrain_learning_rate
                    params = pretrained(params, frames, at.model.pretrain_epochs, init_seed.spawn(1)[0], rate)
                order = datasets.chunk_order(
                    dataset, order_seed, rnn.chunk_length, rnn.batch_size, at.run.epochs, split
                )
                arrays = {name: a for name, a in zip(rnn_param_names(), params.arrays())}
            else:
                params = init_params(config, init_seed, at.model.init)
                order = datasets.batch_order(  # the point's own order and training split (a sweep may set them)
                    dataset, order_seed, config.batch_size, at.run.epochs, at.data.order, split=split
                )
                arrays = {"W": params.W, "b_v": params.b_v, "b_h": params.b_h}
            if not all(len(epoch) for epoch in order):
                raise ConfigError(f"fewer training windows than one batch ({config.batch_size}); lower batch_size")
            folder.write_npz(folder.init_path(key), **arrays)
            _save_order(folder, folder.order_path(key), order)
            inputs = dataset_input | {
                "init": InputFile(rel(folder.init_path(key)), sha256_file(folder.init_path(key))),
                "order": InputFile(rel(folder.order_path(key)), sha256_file(folder.order_path(key))),
            }
            hashes = {
                "dataset_hash": dataset.hash,
                "init_hash": params.hash,
                "order_hash": datasets.order_hash(order),
            }
            for impl in profile.run.impls:
                mine = model_config(at, spec.n_visible, impl)
                context = Context(
                    run_id=folder.name,
                    impl=impl,
                    model=at.model.kind,
                    seed=seed,
                    profile=profile.name,
                    dataset=dataset.manifest["source"],
                    **hashes,
                    device=mine.device,
                    precision=mine.precision,
                    point=point,
                )
                common = {
                    "impl": impl,
                    "seed": seed,
                    "context": context,
                    "model": mine,
                    "evaluation": at.eval,
                    "epochs": at.run.epochs,
                    "lr_schedule": at.model.lr_schedule,
                    "inputs": inputs,
                    "impl_seed": int(impl_seed.generate_state(1)[0]),
                    "eval_seed": int(eval_seed.generate_state(1)[0]),
                    "threads": at.run.threads,
                    "timeout_s": at.run.timeout_s,
                    "timing_epochs": at.run.timing_epochs,
                    "train_on": at.data.train_on,
                    "retries": at.run.retries,
                }
                if sequences:
                    common["rnn"] = at.model.rnn_config(spec.row_width, mine.device)
                tasks.append(Task(task_id=f"{impl}-{key}", kind="train", **common))
                if seed == profile.run.seeds[0]:
                    timings.append(
                        Task(task_id=f"timing-{impl}{'-' + suffix if suffix else ''}", kind="timing", **common)
                    )
    return dataset, tasks, timings


def rnn_param_names() -> tuple[str, ...]:
    """The RNN-RBM's parameter names, in `impls.RNNRBMParams` order (the keys of its init and params files)."""
    return tuple(f.name for f in fields(impls.RNNRBMParams))


def copy_inputs(task: Task, source: Path, destination: Path) -> None:
    """Copy a task's input files from one root to another (tests and remote workers)."""
    for item in task.inputs.values():
        target = destination / item.path
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(source / item.path, target)
