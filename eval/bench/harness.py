"""The benchmark harness: one dataset, one set of initial weights and batch orders, one process per run.

Like benchopt: a missing framework becomes a ``skipped`` row with the reason,
a crash or timeout a ``failed`` row, and the other runs go on. Every run's
rows land atomically in ``runs/<impl>-s<seed>.json`` as it finishes, so an
interrupted run keeps what finished and ``--resume`` completes it.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import tomllib
from dataclasses import asdict
from datetime import datetime
from pathlib import Path

import numpy as np
import pandas as pd
from tqdm import tqdm

import impls
from datasets import Dataset, WindowSpec, batch_order, build, order_hash
from datasets.artifact import atomic_write_text
from datasets.sources import parse_source
from eval.environment import ROOT, describe_environment, thread_environment
from eval.rows import COLUMNS, make_row
from impls import RBMConfig, init_params

PROFILES = Path(__file__).with_name("profiles")
RUNS = ROOT / "reports" / "runs"


class HarnessError(ValueError):
    """Bad options or profile (reported as one line, exit 2)."""


def load_profile(name: str) -> dict:
    """A profile by name (``eval/profiles/<name>.toml``) or by path to a TOML file."""
    path = PROFILES / f"{name}.toml" if (PROFILES / f"{name}.toml").exists() else Path(name)
    if not path.is_file():
        known = ", ".join(sorted(p.stem for p in PROFILES.glob("*.toml")))
        raise HarnessError(f"{name}: no such profile; use one of {known} or a path to a .toml file")
    try:
        profile = tomllib.loads(path.read_text())
    except tomllib.TOMLDecodeError as error:
        message = f"{path}: not valid TOML ({error}); fix the file or copy eval/profiles/default.toml"
        raise HarnessError(message) from None
    for section in ("data", "model", "run", "eval"):
        if section not in profile:
            raise HarnessError(f"{path}: missing the [{section}] section; start from eval/profiles/default.toml")
    profile["name"] = path.stem
    return profile


def window_spec(profile: dict) -> WindowSpec:
    data = profile["data"]
    fields = ("num_timesteps", "stride", "low", "high", "articulation", "cut_at_time_signature", "min_rows")
    return WindowSpec(**{f: data[f] for f in fields if f in data})


def model_config(profile: dict, spec: WindowSpec) -> RBMConfig:
    model = {k: v for k, v in profile["model"].items() if k != "init"}
    return RBMConfig(n_visible=spec.n_visible, **model)


def _save_order(path: Path, order: list[list[np.ndarray]]) -> None:
    batches = [b for epoch in order for b in epoch]
    np.savez(
        path,
        flat=np.concatenate(batches).astype(np.int64),
        lengths=[len(b) for b in batches],
        batches_per_epoch=[len(epoch) for epoch in order],
    )


def prepare(profile: dict, run_dir: Path, log: bool = True) -> tuple[Dataset, list[dict]]:
    """Build the dataset and draw every seed's shared inputs; returns the dataset and one task per run."""
    spec = window_spec(profile)
    dataset = build(profile["data"]["source"], spec, log=log)
    if not len(dataset.indices("train")) or not len(dataset.indices("test")):
        raise HarnessError(f"{profile['data']['source']}: the dataset has no training or no test windows")
    config = model_config(profile, spec)
    inputs = run_dir / "inputs"
    inputs.mkdir(parents=True, exist_ok=True)
    dataset_path = dataset.manifest["artifact_path"]
    tasks = []
    for seed in profile["run"]["seeds"]:
        init_seed, order_seed, impl_seed, eval_seed = np.random.SeedSequence(seed).spawn(4)
        params = init_params(config, init_seed, profile["model"].get("init", "normal"))
        order = batch_order(dataset, order_seed, config.batch_size, profile["run"]["epochs"], profile["data"]["order"])
        if not any(len(epoch) for epoch in order):
            raise HarnessError(f"fewer training windows than one batch ({config.batch_size}); lower batch_size")
        np.savez(inputs / f"init-s{seed}.npz", W=params.W, b_v=params.b_v, b_h=params.b_h)
        _save_order(inputs / f"order-s{seed}.npz", order)
        hashes = {"dataset_hash": dataset.hash, "init_hash": params.hash, "order_hash": order_hash(order)}
        for impl in profile["run"]["impls"]:
            context = {
                "run_id": run_dir.name,
                "impl": impl,
                "seed": seed,
                "profile": profile["name"],
                "dataset": dataset.manifest["source"],
                **hashes,
            }
            tasks.append(
                {
                    "impl": impl,
                    "context": context,
                    "model": asdict(config),
                    "eval": profile["eval"],
                    "dataset_path": str(dataset_path),
                    "init_path": str(inputs / f"init-s{seed}.npz"),
                    "order_path": str(inputs / f"order-s{seed}.npz"),
                    **hashes,
                    "impl_seed": int(impl_seed.generate_state(1)[0]),
                    "eval_seed": int(eval_seed.generate_state(1)[0]),
                    "out_path": str(run_dir / "runs" / f"{impl}-s{seed}.json"),
                }
            )
    return dataset, tasks


