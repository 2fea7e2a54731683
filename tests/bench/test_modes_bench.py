"""``[run] modes`` in the bench: the mode a task ran in is in every row, a mode that does not change the arithmetic
leaves every score row as it was, and a mode an implementation lacks is a failed row, not a crash."""

from __future__ import annotations

import re
import subprocess
import sys

import pandas as pd
import pytest

from eval.timing.ablation import TOLERANCE
from reports.render import render
from tests.conftest import ROOT, WINDOW_PROFILE, finish_run

pytestmark = pytest.mark.bench

TIMED = {"phase": "timing"}  # wall times differ between any two runs


def numpy_run(folder, cache_dir, mode: str, ablation: bool = False):
    run = {**WINDOW_PROFILE["run"], "impls": ["numpy"], "modes": {"numpy": mode}, "ablation": ablation,
           "ablation_rounds": 2}  # fmt: skip
    return finish_run(folder, f"numpy-{mode}", {**WINDOW_PROFILE, "run": run}, cache_dir)


def scores(frame: pd.DataFrame) -> pd.Series:
    rows = frame[~frame.phase.isin(["timing", "ablation"]) & ~frame.metric.isin({"epoch_seconds", "peak_rss_mb"})]
    return rows.set_index(["phase", "metric", "epoch"]).value.sort_index()


def test_buffers_change_no_score_and_every_row_names_its_mode(tmp_path, cache_dir):
    plain = numpy_run(tmp_path / "plain", cache_dir, "plain")
    buffers = numpy_run(tmp_path / "buffers", cache_dir, "buffers", ablation=True)
    numpy = buffers.frame[buffers.frame.impl == "numpy"]
    assert set(plain.frame[plain.frame.impl == "numpy"]["mode"]) == {"plain"}
    assert set(numpy[numpy.phase != "ablation"]["mode"]) == {"buffers"}
    pd.testing.assert_series_equal(scores(plain.frame), scores(buffers.frame))
    assert len(scores(plain.frame)) > 50
    # the ablation: both modes timed, each checked (bit for bit: 0), each with its ratio to the run's roofline
    ablation = numpy[numpy.phase == "ablation"].set_index(["mode", "metric"]).value
    for mode in ("plain", "buffers", "fused"):  # the first two bit for bit, `fused` within float32 rounding
        assert ablation[(mode, "mode_max_difference")] == 0.0 or mode == "fused"
        assert ablation[(mode, "mode_max_difference")] < TOLERANCE
        assert ablation[(mode, "train_windows_per_s")] > 0 and 0 < ablation[(mode, "ratio_to_roofline")] < 1.5
        assert ablation[(mode, "mode_speed_spread")] >= 0  # two rounds: the median of two, and their spread
    render(buffers.path)
    report = (buffers.path / "report.md").read_text()
    section = report.split("Execution modes (the ablation)")[1]
    assert re.search(r"\| NumPy \(reference\) \| plain +\|", section)
    assert re.search(r"\| NumPy \(reference\) \| buffers +\|", section)
    # all three equivalent, one of them the fastest; buffers used by the run
    assert len(re.findall(r"\byes\b", section.split("## ")[0])) == 3 + 2


def test_a_mode_the_implementation_lacks_is_a_failed_row_with_its_modes(tmp_path, cache_dir):
    profile = {**WINDOW_PROFILE, "run": {**WINDOW_PROFILE["run"], "impls": ["numpy"], "modes": {"numpy": "fast"}}}
    run = finish_run(tmp_path, "wrong-mode", profile, cache_dir, exit_codes=(1,))
    numpy = run.frame[run.frame.impl == "numpy"]  # (scikit-learn's reference speed is no task of a framework)
    assert list(numpy.status) == ["failed", "failed"]  # the training task and the timing task: nothing trained
    for reason in numpy.reason:
        assert reason == "numpy has no mode 'fast'; its modes: fused, plain, buffers: fix [run] modes"


