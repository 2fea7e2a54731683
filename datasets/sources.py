"""Sources of music: each yields `Piece` objects (an id and a note-state matrix).

Source strings, as given on the command line:

``bach``
    The Bach chorales in music21's corpus (offline, public domain).
``midi:<dir>``
    Every ``.mid``/``.midi`` file in a folder (recursively).
``polyphonic:<file>``
    The Boulanger-Lewandowski layout (JSB Chorales, Nottingham, MuseData,
    Piano-midi.de): ``{"train"|"valid"|"test": [piece: [frame: [pitch]]]}``
    as ``.json`` or ``.pickle``/``.pkl``; the file's splits are kept.
``synthetic``
    A small seeded generator of chord progressions and scales for tests.
"""

from __future__ import annotations

import json
import multiprocessing
import os
import pickle
from collections.abc import Callable
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from core.errors import UserError
from core.files import sha256_file
from datasets.encoding import N_PITCHES, EncodeOptions, MidiError, encode_bytes, read_midi

SPLITS = ("train", "valid", "test")


class SourceError(UserError):
    """A source string or its input is unusable (reported as one line, exit 2)."""


@dataclass(frozen=True)
class Piece:
    """One piece of music: ``states`` is ``uint8[rows, 256]`` (play | articulate)."""

    id: str
    states: np.ndarray
    split: str | None = None


@dataclass(frozen=True)
class Input:
    """One input file of a source: name, content hash, and how to encode it."""

    name: str
    sha256: str
    path: Path


# ---------------------------------------------------------------- bach
def _bach_paths() -> list[Path]:
    from music21 import corpus

    return sorted(
        (Path(p) for p in corpus.getComposer("bach") if Path(p).suffix in (".mxl", ".xml", ".krn")),
        key=lambda p: p.name,
    )


def _encode_score(path: Path, options: EncodeOptions) -> np.ndarray:
    """Parse a corpus score with music21, write it as MIDI, encode that MIDI."""
    from music21 import converter
    from music21.midi import translate

    score = converter.parse(path)
    return encode_bytes(translate.streamToMidiFile(score).writestr(), options)


# ---------------------------------------------------------------- polyphonic
class _RestrictedUnpickler(pickle.Unpickler):
    """Unpickle builtin containers, numbers and NumPy scalars only: a pickle is code."""

    ALLOWED = {
        ("builtins", "dict"),
        ("builtins", "list"),
        ("builtins", "tuple"),
        ("builtins", "set"),
        ("builtins", "frozenset"),
        ("builtins", "int"),
        ("builtins", "float"),
        ("builtins", "str"),
        ("numpy", "dtype"),
        ("numpy.core.multiarray", "scalar"),
        ("numpy._core.multiarray", "scalar"),
    }

    def find_class(self, module: str, name: str):
        if (module, name) not in self.ALLOWED:
            raise pickle.UnpicklingError(f"refusing to load {module}.{name}")
        return super().find_class(module, name)


MAX_POLYPHONIC_BYTES = 2**30  # the four standard benchmarks are at most a few MB


def load_polyphonic(path: Path) -> dict[str, list]:
    """Load a polyphonic-benchmark file (JSON or restricted pickle) and check its layout.

    Any failure (bad syntax, a refused pickle class, nesting too deep, a wrong
    type anywhere) is a `SourceError` naming the file, never another exception.
    """
    try:
        if path.stat().st_size > MAX_POLYPHONIC_BYTES:
            raise SourceError(f"{path}: larger than {MAX_POLYPHONIC_BYTES >> 20} MB; not a polyphonic benchmark file")
        if path.suffix == ".json":
            data = json.loads(path.read_text())
        elif path.suffix in (".pickle", ".pkl"):
            with path.open("rb") as handle:
                data = _RestrictedUnpickler(handle, encoding="latin1").load()
        else:
            raise SourceError(f"{path}: unknown polyphonic format {path.suffix!r}; use .json, .pickle or .pkl")
    except SourceError:
        raise
    except OSError as error:
        raise SourceError(f"{path}: cannot read ({error.strerror or error})") from None
    except RecursionError:
        raise SourceError(f"{path}: nested too deeply to be a list of pieces of frames of pitches") from None
    except Exception as error:  # a fuzzed pickle or JSON can raise almost anything: all mean "not loadable"
        message = f"{path}: cannot load ({type(error).__name__}: {' '.join(str(error).split())})"[:300]
        raise SourceError(f"{message}; give a JSON or pickle of train/valid/test") from None
    if not isinstance(data, dict) or not {"train", "valid", "test"} <= set(data):
        raise SourceError(f"{path}: expected a dict with keys train, valid, test")
    for split in SPLITS:
        if not isinstance(data[split], list | tuple):
            raise SourceError(f"{path}: {split} is a {type(data[split]).__name__}; expected a list of pieces")
    return data


