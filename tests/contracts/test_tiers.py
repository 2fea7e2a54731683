"""The test tiers hold: an unmarked test is `unit`, and a unit test that starts the bench fails (tests/conftest.py)."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from eval.bench.harness import run_bench
from eval.config import load_profile
from tests.conftest import NO_BENCH

ROOT = Path(__file__).resolve().parents[2]
CONFTEST = (ROOT / "tests" / "conftest.py").read_text()
pytest_plugins = ["pytester"]


def test_a_unit_test_that_starts_the_bench_in_process_is_refused_with_its_name():
    profile = load_profile("quick").override(data={"source": "synthetic"}, run={"impls": ["numpy"], "epochs": 1})
    with pytest.raises(RuntimeError, match=r"test_tiers.py::.* is a unit test: mark it bench or recipe"):
        run_bench(profile, log=False)


def test_a_unit_test_that_starts_the_bench_command_is_refused_and_no_run_is_made(tmp_path):
    assert NO_BENCH in os.environ, "set for every unit test, so that the processes it starts inherit it"
    command = [sys.executable, "-m", "eval", "bench", "--profile", "quick", "--dataset", "synthetic", "--impls",
               "numpy", "--epochs", "1"]  # fmt: skip
    done = subprocess.run(command, cwd=ROOT, env={**os.environ, "RBM_BENCH_RUNS": str(tmp_path / "runs")},
                          capture_output=True, text=True, timeout=300)  # fmt: skip
    assert done.returncode != 0 and "is a unit test: mark it bench or recipe" in done.stderr, done.stderr[-2000:]
    assert not (tmp_path / "runs").exists() or not any((tmp_path / "runs").iterdir())


@pytest.mark.bench
def test_a_bench_test_may_start_the_bench():
    assert NO_BENCH not in os.environ


TIERED = """
import pytest

def test_plain():
    pass

@pytest.mark.bench
def test_end_to_end():
    pass

@pytest.mark.recipe
def test_a_recipe():
    pass
"""


def test_an_unmarked_test_is_unit_and_each_tier_selects_its_own(pytester):
    pytester.makeconftest(CONFTEST)
    pytester.makepyfile(test_tiered=TIERED)
    for tier, selected in (("unit", "test_plain"), ("bench", "test_end_to_end"), ("recipe", "test_a_recipe")):
        result = pytester.runpytest_subprocess("-m", tier, "-v", "-p", "no:cacheprovider")
        result.assert_outcomes(passed=1, deselected=2)
        assert any(selected in line and "PASSED" in line for line in result.outlines), (tier, result.outlines)


def test_a_unit_test_that_asks_for_a_finished_run_is_refused_at_collection(pytester):
    pytester.makeconftest(CONFTEST)
    pytester.makepyfile(test_misplaced="def test_reads_a_run(window_run):\n    pass\n")
    result = pytester.runpytest_subprocess("-p", "no:cacheprovider")
    assert result.ret != 0
    assert "1 unit test(s) use a finished bench run" in result.stderr.str() + result.stdout.str()
    assert "test_misplaced.py::test_reads_a_run" in result.stderr.str() + result.stdout.str()


def test_a_test_in_two_tiers_is_refused(pytester):
    pytester.makeconftest(CONFTEST)
    pytester.makepyfile(test_both="import pytest\n\n@pytest.mark.bench\n@pytest.mark.recipe\ndef test_x():\n    pass\n")
    result = pytester.runpytest_subprocess("-p", "no:cacheprovider")
    assert result.ret != 0 and "is marked bench and recipe" in result.stderr.str() + result.stdout.str()


def test_fuzz_tests_run_200_examples_in_ci_and_1000_in_the_recipe_tier(pytester):
    pytester.makeconftest(CONFTEST)
    pytester.makepyfile(
        test_count="""
from hypothesis import given, settings, strategies as st

seen = []

@given(st.integers())
def test_counted(value):
    seen.append(value)

def test_zz_count():
    print(f"EXAMPLES {len(seen)} MAX {settings.default.max_examples}")
"""
    )
    for options, expected in (((), 200), (("--hypothesis-profile", "recipe"), 1000)):
        result = pytester.runpytest_subprocess("-s", "-p", "no:cacheprovider", *options)
        (found,) = [re.search(r"EXAMPLES (\d+) MAX (\d+)", line) for line in result.outlines if "EXAMPLES" in line]
        assert int(found[2]) == expected and 0 < int(found[1]) <= expected, (options, found[0])
