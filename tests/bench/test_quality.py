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
from tests.conftest import WINDOW_PROFILE, finish_run

ROOT = Path(__file__).resolve().parents[2]


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


@pytest.fixture(scope="module")
def gated_runs(window_run, cache_dir, tmp_path_factory) -> dict:
    """The gate's material, prepared once: a baseline made from the shared run (``--update-baseline --results``)
    and runs of the same tiny profile in one framework, unchanged or with a fault injected into its training."""
    impl = framework_under_test()
    folder = tmp_path_factory.mktemp("gated")
    baseline = folder / "quality.json"
    made = run_gate("--results", str(window_run.path), "--baseline", str(baseline), "--update-baseline")
    assert made.returncode == 0, made.stdout + made.stderr
    profile = {**WINDOW_PROFILE, "run": {**WINDOW_PROFILE["run"], "impls": [impl]}}
    runs = {"baseline": baseline, "impl": impl}
    for name, (fault, _) in FAULTS.items():
        variables = {"RBM_BENCH_FAULT": f"{impl}:{fault}"} if fault else {}
        # a broken training may diverge in every task (exit 1): still a finished run for the gate to judge
        runs[name] = finish_run(folder / name, "tiny", profile, cache_dir, (0, 1), **variables).path
    return runs


# fault injected into one framework's training -> the scores the gate must fail. On the tiny run a rate of zero or
# of the wrong sign leaves the model at coin flips (the run is flagged diverged, and the gate fails every score); a
# quarter of the rate trains, more slowly: only the tolerance can catch it.
FAULTS = {
    "zero-learning-rate": ("learning_rate=0", ["pl_per_unit", "ais_ll_per_row"]),
    "flipped-cd-sign": ("learning_rate=-0.05", ["pl_per_unit", "ais_ll_per_row"]),
    "quarter-learning-rate": ("learning_rate=0.005", ["pl_per_unit"]),
    "unchanged": (None, []),
}


@pytest.mark.bench
@pytest.mark.parametrize("case", list(FAULTS))
def test_gate_catches_injected_regressions_and_passes_unchanged_code(gated_runs, case):
    """A run whose training is broken in one framework fails the gate on the scores the fault moves; a second,
    unchanged run of the same recipe passes (the gate judges runs made for it: ``--results``)."""
    impl = gated_runs["impl"]
    result = run_gate("--results", str(gated_runs[case]), "--baseline", str(gated_runs["baseline"]), "--impls", impl)
    fault, failing = FAULTS[case]
    if fault is None:
        assert result.returncode == 0, result.stdout + result.stderr
        assert "quality gate passed" in result.stdout
        return
    assert result.returncode == 1, result.stdout + result.stderr
    for metric in failing:
        assert f"FAIL {impl} {metric}: REGRESSION" in result.stdout, result.stdout
    if case == "quarter-learning-rate":  # beyond the tolerance, not flagged diverged
        assert f"FAIL {impl} pl_per_unit: REGRESSION (baseline)" in result.stdout, result.stdout


# ------------------------------------------------------------------ the recorded run and a baseline to trust


def quick_spec(**run) -> dict:
    """The quick profile as the gate trains it (the baseline's seeds), as a run's spec.json records it."""
    from eval.config import load_profile

    return json.loads(json.dumps(load_profile("quick").override(run={"seeds": [0, 1, 2], **run}).to_dict()))


def recorded_baseline(spec: dict | None = None, data_hash: str = "a" * 64) -> dict:
    """A baseline as --update-baseline writes it: the run's spec and dataset, seeds, one entry per direction."""
    summary = {
        "numpy": {
            "pl_per_unit": entry(-0.1, 0.001) | {"seeds": [0, 1, 2]},
            "js_pitch_class": entry(0.01, 0.001, "lower") | {"seeds": [0, 1, 2]},
            "polyphony": entry(4.0, 0.1, "none") | {"seeds": [0, 1, 2]},
        }
    }
    return quality.make_baseline(summary, {"numpy": "2"}, {}, "quick", spec or quick_spec(), data_hash)