def _is_pitch(value: object) -> bool:
    return isinstance(value, int | np.integer) and not isinstance(value, bool) and 0 <= int(value) < N_PITCHES


def frames_to_states(frames: list[list[int]]) -> np.ndarray:
    """Frames of sounding pitches -> note states; articulate where a pitch was silent before.

    Raises `ValueError` (with the reason) unless ``frames`` is a list of lists
    of MIDI pitches 0..127.
    """
    if not isinstance(frames, list | tuple):
        raise ValueError(f"a piece is a {type(frames).__name__}, not a list of frames")
    states = np.zeros((len(frames), 2 * N_PITCHES), dtype=np.uint8)
    for row, pitches in enumerate(frames):
        if not isinstance(pitches, list | tuple | set | frozenset):
            raise ValueError(f"frame {row} is a {type(pitches).__name__}, not a list of pitches")
        for pitch in pitches:
            if not _is_pitch(pitch):
                raise ValueError(f"frame {row} holds {str(pitch)[:40]!r}, not a MIDI pitch 0..127")
            states[row, int(pitch)] = 1
    previous = np.vstack([np.zeros((1, N_PITCHES), np.uint8), states[:-1, :N_PITCHES]])
    states[:, N_PITCHES:] = states[:, :N_PITCHES] & (1 - previous)
    return states


# ---------------------------------------------------------------- synthetic
SYNTHETIC_SCALE = (0, 2, 4, 5, 7, 9, 11)  # C major: every synthetic pitch is in it


