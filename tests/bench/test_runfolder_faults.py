"""Wrong results a run folder must refuse: an edited task file blessed by --resume, two writers on one run, and a
failed resume that un-finishes a finished run."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest

from eval.bench.harness import run_bench
from eval.bench.runfolder import IncompleteRun, RunFolder

ROOT = Path(__file__).resolve().parents[2]


pytestmark = pytest.mark.bench  # every test works on a copy of the session's finished run (tests/conftest.py)


@pytest.fixture
def run(window_run, copy_run) -> Path:
    return copy_run(window_run, "run")


def resume_cli(run: Path) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "eval", "bench", "--resume", str(run)], cwd=ROOT,
                          capture_output=True, text=True, timeout=600)  # fmt: skip


def finished_state(run: Path) -> dict[str, bytes]:
    return {name: (run / name).read_bytes() for name in ("complete.json", "results.csv", "results.parquet")}


def test_an_edited_task_score_makes_resume_refuse_with_one_line_and_rewrite_nothing(run):
    task = run / "runs" / "numpy-s0.json"
    stored = json.loads(task.read_text())
    row = next(r for r in stored["rows"] if r["metric"] == "pl_per_unit" and r["status"] == "ok")
    row["value"] += 1.0  # a better score, by hand
    task.write_text(json.dumps(stored, indent=1))
    before = finished_state(run)
    result = resume_cli(run)
    lines = result.stderr.strip().splitlines()
    assert result.returncode == 2 and len(lines) == 1 and "Traceback" not in result.stderr, result.stderr
    assert str(task) in lines[0] and "delete it to recompute" in lines[0] and "start a new run" in lines[0]
    assert finished_state(run) == before, "the refused resume rewrote the results"
    RunFolder(run).results()  # still a finished run
    task.unlink()  # what the line says to do: the task is recomputed, the edited score is gone
    frame = run_bench(None, RunFolder(run), log=False).frame
    assert row["value"] not in set(frame[frame.metric == "pl_per_unit"].value)


@pytest.mark.parametrize("name", ["runs/numpy-s0-params.npz", "samples/numpy-s0.npy", "runs/sklearn.json"])
def test_every_stored_file_a_result_comes_from_is_checked_on_resume(run, name):
    path = run / name
    assert path.is_file(), f"the quick run no longer writes {name}"
    if path.suffix == ".json":  # still valid JSON: a changed number, not a corrupt file
        stored = json.loads(path.read_text())
        stored["rows"][0]["value"] = 2 * (stored["rows"][0]["value"] or 1.0)
        path.write_text(json.dumps(stored, indent=1))
    else:
        data = bytearray(path.read_bytes())
        data[-2] ^= 1
        path.write_bytes(bytes(data))
    before = finished_state(run)
    with pytest.raises(IncompleteRun, match=f"{path}: changed since"):
        run_bench(None, RunFolder(run), log=False)
    assert finished_state(run) == before


def test_a_second_writer_is_refused_while_the_first_holds_the_run(run):
    before = finished_state(run)
    with RunFolder(run).lock():
        result = resume_cli(run)
    lines = result.stderr.strip().splitlines()
    assert result.returncode == 2 and len(lines) == 1, result.stderr
    expected = f"{run}: another process is writing this run (pid {os.getpid()}); wait for it or resume later"
    assert expected in lines[0]
    assert finished_state(run) == before


def test_the_lock_dies_with_its_process(run):
    holder = subprocess.Popen(
        [sys.executable, "-c", f"from eval.bench.runfolder import RunFolder\nwith RunFolder({str(run)!r}).lock():\n"
         "    print('held', flush=True)\n    import time; time.sleep(600)"],
        cwd=ROOT, stdout=subprocess.PIPE, text=True,
    )  # fmt: skip
    try:
        assert holder.stdout.readline().strip() == "held"
        with pytest.raises(IncompleteRun, match=f"pid {holder.pid}"):
            run_bench(None, RunFolder(run), log=False)
    finally:
        holder.send_signal(signal.SIGKILL)
        holder.wait(timeout=60)
    with RunFolder(run).lock():  # a killed writer leaves no lock behind
        pass


def test_a_failed_resume_leaves_a_finished_run_finished(run):
    frame = RunFolder(run).results()
    dataset = run / "inputs" / "dataset" / "dataset.npz"
    dataset.unlink()
    dataset.mkdir()  # unreadable input: the resume fails in prepare
    before = finished_state(run)
    with pytest.raises(OSError):
        run_bench(None, RunFolder(run), log=False)
    assert finished_state(run) == before
    assert RunFolder(run).results().equals(frame)


def test_a_contradicting_option_leaves_a_finished_run_finished(run):
    before = finished_state(run)
    result = subprocess.run([sys.executable, "-m", "eval", "bench", "--resume", str(run), "--epochs", "99"],
                            cwd=ROOT, capture_output=True, text=True, timeout=600)  # fmt: skip
    assert result.returncode == 2 and "contradicts the run's epochs 3" in result.stderr
    assert finished_state(run) == before
    RunFolder(run).results()
