"""The trend gate's statistics on synthetic series: quiet on noise at its stated rates, one series and many, and
naming the first commit of a change of the verdict's margin (a step, a drift, either direction)."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from eval.history import trend
from eval.scoring import calibrations, catalogue

ROOT = Path(__file__).resolve().parents[2]
MARGINS = json.loads((ROOT / "reports" / "baselines" / "margins" / "rbm-bach.json").read_text())["scores"]
SIGMA = MARGINS["pl_per_unit"]["noise_sd"]  # the measured spread of one seed
BACH = {"model": "rbm", "dataset": "bach"}  # the calibration MARGINS is: the series' own model and data
MARGIN = MARGINS["pl_per_unit"]["margin"]  # the verdict's margin (about 2.8 sigma)
SEEDS = 3
COMMITS = [f"{i:02d}" + "c" * 38 for i in range(50)]  # 40 characters, like a sha


def synthetic_means(shift, rng: np.random.Generator, n: int = 50) -> np.ndarray:
    """Per-commit means of ``SEEDS`` values from N(shift(c), SIGMA) around a pl_per_unit-like level."""
    return np.array([rng.normal(-0.15 + shift(c), SIGMA, SEEDS).mean() for c in range(n)])


@pytest.mark.parametrize("floor", [trend.FLOOR, 0.0])
def test_pure_noise_raises_alarms_at_no_more_than_the_stated_rate(floor):
    rng = np.random.default_rng(7)
    histories = 1000
    alarms = sum(
        trend.change(COMMITS, synthetic_means(lambda c: 0.0, rng), "pl_per_unit", margin=MARGIN, floor=floor).status
        != "steady"
        for _ in range(histories)
    )
    stated = trend.ALPHA
    assert alarms / histories <= stated + 3 * np.sqrt(stated * (1 - stated) / histories)


def test_the_gate_over_many_series_keeps_its_family_wise_rate():
    rng = np.random.default_rng(8)
    histories, metrics = 200, 10
    alarms = 0
    for _ in range(histories):
        noise = {"impl": "numpy", "commit": COMMITS}
        frames = {f"m{i}": pd.DataFrame(noise | {"mean": synthetic_means(lambda c: 0.0, rng)}) for i in range(metrics)}
        table = trend.gate(frames, margin=0.0, better="higher")  # no floor: the level alone keeps alarms rare
        assert len(table) == metrics and (table.alpha == trend.FAMILY_ALPHA / metrics).all()
        alarms += bool((table.status != "steady").any())
    assert alarms / histories <= trend.FAMILY_ALPHA + 3 * np.sqrt(0.05 * 0.95 / histories)


def test_a_step_of_the_margin_is_flagged_from_its_second_commit_and_named():
    step = lambda c: -MARGIN * (c >= 30)  # pl_per_unit: higher is better, so a fall is a regression
    means = synthetic_means(step, np.random.default_rng(3))
    for newest in range(6, 31):  # one commit alone is no change yet: it may be a loaded machine
        assert trend.change(COMMITS[: newest + 1], means[: newest + 1], "pl_per_unit", **BACH).status == "steady"
    for newest in range(31, 50):
        verdict = trend.change(COMMITS[: newest + 1], means[: newest + 1], "pl_per_unit", **BACH)
        assert (verdict.status, verdict.first_commit, verdict.failed) == ("regression", COMMITS[30], True), newest
        assert verdict.shift == pytest.approx(-MARGIN, abs=0.5 * MARGIN)
    rng = np.random.default_rng(4)  # how often, over many histories (the docstring's figures)
    second, later = [], []
    for _ in range(200):
        means = synthetic_means(step, rng)
        at = [trend.change(COMMITS[: n + 1], means[: n + 1], "pl_per_unit", margin=MARGIN) for n in (31, 33, 40, 49)]
        second.append((at[0].status, at[0].first_commit))
        later += [(v.status, v.first_commit) for v in at[1:]]
    flagged = [name for status, name in second if status == "regression"]
    assert len(flagged) / len(second) >= 0.93  # about 98 %
    assert flagged.count(COMMITS[30]) / len(flagged) >= 0.9
    assert later.count(("regression", COMMITS[30])) / len(later) >= 0.95  # about 98 %; else a neighbour is named


def test_a_slow_drift_of_the_margin_over_20_commits_is_flagged_by_its_end():
    drift = lambda c: -MARGIN * min(max(c - 29, 0), 20) / 20  # 0 up to commit 29, the whole margin at commit 49
    rng = np.random.default_rng(5)
    verdicts = [trend.change(COMMITS, synthetic_means(drift, rng), "pl_per_unit", margin=MARGIN) for _ in range(100)]
    assert all(v.status == "regression" for v in verdicts)
    assert all(COMMITS.index(v.first_commit) in range(30, 50) for v in verdicts)  # inside the drift


@pytest.mark.parametrize("direction", [+1, -1])
def test_a_directionless_score_is_flagged_either_way_and_a_good_move_is_an_improvement(direction):
    margin = calibrations.margins(None, "rbm", "bach")["note_density"]
    assert catalogue.describe("note_density")[1] == "none"
    rng = np.random.default_rng(6)
    sd = margin / 2.8
    means = np.array([rng.normal(0.1 + direction * margin * (c >= 45), sd, SEEDS).mean() for c in range(50)])
    moved = trend.change(COMMITS, means, "note_density", **BACH)
    assert (moved.status, moved.first_commit, moved.failed) == ("change", COMMITS[45], True)
    better = synthetic_means(lambda c: direction * MARGIN * (c >= 45), rng)  # pl_per_unit: higher is better
    verdict = trend.change(COMMITS, better, "pl_per_unit", **BACH)
    expected = "improvement" if direction > 0 else "regression"
    assert (verdict.status, verdict.first_commit, verdict.failed) == (expected, COMMITS[45], direction < 0)


def test_a_detectable_change_smaller_than_half_the_margin_is_not_flagged():
    means = np.r_[np.zeros(40), np.full(10, 0.3 * MARGIN)] + np.random.default_rng(9).normal(0, 1e-6 * MARGIN, 50)
    small = trend.change(COMMITS, means, "pl_per_unit", **BACH)
    assert small.p_value < 1e-3 and small.status == "steady"  # real, but it does not matter
    assert trend.change(COMMITS, means, "pl_per_unit", margin=0.0).status == "improvement"
    assert trend.change(COMMITS[:4], means[:4], "pl_per_unit", **BACH).status == "too short"


# ------------------------------------------------------------------------------------------------ the store