def test_modes_of_an_unknown_framework_are_refused_before_anything_runs(tmp_path):
    command = [sys.executable, "-m", "eval", "bench", "--profile", "quick", "--modes", "nosuch=fast"]
    done = subprocess.run(command, cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert done.returncode == 2 and "modes names 'nosuch'" in done.stderr
    assert len(done.stderr.strip().splitlines()) == 1


def timing_task(tmp_path, monkeypatch, **run):
    """A window RBM's prepared timing task with ``[run] ablation`` (NumPy), its dataset, init and a short order."""
    import numpy as np

    import impls
    from eval.bench.runfolder import RunFolder
    from eval.bench.tasks import prepare
    from eval.config import load_profile
    from tests.conftest import profile_toml

    monkeypatch.setenv("RBM_BENCH_CACHE", str(tmp_path / "cache"))
    path = tmp_path / "ablation.toml"
    path.write_text(profile_toml({**WINDOW_PROFILE, "run": {**WINDOW_PROFILE["run"], "impls": ["numpy"],
                                                            "ablation": True, "timing_epochs": 2, **run}}))  # fmt: skip
    folder = RunFolder.create("ablation", parent=tmp_path)
    dataset, _, (timing,) = prepare(load_profile(str(path)), folder, log=False)
    assert timing.ablation
    with np.load(folder.path / timing.inputs["init"].path) as data:
        init = impls.RBMParams(*(data[name] for name in impls.RBMParams.names()))
    order = [[np.arange(i * 16, (i + 1) * 16) for i in range(3)] for _ in range(2)]
    return timing, dataset, init, order


def test_a_mode_that_cannot_run_here_is_a_skipped_ablation_row_and_the_others_are_timed(tmp_path, monkeypatch):
    """``torch.compile`` without a C compiler, say: the ablation goes on, and the reason is in the row."""
    import impls
    from eval.contract.rows import Recorder
    from eval.models import plugin

    timing, dataset, init, order = timing_task(tmp_path, monkeypatch, ablation_rounds=1)
    numpy = impls.load("numpy")

    class NoBuffers(numpy):
        def __init__(self, *args, **kwargs):
            super().__init__(*args, **kwargs)
            if self.mode == "buffers":
                raise RuntimeError("no room for buffers\nsecond line")

    record = Recorder(timing)
    record.context["mode"] = "plain"
    plugin("rbm").ablate(NoBuffers, timing, dataset, order, init, record)
    rows = {(row["mode"], row["metric"]): row for row in record.rows}
    assert rows[("plain", "train_windows_per_s")]["status"] == "ok"
    assert rows[("plain", "mode_max_difference")]["value"] == 0
    skipped = rows[("buffers", "mode_max_difference")]
    assert skipped["status"] == "skipped" and skipped["reason"] == "mode buffers: RuntimeError: no room for buffers"
    assert {row["phase"] for row in record.rows} == {"ablation"} and record.context["mode"] == "plain"


def test_the_ablation_keeps_each_modes_median_over_interleaved_rounds_and_its_spread(tmp_path, monkeypatch):
    """Three rounds, each timing every mode once in turn; a slow minute in one round moves no median."""
    import impls
    from eval.contract.rows import Recorder
    from eval.models import plugin

    timing, dataset, init, order = timing_task(tmp_path, monkeypatch)  # the default: 3 rounds
    assert timing.ablation_rounds == 3
    # plain's second round: a slow minute
    speeds = {"plain": [100.0, 20.0, 110.0], "buffers": [90.0, 95.0, 80.0], "fused": [120.0, 121.0, 119.0]}
    calls = []

    def fake_timing(model, task, dataset, order, record):
        calls.append(model.mode)
        record.add("timing", "train_windows_per_s", speeds[model.mode].pop(0))
        record.add("timing", "compile_s", 5.0 if calls.count(model.mode) == 1 else 0.0)

    window = plugin("rbm")
    monkeypatch.setattr(window, "time_training", fake_timing)
    record = Recorder(timing)
    record.context["mode"] = "plain"
    window.ablate(impls.load("numpy"), timing, dataset, order, init, record)
    assert calls == ["fused", "plain", "buffers"] * 3  # interleaved: every mode once a round, in `MODES` order
    rows = {(row["mode"], row["metric"]): row["value"] for row in record.rows}
    assert rows[("plain", "train_windows_per_s")] == 100.0 and rows[("buffers", "train_windows_per_s")] == 90.0
    assert rows[("plain", "mode_speed_spread")] == pytest.approx(0.9) and rows[("plain", "compile_s")] == 5.0
    assert rows[("buffers", "mode_speed_spread")] == pytest.approx(15 / 90)
    assert rows[("plain", "mode_max_difference")] == 0  # the check runs once per mode, after the rounds


def test_the_rnn_rbm_ablation_times_every_mode_and_a_same_stream_mode_changes_no_score(tmp_path, cache_dir, rnn_run):
    """JAX's one compiled call per update draws with the same keys as its compiled epoch: the RNN-RBM's scores are
    those of the shared run's JAX task (its default mode), and the ablation checks and times every mode."""
    if "jax" not in rnn_run.impls:
        pytest.skip("skipped: not installed (jax)")
    from eval.timing.ablation import TOLERANCE
    from tests.conftest import RNN_PROFILE

    run = {**RNN_PROFILE["run"], "impls": ["jax"], "modes": {"jax": "update"}, "ablation": True, "ablation_rounds": 1}
    update = finish_run(tmp_path, "rnn-update", {**RNN_PROFILE, "run": run}, cache_dir)
    jax = update.frame[update.frame.impl == "jax"]
    assert set(jax[jax.phase != "ablation"]["mode"]) == {"update"}
    default = rnn_run.frame[rnn_run.frame.impl == "jax"]
    assert set(default["mode"]) == {"scan"}
    pd.testing.assert_series_equal(scores(jax), scores(default), rtol=1e-5, atol=1e-6)
    ablation = jax[jax.phase == "ablation"].set_index(["mode", "metric"]).value
    for mode in ("scan", "update", "autodiff"):
        assert ablation[(mode, "mode_max_difference")] <= TOLERANCE
        assert ablation[(mode, "train_frames_per_s")] > 0 and ablation[(mode, "ratio_to_roofline")] > 0
    render(update.path)
    section = (update.path / "report.md").read_text().split("Execution modes (the ablation)")[1].split("\n## ")[0]
    assert re.search(r"\| JAX +\| scan +\|", section) and re.search(r"\| JAX +\| update +\|", section)
    speeds = ablation.xs("train_frames_per_s", level="metric")
    assert set(speeds.index) == {"scan", "update", "autodiff"}  # every mode, jax.grad's too
    fastest = speeds.idxmax()  # at this tiny shape any of them can be: the table marks whichever was
    assert re.search(rf"\| JAX +\| {fastest} +\|.*\| yes +\| yes +\| +(yes)? *\|$", section, re.MULTILINE)


def test_the_rnn_rbm_numpy_buffers_change_no_score_and_only_the_cost_within_float32(tmp_path, cache_dir, rnn_run):
    """The shared run's NumPy task trains in `buffers` (the RNN-RBM's default: the faster); the specification
    (`plain`) gives every score row bit for bit, and the CD cost curve within float32 rounding (the buffers'
    vectorised softplus)."""
    from tests.conftest import RNN_PROFILE

    run = {**RNN_PROFILE["run"], "impls": ["numpy"], "modes": {"numpy": "plain"}}
    plain = finish_run(tmp_path, "rnn-plain", {**RNN_PROFILE, "run": run}, cache_dir)
    ours, default = plain.frame[plain.frame.impl == "numpy"], rnn_run.frame[rnn_run.frame.impl == "numpy"]
    assert set(ours["mode"]) == {"plain"} and set(default["mode"]) == {"buffers"}
    got, want = scores(ours), scores(default)
    cost = got.index.get_level_values("metric") == "cd_cost"
    assert cost.sum() == RNN_PROFILE["run"]["epochs"] and len(got) > 50
    pd.testing.assert_series_equal(got[~cost], want[~cost])
    pd.testing.assert_series_equal(got[cost], want[cost], rtol=1e-6, atol=0)
