"""The cautions a window model's AIS/RAISE bracket carries into its rows: an exact value outside it is named."""

from __future__ import annotations

import numpy as np
import pytest

from eval.models.rbm import WindowRBM
from eval.scoring.ais import Bracket


def bracket(ais: float, raise_: float | None, stderr: float = 0.05) -> Bracket:
    return Bracket(
        ais=ais, ais_stderr=stderr, raise_=raise_, raise_stderr=stderr, log_z=0.0, log_z_stderr=stderr,
        effective_runs=100.0, start="base-rate", pilot_log_z={}, ais_seconds=0.0, raise_seconds=0.0,
    )  # fmt: skip


@pytest.mark.parametrize("exact", [-20.1, -20.0, -19.5, -18.9, None])
def test_an_exact_value_inside_the_bracket_or_unknown_raises_no_caution(exact):
    assert WindowRBM.misses_exact(bracket(ais=-19.0, raise_=-20.0), exact) == ""


def test_an_exact_value_below_both_ends_is_named_as_the_bracket_missing_it():
    """The inversion an independent check found: exact below RAISE (and AIS), beyond their errors, passed silently."""
    note = WindowRBM.misses_exact(bracket(ais=-19.0, raise_=-20.0), -20.4)
    assert "below RAISE" in note and "-20.40" in note
    assert "above AIS" in WindowRBM.misses_exact(bracket(ais=-19.0, raise_=-20.0), -18.7)
    assert "below RAISE" not in WindowRBM.misses_exact(bracket(ais=-19.0, raise_=None), -25.0)  # no RAISE: no low end
    assert WindowRBM.misses_exact(bracket(ais=-19.0, raise_=-20.0, stderr=0.2), -20.4) == ""  # within 3 errors
    assert np.isfinite(bracket(ais=-19.0, raise_=-20.0).width)
