"""Whole-piece statistics: MusPy's groove consistency, bar repetition and similarity, pitch-class drift."""

from __future__ import annotations

import math

import numpy as np
import pytest

import datasets
from datasets.encoding import decode_states
from eval.scoring.pieces import groove_consistency, piece_names, piece_statistics, play_and_starts

SPEC = datasets.WindowSpec()  # pitches 24..101, [play | articulate]: 156 columns
PLAY_ONLY = datasets.WindowSpec(articulation=False)
ROW_SECONDS = 60.0 / 120.0 / 4  # decode_states' default tempo: a row is a sixteenth note at 120 bpm


def coin_flips(rng: np.random.Generator, rows: int, spec: datasets.WindowSpec, density: float = 0.05) -> np.ndarray:
    return (rng.random((rows, spec.row_width)) < density).astype(np.uint8)


def muspy_groove(piece: np.ndarray, spec: datasets.WindowSpec, bar_rows: int) -> float:
    """MusPy's own groove consistency of the decoded piece, one row per MusPy time step."""
    import muspy

    midi = decode_states(piece, low=spec.low, articulation=spec.articulation)
    notes = [
        muspy.Note(
            time=round(note.start / ROW_SECONDS),
            pitch=note.pitch,
            duration=round((note.end - note.start) / ROW_SECONDS),
            velocity=note.velocity,
        )
        for note in midi.instruments[0].notes
    ]
    return muspy.groove_consistency(muspy.Music(resolution=4, tracks=[muspy.Track(notes=notes)]), bar_rows)


def ours(piece: np.ndarray, spec: datasets.WindowSpec, bar_rows: int) -> float:
    return groove_consistency(play_and_starts(piece, spec)[1], bar_rows)


@pytest.mark.parametrize("spec", [SPEC, PLAY_ONLY], ids=["articulation", "play-only"])
def test_groove_consistency_equals_muspys(spec):
    rng = np.random.default_rng(1)
    for rows, bar_rows, density in [(32, 16, 0.05), (57, 16, 0.02), (240, 16, 0.01), (30, 4, 0.1), (41, 8, 0.03)]:
        piece = coin_flips(rng, rows, spec, density)
        n_bars = rows // bar_rows
        piece[n_bars * bar_rows - 1 :] = 0  # the last note ends inside the last whole bar
        assert piece[(n_bars - 1) * bar_rows : n_bars * bar_rows - 1, : spec.n_pitches].any()
        expected = muspy_groove(piece, spec, bar_rows)
        assert ours(piece, spec, bar_rows) == pytest.approx(expected, abs=1e-9)
        assert piece_statistics([piece], spec, bar_rows)["groove_consistency"] == pytest.approx(expected, abs=1e-9)


