"""Sources of music: each yields `Piece` objects (an id and a note-state matrix).

A source string names a kind and, after a colon, its argument: ``midi:<folder>``.
**The folder is the list**: each module in this package (not starting with ``_``)
is one kind, named like its file, and declares itself in one place::

    KIND = SourceKind(name="midi", syntax="midi:<folder>", help="...", check=check, parse=parse)

``check(argument)`` is cheap (no hashing, no parsing) and raises `SourceError`;
``parse(argument)`` returns a `Source`. A new source is one new file here; a
kind's module is imported only when a source string names it (or when the help
line lists every kind), and its heavy imports stay inside its functions.
"""

from __future__ import annotations

import hashlib
import importlib
import multiprocessing
import os
import pkgutil
from collections.abc import Callable
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from core.errors import UserError
from datasets.encoding import EncodeOptions, MidiError

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


Progress = Callable[[int], None]


@dataclass
class Source:
    """A parsed source string: its inputs (for hashing), a way to encode them, and its cache identity.

    The cache key of its pieces is its ``kind``, ``cache_id``, the inputs' hashes,
    the encoding options and ``tool_version``: nothing parses ``name`` again.
    """

    name: str  # in the manifest and rows, never a path: "synthetic:0", "midi:songs (sha256 1a2b3c4d…)"
    inputs: list[Input]
    load: Callable[[EncodeOptions, Progress], tuple[list[Piece], list[dict]]]
    kind: str = ""
    cache_id: str | None = None  # what besides the inputs tells two sources apart (synthetic: "synthetic:<seed>")
    tool_version: str | None = None  # version of an outside converter that shapes the pieces (bach: music21)
    total: int | None = None  # progress steps of `load`, when known ahead (one per input file)


@dataclass(frozen=True)
class SourceKind:
    """What one kind of source is, declared once as ``KIND`` in its module."""

    name: str  # the kind, before the colon; equals its module's name
    syntax: str  # how to write it, e.g. "midi:<folder>" (the help line joins these)
    help: str  # one line: what it reads
    check: Callable[[str], None]  # the argument after the colon -> None, or SourceError
    parse: Callable[[str], Source]  # the argument after the colon -> Source
    pinned: bool = False  # its argument is only a local copy of pinned bytes: the kind alone names the same data


def _encode_files(
    label: str, inputs: list[Input], encode, options: EncodeOptions, progress: Progress
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


def content_name(label: str, inputs: list[Input]) -> str:
    """A source's recorded name: ``label`` and the sha256 of its inputs, e.g. ``jsb (sha256 ac0e6085…)``.

    A local file or folder is named by what it holds, not where it lies: a machine's absolute path in a manifest,
    a result row or the history would differ between machines for the same bytes (and leak the path). One input
    is named by its own sha256; several by the sha256 of their sorted (name, sha256) pairs.
    """
    if len(inputs) == 1:
        digest = inputs[0].sha256
    else:
        digest = hashlib.sha256(
            "\n".join(f"{i.name}\t{i.sha256}" for i in sorted(inputs, key=lambda i: i.name)).encode()
        ).hexdigest()
    return f"{label} (sha256 {digest[:8]}…)"


def portable_source(spec: str) -> str:
    """A source string without a machine's path, for a report others read (a published ``spec.json``).

    A local copy of a benchmark is the benchmark itself (its bytes are pinned): ``jsb:/data/JSB_Chorales.mat`` ->
    ``jsb``; any other path keeps only its last part (``midi:/home/me/songs`` -> ``midi:songs``). The manifest
    keeps the inputs' sha256.
    """
    name, _, argument = spec.partition(":")
    if not argument or ("/" not in argument and "\\" not in argument and not argument.startswith("~")):
        return spec
    pinned = name in kind_names() and source_kind(name).pinned
    return name if pinned else f"{name}:{Path(argument).expanduser().name}"


# ---------------------------------------------------------------- the catalogue
def kind_names() -> list[str]:
    """Every kind, from the module files of this package (nothing is imported)."""
    return sorted(m.name for m in pkgutil.iter_modules(__path__) if not m.name.startswith("_"))


def source_kind(name: str) -> SourceKind:
    """The declaration of one kind; imports its module only. Unknown names are a `SourceError`."""
    if name not in kind_names():
        raise SourceError(f"{name}: unknown source; use {source_help()}")
    kind = getattr(importlib.import_module(f"{__name__}.{name}"), "KIND", None)
    if not isinstance(kind, SourceKind) or kind.name != name:
        raise TypeError(f"datasets/sources/{name}.py must declare KIND = SourceKind(name={name!r}, ...)")
    return kind


def source_kinds() -> list[SourceKind]:
    """Every kind's declaration (imports every kind's module, none of their heavy dependencies)."""
    return [source_kind(name) for name in kind_names()]


def source_help() -> str:
    """One line naming every kind's syntax: ``bach | midi:<folder> | polyphonic:<file> | synthetic[:seed]``."""
    return " | ".join(kind.syntax for kind in source_kinds())


def check_source_syntax(spec: str) -> None:
    """Cheap checks of a source string (no hashing, no parsing): raises `SourceError` with one line."""
    name, _, argument = spec.partition(":")
    if name not in kind_names():
        raise SourceError(f"{spec}: unknown source; use {source_help()}")
    source_kind(name).check(argument)


def parse_source(spec: str) -> Source:
    """Turn a source string (``bach``, ``midi:DIR``, ``polyphonic:FILE``, ``synthetic``, ...) into a `Source`."""
    check_source_syntax(spec)
    name, _, argument = spec.partition(":")
    source = source_kind(name).parse(argument)
    source.kind = name
    return source


# Names that lived in the one-file datasets/sources.py, still importable from here (their module loads on first use).
_MOVED = {
    "MAX_POLYPHONIC_BYTES": "polyphonic",
    "frames_to_states": "polyphonic",
    "load_polyphonic": "polyphonic",
    "SYNTHETIC_SCALE": "synthetic",
    "synthetic_pieces": "synthetic",
}


def __getattr__(name: str):
    if name in _MOVED:
        return getattr(importlib.import_module(f"{__name__}.{_MOVED[name]}"), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted([*globals(), *_MOVED])
