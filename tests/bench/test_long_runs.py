"""Long runs (``[run] long = true``): a task killed between epochs resumes from its last checkpoint and trains
exactly as one that was never stopped — through a retry in the same run, and through ``--resume`` of a failed one."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from dataclasses import replace

import numpy as np
import pandas as pd
import pytest

import impls
from eval.bench.extend import adopt_checkpoints
from eval.bench.runfolder import RunFolder
from eval.bench.tasks import prepare
from eval.config import ConfigError, load_profile
from eval.contract.rows import Recorder
from eval.models.base import BestEpoch
from eval.models.checkpoints import CheckpointMismatch, Checkpoints
from tests.conftest import RNN_PROFILE, ROOT, WINDOW_PROFILE, finish_run, profile_toml

pytestmark = pytest.mark.bench

LONG = {
    **RNN_PROFILE,
    "run": {**RNN_PROFILE["run"], "impls": ["numpy"], "long": True, "patience": 3},
    "eval": {**RNN_PROFILE["eval"], "curve_every": 1},
}
WALL = {"epoch_seconds"}  # wall times: the only rows a resumed task may differ in


def trained(frame: pd.DataFrame) -> pd.DataFrame:
    """The training task's rows that do not measure time, keyed by phase, metric and epoch."""
    rows = frame[(frame.impl == "numpy") & (frame.phase != "timing") & ~frame.metric.isin(WALL)]
    rows = rows[~rows.metric.isin({"peak_rss_mb"})]
    return rows.set_index(["phase", "metric", "epoch"]).value.sort_index()


@pytest.fixture(scope="module")
def whole(tmp_path_factory, cache_dir):
    """The long profile run without a kill: what every resumed run must reproduce."""
    return finish_run(tmp_path_factory.mktemp("long-whole"), "long", LONG, cache_dir)


def test_a_task_killed_after_an_epoch_resumes_there_on_its_retry(tmp_path, cache_dir, whole):
    killed = finish_run(tmp_path, "long", LONG, cache_dir, RBM_BENCH_FAULT="numpy-s0:kill-after-epoch=2")
    rows = killed.frame[(killed.frame.impl == "numpy") & (killed.frame.metric == "cd_cost")]
    # epochs 1-2 come from the first attempt's checkpoint, 3-4 from the retry that went on from it
    assert dict(zip(rows.epoch.astype(int), rows.attempts)) == {1: 1, 2: 1, 3: 2, 4: 2}
    pd.testing.assert_series_equal(trained(killed.frame), trained(whole.frame))
    kept = [p.name for p in (killed.path / "checkpoints" / "numpy-s0").iterdir()]
    assert kept == ["epoch-000004"]  # the last one only, kept for --extend


def test_a_failed_long_run_completes_with_resume_from_its_checkpoint(tmp_path, cache_dir, whole):
    """No retries left: the run fails with the task's checkpoint kept; ``--resume`` trains epochs 3-4 only."""
    profile = {**LONG, "run": {**LONG["run"], "retries": 0}}
    failed = finish_run(tmp_path, "long", profile, cache_dir, exit_codes=(1,),
                        RBM_BENCH_FAULT="numpy-s0:kill-after-epoch=2")  # fmt: skip
    (saved,) = (failed.path / "checkpoints" / "numpy-s0").iterdir()
    assert saved.name == "epoch-000002"
    before = json.loads((saved / "state.json").read_text())["rows"]
    environment = {k: v for k, v in os.environ.items() if k != "RBM_BENCH_FAULT"}
    environment |= {"RBM_BENCH_RUNS": str(failed.runs), "RBM_BENCH_CACHE": str(cache_dir)}
    command = [sys.executable, "-m", "eval", "bench", "--resume", str(failed.path)]
    done = subprocess.run(command, cwd=ROOT, env=environment, capture_output=True, text=True, timeout=900)
    assert done.returncode == 0, done.stderr[-3000:]
    frame = RunFolder(failed.path).results()
    pd.testing.assert_series_equal(trained(frame), trained(whole.frame))
    seconds = frame[(frame.impl == "numpy") & (frame.metric == "epoch_seconds")].set_index("epoch").value
    kept = {row["epoch"]: row["value"] for row in before if row["metric"] == "epoch_seconds"}
    assert kept and all(seconds[epoch] == value for epoch, value in kept.items())  # not trained again
    assert [p.name for p in (failed.path / "checkpoints" / "numpy-s0").iterdir()] == ["epoch-000004"]


def test_a_finished_long_run_extended_trains_on_to_where_a_longer_run_ends(tmp_path, cache_dir, whole):
    """``--extend RUN --epochs 4`` of a 2-epoch run trains epochs 3-4 only, from its kept checkpoint, and ends
    where the 4-epoch run ends, row for row; options that would change the training are refused in one line."""
    short = finish_run(tmp_path / "short", "long", {**LONG, "run": {**LONG["run"], "epochs": 2}}, cache_dir)
    environment = {k: v for k, v in os.environ.items() if k != "RBM_BENCH_FAULT"}
    environment |= {"RBM_BENCH_RUNS": str(tmp_path / "extended"), "RBM_BENCH_CACHE": str(cache_dir)}

    def extend(*options: str) -> subprocess.CompletedProcess:
        command = [sys.executable, "-m", "eval", "bench", "--extend", str(short.path), *options]
        return subprocess.run(command, cwd=ROOT, env=environment, capture_output=True, text=True, timeout=900)

    refusals = {
        ("--epochs", "2"): "needs --epochs above the run's 2",
        ("--epochs", "4", "--seeds", "1"): "--extend takes only --epochs and --executor",
    }
    for options, message in refusals.items():
        refused = extend(*options)
        assert refused.returncode == 2 and "Traceback" not in refused.stderr and message in refused.stderr
    done = extend("--epochs", "4")
    assert done.returncode == 0, done.stderr[-3000:]
    (run,) = (tmp_path / "extended").iterdir()
    frame = RunFolder(run).results()
    pd.testing.assert_series_equal(trained(frame), trained(whole.frame))
    seconds = frame[(frame.impl == "numpy") & (frame.metric == "epoch_seconds")].set_index("epoch").value
    before = short.frame[(short.frame.impl == "numpy") & (short.frame.metric == "epoch_seconds")]
    assert all(seconds[int(e)] == v for e, v in zip(before.epoch, before.value))  # epochs 1-2: not trained again
    assert set(frame[frame.impl == "numpy"].run_id) == {run.name}  # its rows are the new run's
    assert json.loads((run / "extended_from.json").read_text()) == {"run_id": short.path.name, "epochs": 2}