def test_muspy_counts_measures_up_to_the_last_note_end():
    """MusPy's value is ours on the piece cut or padded with silence to ``(end // bar + 1) * bar`` rows."""
    rng = np.random.default_rng(2)
    for rows in (32, 48, 50, 64, 100):
        piece = coin_flips(rng, rows, SPEC)
        if rows % 2:  # a silent tail: MusPy drops the silent bars after the last note
            piece[rng.integers(rows - 20, rows) :] = 0
        end = int(np.flatnonzero(piece[:, : SPEC.n_pitches].any(1))[-1]) + 1  # the last note's end row
        measured = (end // 16 + 1) * 16
        fitted = np.vstack([piece, np.zeros((max(measured - rows, 0), SPEC.row_width), np.uint8)])[:measured]
        assert ours(fitted, SPEC, 16) == pytest.approx(muspy_groove(piece, SPEC, 16), abs=1e-9)
    cut = coin_flips(rng, 32, SPEC)  # sounds in its last row: MusPy adds an empty third measure, we do not
    assert ours(cut, SPEC, 16) != pytest.approx(muspy_groove(cut, SPEC, 16))


def test_groove_consistency_of_a_crafted_piece():
    piece = np.zeros((12, SPEC.row_width), np.uint8)
    for row in (0, 2, 4, 6, 8):  # bars of 4 rows: onsets at {0, 2}, {0, 2}, {0}
        piece[row, 10] = piece[row, SPEC.n_pitches + 10] = 1
    piece[9, 10] = 1  # held from row 8: no onset
    assert ours(piece, SPEC, 4) == pytest.approx(1 - 1 / 8)
    assert muspy_groove(piece, SPEC, 4) == pytest.approx(1 - 1 / 8)


def test_a_repeated_bar_repeats_and_coin_flips_do_not():
    rng = np.random.default_rng(3)
    bar = coin_flips(rng, 16, SPEC)
    repeated = [np.tile(coin_flips(rng, 16, SPEC), (8, 1)) for _ in range(3)]
    noise = [coin_flips(rng, 128, SPEC) for _ in range(3)]
    looped = piece_statistics([np.tile(bar, (8, 1))], SPEC)
    assert looped["bar_repetition"] == pytest.approx(7 / 8)  # the first statement is new, seven repeat it
    assert looped["bar_self_similarity"] == 1.0 and looped["groove_consistency"] == pytest.approx(1.0)
    assert math.isnan(looped["bar_self_similarity_excess"])  # needs another piece to compare with
    many, flips = piece_statistics(repeated, SPEC), piece_statistics(noise, SPEC)
    assert flips["bar_repetition"] == 0.0
    assert many["bar_self_similarity"] > 0.9 > 0.1 > flips["bar_self_similarity"]
    assert many["bar_self_similarity_excess"] > 0.9 and abs(flips["bar_self_similarity_excess"]) < 0.01


def test_silent_bars_are_not_counted_as_repetitions():
    piece = np.zeros((64, SPEC.row_width), np.uint8)
    piece[16:32, 5] = 1  # bars: silent, a held note, silent, the held note again
    piece[48:64, 5] = 1
    assert piece_statistics([piece], SPEC)["bar_repetition"] == 0.5
    assert math.isnan(piece_statistics([piece[:32] * 0], SPEC)["bar_repetition"])


def test_pitch_class_drift():
    rng = np.random.default_rng(4)
    half = coin_flips(rng, 40, SPEC)
    half[:, SPEC.n_pitches :] = half[:, : SPEC.n_pitches]  # every sounding cell struck: the same notes twice
    assert piece_statistics([np.vstack([half, half])], SPEC)["pitch_class_drift"] == pytest.approx(0.0, abs=1e-12)
    c_then_f_sharp = np.zeros((64, SPEC.row_width), np.uint8)
    c_then_f_sharp[0:32:4, 60 - SPEC.low] = c_then_f_sharp[0:32:4, SPEC.n_pitches + 60 - SPEC.low] = 1
    c_then_f_sharp[32:64:4, 66 - SPEC.low] = c_then_f_sharp[32:64:4, SPEC.n_pitches + 66 - SPEC.low] = 1
    drift = piece_statistics([c_then_f_sharp], SPEC)["pitch_class_drift"]
    assert drift > 0.5 and drift == pytest.approx(1.0)  # disjoint pitch classes


def test_short_pieces_are_skipped():
    rng = np.random.default_rng(5)
    short = [coin_flips(rng, 31, SPEC), coin_flips(rng, 0, SPEC)]
    empty = piece_statistics(short, SPEC)
    assert tuple(empty) == piece_names() and all(math.isnan(value) for value in empty.values())
    assert all(math.isnan(value) for value in piece_statistics([], SPEC).values())
    long = coin_flips(rng, 64, SPEC)
    np.testing.assert_equal(piece_statistics([*short, long], SPEC), piece_statistics([long], SPEC))
    assert not math.isnan(piece_statistics([coin_flips(rng, 8, SPEC)], SPEC, bar_rows=4)["groove_consistency"])


def test_wrong_shapes_are_refused_in_one_line():
    with pytest.raises(ValueError, match=r"piece 1 has shape \(10, 78\); expected \(rows, 156\)"):
        piece_statistics([np.zeros((40, 156)), np.zeros((10, 78))], SPEC)
    with pytest.raises(ValueError, match=r"piece 0 has shape \(156,\)"):
        piece_statistics([np.zeros(156)], SPEC)
    with pytest.raises(ValueError, match="bar_rows must be at least 1"):
        piece_statistics([np.zeros((40, 156))], SPEC, bar_rows=0)


def test_bach_beats_coin_flips_and_concatenated_windows():
    """The embedded Bach test pieces (240 rows) against coin flips at their density and 15-row windows joined."""
    spec = datasets.WindowSpec(num_timesteps=1, stride=1)
    dataset = datasets.build("bach", spec, log=False)
    ids = np.unique(dataset.piece[dataset.indices("test")])
    music = [dataset.windows[dataset.piece == p][:240] for p in ids]
    rng = np.random.default_rng(0)
    density = np.mean([piece[:, : spec.n_pitches].mean() for piece in music])
    flips = [coin_flips(rng, 240, spec, density) for _ in music]
    windows = np.concatenate([piece[: len(piece) // 15 * 15].reshape(-1, 15, spec.row_width) for piece in music])
    windows = windows[rng.permutation(len(windows))]
    joined = [windows[i : i + 16].reshape(240, -1) for i in range(0, len(windows) - 15, 16)]
    bach, noise, window_rbm = (piece_statistics(pieces, spec) for pieces in (music, flips, joined))
    assert bach["bar_repetition"] > 0.1 > noise["bar_repetition"] == window_rbm["bar_repetition"] == 0.0
    assert bach["bar_self_similarity"] > window_rbm["bar_self_similarity"] > noise["bar_self_similarity"]
    assert bach["bar_self_similarity_excess"] > 0.05 > 0.01 > max(noise["bar_self_similarity_excess"], 0.0)
    assert bach["groove_consistency"] > window_rbm["groove_consistency"] + 0.2  # 15-row windows slip off the beat
    # dense coin flips start a note in almost every row, so their onset patterns agree bar after bar: groove
    # consistency alone does NOT rank music above noise at the music's density
    assert noise["groove_consistency"] > bach["groove_consistency"]
