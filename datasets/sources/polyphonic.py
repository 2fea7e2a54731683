"""``polyphonic:<file>``: the Boulanger-Lewandowski layout (JSB Chorales, Nottingham, MuseData, Piano-midi.de).

``{"train"|"valid"|"test": [piece: [frame: [pitch]]]}`` as ``.json`` or
``.pickle``/``.pkl``; the file's splits are kept.

A pickle can refer to one list many times (its memo), so a 44 KB file can describe 40 million frames: the
file's pieces, frames and notes are counted before anything is built, and a file beyond `MAX_PIECES`,
`MAX_FRAMES` or `MAX_NOTES` is refused in one line. The bounds are about ten times the largest of the four
standard benchmarks (whole files, all three splits, measured from ``../shared/data/bl2012_polyphonic``):
Nottingham has the most pieces (1,037), MuseData the most frames (392,296) and notes (1,356,293).
"""

from __future__ import annotations

import json
import pickle
from pathlib import Path

import numpy as np

from core.files import sha256_file
from datasets.encoding import N_PITCHES, EncodeOptions
from datasets.sources import SPLITS, Input, Piece, Progress, Source, SourceError, SourceKind, content_name


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
        found = super().find_class(module, name)
        return _of_scalars(found) if found in (str, int, float) else found


def _of_scalars(kind: type):
    """``kind`` refusing a container: ``str`` of a list that shares itself many times would be gigabytes."""

    def convert(*args):
        if any(isinstance(arg, list | tuple | dict | set | frozenset) for arg in args):
            raise pickle.UnpicklingError(f"refusing {kind.__name__}() of a container")
        return kind(*args)

    return convert


MAX_POLYPHONIC_BYTES = 2**30  # the four standard benchmarks are at most a few MB
MAX_PIECES = 10_000  # Nottingham, the most: 1,037
MAX_FRAMES = 4_000_000  # MuseData, the most: 392,296 (256 bytes each as note states: 1 GB at the bound)
MAX_NOTES = 15_000_000  # MuseData, the most: 1,356,293
_FRAME = list | tuple | set | frozenset


def load_polyphonic(path: Path) -> dict[str, list]:
    """Load a polyphonic-benchmark file (JSON or restricted pickle) and check its layout.

    Any failure (bad syntax, a refused pickle class, nesting too deep, a wrong
    type anywhere, more music than the bounds allow) is a `SourceError` naming
    the file, never another exception.
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
    _check_size(path, data)
    return data


def _check_size(path: Path, data: dict[str, list]) -> None:
    """Refuse a file that describes more pieces, frames or notes than `MAX_PIECES`, `MAX_FRAMES`, `MAX_NOTES`.

    Counts what the loader would build: a list the file shares counts each time it is used. A shared piece is
    counted once (by its ``id``), so the walk costs at most the file's own items plus `MAX_FRAMES` steps, and it
    stops at the first bound crossed, before any array exists.
    """
    pieces = sum(len(data[split]) for split in SPLITS)
    if pieces > MAX_PIECES:
        raise SourceError(f"{path}: {pieces:,} pieces, beyond {MAX_PIECES:,}; {_TOO_BIG}")
    frames = notes = 0
    counted: dict[int, int] = {}  # id(piece) -> its notes
    for split in SPLITS:
        for index, piece in enumerate(data[split]):
            if not isinstance(piece, list | tuple):
                continue  # not a piece: frames_to_states says so, naming it
            frames += len(piece)
            if frames > MAX_FRAMES:
                raise SourceError(f"{path}: more than {MAX_FRAMES:,} frames by {split} piece {index}; {_TOO_BIG}")
            if id(piece) not in counted:
                counted[id(piece)] = sum(len(frame) for frame in piece if isinstance(frame, _FRAME))
            notes += counted[id(piece)]
            if notes > MAX_NOTES:
                raise SourceError(f"{path}: more than {MAX_NOTES:,} notes by {split} piece {index}; {_TOO_BIG}")


_TOO_BIG = (
    "the bound is ten times the largest standard benchmark (a pickle can repeat one list by reference, so a small "
    "file can describe this much); check how the file was written, or split it into smaller files"
)


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


def _load(path: Path, options: EncodeOptions, progress: Progress) -> tuple[list[Piece], list[dict]]:
    data = load_polyphonic(path)
    pieces = []
    for split in SPLITS:
        for index, frames in enumerate(data[split]):
            if isinstance(frames, list | tuple) and len(frames) > options.max_rows:  # refused before it is built
                raise SourceError(
                    f"{path}: {split} piece {index} has {len(frames):,} frames, beyond "
                    f"max_rows_per_piece {options.max_rows:,}"
                )
            try:
                states = frames_to_states(frames)
            except ValueError as error:
                raise SourceError(f"{path}: {split} piece {index}: {error}") from None
            pieces.append(Piece(f"{split}-{index:04d}", states, split))
            progress(1)
    return pieces, []


def check(argument: str) -> None:
    if not argument or not Path(argument).expanduser().is_file():
        raise SourceError(f"{argument or '(empty)'}: no such file; give polyphonic:<file.json|.pickle>")


def parse(argument: str) -> Source:
    path = Path(argument).expanduser()
    inputs = [Input(path.name, sha256_file(path), path)]
    # one input file, many pieces: the progress total is not known before loading
    name = content_name(f"polyphonic:{path.name}", inputs)  # the file's name and content, not its path
    return Source(name, inputs, lambda options, progress: _load(path, options, progress))


KIND = SourceKind(
    name="polyphonic",
    syntax="polyphonic:<file>",
    help="a train/valid/test file of frames of pitches (.json or .pickle), splits kept",
    check=check,
    parse=parse,
)
