"""MIDI <-> note-state matrices, faithful to the 2016 RBM tutorial's encoder.

A note-state matrix has one row per sixteenth note and ``2 * 128`` columns:
``[play(128) | articulate(128)]`` over the full MIDI pitch range. Windows later
slice the pitch range they need (the original used 24..101), which is the same
as the original dropping notes outside its range.

The encoder reproduces the behaviour of the original code (re-derived from
running it), not its code:

* the grid is in ticks, never seconds: a row is ``resolution // 4`` ticks and
  an event at tick ``t`` falls in row ``(t + step - half) // step`` with
  ``half = resolution // 8`` (the original opened a new row when
  ``t % step == half``);
* a new row copies the previous row's play bits and clears articulate;
  note-on sets ``play = articulate = 1``, note-off (or velocity 0) clears both,
  and within a row the last event for a pitch wins;
* all tracks and channels merge into one state per pitch, processed in tick
  order, then track order, then order within the track;
* optionally (the ``seed`` behaviour) a time signature whose numerator is not
  2 or 4 stops the conversion at that event;
* the last row is the one holding the largest end tick over all tracks.
"""

from __future__ import annotations

import io
from dataclasses import dataclass
from pathlib import Path

import mido
import numpy as np
import pretty_midi

N_PITCHES = 128
ENCODER_VERSION = "1"


class MidiError(ValueError):
    """A MIDI file could not be read or encoded."""


@dataclass(frozen=True)
class EncodeOptions:
    """How MIDI becomes note states, and the bounds that keep one bad file from eating the machine.

    Attributes
    ----------
    cut_at_time_signature : bool
        Stop at the first time signature whose numerator is not 2 or 4 (the
        2016 original's behaviour, the ``seed`` profile).
    max_rows : int
        A piece longer than this many sixteenth-note rows is refused (50,000
        rows is 52 minutes at 120 bpm); a 58-byte file with huge tick deltas
        would otherwise allocate gigabytes.
    max_ticks : int
        A file whose last event lies beyond this tick is refused before any
        row is allocated.
    """

    cut_at_time_signature: bool = False
    max_rows: int = 50_000
    max_ticks: int = 50_000_000

    def __post_init__(self) -> None:
        if self.max_rows < 1 or self.max_ticks < 1:
            raise ValueError(f"max_rows ({self.max_rows}) and max_ticks ({self.max_ticks}) must be at least 1")


def _events(midi: mido.MidiFile) -> tuple[list[tuple[int, int, int, str, int, int]], int]:
    """Flatten all tracks to ``(tick, track, position, kind, pitch, numerator)``.

    Returns the events in the original's processing order and the largest end
    tick over all tracks (every event counts, end-of-track included).
    """
    events = []
    end_tick = 0
    for track_index, track in enumerate(midi.tracks):
        tick = 0
        for position, message in enumerate(track):
            tick += message.time
            kind = message.type
            if kind == "note_on" and message.velocity > 0:
                events.append((tick, track_index, position, "on", message.note, 0))
            elif kind in ("note_on", "note_off"):
                events.append((tick, track_index, position, "off", message.note, 0))
            elif kind == "time_signature":
                events.append((tick, track_index, position, "ts", 0, message.numerator))
        end_tick = max(end_tick, tick)
    events.sort(key=lambda event: event[:3])
    return events, end_tick


