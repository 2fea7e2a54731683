"""The caution a bracket carries into its rows when the exact value (few hidden units) lies outside it."""

from __future__ import annotations

import pytest

from eval.scoring.ais import misses_exact


@pytest.mark.parametrize("exact", [-20.1, -20.0, -19.5, -18.9, None])
def test_an_exact_value_inside_the_bracket_or_unknown_raises_no_caution(exact):
    assert misses_exact(exact, high=-19.0, high_stderr=0.05, low=-20.0, low_stderr=0.05) == ""


def test_an_exact_value_below_both_ends_is_named_as_the_bracket_missing_it():
    """The inversion an independent check found: exact below RAISE (and AIS), beyond their errors, passed silently."""
    note = misses_exact(-20.4, high=-19.0, high_stderr=0.05, low=-20.0, low_stderr=0.05)
    assert "below RAISE" in note and "-20.40" in note
    assert "above AIS" in misses_exact(-18.7, high=-19.0, high_stderr=0.05, low=-20.0, low_stderr=0.05)
    assert "below RAISE" not in misses_exact(-25.0, high=-19.0, high_stderr=0.05, low=None, low_stderr=None)
    assert misses_exact(-20.4, high=-19.0, high_stderr=0.2, low=-20.0, low_stderr=0.2) == ""  # within 3 errors
