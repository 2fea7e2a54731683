"""Margins files (reports/baselines/margins/<model>-<dataset>.json), every field checked by every command reading them.

A ``seeds_needed`` of text crashed ``reports render``; a misspelt field, an unknown model or a score the verdict does
not test passed unsaid. Each is now one line naming the file and the field, exit 2, from ``eval margins``, ``reports
render`` and the trend gate (``reports history``); ``eval margins`` given a run that is not a calibration run says
so (it was a ``KeyError``), and it never writes a file that the readers would refuse.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest

from core.errors import ConfigError
from eval.bench.runfolder import RunFolder
from eval.config import load_profile
from eval.gates import margins
from eval.history import store
from eval.scoring import calibrations
from tests.history.test_history import COMMITS, SEEDS, fake_run

ROOT = Path(__file__).resolve().parents[2]
COMMITTED = json.loads((calibrations.FOLDER / "rbm-bach.json").read_text())
LAYERS = ("core", "datasets", "impls", "eval", "reports")


def changed(edit) -> dict:
    """The committed rbm/bach calibration with ``edit(record, its pl_per_unit entry)`` applied (a fresh copy)."""
    record = json.loads(json.dumps(COMMITTED))
    edit(record, record["scores"]["pl_per_unit"])
    return record


def renamed(record: dict, old: str, new: str) -> None:
    record["scores"][new] = record["scores"].pop(old)


# (the edit, the field the line must name); the first two through a second interpreter, all through the command
BROKEN = {
    "seeds_needed of text": (lambda r, e: e.update(seeds_needed="three"), "scores.pl_per_unit.seeds_needed"),
    "a schema of text": (lambda r, e: r.update(schema="2"), "schema"),
    "a model not in the catalogue": (lambda r, e: r.update(model="nade"), "model"),
    "a score no verdict tests": (lambda r, e: renamed(r, "pl_per_unit", "pl_per_units"), "scores.pl_per_units"),
    "a misspelt field": (lambda r, e: e.update(seed_needed=e.pop("seeds_needed")), "scores.pl_per_unit.seed_needed"),
    "a negative noise_sd": (lambda r, e: e.update(noise_sd=-0.1), "scores.pl_per_unit.noise_sd"),
    "an infinite noise floor": (lambda r, e: e.update(noise_floor=float("inf")), "scores.pl_per_unit.noise_floor"),
    "another score's unit": (lambda r, e: e.update(unit="nats/row"), "scores.pl_per_unit.unit"),
    "a verdict that is none": (lambda r, e: e.update(fault_verdict="yes"), "scores.pl_per_unit.fault_verdict"),
    "an effect of two numbers": (lambda r, e: e.update(fault_effect=[0.1, 0.2]), "scores.pl_per_unit.fault_effect"),
    "a fractional seed count": (lambda r, e: e.update(seeds_needed=2.5), "scores.pl_per_unit.seeds_needed"),
    "row_units of text": (lambda r, e: r.update(row_units="156"), "row_units"),
    "a power of 80": (lambda r, e: r.update(power=80), "power"),
    "a schema of true": (lambda r, e: r.update(schema=True), "schema"),
    "a dataset that is a path": (lambda r, e: r.update(dataset="data/bach"), "dataset"),
    "no dataset": (lambda r, e: r.pop("dataset"), "dataset"),
    "no scores": (lambda r, e: r.update(scores={}), "scores"),
    "a fault of text": (lambda r, e: r.update(fault={"model.momentum": "0.5"}), "fault"),
}  # fmt: skip
SECOND_INTERPRETER = list(BROKEN)[:2]


def command(*args: str, cwd: Path = ROOT, **env: str) -> subprocess.CompletedProcess:
    """``python -m ARGS`` in ``cwd`` (a copy of the layers: its own reports/baselines/margins), as a user runs it."""
    environment = {**os.environ, "PYTHONPATH": str(cwd), **env}
    return subprocess.run([sys.executable, "-m", *args], cwd=cwd, env=environment, capture_output=True, text=True,
                          timeout=600)  # fmt: skip


def refused(done: subprocess.CompletedProcess, *parts: str) -> str:
    """The one line of a command that exited 2 without a traceback, holding each of ``parts``."""
    assert done.returncode == 2 and "Traceback" not in done.stderr, done.stderr[-3000:]
    (line,) = done.stderr.strip().splitlines()
    assert all(part in line for part in parts), line
    return line


def layers_with(tmp_path: Path, name: str, record: dict) -> Path:
    """A copy of the layers whose margins folder holds ``record`` as ``name`` in place of the committed files."""
    copy = tmp_path / "layers"
    for layer in LAYERS:
        shutil.copytree(ROOT / layer, copy / layer, ignore=shutil.ignore_patterns("__pycache__", "runs", "example*"))
    folder = copy / "reports" / "baselines" / "margins"
    shutil.rmtree(folder)
    folder.mkdir()
    (folder / name).write_text(json.dumps(record))
    return folder / name


def in_process(capsys, *args: str) -> tuple[int, str]:
    """``python -m eval ARGS`` in this process (argument parsing, the guard): its exit code and its stderr."""
    from eval.__main__ import main

    code = main(list(args))
    return code, capsys.readouterr().err


@pytest.mark.parametrize("case", BROKEN)
def test_eval_margins_names_the_file_and_the_field_of_a_broken_margins_file(tmp_path, capsys, case):
    edit, field = BROKEN[case]
    path = tmp_path / "rbm-bach.json"
    path.write_text(json.dumps(changed(edit)))
    args = ("margins", "--plan", "margins", "--out", str(tmp_path))
    if case in SECOND_INTERPRETER:
        done = command("eval", *args)
    else:
        code, err = in_process(capsys, *args)
        done = subprocess.CompletedProcess(args, code, "", err)
    refused(done, f"{path}: not a margins calibration ({field}: ", "python -m eval margins")


def test_a_newer_schema_says_to_update_the_checkout_and_the_committed_files_read(tmp_path):
    path = tmp_path / "rbm-bach.json"
    path.write_text(json.dumps(changed(lambda r, e: r.update(schema=calibrations.SCHEMA + 1))))
    with pytest.raises(
        ConfigError, match=r"margins schema 3, newer than this code reads \(1 and 2\); update the checkout"
    ):
        calibrations.read(path)
    assert {("rbm", "bach"), ("rnn_rbm", "jsb")} <= set(calibrations.calibrations())  # each field of them fits


def test_a_calibration_that_would_not_read_back_is_not_written(tmp_path):
    """A noise run of the reference alone gives NaN margins: refused before writing, the old file kept."""
    old = tmp_path / "rbm-bach.json"
    old.write_text(json.dumps(COMMITTED))
    recipe = margins.plan(load_profile("margins"))
    scores = {"pl_per_unit": COMMITTED["scores"]["pl_per_unit"] | {"margin": float("nan")}}
    with pytest.raises(ConfigError, match=r"rbm-bach\.json: not written: scores\.pl_per_unit\.margin: nan is not"):
        margins.write(tmp_path / "cal", tmp_path / "noise", scores, recipe, ("rbm", "bach"), folder=tmp_path)
    assert json.loads(old.read_text()) == COMMITTED


@pytest.mark.parametrize("rows", ["of this version", "naming no model"])
def test_eval_margins_on_a_run_that_is_no_calibration_run_says_so(tmp_path, capsys, rows):
    run = fake_run(tmp_path, "plain", COMMITS[0], {("numpy", "pl_per_unit"): [-0.15] * SEEDS})
    args = ("margins", str(run), "--noise", str(run), "--out", str(tmp_path / "margins"))
    if rows == "of this version":  # one line before, saying only that rows were missing
        code, err = in_process(capsys, *args)
        done = subprocess.CompletedProcess(args, code, "", err)
    else:  # an older run's rows: this was a KeyError
        folder = RunFolder(run)
        folder.write_results(pd.read_csv(folder.results_csv).drop(columns=["model"]))
        done = command("eval", *args)
    refused(done, f"{run}: not a calibration run (its profile quick sweeps nothing", "--plan PROFILE")
    assert not (tmp_path / "margins").exists()


def test_the_trend_gate_refuses_a_broken_margins_file_in_one_line(tmp_path):
    """``reports history`` judges each series with its calibration: a score no verdict tests is named, not skipped."""
    path = layers_with(tmp_path, "rbm-bach.json", changed(lambda r, e: renamed(r, "pl_per_unit", "pl_unit")))
    history = tmp_path / "history"
    scores = {("numpy", "pl_per_unit"): [-0.15] * SEEDS}
    store.record(fake_run(tmp_path, "run", COMMITS[0], scores, dataset="bach"), store=history)
    done = command("reports", "history", "--out", str(tmp_path / "page"), cwd=path.parents[3],
                   RBM_BENCH_HISTORY=str(history))  # fmt: skip
    refused(done, f"{path}: not a margins calibration (scores.pl_unit: not a score the verdict tests")


@pytest.mark.bench
def test_reports_render_names_a_non_numeric_seeds_needed_instead_of_crashing(window_run, copy_run, tmp_path):
    """The run's own calibration (its rows say rbm on bach) holds ``seeds_needed: "three"``: once a TypeError."""
    run = copy_run(window_run)
    folder = RunFolder(run)
    folder.write_results(pd.read_csv(folder.results_csv).assign(dataset="bach"))
    path = layers_with(tmp_path, "rbm-bach.json", changed(lambda r, e: e.update(seeds_needed="three")))
    done = command("reports", "render", str(run), cwd=path.parents[3])
    refused(done, f"{path}: not a margins calibration (scores.pl_per_unit.seeds_needed: 'three' is not a whole")