def _last_error(stderr: str) -> str:
    """The exception line of a traceback (``SomeError: message``), else the last line."""
    lines = [line.strip() for line in stderr.splitlines() if line.strip()]
    errors = [line for line in lines if re.match(r"^[\w.]+(Error|Exception|Interrupt|Exit)\b", line)]
    return ((errors or lines or ["no output"])[-1])[:300]


def run_task(task: dict, threads: int, timeout_s: float) -> None:
    """Run one task in a fresh process; rows land in its out_path, a crash or timeout as a ``failed`` row."""
    out = Path(task["out_path"])
    out.parent.mkdir(parents=True, exist_ok=True)
    task_path = out.with_suffix(".task.json")
    task_path.write_text(json.dumps(task))
    env = {**os.environ, **thread_environment(threads), "PYTHONPATH": str(ROOT)}
    reason = ""
    try:
        result = subprocess.run(
            [sys.executable, "-m", "eval.worker", str(task_path)],
            cwd=ROOT,
            env=env,
            capture_output=True,
            text=True,
            timeout=timeout_s,
        )
        if result.returncode != 0 or not out.exists():
            reason = f"exit code {result.returncode}: {_last_error(result.stderr)}"
    except subprocess.TimeoutExpired:
        reason = f"timed out after {timeout_s:.0f} s"
    if reason:
        row = make_row(task["context"], "train", "train_windows_per_s", None, status="failed", reason=reason)
        atomic_write_text(out, json.dumps({"rows": [row], "framework_version": "", "epoch_seconds": []}))


def reference_rows(run_dir: Path, config: RBMConfig, threads: int, context: dict) -> list[dict]:
    """scikit-learn's BernoulliRBM throughput, measured in its own process in the same run."""
    out = run_dir / "runs" / "sklearn.json"
    if not out.exists():
        env = {**os.environ, **thread_environment(threads), "PYTHONPATH": str(ROOT)}
        subprocess.run(
            [
                sys.executable,
                "-m",
                "eval.throughput",
                str(out),
                str(config.n_visible),
                str(config.n_hidden),
                str(config.batch_size),
            ],
            cwd=ROOT,
            env=env,
            timeout=600,
            check=False,
        )
    if not out.exists():
        return [make_row(context, "timing", "sklearn_windows_per_s", None, status="failed", reason="reference crashed")]
    measured = json.loads(out.read_text())
    return [make_row(context, "timing", "sklearn_windows_per_s", measured["batch"] / measured["sklearn_step_ms"] * 1e3)]


