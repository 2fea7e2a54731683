"""The trend gate on noise that is not normal: heavy tails (Student t with 3 degrees of freedom, as a loaded machine's
throughput has) and gross outliers raise no more false alarms than the gate's level, a step of the verdict's margin
is still flagged by its second commit, and one commit far out, alone, is not a change."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from eval.history import changepoint, store, trend

ROOT = Path(__file__).resolve().parents[2]
MARGINS = json.loads((ROOT / "reports" / "baselines" / "margins" / "rbm-bach.json").read_text())["scores"]
MARGIN = MARGINS["pl_per_unit"]["margin"]  # about 2.8 seed standard deviations
SEEDS = 3
SPREAD = MARGINS["pl_per_unit"]["noise_sd"] / np.sqrt(SEEDS)  # a commit mean's standard deviation
BACH = {"model": "rbm", "dataset": "bach"}  # the calibration MARGINS is
SERIES = 100  # the gate over this many series judges each at FAMILY_ALPHA / SERIES
COMMITS = [f"{i:02d}" + "d" * 38 for i in range(50)]


def commit_means(noise: str, rng: np.random.Generator, histories: int, commits: int = 50) -> np.ndarray:
    """Change-free histories (rows) of commit means with the spread of three seeds' mean: ``normal``; ``t3``, Student
    t with 3 degrees of freedom scaled to the same standard deviation; ``outliers``, normal with 2 % gross outliers
    (ten spreads out, either way)."""
    shape = (histories, commits)
    if noise == "t3":
        return -0.15 + rng.standard_t(3, shape) / np.sqrt(3) * SPREAD
    means = -0.15 + rng.normal(0, SPREAD, shape)
    if noise == "outliers":
        means += (rng.random(shape) < 0.02) * rng.choice([-10, 10], shape) * SPREAD
    return means


def within_level(alarms: np.ndarray, level: float) -> bool:
    """The share of alarms is at most ``level`` plus three binomial standard errors."""
    return alarms.mean() <= level + 3 * np.sqrt(level * (1 - level) / len(alarms))


# ------------------------------------------------------------------------------------------------ false alarms
@pytest.mark.parametrize("margin", [MARGIN, 0.0])  # with the floor of half the margin, and by the level alone
@pytest.mark.parametrize("noise", ["normal", "t3", "outliers"])
def test_the_gate_keeps_its_family_wise_level_on_heavy_tails_and_outliers(noise, margin):
    """The gate of 100 series at 5 % judges each at 0.05 %: with t noise it once failed two histories in three."""
    histories = 200
    means = commit_means(noise, np.random.default_rng(21), histories * SERIES)
    judged = trend.judge(means, margin, alpha=trend.FAMILY_ALPHA / SERIES)
    assert within_level(judged.flagged.reshape(histories, SERIES).any(axis=1), trend.FAMILY_ALPHA)


def test_the_gate_of_100_series_of_t_noise_stays_quiet():
    """`gate` itself, on 100 series of its own model and data (the calibrated margin): about 2 % of such histories
    alarm (the old gate: 68 %)."""
    histories, rng = 15, np.random.default_rng(27)
    alarms = []
    for _ in range(histories):
        means = commit_means("t3", rng, SERIES).ravel()
        frame = pd.DataFrame({"impl": np.repeat([f"i{k:03d}" for k in range(SERIES)], 50), "commit": COMMITS * SERIES,
                              "mean": means, **BACH})  # fmt: skip
        table = trend.gate({"pl_per_unit": frame})
        assert len(table) == SERIES and (table.alpha == trend.FAMILY_ALPHA / SERIES).all()
        alarms.append(bool((table.status != "steady").any()))
    assert within_level(np.array(alarms), trend.FAMILY_ALPHA)


@pytest.mark.parametrize(("commits", "level"), [(12, 0.01), (50, 0.001)])
def test_the_persistence_test_is_exact_for_t_noise_at_any_history_length(commits, level):
    """Its p-value comes from the simulated commits before and t's exact tail: for t noise, p < level in a share
    ``level`` of histories (no more), for a short history as for a long one."""
    draws, persist = np.random.default_rng(22).standard_t(changepoint.TAILS, (100_000, commits)), trend.PERSIST
    p = changepoint.persistence_p(changepoint.persistence(draws, persist), commits - persist, persist)
    assert within_level(p < level, level) and (p < level).mean() >= level / 2  # calibrated, not merely conservative


def test_values_in_steps_and_identical_commits_are_judged_as_before():
    """Ties: a constant series is steady; one commit off it is not yet a change; two are, certainly (p = 0). Commit
    means that come in steps (rounded to two noise spreads: ties everywhere) keep the level."""
    constant = np.full(50, 0.25)
    steady = trend.change(COMMITS, constant, "pl_per_unit", **BACH)
    assert (steady.status, steady.first_commit, steady.p_value) == ("steady", None, 1.0)
    one = np.r_[constant[:-1], 0.3]
    assert trend.change(COMMITS, one, "pl_per_unit", **BACH).status == "steady"
    two = np.r_[constant[:-2], 0.2, 0.2]
    verdict = trend.change(COMMITS, two, "pl_per_unit", **BACH)
    assert (verdict.status, verdict.first_commit, verdict.p_value) == ("regression", COMMITS[48], 0.0)
    histories = 200
    means = commit_means("t3", np.random.default_rng(23), histories * SERIES)
    rounded = np.round(means / (2 * SPREAD)) * 2 * SPREAD
    judged = trend.judge(rounded, 0.0, alpha=trend.FAMILY_ALPHA / SERIES)
    assert within_level(judged.flagged.reshape(histories, SERIES).any(axis=1), trend.FAMILY_ALPHA)


# ------------------------------------------------------------------------------------------------ a real change
@pytest.mark.parametrize(("noise", "share"), [("normal", 0.95), ("t3", 0.95), ("outliers", 0.9)])
def test_a_step_of_the_margin_is_flagged_by_its_second_commit_and_named(noise, share):
    """At one series' level, in over 90 % of histories at the step's first or second commit (about 99 % for normal
    and t noise, 94 % with gross outliers), naming its first; at the level of a gate of 100 series by its fourth
    commit (over 99 %; 93 % with gross outliers)."""
    histories = 1000
    stepped = commit_means(noise, np.random.default_rng(24), histories, 34) - MARGIN * (np.arange(34) >= 30)
    first, second = (trend.judge(stepped[:, :n], MARGIN) for n in (31, 32))
    caught = (first.flagged & (first.shift < 0)) | (second.flagged & (second.shift < 0))
    assert caught.mean() >= share
    assert (second.split[second.flagged] == 30).mean() >= 0.9  # the first commit of the step is named
    strict = [trend.judge(stepped[:, :n], MARGIN, alpha=trend.FAMILY_ALPHA / SERIES).flagged for n in (32, 33, 34)]
    assert np.logical_or.reduce(strict).mean() >= (0.95 if noise != "outliers" else 0.85)


def test_one_commit_far_out_is_not_a_change_and_two_are():
    """A loaded machine's run (one fresh-clone run put JAX at 0.17 of the roofline where quiet runs give 0.43-0.55)
    moves one commit, however far; a change lasts. `judge` and `change` agree on each history."""
    means = commit_means("normal", np.random.default_rng(25), 1)[0]
    loaded = np.r_[means[:-1], means[-1] - 20 * MARGIN]
    assert trend.change(COMMITS, loaded, "pl_per_unit", **BACH).status == "steady"
    after = trend.change([*COMMITS[1:], "next" * 10], np.r_[loaded[1:], -0.15], "pl_per_unit", **BACH)
    assert after.status == "steady"  # and the commit after it, back to normal
    lasting = np.r_[means[:-2], means[-2:] - MARGIN]
    verdict = trend.change(COMMITS, lasting, "pl_per_unit", **BACH)
    assert (verdict.status, verdict.first_commit, verdict.failed) == ("regression", COMMITS[48], True)
    rows = np.stack([loaded, lasting])
    judged = trend.judge(rows, verdict.margin)
    assert judged.flagged.tolist() == [False, True] and judged.p_value[1] == pytest.approx(verdict.p_value)


# ------------------------------------------------------------------------------------------------ the real command
def benchmark(path: Path, steps: dict[str, float]) -> Path:
    """A pytest-benchmark file as ``tox -e perf`` writes one: each framework's training step (``steps``, seconds for
    ten updates) beside the roofline's five products."""
    extra = {"updates": 10, "batch": 100, "five_products_ms": 0.5}
    runs = [
        {"name": f"test_train_step[{impl}]", "stats": {"min": step}, "extra_info": extra}
        for impl, step in steps.items()
    ]
    path.write_text(json.dumps({"benchmarks": runs}))
    return path


