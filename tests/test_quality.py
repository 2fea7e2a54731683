"""The quality gate: its arithmetic, its baseline errors, and injected regressions that it must catch."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from eval.gates import quality
from impls import Available, available

ROOT = Path(__file__).resolve().parents[1]


def entry(mean: float, std: float = 0.0, better: str = "higher") -> dict:
    return {"mean": mean, "std": std, "better": better, "n": 3, "problems": []}


def baseline_of(metrics: dict) -> dict:
    return {"schema": quality.SCHEMA, "metrics": metrics, "versions": {}}


def verdicts(table) -> dict:
    return {(r.check, r.impl, r.metric): r.verdict for r in table.itertuples()}


def test_bad_direction_beyond_tolerance_fails_good_direction_is_reported():
    base = baseline_of(
        {
            "torch": {
                "pl_per_unit": entry(-0.10, 0.001),
                "js_pitch_class": entry(0.10, 0.01, "lower"),
                "polyphony": entry(4.0, 0.1, "none"),
            }
        }
    )
    worse = {
        "torch": {
            "pl_per_unit": entry(-0.2),
            "js_pitch_class": entry(0.05, better="lower"),
            "polyphony": entry(4.1, better="none"),
        }
    }
    table = quality.gate(worse, base)
    # tolerance = max(3 std, 0.05 |mean|, 0.005):
    #   pl_per_unit    -0.10 +- 0.001: max(0.003, 0.005, 0.005) = 0.005; -0.2 is 0.1 worse -> REGRESSION
    #   js_pitch_class  0.10 +- 0.01:  max(0.03,  0.005, 0.005) = 0.03;   0.05 is 0.05 lower (better) -> improved
    #   polyphony       4.0  +- 0.1:   max(0.3,   0.2,   0.005) = 0.3;    4.1 moved 0.1 -> ok
    allowed = {r.metric: r.tolerance for r in table.itertuples()}
    assert allowed == pytest.approx({"pl_per_unit": 0.005, "js_pitch_class": 0.03, "polyphony": 0.3})
    found = verdicts(table)
    assert found[("baseline", "torch", "pl_per_unit")] == "REGRESSION"
    assert found[("baseline", "torch", "js_pitch_class")] == "improved"
    assert found[("baseline", "torch", "polyphony")] == "ok"
    moved = {"torch": {**worse["torch"], "polyphony": entry(5.0, better="none")}}  # moved 1.0 > 0.3
    assert verdicts(quality.gate(moved, base))[("baseline", "torch", "polyphony")].startswith("REGRESSION")


@pytest.mark.parametrize(
    ("mean", "std", "expected"),
    [
        (-0.1, 0.01, 0.03),  # max(3 * 0.01, 0.05 * 0.1, 0.005) = max(0.03, 0.005, 0.005): three sigma
        (-0.1, 0.0, 0.005),  # max(0, 0.005, 0.005): both floors
        (-2.0, 0.0, 0.1),  # max(0, 0.05 * 2 = 0.1, 0.005): the relative floor
        (-2.0, 0.02, 0.1),  # max(0.06, 0.1, 0.005): the relative floor beats three sigma
        (0.04, 0.001, 0.005),  # max(0.003, 0.002, 0.005): the absolute floor
        (0.0, 0.0, 0.005),  # max(0, 0, 0.005): the absolute floor
        (300.0, 7.0, 21.0),  # max(21, 15, 0.005): three sigma
    ],
)
def test_tolerance_is_three_sigma_with_floors(mean, std, expected):
    assert quality.tolerance(mean, std) == pytest.approx(expected, rel=1e-12)


@pytest.mark.parametrize(
    ("current", "verdict"),
    [(-2.09, "ok"), (-2.11, "REGRESSION"), (-1.91, "ok"), (-1.89, "improved")],
)
def test_a_move_counts_only_beyond_the_relative_floor(current, verdict):
    # Baseline -2.0 +- 0: tolerance max(0, 0.05 * 2, 0.005) = 0.1; higher is better.
    base = baseline_of({"torch": {"pl_per_unit": entry(-2.0, 0.0)}})
    assert verdicts(quality.gate({"torch": {"pl_per_unit": entry(current)}}, base)) == {
        ("baseline", "torch", "pl_per_unit"): verdict
    }


def test_diverged_metric_is_a_regression_and_disagreement_with_numpy_is_flagged():
    base = baseline_of({"jax": {"pl_per_unit": entry(-0.1, 0.001)}})
    current = {
        "numpy": {"pl_per_unit": entry(-0.1, 0.001)},
        "jax": {"pl_per_unit": {**entry(None), "problems": ["diverged: parameters became NaN/inf"]}},
    }
    table = verdicts(quality.gate(current, base))
    assert "diverged" in table[("baseline", "jax", "pl_per_unit")]
    # vs numpy: tolerance max(3 hypot(0.001, 0.001) = 0.00424, 0.05 * 0.1 = 0.005, 0.005) = 0.005
    current["jax"]["pl_per_unit"] = entry(-0.3, 0.001)
    assert verdicts(quality.gate(current, base))[("vs numpy", "jax", "pl_per_unit")] == "INCONSISTENT"
    current["jax"]["pl_per_unit"] = entry(-0.104, 0.001)  # 0.004 apart: within 0.005
    assert verdicts(quality.gate(current, base))[("vs numpy", "jax", "pl_per_unit")] == "ok"
    current["jax"]["pl_per_unit"] = entry(-0.106, 0.001)  # 0.006 apart
    assert verdicts(quality.gate(current, base))[("vs numpy", "jax", "pl_per_unit")] == "INCONSISTENT"
    # with spread: numpy -0.1 +- 0.003, jax +- 0.004: max(3 * 0.005 = 0.015, 0.005, 0.005) = 0.015
    current = {"numpy": {"pl_per_unit": entry(-0.1, 0.003)}, "jax": {"pl_per_unit": entry(-0.114, 0.004)}}
    table = quality.gate(current, baseline_of({}))
    assert table.tolerance.iloc[0] == pytest.approx(0.015) and table.verdict.iloc[0] == "ok"


def test_the_gate_cannot_pass_on_nothing_or_on_missing_implementations_and_seeds():
    base = {**baseline_of({"torch": {"pl_per_unit": entry(-0.1, 0.001)}, "jax": {"pl_per_unit": entry(-0.1)}})}
    base["seeds"] = [0, 1, 2]
    complete = {"pl_per_unit": entry(-0.1) | {"seeds": [0, 1, 2]}}
    table = quality.gate({"torch": complete}, base)
    assert verdicts(table)[("baseline", "jax", "(all)")].startswith("MISSING"), "a skipped implementation fails"
    assert len(quality.failures(table)) == 1
    assert not len(quality.failures(quality.gate({"torch": complete}, base, expected=["torch"])))
    one_seed = {"torch": {"pl_per_unit": entry(-0.1) | {"seeds": [0]}}}
    verdict = verdicts(quality.gate(one_seed, base, expected=["torch"]))[("baseline", "torch", "pl_per_unit")]
    assert verdict == "MISSING (seeds [1, 2] have no value)"
    nothing = quality.gate({}, baseline_of({}))
    assert len(quality.failures(nothing)) == 1 and "checked nothing" in nothing.verdict.iloc[0]


def run_gate(*args: str, fault: str | None = None) -> subprocess.CompletedProcess:
    env = {k: v for k, v in os.environ.items() if k != "RBM_BENCH_FAULT"}
    if fault:
        env["RBM_BENCH_FAULT"] = fault
    return subprocess.run(
        [sys.executable, "-m", "eval", "quality", *args], cwd=ROOT, env=env, capture_output=True, text=True, timeout=900
    )


@pytest.mark.parametrize(
    "content",
    [
        None,
        "{not json",
        json.dumps({"schema": 99}),
        json.dumps({"schema": 1, "metrics": {"torch": {"pl_per_unit": {"mean": 1}}}}),
    ],
)
def test_missing_or_malformed_baseline_exits_2_with_one_line(tmp_path, content):
    path = tmp_path / "quality.json"
    if content is not None:
        path.write_text(content)
    result = run_gate("--baseline", str(path))
    assert result.returncode == 2 and "Traceback" not in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1 and str(path) in result.stderr


def framework_under_test() -> str:
    """The implementation the injected regressions go into: a framework if one is installed."""
    installed = [n for n, s in available().items() if isinstance(s, Available)]
    return next((n for n in ("torch", "jax", "tf") if n in installed), "numpy")


@pytest.mark.slow
@pytest.mark.quality
@pytest.mark.parametrize(
    ("fault", "metric"),
    [("learning_rate=0", "pl_per_unit"), ("learning_rate=-0.05", "pl_per_unit"), (None, None)],
    ids=["zero-learning-rate", "flipped-cd-sign", "unchanged"],
)
def test_gate_catches_injected_regressions_and_passes_unchanged_code(fault, metric):
    impl = framework_under_test()
    result = run_gate("--impls", impl, fault=f"{impl}:{fault}" if fault else None)
    if fault is None:
        assert result.returncode == 0, result.stdout + result.stderr
        assert "quality gate passed" in result.stdout
        return
    assert result.returncode == 1, result.stdout + result.stderr
    assert f"FAIL {impl} {metric}" in result.stdout
    assert f"FAIL {impl} ais_ll_per_row" in result.stdout
