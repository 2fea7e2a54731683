"""Intervals over seeds and the paired equivalence test behind the report's verdict."""

from __future__ import annotations

import math

import numpy as np
import pytest
from scipy import stats

from eval.scoring.stats import equivalence, interval


def test_interval_is_the_student_t_interval():
    values = [1.0, 2.0, 4.0]
    found = interval(values)
    half = stats.t.ppf(0.975, 2) * np.std(values, ddof=1) / math.sqrt(3)
    assert found.mean == pytest.approx(7 / 3) and found.half_width == pytest.approx(half)
    assert interval([5.0]).n == 1 and math.isnan(interval([5.0]).low)
    assert interval([None, float("nan")]).n == 0


def test_equivalent_when_the_differences_are_small_and_steady():
    reference = [10.0, 11.0, 12.0, 13.0]
    close = [10.02, 11.01, 12.03, 13.0]
    result = equivalence(close, reference, margin=0.1)
    assert result.verdict == "✓" and result.p_value < 0.05 and result.low > -0.1 and result.high < 0.1


def test_different_when_the_interval_lies_beyond_the_margin():
    reference = [10.0, 11.0, 12.0, 13.0]
    shifted = [10.5, 11.52, 12.49, 13.5]
    result = equivalence(shifted, reference, margin=0.1)
    assert result.verdict == "✗" and result.low > 0.1


def test_inconclusive_when_the_runs_spread_more_than_the_margin():
    reference = [10.0, 11.0, 12.0]
    noisy = [10.3, 10.8, 12.1]
    result = equivalence(noisy, reference, margin=0.1)
    assert result.verdict == "?" and result.equivalent is False and not result.different


def test_one_seed_gives_no_verdict():
    assert equivalence([1.0], [1.0], margin=0.1).verdict == "n/a"


def test_matches_statsmodels_two_one_sided_tests():
    from statsmodels.stats.weightstats import ttost_paired

    rng = np.random.default_rng(0)
    a, b = rng.normal(0, 1, 5), rng.normal(0.05, 1, 5)
    assert equivalence(a, b, 0.5).p_value == pytest.approx(ttost_paired(a, b, -0.5, 0.5)[0])
