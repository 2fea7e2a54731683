"""The RNN-RBM through the whole bench: same inputs for every framework, every test frame bracketed (and the exact
answer inside the bracket), pieces generated and described, frames/s beside a roofline, a report that renders."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

import datasets
from eval.bench.runfolder import RunFolder
from eval.scoring.pieces import piece_names
from reports.render import render

pytestmark = pytest.mark.bench  # on the session's finished RNN-RBM run (tests/conftest.py: RNN_PROFILE)


@pytest.fixture
def rnn(rnn_run):
    """The shared run as (folder, rows, implementations): a 10-hidden RNN-RBM, few enough units to enumerate."""
    return rnn_run.path, rnn_run.frame, rnn_run.impls


def final(frame: pd.DataFrame, metric: str) -> pd.DataFrame:
    return frame[(frame.metric == metric) & frame.epoch.isna() & (frame.status == "ok")]


def test_every_framework_trains_the_rnn_rbm_on_the_same_inputs(rnn):
    _, frame, ran = rnn
    trained = frame[frame.impl.isin(ran)]
    assert set(trained.impl) == set(ran) and (trained.status == "ok").all(), trained[trained.status != "ok"]
    assert set(trained.model) == {"rnn_rbm"}
    for column in ("dataset_hash", "init_hash", "order_hash"):
        assert (trained.groupby("seed")[column].nunique() == 1).all()
    curve = frame[(frame.metric == "cd_cost") & (frame.impl == "numpy") & (frame.seed == 0)]
    assert len(curve) == 4 and curve.epoch.tolist() == [1, 2, 3, 4]


def test_the_exact_per_frame_answer_lies_inside_the_bracket(rnn):
    _, frame, ran = rnn
    for impl in ran:
        for seed in sorted(set(frame.seed.dropna())):
            mine = frame[(frame.impl == impl) & (frame.seed == seed)]
            pick = lambda metric, rows=mine: final(rows, metric).value.item()
            ais, raise_, exact = (pick(f"{m}_nll_per_frame") for m in ("ais", "raise", "exact"))
            assert ais - 0.02 <= exact <= raise_ + 0.02, (impl, seed, ais, exact, raise_)
            assert raise_ - ais < 0.1
            assert pick("ais_ll_per_row") == pytest.approx(-ais)  # a frame is a row of the Bach-shaped data


def test_pieces_are_generated_and_described_as_pieces_and_as_windows(rnn):
    run_dir, frame, _ = rnn
    folder = RunFolder(run_dir)
    pieces = np.load(folder.samples_path("numpy-s0"))
    assert pieces.shape == (4, 64, datasets.WindowSpec().row_width) and pieces.dtype == np.uint8
    for metric in (*piece_names(), "music_structure_js", "note_density", "generated_frames_per_s"):
        assert len(final(frame[frame.impl == "numpy"], metric)) == frame.seed.nunique(), metric  # one per seed


def test_throughput_is_frames_per_second_beside_the_step_roofline(rnn):
    _, frame, ran = rnn
    timing = frame[(frame.phase == "timing") & (frame.status == "ok")]
    products = timing[timing.metric == "step_products_ms"]
    assert set(products.impl) == set(ran)  # each timing process measures one update's products alone
    roof = timing[(timing.impl == "roofline") & (timing.metric == "roofline_frames_per_s")].value.item()
    frames = timing[(timing.impl == "numpy") & (timing.metric == "step_frames")].value.item()
    assert 0 < frames <= 4 * 32  # the epoch's mean update: at most RNN_PROFILE's batch_size x chunk_length frames
    assert roof == pytest.approx(frames / products.value.min() * 1e3)  # the one rule: the fastest of the run
    for impl in ran:
        mine = timing[timing.impl == impl]
        speed = mine[mine.metric == "train_frames_per_s"].value.item()
        assert speed > 0 and mine[mine.metric == "ratio_to_roofline"].value.item() == pytest.approx(speed / roof)
        fastest, draws = products.value.min(), mine[mine.metric == "draw_ms"].value.item()
        ceiling = mine[mine.metric == "ceiling_ratio"].value.item()  # the products (NumPy's, the fastest) + its draws
        assert ceiling == pytest.approx(fastest / (fastest + draws)) and 0 < ceiling < 1
    assert not (frame.metric == "sklearn_windows_per_s").any()  # scikit-learn has no RNN-RBM to time


def test_the_report_renders_pieces_audio_and_the_models_side_by_side(rnn_run, window_run, copy_run):
    run_dir = copy_run(rnn_run, "rnn")  # rendering writes into the run: on a copy
    page = render(run_dir, beside=[window_run.path]).read_text()  # the window RBM on the same synthetic music
    assert "Models side by side" in page and "RNN-RBM · NumPy (reference)" in page
    assert "window RBM · NumPy (reference)" in page
    assert "pieces of 64 rows, generated frame by frame" in page
    wavs = sorted((run_dir / "samples").glob("numpy-s0-*.wav"))
    assert wavs and "frames/s" in (run_dir / "report.md").read_text()
