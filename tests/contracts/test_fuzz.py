"""Fuzzing the three readers of user input: no traceback ever, only the project's one-line errors.

Hypothesis generates valid and invalid MIDI byte streams (through mido, then
mutated), polyphonic-benchmark files (random JSON and pickle structures) and
profiles (random TOML). Each reader must either return its result or raise
its own one-line error naming the file. Examples are derandomised (see
conftest.py), so CI sees the same examples every time: 200 per test, 1,000 in ``tox -e recipe``.
"""

from __future__ import annotations

import io
import json
import math
import pickle
import string
import tomllib
from pathlib import Path

import mido
import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from datasets.encoding import N_PITCHES, EncodeOptions, MidiError, read_midi
from datasets.sources import SourceError, frames_to_states, load_polyphonic
from eval.config import ConfigError, load_profile

BOUNDS = EncodeOptions(max_rows=2_000, max_ticks=200_000)
# Examples per test from the settings profile (tests/conftest.py): 200 in the CI tiers, 1,000 in `tox -e recipe`.
FUZZ = settings(deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
pytestmark = pytest.mark.fuzz

# ------------------------------------------------------------------ MIDI
note = st.integers(0, 127)
message = st.one_of(
    st.builds(
        lambda n, v, t: mido.Message("note_on", note=n, velocity=v, time=t),
        note,
        st.integers(0, 127),
        st.integers(0, 5_000),
    ),
    st.builds(lambda n, t: mido.Message("note_off", note=n, time=t), note, st.integers(0, 5_000)),
    st.builds(
        lambda num, t: mido.MetaMessage("time_signature", numerator=num, denominator=4, time=t),
        st.integers(1, 12),
        st.integers(0, 500),
    ),
    st.builds(lambda t: mido.MetaMessage("set_tempo", tempo=500_000, time=t), st.integers(0, 300_000)),
)
midi_file = st.builds(
    lambda resolution, tracks, kind: _midi(resolution, tracks, kind),
    st.integers(1, 960),
    st.lists(st.lists(message, max_size=30), min_size=1, max_size=4),
    st.sampled_from([0, 1]),
)


def _midi(resolution: int, tracks: list[list], kind: int) -> bytes:
    midi = mido.MidiFile(type=kind if len(tracks) == 1 or kind == 1 else 1, ticks_per_beat=resolution)
    for messages in tracks:
        midi.tracks.append(mido.MidiTrack(messages))
    buffer = io.BytesIO()
    midi.save(file=buffer)
    return buffer.getvalue()


def _read(tmp_path: Path, data: bytes) -> None:
    path = tmp_path / "fuzzed.mid"
    path.write_bytes(data)
    try:
        states = read_midi(path, BOUNDS)
    except MidiError as error:
        assert str(error).startswith("fuzzed.mid: ") and "\n" not in str(error)
        return
    assert states.dtype == np.uint8 and states.shape[1] == 2 * N_PITCHES and 1 <= len(states) <= BOUNDS.max_rows
    assert set(np.unique(states)) <= {0, 1}


@FUZZ
@given(data=midi_file)
def test_fuzz_valid_midi_encodes_or_is_refused_by_the_bounds(tmp_path, data):
    _read(tmp_path, data)


@FUZZ
@given(data=midi_file, flips=st.lists(st.tuples(st.integers(0, 10_000), st.integers(0, 255)), min_size=1, max_size=8))
def test_fuzz_mutated_midi_bytes_never_raise_anything_but_midierror(tmp_path, data, flips):
    buffer = bytearray(data)
    for position, value in flips:
        buffer[position % len(buffer)] = value
    _read(tmp_path, bytes(buffer))


@FUZZ
@given(data=st.binary(max_size=300))
def test_fuzz_random_bytes_behind_a_midi_header(tmp_path, data):
    _read(tmp_path, b"MThd\x00\x00\x00\x06" + data)


# ------------------------------------------------------------------ polyphonic benchmark files
leaf = st.one_of(st.integers(-5, 200), st.floats(allow_nan=True), st.text(max_size=3), st.booleans(), st.none())
structure = st.recursive(
    leaf,
    lambda inner: st.one_of(st.lists(inner, max_size=4), st.dictionaries(st.text(max_size=5), inner, max_size=4)),
    max_leaves=30,
)
frames = st.lists(st.lists(st.one_of(st.integers(0, 127), leaf), max_size=4), max_size=20)
benchmark = st.one_of(
    structure,
    st.fixed_dictionaries(
        {
            "train": st.lists(frames, max_size=3),
            "valid": st.lists(frames, max_size=2),
            "test": st.one_of(st.lists(frames, max_size=2), structure),
        }
    ),
)


def _load(path: Path) -> None:
    try:
        data = load_polyphonic(path)
        for split in ("train", "valid", "test"):
            for index, piece in enumerate(data[split]):
                try:
                    frames_to_states(piece)
                except ValueError as error:  # the source turns this into a SourceError naming file and piece
                    assert "\n" not in str(error), index
    except SourceError as error:
        assert str(path) in str(error) and "\n" not in str(error)


@FUZZ
@given(content=benchmark)
def test_fuzz_polyphonic_json(tmp_path, content):
    path = tmp_path / "fuzzed.json"
    path.write_text(json.dumps(content, allow_nan=True))
    _load(path)


@FUZZ
@given(content=benchmark, protocol=st.integers(0, pickle.HIGHEST_PROTOCOL))
def test_fuzz_polyphonic_pickle(tmp_path, content, protocol):
    path = tmp_path / "fuzzed.pkl"
    path.write_bytes(pickle.dumps(content, protocol=protocol))
    _load(path)


@FUZZ
@given(data=st.binary(max_size=200))
def test_fuzz_polyphonic_pickle_bytes(tmp_path, data):
    path = tmp_path / "fuzzed.pkl"
    path.write_bytes(b"\x80\x04" + data)
    _load(path)


# ------------------------------------------------------------------ profiles
KNOWN = ["source", "epochs", "seeds", "impls", "n_hidden", "learning_rate", "curve_every", "device", "executor",
         "momentum", "threads", "batch_size", "ais_schedule", "margins"]  # fmt: skip
toml_value = st.one_of(
    st.integers(-3, 10**6),
    st.floats(allow_nan=True, allow_infinity=True),
    st.booleans(),
    st.text(string.printable, max_size=8),
    st.lists(st.integers(-2, 5), max_size=4),
    st.lists(st.sampled_from(["numpy", "torch", "tf", "jax", "nosuch"]), max_size=4),
    st.lists(st.text(max_size=3), max_size=2),
)
key = st.one_of(st.sampled_from(KNOWN), st.text(string.ascii_letters + "_.", min_size=1, max_size=8))
section = st.dictionaries(key, toml_value, max_size=5)
sections = st.sampled_from(["data", "model", "run", "eval", "verdict", "sweep", "evl", "x"])
profile = st.dictionaries(sections, section, max_size=4)


def _toml_value(value: object) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, float):
        return (
            "nan"
            if value != value
            else "inf"
            if value == float("inf")
            else "-inf"
            if value == -float("inf")
            else repr(value)
        )
    if isinstance(value, int):
        return str(value)
    if isinstance(value, str):
        return json.dumps(value)
    return "[" + ", ".join(_toml_value(v) for v in value) + "]"


