"""Each framework's timed update under its own profiler, through the whole bench: every timing task leaves its
profile in the run folder, and the report explains the slowest profiled framework's gap to the roofline."""

from __future__ import annotations

import pytest

from eval.bench.runfolder import RunFolder
from reports.render import publish, render
from reports.tables import display_name

pytestmark = pytest.mark.bench  # on the session's finished runs (tests/conftest.py)


@pytest.mark.parametrize("which", ["window_run", "rnn_run"])
def test_each_timed_framework_is_profiled_and_the_report_explains_the_slowest(which, request, copy_run, tmp_path):
    run = request.getfixturevalue(which)
    frame = run.frame
    speeds = frame[(frame.phase == "timing") & frame.metric.isin(["train_windows_per_s", "train_frames_per_s"])]
    profiles = {p["impl"]: p for p in RunFolder.open(run.path).read_profiles().values()}
    assert set(profiles) == set(speeds.impl) == set(run.impls)
    for impl, profile in profiles.items():
        if impl == "numpy":
            assert profile["error"] == "numpy has no operator profiler"
            continue
        assert profile["operators"] and 0 < profile["in_operators_ms"] <= profile["wall_ms"]
    profiled = speeds[speeds.impl.isin([i for i, p in profiles.items() if "error" not in p])]
    if profiled.empty:
        pytest.skip("skipped: only NumPy is installed, and it has no operator profiler")
    slowest = profiled.set_index("impl").value.idxmin()
    report = copy_run(run, which)
    render(report)
    text = (report / "report.md").read_text()
    assert f"## Where the time goes: one update of {display_name(slowest)}" in text
    assert "outside every operator" in text and "the roofline's update" in text
    published = publish(report, tmp_path / "published").parent  # the committed examples are published copies
    assert (published / "profiles.json").read_bytes() == (report / "profiles.json").read_bytes()
