"""A third model is a folder, a plug-in and a profile: nothing else in the house changes.

The test copies the layers into a temporary folder, adds the toy model of ``tests/contracts/third_model/``
(independent Bernoulli units: ``impls/bernoulli/`` with its interface and a NumPy and a PyTorch file,
``eval/models/bernoulli.py``, ``eval/profiles/bernoulli.toml``), edits nothing else, and runs the real
commands there: the bench (rows, report), the quality gate and the history.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest

import impls
from tests.conftest import other_framework

pytestmark = pytest.mark.bench
ROOT = Path(__file__).resolve().parents[2]
TOY = Path(__file__).with_name("third_model")
LAYERS = ("core", "datasets", "impls", "eval", "reports")


def run(copy: Path, *args: str, check: bool = True) -> subprocess.CompletedProcess:
    env = {**os.environ, "PYTHONPATH": str(copy), "RBM_BENCH_RUNS": str(copy / "runs")}
    env.pop("RBM_BENCH_HISTORY", None)
    result = subprocess.run([sys.executable, *args], cwd=copy, env=env, capture_output=True, text=True, timeout=900)
    assert not check or result.returncode == 0, result.stderr[-3000:]
    return result


@pytest.fixture(scope="module")
def third(tmp_path_factory):
    """A copy of the layers with the toy model's files added, and one bench run of its profile."""
    if other_framework() != "torch":
        pytest.skip("skipped: the toy model's second framework is PyTorch, not installed here")
    copy = tmp_path_factory.mktemp("third")
    for layer in LAYERS:
        shutil.copytree(ROOT / layer, copy / layer, ignore=shutil.ignore_patterns("__pycache__", "runs", "example*"))
    added = [path.relative_to(TOY) for path in TOY.rglob("*") if path.is_file() and "__pycache__" not in path.parts]
    for path in added:
        assert not (copy / path).exists(), f"{path} would replace a file of the house"
        (copy / path).parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(TOY / path, copy / path)
    bench = run(copy, "-m", "reports", "bench", "--profile", "bernoulli")
    run_dir = Path(bench.stdout.split("run folder: ")[1].split()[0])
    return copy, run_dir, pd.read_csv(run_dir / "results.csv"), bench.stdout


def test_only_files_were_added():
    added = {str(p.relative_to(TOY)) for p in TOY.rglob("*.py")}
    assert added == {"impls/bernoulli/__init__.py", "impls/bernoulli/interface.py", "impls/bernoulli/numpy.py",
                     "impls/bernoulli/torch.py", "eval/models/bernoulli.py"}  # fmt: skip
    assert "bernoulli" not in impls.models()  # only in the copy


def test_the_toy_model_is_trained_scored_and_timed_in_both_frameworks(third):
    _, _, frame, _ = third
    mine = frame[frame.impl.isin(["numpy", "torch"])]
    assert set(mine.model) == {"bernoulli"} and set(mine.impl) == {"numpy", "torch"}
    assert (mine.status == "ok").all(), mine[mine.status != "ok"]
    for column in ("dataset_hash", "init_hash", "order_hash"):
        assert mine.groupby("seed")[column].nunique().max() == 1
    final = mine[mine.epoch.isna()]
    pl = final[final.metric == "pl_per_unit"].pivot(index="seed", columns="impl", values="value")
    assert ((pl.numpy - pl.torch).abs() < 1e-9).all() and (pl.numpy > -0.693).all()  # float64, the same sums
    assert {"train_windows_per_s", "note_density", "music_structure_js", "exact_nll_per_frame"} <= set(final.metric)
    skipped = frame[frame.impl == "jax"]  # a framework without a file for the model: one skipped row, with why
    assert (skipped.status == "skipped").all() and "no bernoulli" in skipped.reason.iloc[0]
    curve = mine[(mine.metric == "valid_pl_per_unit") & (mine.impl == "numpy") & (mine.seed == 0)]
    assert curve.epoch.tolist() == [1, 2, 3] and curve.value.is_monotonic_increasing


def test_the_report_and_the_verdict_fit_the_toy_model(third):
    _, run_dir, _, _ = third
    report = (run_dir / "report.md").read_text()
    assert "independent bits" in report and "PyTorch" in report
    verdict = report.split("## Verdict")[1].split("\n## ")[0]
    assert "PyTorch" in verdict
    assert (run_dir / "report.html").stat().st_size > 0


def test_the_gate_and_the_history_take_the_toy_model(third, tmp_path):
    copy, run_dir, _, stdout = third
    baseline = tmp_path / "baseline.json"
    run(copy, "-m", "eval", "quality", "--results", str(run_dir), "--baseline", str(baseline), "--update-baseline")
    assert {"numpy", "torch"} <= set(json.loads(baseline.read_text())["metrics"])
    gate = run(copy, "-m", "eval", "quality", "--results", str(run_dir), "--baseline", str(baseline))
    assert "torch" in gate.stdout
    recorded = Path(stdout.split("recorded in the history: ")[1].split()[0])
    assert set(pd.read_parquet(recorded).model) == {"bernoulli"}
