"""Margins per model and data: a calibration is keyed by (model, dataset), a run reads its own or is not judged.

The verdict once read one calibration, measured on the Bach window RBM, for every model and dataset (±0.96 nats to
the RNN-RBM's log-likelihood per JSB frame). Here: the old file still reads, as the (rbm, bach) calibration; a run
whose (model, dataset) has no calibration gets "not judged: no margin" in the report and in the trend gate; the
calibration recipe derives from the profile's model; and the committed RNN-RBM-on-JSB calibration catches its
injected fault while not calling the unchanged recipe different.
"""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest

from core.errors import ConfigError
from eval.config import load_profile
from eval.gates import margins as calibration
from eval.history import trend
from eval.scoring import calibrations, catalogue
from reports.tables import equivalence_summary, verdict_table

LIKELIHOODS = ("ais_ll_per_row", "raise_ll_per_row")


def run_rows(model: str, dataset: str, shift: float = 0.0, seeds: int = 3) -> pd.DataFrame:
    """Final rows of a run: the reference and PyTorch, ``shift`` apart on the likelihoods, seed noise 0.01."""
    rng = np.random.default_rng(0)
    rows = []
    for seed in range(seeds):
        for metric in LIKELIHOODS:
            level = -7.0 + rng.normal(0, 0.3)
            for impl, delta in (("numpy", 0.0), ("torch", shift + rng.normal(0, 0.01))):
                rows.append({"impl": impl, "model": model, "dataset": dataset, "seed": seed, "epoch": np.nan,
                             "status": "ok", "metric": metric, "value": level + delta})  # fmt: skip
    return pd.DataFrame(rows)


def test_a_schema_1_file_reads_as_the_calibration_of_the_bach_window_rbm(tmp_path):
    old = {"schema": 1, "calibration_run": "x", "scores": {"ais_ll_per_row": {"unit": "nats/row", "margin": 0.96}}}
    (tmp_path / "margins.json").write_text(json.dumps(old))
    (found,) = calibrations.calibrations(tmp_path).values()
    assert (found.model, found.dataset) == calibrations.LEGACY == ("rbm", "bach")
    assert found.scores["ais_ll_per_row"]["margin"] == 0.96
    assert calibrations.calibration("rnn_rbm", "jsb", tmp_path) is None  # never lent to another model


def test_each_committed_calibration_is_keyed_by_its_model_dataset_and_units():
    found = calibrations.calibrations()
    assert {("rbm", "bach"), ("rnn_rbm", "jsb")} <= set(found)
    for (model, dataset), entry in found.items():
        assert entry.path.name == calibrations.file_name(model, dataset)
        assert entry.record["schema"] == calibrations.SCHEMA and entry.row_units
        for metric, score in entry.scores.items():
            assert score["unit"] == catalogue.describe(metric)[0], (model, dataset, metric)
    assert found["rbm", "bach"].row_units == 156 and found["rnn_rbm", "jsb"].row_units == 88
    rbm, rnn = (calibrations.margins(None, *key) for key in (("rbm", "bach"), ("rnn_rbm", "jsb")))
    assert rbm["ais_ll_per_row"] != rnn["ais_ll_per_row"]
    assert rnn["pl_per_unit"] is None  # the RNN-RBM has no pseudo-likelihood: nothing calibrated, nothing borrowed


def test_two_calibrations_of_one_key_and_a_path_as_dataset_are_refused(tmp_path):
    entry = {"schema": 2, "model": "rbm", "dataset": "bach", "scores": {"polyphony": {"margin": 0.2}}}
    for name in ("a.json", "b.json"):
        (tmp_path / name).write_text(json.dumps(entry))
    with pytest.raises(ConfigError, match="second calibration of rbm on bach"):
        calibrations.calibrations(tmp_path)
    with pytest.raises(ConfigError, match="not a path"):
        calibrations.file_name("rnn_rbm", "jsb:/data/JSB_Chorales.mat")


