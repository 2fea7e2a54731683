"""``midi:<folder>``: every ``.mid``/``.midi`` file in a folder (recursively)."""

from __future__ import annotations

from pathlib import Path

from core.files import sha256_file
from datasets.encoding import read_midi
from datasets.sources import Input, Source, SourceError, SourceKind, _encode_files, content_name


def check(argument: str) -> None:
    if not argument or not Path(argument).expanduser().is_dir():
        raise SourceError(f"{argument or '(empty)'}: no such folder; give midi:<folder of .mid/.midi files>")


def parse(argument: str) -> Source:
    folder = Path(argument).expanduser()
    paths = sorted(p for p in folder.rglob("*") if p.suffix.lower() in (".mid", ".midi") and p.is_file())
    if not paths:
        raise SourceError(f"{folder}: no .mid or .midi files in this folder; point midi: at a folder of MIDI files")
    inputs = [Input(str(p.relative_to(folder)), sha256_file(p), p) for p in paths]
    return Source(
        content_name(f"midi:{folder.resolve().name}", inputs),  # the folder's name and content, not its path
        inputs,
        lambda options, progress: _encode_files(str(folder), inputs, read_midi, options, progress),
        total=len(inputs),
    )


KIND = SourceKind(
    name="midi", syntax="midi:<folder>", help="every .mid/.midi file in a folder", check=check, parse=parse
)
