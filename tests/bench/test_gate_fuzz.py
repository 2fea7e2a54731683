"""Fuzzing the quality gate's baseline: whatever the file holds, it is trusted whole or refused in one line.

Generated baselines (valid ones, valid ones with one value replaced by any JSON value, and arbitrary JSON) must
either load into a baseline whose every entry is sane or raise BaselineError, never another exception; and a
baseline that does not load must never pass the gate (no pass on a malformed baseline). The examples are
derandomized by the project's settings profile (tests/conftest.py).
"""

from __future__ import annotations

import json
import math
from pathlib import Path

import pytest
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st

from eval.config import load_profile
from eval.gates import quality
from eval.scoring import catalogue
from impls import frameworks

SPEC = json.loads(json.dumps(load_profile("quick").override(run={"seeds": [0, 1, 2]}).to_dict()))
HASH = "a" * 64


def valid_baseline() -> dict:
    def entry(mean: float, std: float, better: str) -> dict:
        return {"mean": mean, "std": std, "better": better, "n": 3, "seeds": [0, 1, 2], "problems": []}

    summary = {
        "numpy": {
            "pl_per_unit": entry(-0.12, 0.001, "higher"),
            "js_pitch_class": entry(0.01, 0.0005, "lower"),
            "polyphony": entry(4.4, 0.03, "none"),
        },
        "torch": {"pl_per_unit": entry(-0.12, 0.002, "higher")},
    }
    return quality.make_baseline(summary, {"numpy": "2.4"}, {}, "quick", SPEC, HASH)


def summary_of(baseline: dict) -> dict:
    """The current scores equal to a valid baseline's: the gate passes on them with that baseline."""
    return {
        impl: {
            m: {"mean": e["mean"], "std": e["std"], "better": e["better"], "n": 3, "seeds": [0, 1, 2], "problems": []}
            for m, e in metrics.items()
        }
        for impl, metrics in valid_baseline()["metrics"].items()
    }


def paths(value, prefix=()):
    """Every place in a JSON value, the root included."""
    yield prefix
    if isinstance(value, dict):
        for key, item in value.items():
            yield from paths(item, (*prefix, key))
    elif isinstance(value, list):
        for index, item in enumerate(value):
            yield from paths(item, (*prefix, index))


def replaced(value, path, new):
    if not path:
        return new
    head, *rest = path
    copy = dict(value) if isinstance(value, dict) else list(value)
    copy[head] = replaced(value[head], rest, new)
    return copy


scalars = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(min_value=-(10**20), max_value=10**20),
    st.floats(allow_nan=True, allow_infinity=True),
    st.sampled_from([float("nan"), float("inf"), 1e9, -1e300, 0, -1, 1.5, 3]),
    st.text(max_size=8),
    st.sampled_from(["higher", "lower", "none", "up", "quick", "numpy", "pl_per_unit", "nan", "1"]),
)
json_values = st.recursive(
    scalars,
    lambda children: st.one_of(
        st.lists(children, max_size=4), st.dictionaries(st.text(max_size=6), children, max_size=4)
    ),
    max_leaves=12,
)


@st.composite
def baselines(draw) -> tuple[object, bool]:
    """A baseline and whether it is the untouched valid one."""
    kind = draw(st.sampled_from(["valid", "replace", "replace", "replace", "drop", "add", "arbitrary"]))
    base = valid_baseline()
    if kind == "valid":
        return base, True
    if kind == "arbitrary":
        return draw(
            json_values | st.fixed_dictionaries({"schema": st.just(quality.SCHEMA), "metrics": json_values})
        ), False
    places = list(paths(base))
    if kind == "drop":
        path = draw(st.sampled_from([p for p in places if p and isinstance(p[-1], str)]))
        parent = replaced(base, (), base)
        holder = parent
        for key in path[:-1]:
            holder = holder[key]
        del holder[path[-1]]
        return parent, False
    if kind == "add":  # a new implementation or metric of arbitrary content
        where = draw(st.sampled_from(["impl", "metric"]))
        name = draw(st.sampled_from(["tf", "jax", "sklearn", "fake", "note_density", "pl_per_units", "ais_ll_per_row"]))
        if where == "impl":
            base["metrics"][name] = draw(json_values)
        else:
            base["metrics"]["numpy"][name] = draw(json_values)
        return base, False
    path = draw(st.sampled_from(places))
    return replaced(base, path, draw(json_values)), False


def sane(baseline: dict) -> None:
    """Every value the gate reads is one it can trust."""
    assert baseline["schema"] == quality.SCHEMA
    seeds = baseline["seeds"]
    assert isinstance(seeds, list) and seeds and len(set(seeds)) == len(seeds)
    assert all(type(s) is int and s >= 0 for s in seeds)
    assert isinstance(baseline["spec"], dict) and isinstance(baseline["dataset_hash"], str)
    for impl, metrics in baseline["metrics"].items():
        assert impl in frameworks() and isinstance(metrics, dict)
        for metric, entry in metrics.items():
            assert catalogue.lookup(metric) is not None
            mean, std = entry["mean"], entry["std"]
            assert type(mean) in (int, float) and math.isfinite(mean)
            assert type(std) in (int, float) and math.isfinite(std) and 0 <= std <= 10 * max(abs(mean), 1)
            assert entry["better"] == catalogue.describe(metric)[1]
            assert type(entry["n"]) is int and 1 <= entry["n"] <= len(seeds)


@pytest.fixture(scope="module")
def folder(tmp_path_factory) -> Path:
    return tmp_path_factory.mktemp("baselines")


@pytest.mark.fuzz  # 200 examples in CI, 1,000 in tox -e recipe (the settings profiles in tests/conftest.py)
@settings(suppress_health_check=[HealthCheck.too_slow])
@given(generated=baselines())
def test_a_baseline_is_trusted_whole_or_refused_and_never_passes_when_refused(folder, generated):
    baseline, untouched = generated
    path = folder / "quality.json"
    try:
        path.write_text(json.dumps(baseline, allow_nan=True))
    except (ValueError, RecursionError):
        return  # not writable as JSON: nothing to load
    try:
        loaded = quality.load_baseline(path)
    except quality.BaselineError as error:
        event(f"refused: {str(error).split(': malformed baseline')[-1][:28]}")
        assert not untouched, error
        assert len(str(error).splitlines()) == 1
        reread = json.loads(path.read_text())  # the same content, given to the gate directly: never a pass
        with pytest.raises(quality.BaselineError):
            quality.gate(summary_of(reread), reread, spec=SPEC, data_hash=HASH)
        return
    sane(loaded)
    try:
        table = quality.gate(summary_of(loaded), loaded, spec=SPEC, data_hash=HASH)  # a trusted one gates as usual
    except quality.BaselineError as error:  # ... or says the run is of another recipe than its recorded one
        event("trusted, of another recipe")
        assert not untouched and "is not the baseline's recipe" in str(error), error
        assert len(str(error).splitlines()) == 1
        return
    assert set(table.verdict.str.split(" ").str[0]) <= {"ok", "improved", "REGRESSION", "INCONSISTENT", "MISSING"}
    event("trusted")
    if untouched:
        assert not len(quality.failures(table))