def test_a_run_without_a_calibration_of_its_model_and_data_is_not_judged():
    frame = run_rows("rnn_rbm", "nottingham", shift=5.0)  # a gross fault: any borrowed margin would say ✗
    table = verdict_table(frame, {}, 0.05)
    assert (table["PyTorch"] == calibrations.NO_MARGIN).all(), table
    assert table.loc["ais_ll_per_row", "margin"].startswith("none (no calibration of rnn_rbm/nottingham")
    assert "not judged" in equivalence_summary(frame, {}, 0.05)
    overridden = verdict_table(frame, {"ais_ll_per_row": 1.0}, 0.05)  # the profile's margin still applies
    assert overridden.loc["ais_ll_per_row", "PyTorch"].startswith("✗")
    assert "the profile's" in overridden.loc["ais_ll_per_row", "margin"]
    assert overridden.loc["raise_ll_per_row", "PyTorch"] == calibrations.NO_MARGIN


def test_a_calibrated_run_is_judged_with_its_own_margin_and_basis():
    table = verdict_table(run_rows("rnn_rbm", "jsb"), {}, 0.05)
    margin = calibrations.calibration("rnn_rbm", "jsb").scores["ais_ll_per_row"]["margin"]
    shown = table.loc["ais_ll_per_row", "margin"]
    assert "calibration rnn_rbm/jsb, nats/row, 88-unit rows" in shown and f"{margin:.3g}"[:3] in shown
    assert table.loc["ais_ll_per_row", "PyTorch"].startswith("✓")
    assert "pl_per_unit" not in table.index  # a score the run does not have is no row of its verdict


def test_the_trend_gate_uses_the_series_own_margin_or_does_not_judge():
    commits = [f"c{i}" for i in range(30)]
    means = [0.0] * 25 + [-3.0] * 5  # a drop of 3 nats per row: beyond any margin
    judged = trend.change(commits, means, "ais_ll_per_row", model="rbm", dataset="bach")
    assert judged.status == "regression"
    assert judged.margin == calibrations.calibration("rbm", "bach").scores["ais_ll_per_row"]["margin"]
    assert trend.change(commits, means, "ais_ll_per_row", model="rnn_rbm", dataset="nottingham").status == (
        "not judged"
    )
    series = pd.DataFrame({"commit": commits, "mean": means, "model": "rnn_rbm", "dataset": "musedata"})
    table = trend.gate({"ais_ll_per_row": series})
    assert table.status.tolist() == ["not judged"] and not table.failed.any()
    assert trend.change(commits, means, "train_frames_per_s").margin == 0.0  # outside the verdict: no floor


def test_the_recipe_change_and_the_fault_derive_from_the_profile_model():
    rbm = calibration.plan(load_profile("margins"))
    old = calibrations.calibration("rbm", "bach").record
    assert (rbm.base, rbm.change, rbm.fault) == (old["change"]["from"], old["change"]["to"], old["fault"])
    rnn = calibration.plan(load_profile("margins_rnn_jsb"))
    assert rnn.change == rnn.base | {"model.learning_rate": rnn.base["model.learning_rate"] / 2}
    assert rnn.fault == {"model.learning_rate": rnn.base["model.learning_rate"] / 4}
    nade = calibration.plan(load_profile("margins_rnn_nade_jsb"))
    assert nade.fault == {"model.learning_rate": nade.base["model.learning_rate"] / 4}
    for name, recipe in (("margins", rbm), ("margins_rnn_jsb", rnn), ("margins_rnn_nade_jsb", nade)):
        # each calibration profile sweeps its plan
        assert {k: list(v) for k, v in load_profile(name).sweep.items()} == recipe.sweep(), name


