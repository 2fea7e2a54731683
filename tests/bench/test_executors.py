"""Sweeps on executors: the same numbers from serial and Dask, retries after a killed worker, refusal of
mismatched inputs, resumption of an interrupted Dask sweep, and an outside scheduler and workers checked up front."""

from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
import sys
import time
from dataclasses import is_dataclass, replace
from pathlib import Path

import pandas as pd
import pytest

from core.paths import runs_dir
from eval.bench.dask_executor import remote_task
from eval.bench.executors import parse_executor
from eval.bench.harness import run_bench
from eval.bench.runfolder import RunFolder
from eval.bench.tasks import prepare
from eval.config import ConfigError, load_profile
from tests.conftest import WINDOW_PROFILE, other_framework

ROOT = Path(__file__).resolve().parents[2]
# The shared window run (serial) is one point of this grid: n_hidden 50 is the quick profile's own.
GRID = {"model.n_hidden": [50, 10]}
QUALITY = ("pl_per_unit", "ais_ll_per_row", "raise_ll_per_row", "music_structure_js", "note_density", "copy_rate")


def sweep_profile(executor: str, impls: list[str]):
    """The shared run's tiny profile (tests/conftest.py: WINDOW_PROFILE) swept over two hidden-layer sizes."""
    window = load_profile("quick").override(**{k: v for k, v in WINDOW_PROFILE.items() if isinstance(v, dict)})
    return replace(
        window.override(run={"impls": impls, "seeds": [0], "executor": executor}),
        sweep={k: tuple(v) for k, v in GRID.items()},
    )


def quality_rows(frame: pd.DataFrame, impls: list[str]) -> pd.DataFrame:
    rows = frame[frame.metric.isin(QUALITY) & frame.epoch.isna() & frame.impl.isin(impls)]
    keys = ["impl", "seed", "metric"]
    return rows.set_index(keys).sort_index()[["value", "status"]]


@pytest.fixture(scope="module")
def dask_sweep(window_run, tmp_path_factory):
    """The shared run's profile swept on a local Dask cluster of two workers, one of them killed mid-task: the
    implementations x 2 grid points give each worker more than one task."""
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("RBM_BENCH_FAULT", "numpy-s0-p0:kill-parent")  # kills the Dask worker running the task
        folder = RunFolder(tmp_path_factory.mktemp("dask") / "run")
        return run_bench(sweep_profile("dask:local:2", window_run.impls), folder, log=False)


def test_executor_names_are_validated():
    assert parse_executor("dask:local:2").workers == 2 and parse_executor("dask:tcp://h:8786").address == "tcp://h:8786"
    assert parse_executor("local:3").workers == 3 and parse_executor("serial").kind == "serial"
    for bad in ("dask", "dask:local:0", "local:x", "threads", "serial:2"):
        with pytest.raises(ConfigError, match="use serial, local, local:N"):
            parse_executor(bad)


@pytest.mark.bench
def test_sweep_rows_carry_the_grid_and_every_point_ran(dask_sweep, window_run):
    frame = dask_sweep.frame
    trained = frame[frame.impl.isin(window_run.impls) & (frame.metric == "pl_per_unit")]
    assert sorted(trained["model.n_hidden"].unique()) == sorted(GRID["model.n_hidden"])
    assert len(trained) == len(window_run.impls) * len(GRID["model.n_hidden"]) and (trained.status == "ok").all()
    points = trained.groupby(["impl", "seed", "model.n_hidden"]).size()
    assert len(points) == len(trained) and (points == 1).all(), "every (implementation, seed, grid point) once"


@pytest.mark.bench
def test_dask_local_cluster_gives_the_serial_numbers_value_for_value(dask_sweep, window_run):
    """Dask's grid point n_hidden 50 is the serial shared run, number for number, in every framework: torch too,
    which draws its noise from its own generator (seeded per task, so the executor does not change it)."""
    assert not dask_sweep.failed
    if other_framework() is not None:
        assert other_framework() in window_run.impls
    point = dask_sweep.frame[dask_sweep.frame["model.n_hidden"] == 50]
    serial = quality_rows(window_run.frame, window_run.impls)
    assert len(serial) >= len(QUALITY) * len(window_run.impls) and (serial.status == "ok").all()
    pd.testing.assert_frame_equal(quality_rows(point, window_run.impls), serial)