def current_of(baseline: dict) -> dict:
    return {
        impl: {m: entry(e["mean"], e["std"], e["better"]) | {"seeds": baseline["seeds"]} for m, e in metrics.items()}
        for impl, metrics in baseline["metrics"].items()
    }


def test_a_run_of_another_recipe_is_refused_naming_the_first_differing_keys():
    baseline = recorded_baseline()
    assert quality.baseline_problem(baseline) is None
    current = current_of(baseline)
    same = quality.gate(current, baseline, spec=quick_spec(), data_hash=baseline["dataset_hash"])
    assert not len(quality.failures(same))
    # what does not change a number: placement, threads, the time limit, the implementations asked for
    placed = quick_spec(executor="local:2", threads=4, timeout_s=60, impls=["numpy"])
    assert not len(quality.failures(quality.gate(current, baseline, spec=placed, data_hash=baseline["dataset_hash"])))
    with pytest.raises(quality.BaselineError) as refused:  # the same numbers, but of 14 epochs
        quality.gate(current, baseline, spec=quick_spec(epochs=14), data_hash=baseline["dataset_hash"])
    message = str(refused.value)
    assert len(message.splitlines()) == 1
    assert "run.epochs 14 vs the baseline's 12" in message and "--update-baseline" in message
    other = quick_spec()
    other["model"]["n_hidden"] += 1
    other["eval"]["gibbs_steps"] = 7
    with pytest.raises(quality.BaselineError, match=r"model.n_hidden .* eval.gibbs_steps 7 vs the baseline's 100"):
        quality.gate(current, baseline, spec=other)
    with pytest.raises(quality.BaselineError, match=r"run.seeds \[0, 1\] vs the baseline's \[0, 1, 2\]"):
        quality.gate(current, baseline, spec=quick_spec(seeds=[0, 1]))
    stopped = quick_spec()
    stopped["run"]["patience"] = 2  # early stopping: another epoch's weights scored
    with pytest.raises(quality.BaselineError, match=r"run.patience 2 vs the baseline's 0"):
        quality.gate(current, baseline, spec=stopped)
    with pytest.raises(quality.BaselineError, match="dataset_hash bbbbbbbbbbbb vs the baseline's aaaaaaaaaaaa"):
        quality.gate(current, baseline, spec=quick_spec(), data_hash="b" * 64)
    with pytest.raises(quality.BaselineError, match="no recorded spec"):  # a baseline that cannot say what it was
        quality.gate(current, {k: v for k, v in baseline.items() if k != "spec"}, spec=quick_spec())


@pytest.mark.bench
def test_the_command_refuses_a_run_of_another_recipe_with_one_line(window_run, tmp_path):
    tiny_run = window_run.path
    path = tmp_path / "quality.json"
    made = run_gate("--results", str(tiny_run), "--baseline", str(path), "--update-baseline")
    assert made.returncode == 0, made.stdout + made.stderr
    recorded = json.loads(path.read_text())
    assert recorded["spec"]["run"]["epochs"] == 3 and recorded["spec"]["data"]["source"] == "synthetic"
    assert recorded["seeds"] == [0] and list(recorded["metrics"]) == window_run.impls
    assert len(recorded["dataset_hash"]) == 64
    passed = run_gate("--results", str(tiny_run), "--baseline", str(path))
    assert passed.returncode == 0 and "quality gate passed" in passed.stdout, passed.stdout + passed.stderr
    recorded["spec"]["run"]["epochs"] = 14
    path.write_text(json.dumps(recorded))
    refused = run_gate("--results", str(tiny_run), "--baseline", str(path))
    assert refused.returncode == 2 and "Traceback" not in refused.stderr, refused.stdout + refused.stderr
    assert len(refused.stderr.strip().splitlines()) == 1
    assert "run.epochs 3 vs the baseline's 14" in refused.stderr and "--update-baseline" in refused.stderr
    # training itself, the gate runs the quick profile: a baseline of another recipe is refused before any training
    recorded["spec"]["run"]["epochs"] = 3
    path.write_text(json.dumps(recorded))
    early = run_gate("--baseline", str(path))
    assert early.returncode == 2 and "the quick profile is not the baseline's recipe" in early.stderr, early.stderr
    assert "run folder:" not in early.stdout