def test_the_derivation_catches_a_fault_and_passes_the_unchanged_recipe():
    """Synthetic frames: halving the rate moves nothing beyond noise, the fault moves the likelihoods by 2 nats."""
    rng = np.random.default_rng(1)
    recipe = calibration.Plan({"model.learning_rate": 0.1, "model.cd_steps": 5.0},
                              {"model.learning_rate": 0.05, "model.cd_steps": 5.0},
                              {"model.learning_rate": 0.1, "model.cd_steps": 1.0}, "halved", "CD-1")  # fmt: skip
    rows = []
    for seed in range(5):
        level = rng.normal(-7, 0.3)
        for point, move in ((recipe.base, 0.0), (recipe.change, 0.0), (recipe.fault, -2.0)):
            for metric in LIKELIHOODS:
                rows.append({"impl": "numpy", "model": "rnn_rbm", "dataset": "jsb", "seed": seed, "epoch": np.nan,
                             "status": "ok", "metric": metric, "value": level + move + rng.normal(0, 0.05),
                             **point})  # fmt: skip
    noise = run_rows("rnn_rbm", "jsb")
    scores = calibration.derive(pd.DataFrame(rows), noise, recipe)
    assert set(scores) == set(LIKELIHOODS)
    for entry in scores.values():
        assert entry["basis"].startswith("noise floor") and entry["fault_verdict"] == "✗"
        assert set(entry["unchanged_verdicts"].values()) == {"✓"}
    with pytest.raises(ConfigError, match=r"no finished rows at model\.learning_rate = 0\.05"):
        calibration.derive(pd.DataFrame(rows).query("`model.learning_rate` > 0.06"), noise, recipe)


def test_the_committed_rnn_rbm_calibration_catches_its_fault_and_passes_the_unchanged_recipe():
    scores = calibrations.calibration("rnn_rbm", "jsb").scores
    moved = [m for m, e in scores.items() if (e["fault_effect"][1] > 0 or e["fault_effect"][2] < 0)
             and abs(e["fault_effect"][0]) >= e["margin"]]  # fmt: skip
    assert moved, "the fault must move a score beyond its margin, or it tests nothing"
    assert all(scores[m]["fault_verdict"] in ("✗", "?") for m in moved), {m: scores[m]["fault_verdict"] for m in moved}
    assert all("✗" not in e["unchanged_verdicts"].values() for e in scores.values())


def test_the_margins_command_on_a_broken_calibration_is_one_line_and_exit_2(tmp_path, capsys):
    from eval.__main__ import main  # in process: the command line's guard, without a second interpreter's imports

    (tmp_path / "rbm-bach.json").write_text('{"schema": 2, "model": "rbm"')
    assert main(["margins", "--plan", "margins", "--out", str(tmp_path)]) == 2
    lines = capsys.readouterr().err.strip().splitlines()
    assert len(lines) == 1 and "rbm-bach.json: not a margins calibration" in lines[0], lines
    assert "python -m eval margins" in lines[0]
    (tmp_path / "rbm-bach.json").unlink()  # no run folder where the calibration run should be: one line too
    assert main(["margins", str(tmp_path / "nothing"), "--out", str(tmp_path)]) == 2
    assert len(capsys.readouterr().err.strip().splitlines()) == 1


def test_a_margin_is_never_below_the_noise_floor_three_seeds_resolve():
    """Halving the rate moves the likelihoods clearly (shared random streams: a precise paired effect) but by 0.02,
    half of which is below the frameworks' noise floor: the margin is the floor, or the unchanged recipe gets ?/✗."""
    recipe = calibration.Plan({"model.learning_rate": 0.1}, {"model.learning_rate": 0.05},
                              {"model.learning_rate": 0.025}, "halved", "quarter")  # fmt: skip
    rows = [{"impl": "numpy", "model": "rnn_rbm", "dataset": "jsb", "seed": seed, "epoch": np.nan, "status": "ok",
             "metric": metric, "value": -7.0 + 0.1 * seed + move + 0.001 * (seed % 2), **point}
            for seed in range(5) for metric in LIKELIHOODS
            for point, move in ((recipe.base, 0.0), (recipe.change, -0.02), (recipe.fault, -0.5))]  # fmt: skip
    for metric, entry in calibration.derive(pd.DataFrame(rows), run_rows("rnn_rbm", "jsb"), recipe).items():
        assert entry["effect_of_change"][2] < 0 and abs(entry["effect_of_change"][0]) / 2 < entry["noise_floor"]
        assert entry["margin"] == entry["noise_floor"] and "half its effect is below it" in entry["basis"], metric
        assert entry["fault_verdict"] == "✗"
