"""``bach``: the Bach chorales in music21's corpus (offline, public domain)."""

from __future__ import annotations

from importlib.metadata import version
from pathlib import Path

import numpy as np

from core.files import sha256_file
from datasets.encoding import EncodeOptions, encode_bytes
from datasets.sources import Input, Source, SourceKind, _encode_files


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


def check(argument: str) -> None:
    """Nothing to check: the corpus ships with music21 (an argument is ignored, as it always was)."""


def parse(argument: str) -> Source:
    inputs = [Input(p.name, sha256_file(p), p) for p in _bach_paths()]
    return Source(
        "bach",
        inputs,
        lambda options, progress: _encode_files("bach", inputs, _encode_score, options, progress),
        tool_version=version("music21"),  # music21 converts the scores: another version, other pieces
        total=len(inputs),
    )


KIND = SourceKind(
    name="bach", syntax="bach", help="the Bach chorales in music21's corpus (offline)", check=check, parse=parse
)
