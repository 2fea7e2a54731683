"""The report's "where the time goes" (`reports.where_time_goes`): the slowest profiled framework's operators and
its update split into time in operators and outside them, beside the roofline's update."""

from __future__ import annotations

import pandas as pd
import pytest

from reports.where_time_goes import SHOWN, section


def _frame(speeds: dict[str, float], roofline: float) -> pd.DataFrame:
    rows = []
    for impl, speed in speeds.items():
        base = {"impl": impl, "phase": "timing", "status": "ok"}
        rows += [base | {"metric": "train_windows_per_s", "value": speed},
                 base | {"metric": "ratio_to_roofline", "value": speed / roofline}]  # fmt: skip
    return pd.DataFrame(rows)


def _profile(impl: str, wall: float, operators: int = 3) -> dict:
    ops = [{"operator": f"op{i}", "calls": 2.0, "self_ms": wall * 0.8 / operators} for i in range(operators)]
    return {"impl": impl, "mode": "eager", "updates": 5, "wall_ms": wall, "in_operators_ms": wall * 0.8,
            "outside_ms": wall * 0.2, "operators": ops, "units_per_update": 100}  # fmt: skip


def test_the_slowest_profiled_framework_is_explained_and_the_others_summarised():
    frame = _frame({"numpy": 40_000, "torch": 30_000, "tf": 10_000, "jax": 50_000}, roofline=100_000)
    profiles = {"timing-numpy": {"impl": "numpy", "error": "numpy has no operator profiler"},
                "timing-tf": _profile("tf", 12.0, operators=SHOWN + 4), "timing-torch": _profile("torch", 4.0),
                "timing-jax": _profile("jax", 2.5)}  # fmt: skip
    title, paragraphs, table = section(frame, profiles)
    assert title == "Where the time goes: one update of TensorFlow"
    assert "(unprofiled, in the timing phase: 10.00 ms)" in paragraphs[0]  # unprofiled: 100 windows at 10,000 windows/s
    assert "PyTorch (eager) 4.00 ms an update, 80% of it in operators" in paragraphs[1] and "JAX" in paragraphs[1]
    assert list(table.index[:SHOWN]) == [f"op{i}" for i in range(SHOWN)]
    assert table.loc["4 other operators", "ms per update"] == f"{4 * 12.0 * 0.8 / (SHOWN + 4):.3g}"
    assert table.loc["outside every operator (dispatch, executor, Python, profiler)", "share of the update"] == "20%"
    assert table.loc["the roofline's update (its dense products alone)", "ms per update"] == "1.00"  # 100 / 100,000 s
    assert table.loc["the update, unprofiled (the timing phase)", "ms per update"] == "10.00"  # 100 / 10,000 s


def test_a_slowest_framework_without_a_profiler_is_named_and_the_next_one_shown():
    frame = _frame({"numpy": 5_000, "torch": 30_000}, roofline=100_000)
    profiles = {"a": {"impl": "numpy", "error": "numpy has no operator profiler"}, "b": _profile("torch", 4.0)}
    title, paragraphs, _ = section(frame, profiles)
    assert title.endswith("PyTorch")
    assert "The slowest, NumPy (reference), is not shown: numpy has no operator profiler." in paragraphs[0]
    assert paragraphs[0].startswith("One update of PyTorch (eager mode), the slowest profiled framework of the run")


@pytest.mark.parametrize("profiles", [{}, {"a": {"impl": "numpy", "error": "numpy has no operator profiler"}}])
def test_no_section_without_a_usable_profile(profiles):
    assert section(_frame({"numpy": 5_000}, roofline=10_000), profiles) is None