@pytest.mark.bench
def test_a_killed_dask_worker_is_retried_and_the_sweep_completes(dask_sweep, window_run):
    assert not dask_sweep.failed
    frame = dask_sweep.frame[dask_sweep.frame.impl.isin(window_run.impls) & (dask_sweep.frame.phase != "timing")]
    killed = frame[(frame.impl == "numpy") & (frame.seed == 0) & (frame["model.n_hidden"] == 50)]
    assert len(killed) and (killed.attempts == 2).all(), "the killed task ran again"  # (queued ones may too)
    finished = frame[frame.metric == "pl_per_unit"]
    assert len(finished) == len(window_run.impls) * 2 and (finished.status == "ok").all()
    assert set(finished.attempts) <= {1, 2}


def test_a_worker_refuses_inputs_whose_hash_differs(tmp_path, monkeypatch):
    folder = RunFolder.create("tampered", path=tmp_path / "run")
    _, tasks, _ = prepare(sweep_profile("serial", ["numpy"]), folder, log=False)  # the inputs, no training
    task = tasks[0]
    blobs = {item.sha256: (folder.path / item.path).read_bytes() for item in task.inputs.values()}
    init = task.inputs["init"]
    damaged = bytearray(blobs[init.sha256])
    damaged[len(damaged) // 2] ^= 0xFF  # one byte changed in transit
    blobs[init.sha256] = bytes(damaged)
    monkeypatch.setenv("RBM_BENCH_WORKER_CACHE", str(tmp_path))
    # a run of its own, so the worker's cache has no intact copy (the context is a dict, or a dataclass of its own)
    context = task.context
    context = replace(context, run_id="tampered") if is_dataclass(context) else {**context, "run_id": "tampered"}
    result = remote_task(replace(task, context=context).to_json(), blobs)
    assert result["failure"].startswith("InputMismatch: input init arrived with sha256") and not result["retry"]
    assert "refused" in result["failure"] and not result["files"]


def test_a_changed_input_file_is_refused_by_the_worker_itself(tmp_path):
    profile = replace(sweep_profile("serial", ["numpy"]), sweep={})
    folder = RunFolder.create("tampered", path=tmp_path / "run")
    _, tasks, _ = prepare(profile, folder, log=False)
    from eval.bench.executors import run_task_process

    order = folder.path / tasks[0].inputs["order"].path
    order.write_bytes(order.read_bytes() + b"tail")
    outcome = run_task_process(tasks[0], folder.path)
    assert "InputMismatch: input order" in outcome.failure and not outcome.retry


@pytest.mark.bench
def test_an_interrupted_dask_sweep_resumes(tmp_path):
    profile_file = tmp_path / "sweep.toml"
    profile_file.write_text(
        "\n".join(
            [
                'extends = "quick"',
                "[data]",
                'source = "synthetic"',
                "[run]",
                'impls = ["numpy"]',
                "seeds = [0, 1]",
                "epochs = 2",
                "timing_epochs = 2",
                "[eval]",
                "ais_betas = 100",
                "raise_betas = 50",
                "ll_windows = 20",
                "gibbs_steps = 5",
                "audio_samples = 0",
                "[sweep]",
                f'"model.n_hidden" = {json.dumps(GRID["model.n_hidden"])}',
            ]
        )
    )
    command = [sys.executable, "-m", "eval", "bench", "--profile", str(profile_file), "--executor", "dask:local:1"]
    # SIGINT as a terminal sends it, also where the test itself runs in the background (a shell's `&` ignores SIGINT
    # in its children, and an ignored SIGINT is inherited: Python would then never raise KeyboardInterrupt)
    restore = lambda: signal.signal(signal.SIGINT, signal.SIG_DFL)
    process = subprocess.Popen(command, cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                               preexec_fn=restore)  # fmt: skip
    runs = runs_dir()  # the child inherits $RBM_BENCH_RUNS (conftest.py): its run folder goes there
    deadline = time.time() + 300
    folder = None
    while time.time() < deadline and process.poll() is None:  # wait for the first finished task, then Ctrl-C
        candidates = sorted(runs.glob("*-sweep"), key=lambda p: p.stat().st_mtime) if runs.exists() else []
        if candidates and list((candidates[-1] / "runs").glob("numpy-*.json")):
            folder = candidates[-1]
            break
        time.sleep(0.5)
    assert folder is not None, process.communicate()
    process.send_signal(signal.SIGINT)
    _, stderr = process.communicate(timeout=120)
    assert process.returncode == 130 and "--resume" in stderr, stderr
    assert not (folder / "complete.json").exists()
    done_before = {p.name for p in (folder / "runs").glob("numpy-*.json")}
    resumed = subprocess.run([sys.executable, "-m", "eval", "bench", "--resume", str(folder), "--executor",
                              "dask:local:2"], cwd=ROOT, capture_output=True, text=True, timeout=600)  # fmt: skip
    assert resumed.returncode == 0, resumed.stderr
    frame = RunFolder(folder).results()
    assert len(frame[(frame.metric == "pl_per_unit") & (frame.status == "ok")]) == 4
    assert done_before <= {p.name for p in (folder / "runs").glob("numpy-*.json")}
    import shutil

    shutil.rmtree(folder)


@pytest.mark.bench
def test_a_scheduler_with_no_worker_is_refused_not_waited_on_forever(monkeypatch):
    """No worker ever joins: every task would wait for one without end. The check names it after WORKER_WAIT_S."""
    from distributed import Client, LocalCluster

    from eval.bench import dask_executor
    from eval.config import ConfigError

    monkeypatch.setattr(dask_executor, "WORKER_WAIT_S", 2.0)
    cluster = LocalCluster(n_workers=0, dashboard_address=":0", scheduler_port=0)
    with cluster, Client(cluster.scheduler_address) as client, pytest.raises(ConfigError) as refused:
        dask_executor.check_cluster(client)
    assert f"no worker joined the scheduler at {cluster.scheduler_address} in 2 s" in str(refused.value)
    assert "dask worker ADDRESS" in str(refused.value)


@pytest.mark.bench
def test_a_worker_that_cannot_import_the_project_is_named_not_reported_lost(tmp_path):
    """A worker started outside the checkout (as a careless deployment does): one line before any task, exit 2."""
    import os

    from distributed import LocalCluster

    cluster = LocalCluster(n_workers=0, dashboard_address=":0", scheduler_port=0)
    environment = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    worker = subprocess.Popen(
        [sys.executable, "-m", "distributed.cli.dask_worker", cluster.scheduler_address, "--nthreads", "1",
         "--resources", "rbm_task=1", "--no-dashboard"],
        cwd=tmp_path, env=environment, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )  # fmt: skip
    try:
        from distributed import Client

        with Client(cluster.scheduler_address) as client:
            client.wait_for_workers(1, timeout=60)
        command = [sys.executable, "-m", "eval", "bench", "--profile", "quick", "--impls", "numpy", "--dataset",
                   "synthetic", "--epochs", "1", "--seeds", "0", "--executor",
                   f"dask:{cluster.scheduler_address}"]  # fmt: skip
        done = subprocess.run(command, cwd=ROOT, capture_output=True, text=True, timeout=300,
                              env={**os.environ, "RBM_BENCH_RUNS": str(tmp_path / "runs")})  # fmt: skip
    finally:
        worker.terminate()
        worker.wait(30)
        cluster.close()
    last = done.stderr.strip().splitlines()[-1]
    assert done.returncode == 2, done.stderr[-2000:]
    assert "workers cannot import the project" in last and "PYTHONPATH" in last and "lost" not in last
    assert "Traceback" not in done.stderr


@contextlib.contextmanager
def external_cluster(scheduler_cwd: Path, scheduler_env: dict[str, str], folder: Path):
    """A scheduler started by the ``dask`` command (in ``scheduler_cwd`` with ``scheduler_env``) and one worker
    started as the README says (at the checkout's root, the root on ``PYTHONPATH``); yields the address."""
    from distributed import Client

    dask = Path(sys.executable).with_name("dask")
    if not dask.exists():
        pytest.skip(f"no dask command beside {sys.executable}")
    started, file = [], folder / "scheduler.json"
    at_root = {**os.environ, "PYTHONPATH": str(ROOT)}
    try:
        started.append(
            subprocess.Popen(
                [dask, "scheduler", "--port", "0", "--no-dashboard", "--scheduler-file", file],
                cwd=scheduler_cwd,
                env=scheduler_env,
                stderr=subprocess.DEVNULL,
            )
        )
        deadline, address = time.monotonic() + 60, None
        while address is None and time.monotonic() < deadline:
            time.sleep(0.2)
            with contextlib.suppress(OSError, ValueError, KeyError):  # not written yet, or half written
                address = json.loads(file.read_text())["address"]
        assert address, "the scheduler did not start in 60 s"
        started.append(
            subprocess.Popen(
                [dask, "worker", address, "--nthreads", "1", "--resources", "rbm_task=1", "--no-dashboard"],
                cwd=ROOT,
                env=at_root,
                stderr=subprocess.DEVNULL,
            )
        )
        with Client(address, timeout="30s") as client:
            client.wait_for_workers(1, timeout=60)
        yield address
    finally:
        for process in reversed(started):
            process.terminate()
            process.wait(30)


def bench_on(address: str, tmp_path: Path) -> subprocess.CompletedProcess:
    """``python -m eval bench`` of a tiny profile (one NumPy task) on the Dask scheduler at ``address``."""
    profile_file = tmp_path / "tiny.toml"
    profile_file.write_text('extends = "quick"\n[data]\nsource = "synthetic"\n[model]\nn_hidden = 12\n[run]\n'
                            'impls = ["numpy"]\nseeds = [0]\nepochs = 1\ntiming_epochs = 2\n'
                            "[eval]\nll_windows = 30\ngibbs_steps = 5\naudio_samples = 0\n")  # fmt: skip
    command = [sys.executable, "-m", "eval", "bench", "--profile", str(profile_file), "--executor", f"dask:{address}"]
    environment = {**os.environ, "RBM_BENCH_RUNS": str(tmp_path / "runs")}
    return subprocess.run(command, cwd=ROOT, env=environment, capture_output=True, text=True, timeout=300)


@pytest.mark.bench
def test_a_scheduler_that_cannot_import_the_project_is_named_not_reported_lost(tmp_path):
    """A scheduler started outside the checkout could not unpickle the task graph: every task was a lost worker."""
    elsewhere = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    with external_cluster(tmp_path, elsewhere, tmp_path) as address:
        done = bench_on(address, tmp_path)
    last = done.stderr.strip().splitlines()[-1]
    assert done.returncode == 2 and "Traceback" not in done.stderr, done.stderr[-2000:]
    assert f"the scheduler at {address} cannot import the project" in last and "lost" not in last
    assert "PYTHONPATH=$PWD .tox/bench/bin/dask scheduler" in last  # how to start it, as the README does


@pytest.mark.bench
def test_a_scheduler_and_worker_started_as_the_readme_says_run_the_bench(tmp_path):
    readme = (ROOT / "README.md").read_text()
    assert "cd rbm-music-bench && PYTHONPATH=$PWD .tox/bench/bin/dask scheduler" in readme
    with external_cluster(ROOT, {**os.environ, "PYTHONPATH": str(ROOT)}, tmp_path) as address:
        done = bench_on(address, tmp_path)
    assert done.returncode == 0, done.stderr[-2000:]
