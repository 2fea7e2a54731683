"""``[run] modes`` in the bench: the mode a task ran in is in every row, a mode that does not change the arithmetic
leaves every score row as it was, and a mode an implementation lacks is a failed row, not a crash."""

from __future__ import annotations

import subprocess
import sys

import pandas as pd
import pytest

from tests.conftest import ROOT, WINDOW_PROFILE, finish_run

pytestmark = pytest.mark.bench

TIMED = {"phase": "timing"}  # wall times differ between any two runs


def numpy_run(folder, cache_dir, mode: str):
    profile = {**WINDOW_PROFILE, "run": {**WINDOW_PROFILE["run"], "impls": ["numpy"], "modes": {"numpy": mode}}}
    return finish_run(folder, f"numpy-{mode}", profile, cache_dir)


def scores(frame: pd.DataFrame) -> pd.Series:
    rows = frame[(frame.phase != "timing") & ~frame.metric.isin({"epoch_seconds", "peak_rss_mb"})]
    return rows.set_index(["phase", "metric", "epoch"]).value.sort_index()


def test_buffers_change_no_score_and_every_row_names_its_mode(tmp_path, cache_dir):
    plain = numpy_run(tmp_path / "plain", cache_dir, "plain")
    buffers = numpy_run(tmp_path / "buffers", cache_dir, "buffers")
    assert set(plain.frame["mode"]) == {"plain"} and set(buffers.frame["mode"]) == {"buffers"}
    pd.testing.assert_series_equal(scores(plain.frame), scores(buffers.frame))
    assert len(scores(plain.frame)) > 50


def test_a_mode_the_implementation_lacks_is_a_failed_row_with_its_modes(tmp_path, cache_dir):
    profile = {**WINDOW_PROFILE, "run": {**WINDOW_PROFILE["run"], "impls": ["numpy"], "modes": {"numpy": "fast"}}}
    run = finish_run(tmp_path, "wrong-mode", profile, cache_dir, exit_codes=(1,))
    numpy = run.frame[run.frame.impl == "numpy"]  # (scikit-learn's reference speed is no task of a framework)
    assert list(numpy.status) == ["failed", "failed"]  # the training task and the timing task: nothing trained
    for reason in numpy.reason:
        assert reason == "numpy has no mode 'fast'; its modes: plain, buffers: fix [run] modes"


def test_modes_of_an_unknown_framework_are_refused_before_anything_runs(tmp_path):
    command = [sys.executable, "-m", "eval", "bench", "--profile", "quick", "--modes", "nosuch=fast"]
    done = subprocess.run(command, cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert done.returncode == 2 and "modes names 'nosuch'" in done.stderr
    assert len(done.stderr.strip().splitlines()) == 1