def encode_midi(midi: mido.MidiFile, options: EncodeOptions | bool = False) -> np.ndarray:
    """Encode a parsed MIDI file as a ``uint8[rows, 256]`` note-state matrix.

    Parameters
    ----------
    midi : mido.MidiFile
        A file with a ticks-per-quarter (not SMPTE) time base.
    options : EncodeOptions or bool
        The time-signature cut and the size bounds (a bool is the cut alone,
        with the default bounds). A file beyond a bound raises `MidiError`.
    """
    options = options if isinstance(options, EncodeOptions) else EncodeOptions(bool(options))
    resolution = midi.ticks_per_beat
    step, half = resolution // 4, resolution // 8
    if step < 1:
        raise MidiError(f"ticks per quarter note is {resolution}; need at least 4")
    events, end_tick = _events(midi)
    if end_tick > options.max_ticks:
        raise MidiError(f"its last event is at tick {end_tick:,}, beyond max_ticks {options.max_ticks:,}")

    def row_of(tick: int) -> int:
        return (tick + step - half) // step

    last_row = row_of(end_tick)
    if options.cut_at_time_signature:
        for index, (tick, _, _, kind, _, numerator) in enumerate(events):
            if kind == "ts" and numerator not in (2, 4):
                events, last_row = events[:index], row_of(tick)
                break
    if last_row + 1 > options.max_rows:
        raise MidiError(f"{last_row + 1:,} rows, beyond max_rows_per_piece {options.max_rows:,}")
    states = np.zeros((last_row + 1, 2 * N_PITCHES), dtype=np.uint8)
    play = np.zeros(N_PITCHES, dtype=np.uint8)
    row = 0
    for tick, _, _, kind, pitch, _ in events:
        if kind == "ts":
            continue
        event_row = row_of(tick)
        if event_row != row:  # new rows hold the notes still sounding
            states[row + 1 : event_row + 1, :N_PITCHES] = play
            row = event_row
        bit = 1 if kind == "on" else 0
        play[pitch] = bit
        states[row, pitch] = states[row, N_PITCHES + pitch] = bit
    states[row + 1 :, :N_PITCHES] = play
    return states


def read_midi(path: str | Path, options: EncodeOptions | bool = False) -> np.ndarray:
    """Read and encode one MIDI file; raise `MidiError` naming the file and the reason otherwise."""
    name = Path(path).name
    try:
        midi = mido.MidiFile(str(path))
    except Exception as error:  # mido raises many types on corrupt bytes; every one means "unreadable"
        reason = " ".join(str(error).split())  # one line, whatever the parser said
        raise MidiError(f"{name}: not a readable MIDI file ({type(error).__name__}: {reason})"[:400]) from None
    if midi.type == 2:
        raise MidiError(f"{name}: MIDI type 2 (independent sequences) is not supported")
    try:
        return encode_midi(midi, options)
    except MidiError as error:
        raise MidiError(f"{name}: {error}") from None


def encode_bytes(data: bytes, options: EncodeOptions | bool = False) -> np.ndarray:
    """Encode a MIDI file held in memory (used for converted corpus scores)."""
    return encode_midi(mido.MidiFile(file=io.BytesIO(data)), options)


def decode_states(
    states: np.ndarray,
    low: int = 0,
    articulation: bool = True,
    tempo: float = 120.0,
    velocity: int = 80,
    program: int = 0,
) -> pretty_midi.PrettyMIDI:
    """Turn a note-state matrix back into MIDI (the inverse of `encode_midi`).

    Parameters
    ----------
    states : array of shape (rows, 2 * n) or (rows, n)
        ``[play | articulate]`` columns, or play only (then a pitch is struck
        where it was silent in the previous row).
    low : int
        MIDI pitch of column 0.
    articulation : bool
        Whether the matrix has the articulate half.
    tempo : float
        Beats per minute; a row is a sixteenth note.

    Notes
    -----
    A note starts where play is set and either articulate is set or the pitch
    was silent in the previous row; it ends where play clears. Articulate bits
    without play are ignored. Notes still sounding in the last row end at the
    next row boundary (the original forgot those note-offs), so encoding the
    result adds one silent row exactly when the last row sounds. A text event
    marks the last row so that trailing silent rows survive a round trip.
    """
    states = np.asarray(states).astype(bool)
    n_rows, n_columns = states.shape
    n_pitches = n_columns // 2 if articulation else n_columns
    play = states[:, :n_pitches]
    silent_before = np.vstack([np.ones((1, n_pitches), bool), ~play[:-1]])
    starts = play & ((states[:, n_pitches:] if articulation else False) | silent_before)
    row_seconds = 60.0 / tempo / 4
    midi = pretty_midi.PrettyMIDI(initial_tempo=tempo)
    instrument = pretty_midi.Instrument(program=program)
    for column in range(n_pitches):
        onsets = np.flatnonzero(starts[:, column])
        for onset in onsets:
            end = onset + 1
            while end < n_rows and play[end, column] and not starts[end, column]:
                end += 1
            instrument.notes.append(pretty_midi.Note(velocity, low + column, onset * row_seconds, end * row_seconds))
    instrument.notes.sort(key=lambda note: (note.start, note.pitch))
    midi.instruments.append(instrument)
    if n_rows:
        midi.text_events.append(pretty_midi.Text("end", (n_rows - 1) * row_seconds))
    return midi