def _toml(tables: dict, extends: bool) -> str:
    lines = ['extends = "quick"'] if extends else []
    for name, keys in tables.items():
        lines.append(f"[{name}]")
        lines += [f"{json.dumps(key)} = {_toml_value(value)}" for key, value in keys.items()]
    return "\n".join(lines) + "\n"


@FUZZ
@given(tables=profile, extends=st.booleans())
def test_fuzz_profiles_load_or_fail_with_one_line(tmp_path, tables, extends):
    path = tmp_path / "fuzzed.toml"
    path.write_text(_toml(tables, extends))
    try:
        loaded = load_profile(str(path))
    except ConfigError as error:
        assert "\n" not in str(error) and ("fuzzed.toml" in str(error) or "no such profile" in str(error))
        return
    assert loaded.run.seeds and loaded.model.n_hidden >= 1


@FUZZ
@given(text=st.text(max_size=120))
def test_fuzz_profile_text(tmp_path, text):
    path = tmp_path / "fuzzed.toml"
    path.write_text(text)
    try:
        load_profile(str(path))
    except ConfigError as error:
        assert "\n" not in str(error)


# What the two bases set, copied from eval/profiles/default.toml and quick.toml (quick extends default):
BASES = {
    "default": {"curve_every": 25, "ais_betas": 1000, "pl_test_windows": 1000, "n_hidden": 50},
    "quick": {"curve_every": 4, "ais_betas": 500, "pl_test_windows": 300, "n_hidden": 50},
}


@pytest.mark.parametrize("name", ["default", "quick"])
def test_fuzz_strategies_can_produce_a_valid_profile(tmp_path, name):
    """The profile fuzzer's emitter writes TOML that loads (so the fuzz tests do reach the validator)."""
    tables = {"run": {"epochs": 3, "seeds": [0, 1]}, "model": {"learning_rate": 0.5, "momentum": 0.25}}
    text = f"extends = {json.dumps(name)}\n" + _toml(tables, extends=False)
    assert tomllib.loads(text) == {"extends": name, **tables}, "the emitter writes what it was given"
    path = tmp_path / "ok.toml"
    path.write_text(text)
    loaded = load_profile(str(path))
    assert loaded.name == "ok" and loaded.run.epochs == 3 and list(loaded.run.seeds) == [0, 1]
    assert loaded.model.learning_rate == 0.5 and loaded.model.momentum == 0.25
    inherited = {key: getattr(loaded.eval, key) for key in ("curve_every", "ais_betas", "pl_test_windows")}
    assert inherited | {"n_hidden": loaded.model.n_hidden} == BASES[name], f"not inherited from {name}"
    # the emitter's awkward values survive the trip through TOML (the fuzz tests rely on it)
    awkward = {"x": {"inf": float("inf"), "-inf": -float("inf"), "t": True, "q": 'a"\\b\n', "l": [1, -2], "f": 0.1}}
    assert tomllib.loads(_toml(awkward, extends=True)) == {"extends": "quick", **awkward}
    assert math.isnan(tomllib.loads(_toml({"x": {"nan": float("nan")}}, extends=False))["x"]["nan"])