def derived_rows(frame: pd.DataFrame, batch: int, context: dict) -> list[dict]:
    """Roofline (fastest framework's five products), each implementation's ratio to it and its ceiling, per seed.

    The ceiling is ``roofline time / (own five products + own noise draws)``:
    the ratio an implementation would reach if all its other work were free.
    """
    rows = []
    ok = frame[frame.status == "ok"]
    products = ok[ok.metric == "five_products_ms"]
    for seed, group in products.groupby("seed"):
        fastest = group.value.min()
        roofline = batch / fastest * 1e3
        rows.append(
            make_row({**context, "seed": seed, "impl": "roofline"}, "timing", "roofline_windows_per_s", roofline)
        )
        own = ok[(ok.seed == seed) & ok.metric.isin(["five_products_ms", "draw_ms"])]
        own = own.pivot_table(index="impl", columns="metric", values="value").sum(axis=1, min_count=2)
        speeds = ok[(ok.metric == "train_windows_per_s") & (ok.seed == seed)]
        for _, row in speeds.iterrows():
            base = {c: row[c] for c in COLUMNS if c in row and c not in ("epoch", "phase", "metric", "value")}
            rows.append(make_row(base, "timing", "ratio_to_roofline", row.value / roofline))
            if np.isfinite(own.get(row.impl, np.nan)):
                rows.append(make_row(base, "timing", "ceiling_ratio", fastest / own[row.impl]))
    return rows


def run_bench(profile: dict, run_dir: Path | None = None, log: bool = True) -> tuple[Path, pd.DataFrame]:
    """Run (or resume) every (implementation, seed) of a profile; returns the run folder and its rows."""
    resume = run_dir is not None and (run_dir / "spec.json").exists()
    if resume:
        profile = json.loads((run_dir / "spec.json").read_text())
    else:
        window_spec(profile)  # bad options fail here, before a run folder exists
        parse_source(profile["data"]["source"])
        stamp = datetime.now().strftime("%Y%m%d-%H%M%S")
        run_dir = run_dir or RUNS / f"{stamp}-{profile['name']}"
        while run_dir.exists():  # a run never overwrites another
            run_dir = run_dir.with_name(run_dir.name + "-1")
        run_dir.mkdir(parents=True)
        atomic_write_text(run_dir / "spec.json", json.dumps(profile, indent=1))
    dataset, tasks = prepare(profile, run_dir, log)
    atomic_write_text(run_dir / "dataset_manifest.json", json.dumps(dataset.manifest, indent=1))
    environment = describe_environment()
    atomic_write_text(run_dir / "env.json", json.dumps(environment, indent=1))
    threads, timeout_s = profile["run"]["threads"], profile["run"]["timeout_s"]
    status = impls.available()
    rows: list[dict] = []
    versions: dict[str, str] = {}
    for task in tqdm(tasks, desc="runs", unit="run", disable=None if log else True):
        out = Path(task["out_path"])
        skipped = status.get(task["impl"])
        if isinstance(skipped, impls.Skipped) or skipped is None:
            reason = skipped.reason if skipped else f"unknown implementation {task['impl']!r}"
            rows.append(
                make_row(task["context"], "train", "train_windows_per_s", None, status="skipped", reason=reason)
            )
            continue
        if not out.exists():  # finished runs of an interrupted run are kept, not redone
            run_task(task, threads, timeout_s)
        result = json.loads(out.read_text())
        rows += result["rows"]
        versions[task["impl"]] = result.get("framework_version", "")
    config = model_config(profile, window_spec(profile))
    context = {**tasks[0]["context"], "impl": "sklearn"}
    rows += reference_rows(run_dir, config, threads, context)
    frame = pd.DataFrame(rows, columns=COLUMNS)
    frame = pd.concat([frame, pd.DataFrame(derived_rows(frame, config.batch_size, context), columns=COLUMNS)])
    frame["framework_version"] = frame.impl.map(versions).fillna("")
    for key in ("python", "cpu", "cores", "blas", "git_commit"):
        frame[key] = environment[key]
    frame["threads"] = threads
    frame = frame.reset_index(drop=True)
    frame.to_csv(run_dir / "results.csv", index=False)
    frame.to_parquet(run_dir / "results.parquet", index=False)
    return run_dir, frame
