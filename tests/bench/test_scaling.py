"""The scaling grid: its roofline arithmetic per shape and where it says a GPU starts to win."""

from __future__ import annotations

import pandas as pd
import pytest

from eval.timing.scaling import crossover, measure_grid


def shapes_frame(rows: list[tuple[int, int, str, float]]) -> pd.DataFrame:
    return pd.DataFrame(rows, columns=["n_hidden", "batch", "device", "windows_per_s"]).assign(impl="x")


def test_crossover_is_the_smallest_shape_where_the_gpu_beats_the_cpu():
    frame = shapes_frame(
        [(50, 100, "cpu", 30_000.0), (50, 100, "cuda", 20_000.0),
         (50, 1000, "cpu", 30_000.0), (50, 1000, "cuda", 900_000.0),
         (1000, 1000, "cpu", 5_000.0), (1000, 1000, "cuda", 600_000.0)]
    )  # fmt: skip
    assert crossover(frame) == "a GPU wins from 50 hidden units x batch 1000 (900,000 windows/s)"


def test_crossover_says_when_the_cpu_won_everywhere_or_no_gpu_ran():
    slower = shapes_frame([(50, 100, "cpu", 30_000.0), (50, 100, "cuda", 20_000.0)])
    assert crossover(slower) == "the CPU was faster at every shape measured"
    assert crossover(slower[slower.device == "cpu"]).startswith("no GPU measured")


@pytest.mark.bench
def test_each_shape_is_measured_against_its_own_roofline():
    frame = measure_grid(["numpy"], "cpu", [(20, 50), (40, 50)], timeout_s=120)
    assert list(zip(frame.n_hidden, frame.batch)) == [(20, 50), (40, 50)]
    for _, row in frame.iterrows():  # one implementation: it is its own roofline
        assert row.roofline_windows_per_s == pytest.approx(row.batch / row.five_products_ms * 1e3)
        assert row.ratio_to_roofline == pytest.approx(row.windows_per_s / row.roofline_windows_per_s)
    assert frame.work_mflop_per_window.tolist() == pytest.approx([5 * 2 * 2340 * 20 / 1e6, 5 * 2 * 2340 * 40 / 1e6])
