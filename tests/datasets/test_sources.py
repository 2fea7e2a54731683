"""The source catalogue: one module per kind in datasets/sources/, discovered from the folder, imported lazily."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from datasets.sources import (
    SourceError,
    SourceKind,
    check_source_syntax,
    kind_names,
    parse_source,
    source_help,
    source_kind,
)

ROOT = Path(__file__).resolve().parents[2]

TINY = '''
"""``tiny``: three pieces of one held C-major chord, one per split."""

import numpy as np

from datasets.sources import Piece, Source, SourceError, SourceKind


def _pieces():
    pieces = []
    for index, split in enumerate(("train", "valid", "test")):
        states = np.zeros((30, 256), np.uint8)
        states[:, [60, 64, 67]] = 1
        states[0, [128 + 60, 128 + 64, 128 + 67]] = 1
        pieces.append(Piece(f"tiny-{index}", states, split))
    return pieces


def check(argument):
    if argument:
        raise SourceError(f"tiny:{argument}: tiny takes no argument")


def parse(argument):
    return Source("tiny", [], lambda options, progress: (_pieces(), []), cache_id="tiny")


KIND = SourceKind(name="tiny", syntax="tiny", help="three fixed pieces", check=check, parse=parse)
'''

CHECK_TINY = """
import datasets, datasets.sources as sources
from pathlib import Path
assert Path(datasets.__file__).is_relative_to(Path.cwd()), datasets.__file__  # the copy, not the checkout
dataset = datasets.build("tiny", log=False)
assert dataset.windows.shape == (6, 15 * 2 * 78), dataset.windows.shape
assert dataset.manifest["windows_per_split"] == {"train": 2, "valid": 2, "test": 2}, dataset.manifest
assert "tiny" in sources.source_help().split(" | "), sources.source_help()
sources.check_source_syntax("tiny")
try:
    sources.check_source_syntax("wav:x")
except sources.SourceError as error:
    assert "tiny" in str(error) and "\\n" not in str(error), error
else:
    raise AssertionError("wav:x was accepted")
print("tiny ok")
"""


def _python(code: str, cwd: Path, pythonpath: Path, cache: Path) -> subprocess.CompletedProcess:
    env = {**os.environ, "PYTHONPATH": str(pythonpath), "RBM_BENCH_CACHE": str(cache)}
    return subprocess.run(
        [sys.executable, "-c", code], cwd=cwd, env=env, capture_output=True, text=True, timeout=120, check=False
    )


def test_a_new_source_is_one_file(tmp_path):
    for package in ("datasets", "core"):
        shutil.copytree(ROOT / package, tmp_path / package, ignore=shutil.ignore_patterns("__pycache__"))
    (tmp_path / "datasets" / "sources" / "tiny.py").write_text(TINY)  # the only change: one new file
    done = _python(CHECK_TINY, tmp_path, tmp_path, tmp_path / "cache")
    assert done.returncode == 0, done.stderr[-3000:]
    assert "tiny ok" in done.stdout


def test_every_kind_in_the_folder_declares_its_fields():
    names = kind_names()
    assert {"bach", "midi", "polyphonic", "synthetic", "jsb", "nottingham", "musedata", "pianomidi"} <= set(names)
    for name in names:
        kind = source_kind(name)
        assert isinstance(kind, SourceKind) and kind.name == name
        assert kind.syntax.startswith(name) and "|" not in kind.syntax
        assert kind.help and "\n" not in kind.help
        assert callable(kind.check) and callable(kind.parse)
    assert source_help() == " | ".join(source_kind(name).syntax for name in names)
    assert source_help() == (
        "bach | jsb[:file.mat] | midi:<folder> | musedata[:file.mat] | nottingham[:file.mat] | pianomidi[:file.mat] "
        "| polyphonic:<file> | synthetic[:seed]"
    )


@pytest.mark.parametrize("spec", ["wav:foo", "wav", "", "../bach", "_private"])
def test_an_unknown_kind_is_one_line_naming_the_valid_ones(spec):
    with pytest.raises(SourceError) as caught:
        check_source_syntax(spec)
    message = str(caught.value)
    assert "\n" not in message and "unknown source" in message
    assert message.endswith(source_help())


def test_checking_a_source_imports_only_its_kind(tmp_path):
    code = (
        "import sys, datasets.sources as s; s.check_source_syntax('synthetic:2'); "
        "print(sorted(m for m in sys.modules if m.startswith('datasets.sources.')), 'music21' in sys.modules)"
    )
    done = _python(code, ROOT, ROOT, tmp_path)
    assert done.returncode == 0, done.stderr[-3000:]
    assert done.stdout.split() == ["['datasets.sources.synthetic']", "False"]


def test_a_source_carries_its_cache_identity():
    source = parse_source("synthetic:3")
    assert (source.kind, source.cache_id, source.tool_version, source.inputs) == ("synthetic", "synthetic:3", None, [])
    assert parse_source("synthetic").cache_id == "synthetic:0"


def test_moved_names_are_still_importable_from_datasets_sources():
    from datasets.sources import MAX_POLYPHONIC_BYTES, SYNTHETIC_SCALE, frames_to_states, load_polyphonic
    from datasets.sources.polyphonic import load_polyphonic as direct

    assert load_polyphonic is direct and callable(frames_to_states)
    assert SYNTHETIC_SCALE == (0, 2, 4, 5, 7, 9, 11) and MAX_POLYPHONIC_BYTES == 2**30


def test_a_local_source_is_named_by_what_it_holds_never_where_it_lies(tmp_path):
    """The recorded name goes into manifests, result rows and the history: a path there differs between machines
    for the same bytes (and leaks the machine's layout), so it names the folder or file and its content."""
    from datasets.sources import portable_source

    songs = tmp_path / "deep" / "songs"
    songs.mkdir(parents=True)
    (songs / "a.mid").write_bytes(b"MThd")  # parsing hashes the files; encoding them comes later
    midi = parse_source(f"midi:{songs}")
    assert midi.name.startswith("midi:songs (sha256 ") and midi.name.endswith("…)") and str(tmp_path) not in midi.name
    frames = tmp_path / "frames.json"
    frames.write_text('{"train": [[[60]]], "valid": [[[62]]], "test": [[[64]]]}')
    other = tmp_path / "elsewhere"
    other.mkdir()
    shutil.copy(frames, other / "frames.json")
    names = {parse_source(f"polyphonic:{p}").name for p in (frames, other / "frames.json")}
    assert len(names) == 1 and names.pop().startswith("polyphonic:frames.json (sha256 ")  # same bytes, same name
    assert portable_source(f"jsb:{tmp_path}/JSB_Chorales.mat") == "jsb"  # the pinned bytes: the benchmark itself
    assert portable_source(f"midi:{songs}") == "midi:songs"
    assert portable_source("synthetic:3") == "synthetic:3" and portable_source("bach") == "bach"
