"""The encoder reproduces the 2016 original; the decoder inverts it."""

from __future__ import annotations

import io

import mido
import numpy as np
import pytest

from datasets.encoding import N_PITCHES, EncodeOptions, decode_states, encode_midi, read_midi
from datasets.sources import synthetic_pieces
from tests.conftest import ORACLE, POP_MIDI


def original_columns(states: np.ndarray) -> np.ndarray:
    """The original's 156 columns: pitches 24..101, play then articulate."""
    return np.hstack([states[:, 24:102], states[:, N_PITCHES + 24 : N_PITCHES + 102]])


def midi_from(tracks: list[list], resolution: int = 96) -> mido.MidiFile:
    midi = mido.MidiFile(ticks_per_beat=resolution)
    for messages in tracks:
        midi.tracks.append(mido.MidiTrack(messages))
    return midi


@pytest.mark.shared
def test_conformance_with_the_original_on_its_126_songs(shared_data):
    oracle = np.load(ORACLE)
    matches = [
        name
        for name in oracle.files
        if np.array_equal(
            original_columns(read_midi(POP_MIDI / name, EncodeOptions(cut_at_time_signature=True))), oracle[name]
        )
    ]
    assert len(oracle.files) == 126
    assert len(matches) == 126, sorted(set(oracle.files) - set(matches))


def test_grid_is_in_ticks_rounded_half_up():
    # resolution 96: a row is 24 ticks, shifted by 12. Tick 11 -> row 0, tick 12 -> row 1, 35 -> 1, 36 -> 2.
    on = [mido.Message("note_on", note=60, velocity=90, time=t) for t in (11,)]
    midi = midi_from(
        [
            [
                *on,
                mido.Message("note_off", note=60, time=1),
                mido.Message("note_on", note=62, velocity=9, time=24),
                mido.Message("note_off", note=62, time=24),
            ]
        ]
    )
    states = encode_midi(midi)
    # 60 on at 11 (row 0), off at 12 (row 1); 62 on at 36 (row 2), off at 60 (row 3 = (60+12)//24)
    assert states[0, 60] == states[0, N_PITCHES + 60] == 1
    assert states[1, 60] == 0
    assert states[2, 62] == states[2, N_PITCHES + 62] == 1
    assert states[3, 62] == 0 and len(states) == 4


def test_tracks_merge_and_last_event_in_a_row_wins():
    track_a = [mido.Message("note_on", note=60, velocity=90, time=0)]
    track_b = [
        mido.Message("note_off", note=60, time=48),
        mido.Message("note_on", note=64, velocity=90, time=0),
        mido.Message("note_off", note=64, time=5),
    ]
    states = encode_midi(midi_from([track_a, track_b]))
    assert states[0, 60] == 1 and states[1, 60] == 1  # held across rows, articulate only at onset
    assert states[1, N_PITCHES + 60] == 0
    assert states[2, 60] == 0  # a note-off on another track silences it
    assert states[2, 64] == 0  # started and ended inside one row: vanishes


def test_time_signature_cut_only_in_seed_mode():
    track = [
        mido.MetaMessage("time_signature", numerator=3, denominator=4, time=0),
        mido.Message("note_on", note=60, velocity=90, time=0),
        mido.Message("note_off", note=60, time=96),
    ]
    assert encode_midi(midi_from([track]), EncodeOptions(cut_at_time_signature=True)).shape == (1, 2 * N_PITCHES)
    assert encode_midi(midi_from([track]), EncodeOptions(cut_at_time_signature=True)).sum() == 0
    assert encode_midi(midi_from([track])).shape == (5, 2 * N_PITCHES)


def _round_trip(states: np.ndarray, low: int = 0) -> np.ndarray:
    buffer = io.BytesIO()
    decode_states(states, low=low).write(buffer)
    buffer.seek(0)
    return encode_midi(mido.MidiFile(file=buffer))


def test_round_trip_on_synthetic_pieces():
    for piece in synthetic_pieces(seed=3, n_pieces=5):
        states = np.vstack([piece.states, np.zeros((2, 2 * N_PITCHES), np.uint8)])  # silent tail survives too
        assert np.array_equal(_round_trip(states), states)


def test_notes_sounding_at_the_end_get_note_offs():
    states = np.zeros((4, 2 * N_PITCHES), np.uint8)
    states[:, 60] = 1
    states[0, N_PITCHES + 60] = 1
    midi = decode_states(states)
    (note,) = midi.instruments[0].notes
    assert note.end == pytest.approx(4 * 0.125)
    back = _round_trip(states)
    assert np.array_equal(back[:4], states) and back[4].sum() == 0  # the note-off opens one silent row


def test_articulate_without_play_is_ignored():
    states = np.zeros((2, 2 * N_PITCHES), np.uint8)
    states[0, N_PITCHES + 70] = 1
    assert decode_states(states).instruments[0].notes == []


@pytest.mark.shared
def test_round_trip_on_the_original_matrices(shared_data):
    oracle = np.load(ORACLE)
    for name in oracle.files:
        states = np.zeros((len(oracle[name]), 2 * N_PITCHES), np.uint8)
        states[:, 24:102], states[:, N_PITCHES + 24 : N_PITCHES + 102] = oracle[name][:, :78], oracle[name][:, 78:]
        back = _round_trip(states)
        if states[-1, :N_PITCHES].any():  # a note still sounding at the end ends one row later
            assert back[-1].sum() == 0
            back = back[:-1]
        assert np.array_equal(back, states), name
