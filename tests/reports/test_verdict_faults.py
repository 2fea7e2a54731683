"""The verdict catches injected faults: a framework that is wrong does not come out ✓ on the scores its fault moves.

Margins are measured (`eval.gates.margins`, ``reports/baselines/margins/rbm-bach.json``): half the effect of halving the
learning rate, or the noise floor where that moves a score by less than its noise. Here a copy of the layers gets
one more framework, the NumPy reference with momentum 0.5 where the profile says 0.9 (the fault a PyTorch port once
had, which the guessed margins called equivalent on five of nine scores), and the default profile runs it beside the
reference over the verdict's three seeds. On every score the calibration saw the fault move by at least its margin
(its 95 % interval over five seeds excludes 0, its mean lies beyond the margin), the verdict must say ✗ or ?, never
✓. A fault that moves a score by less than its margin may pass there: TOST bounds the chance of ✓ at α only for a
difference of at least the margin (pitch_range: the fault moves it 1.1 semitones; its noise floor at three seeds is
4.4; resolving 1.1 takes about 20 seeds, README).
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

import impls
from eval.gates import margins as calibration
from eval.models import plugin
from eval.scoring import calibrations, catalogue

ROOT = Path(__file__).resolve().parents[2]
LAYERS = ("core", "datasets", "impls", "eval", "reports")
FAULTY_FILE = '''"""The NumPy reference with an injected fault: momentum 0.5 whatever the profile says."""

from dataclasses import replace

from impls.backends import faulty as backend
from impls.rbm.numpy import NumpyRBM


class FaultyRBM(NumpyRBM):
    name = "faulty"
    backend = backend

    def __init__(self, config, params, seed):
        super().__init__(replace(config, momentum=0.5), params, seed)
'''
ENTRY = """
FRAMEWORKS += (
    Framework("faulty", "Faulty", "numpy", ("numpy",), devices=("cpu",)),
)
"""
VERDICT = """
import json, sys
import pandas as pd
from reports.tables import verdict_table
frame = pd.read_csv(sys.argv[1])
print(json.dumps(verdict_table(frame, {}, 0.05)["Faulty"].to_dict()))
"""


def measured() -> dict[str, dict]:
    """The window RBM's calibration on the Bach data (the default profile's), per score."""
    return calibrations.calibration("rbm", "bach").scores


def moved_by_the_fault() -> list[str]:
    """Scores the fault moved clearly (95 % interval excludes 0) and by at least the margin, in the calibration."""
    scores = measured()
    clear = [m for m, e in scores.items() if e["fault_effect"][1] > 0 or e["fault_effect"][2] < 0]
    return [m for m in clear if abs(scores[m]["fault_effect"][0]) >= scores[m]["margin"]]


def window_rbm_scores() -> set[str]:
    """The verdict scores a window RBM can write: all but those only another model's plug-in declares (the
    RNN-NADE's exact likelihood per row)."""
    others = {s for kind in impls.models() if kind != "rbm" for s in plugin(kind).outputs} - set(plugin("rbm").outputs)
    return set(catalogue.verdict_scores()) - others


def test_the_calibration_is_recorded_and_each_margin_has_its_basis():
    scores = measured()
    assert set(scores) == window_rbm_scores(), "every verdict score the window RBM writes is calibrated"
    assert "exact_ll_per_row" not in window_rbm_scores() and "ais_ll_per_row" in window_rbm_scores()
    for metric, entry in scores.items():
        assert entry["basis"].startswith(("half the effect", "noise floor")), metric
        effect = entry["effect_of_change"]
        if entry["basis"].startswith("half"):
            assert entry["margin"] == pytest.approx(abs(effect[0]) / 2) and (effect[1] > 0 or effect[2] < 0)
        else:
            assert entry["margin"] == pytest.approx(calibration.noise_floor(entry["noise_sd"], 3))
        assert calibration.noise_floor(entry["noise_sd"], entry["seeds_needed"]) <= entry["margin"] * (1 + 1e-9)
    assert len(moved_by_the_fault()) >= 5, "the fault must move several scores, or it tests nothing"
    assert all(scores[m]["fault_verdict"] in ("✗", "?") for m in moved_by_the_fault())


def test_seeds_needed_is_the_power_calculation():
    # TOST at alpha 0.05 with 80 % power and a true difference of 0: n = ((t_.95 + t_.90) s / m)^2, t with n - 1 dof
    assert calibration.seeds_needed(1.0, 1.0) == 11  # (1.812 + 1.372) / sqrt(11) = 0.96; at 10 seeds 1.02
    assert calibration.seeds_needed(1.0, 10.0) == 2
    assert calibration.seeds_needed(0.5, 1.0) < calibration.seeds_needed(1.0, 1.0)


@pytest.mark.recipe
def test_an_injected_momentum_fault_is_never_called_equivalent(tmp_path):
    copy = tmp_path / "copy"
    for layer in LAYERS:
        shutil.copytree(ROOT / layer, copy / layer, ignore=shutil.ignore_patterns("__pycache__", "runs", "example"))
    (copy / "impls" / "rbm" / "faulty.py").write_text(FAULTY_FILE)
    (copy / "impls" / "backends" / "faulty.py").write_text("from impls.backends.numpy import *  # noqa: F403\n")
    with (copy / "impls" / "catalogue.py").open("a") as handle:
        handle.write(ENTRY)
    env = {**os.environ, "PYTHONPATH": str(copy), "RBM_BENCH_RUNS": str(tmp_path / "runs")}
    command = [sys.executable, "-m", "eval", "bench", "--profile", "default", "--impls", "numpy,faulty",
               "--seeds", "0,1,2"]  # fmt: skip
    bench = subprocess.run(command, cwd=copy, env=env, capture_output=True, text=True, timeout=1500)
    assert bench.returncode == 0, bench.stderr[-3000:]
    results = next((tmp_path / "runs").glob("*/results.csv"))
    done = subprocess.run([sys.executable, "-c", VERDICT, str(results)], cwd=copy, env=env, capture_output=True,
                          text=True, timeout=300)  # fmt: skip
    assert done.returncode == 0, done.stderr[-3000:]
    verdicts = json.loads(done.stdout)
    moved = moved_by_the_fault()
    caught = {metric: verdicts[metric][0] for metric in moved}
    assert all(mark in "✗?" for mark in caught.values()), verdicts
    assert any(mark == "✗" for mark in caught.values()), verdicts  # at least one score is called different


@pytest.mark.parametrize(
    "content", ["{", "[]", '{"scores": {"pl_per_unit": {"margin": -1}}}',
                '{"scores": {"pl_per_unit": {"margin": NaN}}}', '{"scores": {"pl_per_unit": {}}}',
                '{"scores": {"pl_per_unit": {"margin": "0.1"}}}'],
)  # fmt: skip
def test_a_broken_margins_file_is_one_line_saying_how_to_regenerate_it(tmp_path, content):
    from core.errors import ConfigError

    path = tmp_path / "margins.json"
    path.write_text(content)
    with pytest.raises(ConfigError) as error:
        calibrations.read(path)
    assert "python -m eval margins" in str(error.value) and "\n" not in str(error.value)