def test_extend_refuses_a_schedule_that_decays_over_the_run(tmp_path, cache_dir, monkeypatch):
    """A linear decay's first epochs depend on the run's length: the 2-epoch run is not the 4-epoch run's start."""
    monkeypatch.setenv("RBM_BENCH_CACHE", str(cache_dir))
    folders = {}
    for schedule in ("constant", "linear"):
        model = {**LONG["model"], "lr_schedule": schedule}
        for epochs in (2, 4):
            (tmp_path / f"{schedule}-{epochs}").mkdir()
            path = tmp_path / f"{schedule}-{epochs}" / "long.toml"  # one profile name, as --extend keeps it
            path.write_text(profile_toml({**LONG, "model": model, "run": {**LONG["run"], "epochs": epochs}}))
            profile = load_profile(str(path))
            folder = RunFolder.create("long", parent=tmp_path / f"{schedule}-{epochs}")
            folder.write_json(folder.spec, profile.to_dict())
            _, (task,), _ = prepare(profile, folder, log=False)
            folders[schedule, epochs] = folder, task
        (short, task) = folders[schedule, 2]
        with np.load(short.path / task.inputs["init"].path) as data:
            params = impls.RNNRBMParams(*(data[name] for name in impls.RNNRBMParams.names()))
        record = Recorder(task)
        record.add("train", "cd_cost", 1.5, 2)
        Checkpoints(short.path / task.checkpoints, task).save(2, params, BestEpoch(0, "lower"), record, False)
    folder, task = folders["constant", 4]
    assert adopt_checkpoints(folders["constant", 2][0], folder, [task]) == 2
    saved = Checkpoints(folder.path / task.checkpoints, task).load()  # this task's own now: the fingerprint holds
    assert saved.epoch == 2 and [row["run_id"] for row in saved.rows] == [folder.name]
    folder, task = folders["linear", 4]
    with pytest.raises(ConfigError, match="rate schedule of the first 2 epochs changes"):
        adopt_checkpoints(folders["linear", 2][0], folder, [task])


def test_a_checkpoint_of_another_task_is_refused(tmp_path, cache_dir, monkeypatch):
    monkeypatch.setenv("RBM_BENCH_CACHE", str(cache_dir))
    path = tmp_path / "long.toml"
    path.write_text(profile_toml(LONG))
    folder = RunFolder.create("long", parent=tmp_path)
    _, (task,), _ = prepare(load_profile(str(path)), folder, log=False)
    assert task.checkpoints == "checkpoints/numpy-s0"
    with np.load(folder.path / task.inputs["init"].path) as data:
        params = impls.RNNRBMParams(*(data[name] for name in impls.RNNRBMParams.names()))
    mine = Checkpoints(folder.path / task.checkpoints, task)
    mine.save(1, params, BestEpoch(0, "lower"), Recorder(task), stopped=False)
    assert mine.load().epoch == 1 and mine.load().params.hash == params.hash
    other = replace(task, impl_seed=task.impl_seed + 1)  # another seed: another task's training
    with pytest.raises(CheckpointMismatch, match="a checkpoint of another task"):
        Checkpoints(folder.path / task.checkpoints, other).load()
    retried = replace(task, attempt=2)  # the same task's retry goes on from it
    assert Checkpoints(folder.path / task.checkpoints, retried).load().epoch == 1
    rate = replace(task, config={**task.config, "learning_rate": task.config["learning_rate"] * 2})
    with pytest.raises(CheckpointMismatch):  # another recipe
        Checkpoints(folder.path / task.checkpoints, rate).load()
    older = replace(task, config={k: v for k, v in task.config.items() if k != "pretrain_rnn_epochs"})
    assert task.config["pretrain_rnn_epochs"] == 0  # an option an older version of the code did not have, left off:
    assert Checkpoints(folder.path / task.checkpoints, older).load().epoch == 1  # the same training


def test_a_long_profile_of_a_model_without_checkpoints_is_refused(tmp_path):
    path = tmp_path / "long.toml"
    path.write_text(profile_toml({**WINDOW_PROFILE, "run": {**WINDOW_PROFILE["run"], "long": True}}))
    done = subprocess.run([sys.executable, "-m", "eval", "bench", "--profile", str(path)], cwd=ROOT,
                          capture_output=True, text=True, timeout=300)  # fmt: skip
    assert done.returncode == 2 and "Traceback" not in done.stderr
    assert 'long = true needs per-epoch checkpoints, which kind "rbm" does not keep' in done.stderr
