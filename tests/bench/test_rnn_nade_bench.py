"""The RNN-NADE through the whole bench: the same inputs for every framework, every test frame scored exactly (and the
same NLL from every framework), pieces generated ancestrally and described, frames/s beside the masked product's
roofline, a report that says no bracket is needed and puts the three models side by side; and early stopping, which
keeps the best epoch of a curve that worsens."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from conftest import NADE_PROFILE, profile_toml

import datasets
from eval.bench.runfolder import RunFolder
from eval.scoring.nade import pieces_log_probs
from eval.scoring.pieces import piece_names
from impls import RNNNADEParams
from reports.render import render

ROOT = Path(__file__).resolve().parents[2]
pytestmark = pytest.mark.bench  # on the session's finished RNN-NADE run (tests/conftest.py: NADE_PROFILE)
# Three epochs of float32 Adam in four frameworks: measured 8e-9 nats per frame apart at most (CPU, 2026-12-05).
SAME_NLL = 1e-4


def final(frame: pd.DataFrame, metric: str) -> pd.DataFrame:
    return frame[(frame.metric == metric) & frame.epoch.isna() & (frame.status == "ok")]


def test_every_framework_trains_the_rnn_nade_on_the_same_inputs_to_the_same_exact_nll(nade_run):
    frame, ran = nade_run.frame, nade_run.impls
    trained = frame[frame.impl.isin(ran)]
    assert set(trained.impl) == set(ran) and (trained.status == "ok").all(), trained[trained.status != "ok"]
    assert set(trained.model) == {"rnn_nade"}
    for column in ("dataset_hash", "init_hash", "order_hash"):
        assert (trained.groupby("seed")[column].nunique() == 1).all()
    curve = frame[(frame.metric == "valid_nll_per_frame") & (frame.impl == "numpy")]
    assert curve.epoch.tolist() == [1, 2, 3] and curve.value.is_monotonic_decreasing  # a learning model
    nll = final(frame, "exact_nll_per_frame").set_index("impl").value
    assert set(nll.index) == set(ran) and 0 < nll["numpy"] < 156 * np.log(2)  # below coin flips
    assert (nll - nll["numpy"]).abs().max() < SAME_NLL, nll
    rows = final(frame, "exact_ll_per_row").set_index("impl").value
    assert np.allclose(rows, -nll[rows.index])  # a frame is a row of the Bach-shaped data
    assert (final(frame, "scored_frames").value == 630).all()  # every test frame (tests/conftest.py: ll_windows)
    assert not frame.metric.str.startswith(("ais_", "raise_", "bracket_")).any()  # nothing to bracket


def test_pieces_are_drawn_ancestrally_and_described_as_pieces_and_as_windows(nade_run):
    folder, frame = RunFolder(nade_run.path), nade_run.frame
    for impl in nade_run.impls:
        pieces = np.load(folder.samples_path(f"{impl}-s0"))
        assert pieces.shape == (4, 64, datasets.WindowSpec().row_width) and pieces.dtype == np.uint8
        assert 0 < pieces.mean() < 0.5
    for metric in (*piece_names(), "music_structure_js", "note_density", "generated_frames_per_s"):
        assert len(final(frame[frame.impl == "numpy"], metric)) == 1, metric


def test_throughput_is_frames_per_second_beside_the_masked_products_roofline(nade_run):
    frame, ran = nade_run.frame, nade_run.impls
    timing = frame[(frame.phase == "timing") & (frame.status == "ok")]
    products = timing[timing.metric == "step_products_ms"]
    assert set(products.impl) == set(ran)
    roof = timing[(timing.impl == "roofline") & (timing.metric == "roofline_frames_per_s")].value.item()
    frames = timing[(timing.impl == "numpy") & (timing.metric == "step_frames")].value.item()
    assert 0 < frames <= 4 * 32  # the epoch's mean update: at most batch_size x chunk_length frames
    assert roof == pytest.approx(frames / products.value.min() * 1e3)
    for impl in ran:
        mine = timing[timing.impl == impl]
        speed = mine[mine.metric == "train_frames_per_s"].value.item()
        assert speed > 0 and mine[mine.metric == "ratio_to_roofline"].value.item() == pytest.approx(speed / roof)


def test_the_report_needs_no_bracket_and_shows_three_models_side_by_side(nade_run, rnn_run, window_run, copy_run):
    run_dir = copy_run(nade_run, "nade")  # rendering writes into the run: on a copy
    page = render(run_dir, beside=[rnn_run.path, window_run.path]).read_text()
    report = (run_dir / "report.md").read_text()
    assert "## Exact log-likelihood" in report and "no bracket needed" in report
    assert "## Log-likelihood bracket" not in report and "of its conditional RBM" not in report  # the RNN-RBM's
    assert "by ancestral sampling" in report and "frames/s" in report
    side = report.split("## Models side by side")[1].split("\n## ")[0]
    for line in ("RNN-NADE · NumPy (reference)", "RNN-RBM · NumPy (reference)", "window RBM · NumPy (reference)"):
        assert line in side and line in page
    nade_line = next(row for row in side.splitlines() if row.startswith("| RNN-NADE · NumPy"))
    nll = final(nade_run.frame[nade_run.frame.impl == "numpy"], "exact_nll_per_frame").value.item()
    assert f"| {nll:.2f} " in nade_line and nade_line.count("| —") >= 2  # its exact value, and no bracket
    assert sorted((run_dir / "samples").glob("numpy-s0-*.wav"))


def test_early_stopping_keeps_the_best_epoch_of_a_curve_that_worsens(tmp_path, cache_dir):
    """A rate so large that the validation curve turns up after a few epochs (measured); patience 2 stops two points
    of the curve later, and the weights scored and saved are the best epoch's (re-scored here on every validation
    frame, as the curve scores them: its best value, not its last)."""
    profile = {**NADE_PROFILE, "model": NADE_PROFILE["model"] | {"learning_rate": 1.0, "precision": "float64"}}
    profile["run"] = NADE_PROFILE["run"] | {"epochs": 6, "impls": ["numpy"], "patience": 2}
    profile["eval"] = NADE_PROFILE["eval"] | {"n_samples": 2, "piece_rows": 32, "pl_valid_windows": 1000}  # all 360
    path, runs = tmp_path / "stop.toml", tmp_path / "runs"
    path.write_text(profile_toml(profile))
    environment = {k: v for k, v in os.environ.items() if k not in ("RBM_BENCH_FAULT", "RBM_BENCH_NO_BENCH")}
    environment |= {"RBM_BENCH_RUNS": str(runs), "RBM_BENCH_CACHE": str(cache_dir)}
    command = [sys.executable, "-m", "eval", "bench", "--profile", str(path)]
    done = subprocess.run(command, cwd=ROOT, env=environment, capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr[-3000:]
    folder = RunFolder(next(runs.iterdir()))
    frame = folder.results()
    curve = frame[frame.metric == "valid_nll_per_frame"].set_index("epoch").value
    best, trained = (final(frame, m).value.item() for m in ("best_epoch", "epochs_trained"))
    assert best == curve.idxmin() and trained == best + 2 < 6 and curve.index.max() == trained
    assert curve[trained] > curve[best]  # the last epoch is not the one kept
    dataset = datasets.load(folder.dataset_dir)
    pieces = [datasets.frame_table(dataset)[frames] for frames in datasets.piece_frames(dataset, "valid")]
    with np.load(folder.params_path("numpy-s0")) as saved:
        kept = RNNNADEParams(*(saved[name] for name in RNNNADEParams.names()))
    assert -pieces_log_probs(kept, pieces).mean() == pytest.approx(curve[best], rel=1e-12)  # every valid frame
