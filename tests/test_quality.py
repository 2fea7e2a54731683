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
    table = verdicts(quality.gate(worse, base))
    assert table[("baseline", "torch", "pl_per_unit")] == "REGRESSION"
    assert table[("baseline", "torch", "js_pitch_class")] == "improved"
    assert table[("baseline", "torch", "polyphony")] == "ok"  # within 3 std (0.3)
    moved = {"torch": {**worse["torch"], "polyphony": entry(5.0, better="none")}}
    assert verdicts(quality.gate(moved, base))[("baseline", "torch", "polyphony")].startswith("REGRESSION")


def test_tolerance_is_three_sigma_with_floors():
    assert quality.tolerance(-0.1, 0.01) == pytest.approx(0.03)
    assert quality.tolerance(-0.1, 0.0) == pytest.approx(max(quality.RELATIVE_FLOOR * 0.1, quality.ABSOLUTE_FLOOR))
    assert quality.tolerance(0.0, 0.0) == quality.ABSOLUTE_FLOOR


def test_diverged_metric_is_a_regression_and_disagreement_with_numpy_is_flagged():
    base = baseline_of({"jax": {"pl_per_unit": entry(-0.1, 0.001)}})
    current = {
        "numpy": {"pl_per_unit": entry(-0.1, 0.001)},
        "jax": {"pl_per_unit": {**entry(None), "problems": ["diverged: parameters became NaN/inf"]}},
    }
    table = verdicts(quality.gate(current, base))
    assert "diverged" in table[("baseline", "jax", "pl_per_unit")]
    current["jax"]["pl_per_unit"] = entry(-0.3, 0.001)
    assert verdicts(quality.gate(current, base))[("vs numpy", "jax", "pl_per_unit")] == "INCONSISTENT"


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
