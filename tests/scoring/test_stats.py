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


def tost_by_hand(candidate: list[float], reference: list[float], margin: float, alpha: float = 0.05):
    """The paired TOST written out: two one-sided t tests on the differences, and the (1 - 2 alpha) interval."""
    d = np.asarray(candidate, float) - np.asarray(reference, float)
    n = len(d)
    mean = sum(d) / n
    sd = math.sqrt(sum((x - mean) ** 2 for x in d) / (n - 1))
    se = sd / math.sqrt(n)
    p_lower = stats.t.sf((mean + margin) / se, n - 1)  # H0: mean <= -margin
    p_upper = stats.t.cdf((mean - margin) / se, n - 1)  # H0: mean >= +margin
    half = stats.t.ppf(1 - alpha, n - 1) * se
    return mean, mean - half, mean + half, max(p_lower, p_upper)


@pytest.mark.parametrize(
    ("candidate", "reference", "margin", "verdict"),
    [
        ([0.31, -0.42, 1.07, 0.55, -0.18], [0.25, -0.30, 1.12, 0.41, -0.20], 0.2, "✓"),
        ([0.31, -0.42, 1.07, 0.55, -0.18], [0.25, -0.30, 1.12, 0.41, -0.20], 0.05, "?"),
        ([10.5, 11.52, 12.49, 13.5], [10.0, 11.0, 12.0, 13.0], 0.1, "✗"),  # above the margin
        ([9.5, 10.48, 11.51, 12.5], [10.0, 11.0, 12.0, 13.0], 0.1, "✗"),  # below it
    ],
)
def test_equivalence_is_the_paired_tost_computed_by_hand(candidate, reference, margin, verdict):
    mean, low, high, p_value = tost_by_hand(candidate, reference, margin)
    result = equivalence(candidate, reference, margin)
    assert result.n == len(candidate) and result.margin == margin
    assert result.mean_difference == pytest.approx(mean, rel=1e-12, abs=1e-12)
    assert result.low == pytest.approx(low, rel=1e-12, abs=1e-12)
    assert result.high == pytest.approx(high, rel=1e-12, abs=1e-12)
    assert result.p_value == pytest.approx(p_value, rel=1e-12, abs=1e-15)
    assert result.equivalent == (p_value < 0.05) == (-margin < low and high < margin)
    assert result.verdict == verdict


def test_equivalence_on_textbook_numbers_with_closed_form_t_distributions():
    # Two seeds, differences [-1, 1]: mean 0, sd sqrt(2), se 1, 1 degree of freedom (the Cauchy distribution,
    # cdf(t) = 1/2 + atan(t)/pi). Margin sqrt(3): both one-sided statistics are sqrt(3) away from their null,
    # p = 1/2 - atan(sqrt(3))/pi = 1/2 - 1/3 = 1/6; the 90 % interval is 0 -+ tan(0.45 pi) = -+6.3138.
    result = equivalence([1.0, 3.0], [2.0, 2.0], margin=math.sqrt(3))
    assert result.mean_difference == 0 and result.p_value == pytest.approx(1 / 6, rel=1e-12)
    assert result.high == pytest.approx(math.tan(0.45 * math.pi), rel=1e-12) and result.low == -result.high
    assert result.verdict == "?" and result.equivalent is False
    # Three seeds, differences [0, 1, 2]: mean 1, sd 1, se 1/sqrt(3), 2 degrees of freedom
    # (cdf(t) = 1/2 + t / (2 sqrt(2 + t^2))). Margin 2: t_lower = (1 + 2) sqrt(3) = 3 sqrt(3),
    # t_upper = (1 - 2) sqrt(3) = -sqrt(3); p_upper = 1/2 - sqrt(3)/(2 sqrt(5)) = 0.1127 is the larger
    # (p_lower = 1/2 - 3 sqrt(3)/(2 sqrt(29)) = 0.0176). t_{0.95, 2} = 0.9 / sqrt(2 * 0.95 * 0.05) = 2.91999,
    # so the interval is 1 -+ 2.91999 / sqrt(3) = [-0.68587, 2.68587].
    result = equivalence([5.0, 6.0, 7.0], [5.0, 5.0, 5.0], margin=2.0)
    assert result.mean_difference == 1 and result.p_value == pytest.approx(0.5 - math.sqrt(3) / (2 * math.sqrt(5)))
    half = 0.9 / math.sqrt(2 * 0.95 * 0.05) / math.sqrt(3)
    assert (result.low, result.high) == pytest.approx((1 - half, 1 + half), rel=1e-12)
    assert result.p_value == pytest.approx(0.112701665, abs=1e-9) and result.verdict == "?"


def test_identical_differences_compare_the_mean_with_the_margin():
    # Differences exactly 0.5 each (binary fractions): no spread, so the verdict is |0.5| < margin.
    inside = equivalence([1.5, 2.5, 3.5], [1.0, 2.0, 3.0], margin=1.0)
    assert inside.equivalent and inside.p_value == 0 and inside.low == inside.high == 0.5
    outside = equivalence([1.5, 2.5, 3.5], [1.0, 2.0, 3.0], margin=0.25)
    assert outside.equivalent is False and outside.p_value == 1 and outside.verdict == "✗"