def test_perf_check_passes_one_loaded_run_and_fails_a_lasting_fall(tmp_path):
    """``python -m eval perf-check --history`` after 49 commits of heavy-tailed ratios (t noise), the newest run at a
    third of the usual speed for both frameworks: NumPy's series fails the gate only where the commit before was as
    slow too (torch's here): one slow run is a loaded machine. The old gate failed both."""
    from eval.environment import describe_environment
    from eval.gates.perf import measurement_frame

    environment = describe_environment()  # this machine: the command's run joins these series
    baseline = tmp_path / "perf.json"
    baseline.write_text(json.dumps({"ratios": {}, "relative_tolerance": 0.3}))
    noise = 1 + 0.02 * np.random.default_rng(26).standard_t(3, (49, 2))  # t noise, 2 % spread
    history = tmp_path / "history"
    for commit in range(49):
        slow = {"numpy": 1.0, "torch": 3.0 if commit == 48 else 1.0}  # torch: slow from commit 48 on
        steps = {impl: 0.02 * noise[commit, i] * slow[impl] for i, impl in enumerate(("numpy", "torch"))}
        frame = measurement_frame(benchmark(tmp_path / f"{commit}.json", steps))
        sha = f"{commit:02d}" + "e" * 38
        rows = store.measurement_rows(frame, environment | {"git_commit": sha}, f"perf-{commit}")
        finished = pd.Timestamp("2001-01-01T00:00:00+00:00") + pd.Timedelta(days=commit)  # before any real commit
        store.write_rows(rows.assign(finished=finished), store=history)
    newest = benchmark(tmp_path / "newest.json", {"numpy": 0.06, "torch": 0.06})  # both a third of their speed
    command = [sys.executable, "-m", "eval", "perf-check", str(newest), "--baseline", str(baseline), "--history"]
    environ = os.environ | {"RBM_BENCH_HISTORY": str(history)}
    done = subprocess.run(command, cwd=ROOT, env=environ, capture_output=True, text=True, timeout=300)
    assert done.returncode == 1 and "Traceback" not in done.stderr, done.stdout[-2000:] + done.stderr[-2000:]
    assert "trend gate: 2 series, 1 failing" in done.stdout, done.stdout[-2000:]
    assert "FAIL trend torch train_step_ratio: regression since 48eeeeeeeeee" in done.stdout
    assert "trend numpy" not in done.stdout  # one slow run: neither failed nor noted