def synthetic_pieces(seed: int = 0, n_pieces: int = 40, rows: int = 96) -> list[Piece]:
    """Seeded chord progressions over a C-major scale line.

    Known statistics: every pitch class lies in C major (scale consistency 1),
    chords are triads held for 4 rows under a melody of sixteenth notes, so
    polyphony is 3 or 4 on every row and no row is empty.
    """
    rng = np.random.default_rng(np.random.SeedSequence(seed))
    degrees = np.array(SYNTHETIC_SCALE)
    pieces = []
    for index in range(n_pieces):
        states = np.zeros((rows, 2 * N_PITCHES), dtype=np.uint8)
        for start in range(0, rows, 4):
            root = rng.integers(0, 7)
            chord = [48 + degrees[(root + k) % 7] + 12 * ((root + k) // 7) for k in (0, 2, 4)]
            states[start : start + 4, chord] = 1
            states[start, [N_PITCHES + p for p in chord]] = 1
        melody = 72 + degrees[np.clip(np.cumsum(rng.integers(-1, 2, rows)) % 7, 0, 6)]
        for row, pitch in enumerate(melody):
            states[row, pitch] = states[row, N_PITCHES + pitch] = 1
        pieces.append(Piece(f"synthetic-{index:03d}", states))
    return pieces


# ---------------------------------------------------------------- dispatch
@dataclass
class Source:
    """A parsed source string: its inputs (for hashing) and a way to encode them."""

    name: str
    inputs: list[Input]
    load: Callable[[EncodeOptions, Callable[[int], None]], tuple[list[Piece], list[dict]]]


def _encode_files(
    label: str, inputs: list[Input], encode, options: EncodeOptions, progress
) -> tuple[list[Piece], list[dict]]:
    """Encode files in a process pool; a file that fails is skipped and reported, not fatal."""
    pieces, skipped = [], []
    workers = max(1, min(len(inputs), os.cpu_count() or 1))
    # forkserver, not fork: the calling process may already run framework threads (JAX warns about fork)
    with ProcessPoolExecutor(workers, mp_context=multiprocessing.get_context("forkserver")) as pool:
        futures = [pool.submit(encode, item.path, options) for item in inputs]
        for item, future in zip(inputs, futures):
            try:
                pieces.append(Piece(item.name, future.result()))
            except Exception as error:  # any failure of one file skips that file
                reason = str(error) if isinstance(error, MidiError) else f"{type(error).__name__}: {error}"
                skipped.append({"file": item.name, "reason": reason.removeprefix(f"{Path(item.name).name}: ")})
            progress(1)
    if inputs and not pieces:
        first = skipped[0]
        raise SourceError(
            f"{label}: none of its {len(inputs)} files could be encoded (first: {first['file']}: {first['reason']})"[
                :400
            ]
        )
    return pieces, skipped


def check_source_syntax(spec: str) -> None:
    """Cheap checks of a source string (no hashing, no parsing): raises `SourceError` with one line."""
    kind, _, argument = spec.partition(":")
    if kind == "bach":
        return
    if kind == "midi":
        folder = Path(argument).expanduser()
        if not argument or not folder.is_dir():
            raise SourceError(f"{argument or '(empty)'}: no such folder; give midi:<folder of .mid/.midi files>")
        return
    if kind == "polyphonic":
        if not argument or not Path(argument).expanduser().is_file():
            raise SourceError(f"{argument or '(empty)'}: no such file; give polyphonic:<file.json|.pickle>")
        return
    if kind == "synthetic":
        if argument and not argument.isdigit():
            raise SourceError(f"{spec}: the synthetic seed must be a non-negative integer (synthetic:0)")
        return
    raise SourceError(f"{spec}: unknown source; use bach, midi:<folder>, polyphonic:<file> or synthetic")


def parse_source(spec: str) -> Source:
    """Turn ``bach`` / ``midi:DIR`` / ``polyphonic:FILE`` / ``synthetic`` into a `Source`."""
    check_source_syntax(spec)
    kind, _, argument = spec.partition(":")
    if kind == "bach":
        inputs = [Input(p.name, sha256_file(p), p) for p in _bach_paths()]
        return Source(
            "bach", inputs, lambda options, progress: _encode_files("bach", inputs, _encode_score, options, progress)
        )
    if kind == "midi":
        folder = Path(argument).expanduser()
        paths = sorted(p for p in folder.rglob("*") if p.suffix.lower() in (".mid", ".midi") and p.is_file())
        if not paths:
            raise SourceError(f"{folder}: no .mid or .midi files in this folder; point midi: at a folder of MIDI files")
        inputs = [Input(str(p.relative_to(folder)), sha256_file(p), p) for p in paths]
        return Source(
            f"midi:{folder}",
            inputs,
            lambda options, progress: _encode_files(str(folder), inputs, read_midi, options, progress),
        )
    if kind == "polyphonic":
        path = Path(argument).expanduser()
        inputs = [Input(path.name, sha256_file(path), path)]

        def load(options: EncodeOptions, progress) -> tuple[list[Piece], list[dict]]:
            data = load_polyphonic(path)
            pieces = []
            for split in SPLITS:
                for index, frames in enumerate(data[split]):
                    try:
                        states = frames_to_states(frames)
                    except ValueError as error:
                        raise SourceError(f"{path}: {split} piece {index}: {error}") from None
                    if len(states) > options.max_rows:
                        raise SourceError(
                            f"{path}: {split} piece {index} has {len(states):,} frames, beyond "
                            f"max_rows_per_piece {options.max_rows:,}"
                        )
                    pieces.append(Piece(f"{split}-{index:04d}", states, split))
                    progress(1)
            return pieces, []

        return Source(f"polyphonic:{path}", inputs, load)
    data_seed = int(argument or 0)
    return Source(f"synthetic:{data_seed}", [], lambda options, progress: (synthetic_pieces(data_seed), []))
