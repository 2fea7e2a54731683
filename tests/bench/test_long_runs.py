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
from eval.bench.runfolder import RunFolder
from eval.bench.tasks import prepare
from eval.config import load_profile
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
    assert not (killed.path / "checkpoints").exists()  # removed with the last task's result


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
    assert not (failed.path / "checkpoints").exists()  # removed once the result was stored


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