def corrupt(change) -> str:
    baseline = recorded_baseline()
    change(baseline)
    return json.dumps(baseline, allow_nan=True)


def _set(impl: str, metric: str, key: str, value):
    return lambda b: b["metrics"][impl][metric].__setitem__(key, value)


@pytest.mark.parametrize(
    ("change", "said"),
    [
        (_set("numpy", "pl_per_unit", "mean", float("nan")), "mean nan is not a finite number"),
        (_set("numpy", "pl_per_unit", "mean", "-0.1"), "mean '-0.1' is not a finite number"),
        (_set("numpy", "pl_per_unit", "std", 1e9), "std 1e+09 is absurd"),
        (_set("numpy", "pl_per_unit", "std", -0.1), "std -0.1 is not a finite number >= 0"),
        (lambda b: b.__setitem__("seeds", []), "seeds [] are not a non-empty list"),
        (lambda b: b.__setitem__("seeds", [0, 0, 1]), "repeat a seed"),
        (_set("numpy", "pl_per_unit", "better", "up"), "better 'up' is not one of higher, lower, none"),
        (_set("numpy", "pl_per_unit", "better", "lower"), "contradicts the score catalogue's 'higher'"),
        (_set("numpy", "pl_per_unit", "n", 0), "n 0 is not an integer >= 1"),
        (lambda b: b["metrics"]["numpy"].__setitem__("pl_per_units", entry(1.0)), "'pl_per_units' of numpy is not"),
        (lambda b: b["metrics"].__setitem__("numpyy", b["metrics"]["numpy"]), "'numpyy' is not in the framework"),
        (lambda b: b.pop("spec"), "no recorded spec"),
        (lambda b: b.__setitem__("spec", ["quick"]), "no recorded spec"),
        (lambda b: b.__setitem__("schema", 1), "found schema 1"),
    ],
    ids=lambda value: value if isinstance(value, str) else "",
)
def test_a_baseline_that_cannot_be_trusted_exits_2_with_one_line(tmp_path, change, said):
    path = tmp_path / "quality.json"
    path.write_text(corrupt(change))
    with pytest.raises(quality.BaselineError) as refused:
        quality.load_baseline(path)
    assert said in str(refused.value) and len(str(refused.value).splitlines()) == 1
    result = run_gate("--baseline", str(path))  # refused before any training
    assert result.returncode == 2 and "Traceback" not in result.stderr, result.stderr
    assert len(result.stderr.strip().splitlines()) == 1 and said in result.stderr


def test_the_committed_baseline_records_the_quick_profile_as_the_gate_trains_it():
    baseline = quality.load_baseline(quality.BASELINE)
    assert baseline["profile"] == "quick" and baseline["seeds"] == list(quality.SEEDS)
    quality.check_run(quick_spec(seeds=baseline["seeds"]), None, baseline)  # the gate's own run is not refused


def test_the_summary_does_not_depend_on_the_order_tasks_finished_in():
    import pandas as pd

    def frame(order: list[int]) -> pd.DataFrame:
        values = {0: 0.1, 1: 0.2, 2: 0.3}  # (0.1 + 0.2) + 0.3 != (0.3 + 0.2) + 0.1 in binary
        return pd.DataFrame(
            [
                {"impl": "numpy", "epoch": None, "metric": "pl_per_unit", "status": "ok", "reason": "",
                 "value": values[seed], "better": "higher", "seed": seed}
                for seed in order
            ]
        )  # fmt: skip

    assert (0.1 + 0.2) + 0.3 != (0.3 + 0.2) + 0.1
    one, other = quality.summarise(frame([0, 1, 2])), quality.summarise(frame([2, 1, 0]))
    assert one["numpy"]["pl_per_unit"] == other["numpy"]["pl_per_unit"]  # bit for bit
