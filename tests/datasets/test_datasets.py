"""Sources, windows, splits, batch orders, the cached artifact and the command line."""

from __future__ import annotations

import json
import pickle
import re
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from datasets import SPLITS, WindowSpec, batch_order, build, order_hash
from datasets.artifact import default_cache_dir
from datasets.sources import SourceError, load_polyphonic
from datasets.windows import cut_windows, split_of
from tests.conftest import JSB, POP_MIDI

ROOT = Path(__file__).resolve().parents[2]


def test_windows_are_row_major_play_then_articulate():
    spec = WindowSpec(num_timesteps=2, stride=2, low=60, high=62)
    states = np.zeros((5, 256), np.uint8)
    states[0, 60] = states[0, 128 + 60] = states[1, 61] = states[3, 60] = 1
    windows = cut_windows(states, spec)
    assert windows.shape == (2, 2 * 2 * 2)  # leftover 5th row dropped
    assert windows[0].tolist() == [1, 0, 1, 0, 0, 1, 0, 0]
    assert windows[1].tolist() == [0, 0, 0, 0, 1, 0, 0, 0]
    assert cut_windows(states, WindowSpec(2, 1, 60, 62, articulation=False)).shape == (4, 4)


def test_synthetic_builds_with_disjoint_piece_splits(cache_dir):
    dataset = build("synthetic", cache_dir=cache_dir, log=False)
    assert dataset.windows.shape[1] == 2340 and dataset.windows.dtype == np.uint8
    by_split = [set(dataset.piece[dataset.split == i]) for i in range(3)]
    assert not (by_split[0] & by_split[1] or by_split[0] & by_split[2] or by_split[1] & by_split[2])
    assert all(by_split), "every split has pieces"


def test_split_by_piece_id_is_80_10_10_and_pinned():
    shares = np.bincount([SPLITS.index(split_of(f"piece-{i}")) for i in range(20_000)], minlength=3) / 20_000
    np.testing.assert_allclose(shares, [0.8, 0.1, 0.1], atol=0.01)
    # pinned: a change here silently moves pieces between train and test in every later run
    pinned = {"bwv1.6.mxl": "train", "bwv10.7.mxl": "valid", "synthetic-003": "valid", "synthetic-005": "test"}
    assert {name: split_of(name) for name in pinned} == pinned


def test_same_parameters_same_hash_and_cache_hit(cache_dir):
    first = build("synthetic:5", cache_dir=cache_dir, log=False)
    second = build("synthetic:5", cache_dir=cache_dir, log=False)
    assert first.hash == second.hash and second.manifest["cache"] == "hit"
    assert build("synthetic:6", cache_dir=cache_dir, log=False).hash != first.hash


def test_corrupted_cache_is_detected_and_rebuilt(cache_dir):
    dataset = build("synthetic:7", cache_dir=cache_dir, log=False)
    (artifact,) = [
        p
        for p in cache_dir.glob("windows-*/dataset.npz")
        if p.parent.joinpath("manifest.json").read_text().find('"synthetic:7"') >= 0
    ]
    blob = bytearray(artifact.read_bytes())
    blob[len(blob) // 2] ^= 0xFF
    artifact.write_bytes(bytes(blob))
    rebuilt = build("synthetic:7", cache_dir=cache_dir, log=False)
    assert rebuilt.manifest["cache"].startswith("rebuilt")
    assert rebuilt.hash == dataset.hash


def test_batch_order_same_seed_same_order_and_permutes_train_only(cache_dir):
    dataset = build("synthetic", cache_dir=cache_dir, log=False)
    a, b = (batch_order(dataset, 11, 16, epochs=3) for _ in range(2))
    assert order_hash(a) == order_hash(b) and order_hash(a) != order_hash(batch_order(dataset, 12, 16, 3))
    train = set(dataset.indices("train"))
    for epoch in a:
        flat = np.concatenate(epoch)
        assert len(set(flat)) == len(flat) and set(flat) <= train and len(train) - len(flat) < 16
    assert not np.array_equal(np.concatenate(a[0]), np.concatenate(a[1]))


def test_seed_order_skips_each_pieces_first_window(cache_dir):
    dataset = build("synthetic", cache_dir=cache_dir, log=False)
    (epoch,) = batch_order(dataset, 0, 4, epochs=1, mode="seed")
    train = dataset.indices("train")
    first_piece = dataset.piece[train[0]]
    piece_rows = train[dataset.piece[train] == first_piece]
    assert epoch[0].tolist() == piece_rows[1:5].tolist()
    assert sum(len(b) for b in epoch) == len(train) - len(np.unique(dataset.piece[train]))


@pytest.mark.shared
def test_jsb_json_and_pickle_give_identical_windows(shared_data, cache_dir):
    json_set = build(f"polyphonic:{JSB / 'jsb-chorales-quarter.json'}", cache_dir=cache_dir, log=False)
    pickle_set = build(f"polyphonic:{JSB / 'jsb-chorales-quarter.pkl'}", cache_dir=cache_dir, log=False)
    assert json_set.hash == pickle_set.hash
    assert json_set.manifest["pieces_per_split"] == {"train": 229, "valid": 76, "test": 77}


def test_malicious_pickle_is_refused(tmp_path):
    class Exploit:
        def __reduce__(self):
            return (print, ("pwned",))

    path = tmp_path / "evil.pkl"
    path.write_bytes(pickle.dumps({"train": [Exploit()], "valid": [], "test": []}))
    with pytest.raises(SourceError, match=r"refusing to load builtins\.print"):
        load_polyphonic(path)


FRAME = [60, 64, 67]


@pytest.mark.parametrize(
    ("content", "expected"),
    [
        ({"train": [[]] * 10_001, "valid": [], "test": []}, "10,001 pieces, beyond 10,000"),
        ({"train": [[FRAME] * 50_000] * 81, "valid": [], "test": []}, "more than 4,000,000 frames by train piece 80"),
        ({"train": [], "valid": [[[60] * 20_000] * 1_000], "test": []}, "more than 15,000,000 notes by valid piece 0"),
    ],
)
def test_a_pickle_describing_more_music_than_it_holds_is_refused_before_it_is_built(tmp_path, content, expected):
    """Shared references (a pickle's memo) let a few KB describe millions of frames or notes: counted, not built."""
    path = tmp_path / "shared.pkl"
    path.write_bytes(pickle.dumps(content, protocol=4))
    assert path.stat().st_size < 200_000
    with pytest.raises(SourceError, match=re.escape(f"{path}: {expected}; the bound is ten times")):
        load_polyphonic(path)


def test_a_pickle_cannot_expand_itself_through_str(tmp_path):
    """``str`` of a list that shares itself: 4 KB that would unpickle into a string of 30 MB (gigabytes, nested)."""

    class Expands:
        def __reduce__(self):
            return (str, ([[[1] * 1_000] * 1_000] * 10,))

    path = tmp_path / "expands.pkl"
    path.write_bytes(pickle.dumps({"train": [], "valid": [], "test": Expands()}, protocol=4))
    with pytest.raises(SourceError, match=r"refusing str\(\) of a container"):
        load_polyphonic(path)


@pytest.mark.shared
def test_seed_encoding_on_the_original_songs_gives_its_1291_windows(shared_data, cache_dir):
    spec = WindowSpec(cut_at_time_signature=True, min_rows=51)
    dataset = build(f"midi:{POP_MIDI}", spec, cache_dir=cache_dir, log=False)
    assert len(dataset.windows) == 1291 and dataset.manifest["pieces_with_windows"] == 122


def test_corrupt_midi_in_a_folder_is_skipped_and_reported(tmp_path, cache_dir):
    from datasets.encoding import decode_states
    from datasets.sources import synthetic_pieces

    for piece in synthetic_pieces(n_pieces=3):
        decode_states(piece.states).write(str(tmp_path / f"{piece.id}.mid"))
    (tmp_path / "broken.mid").write_bytes(b"MThd\x00\x00\x00\x06garbage")
    dataset = build(f"midi:{tmp_path}", cache_dir=cache_dir, log=False)
    assert dataset.manifest["pieces"] == 3
    assert [s["file"] for s in dataset.manifest["skipped"]] == ["broken.mid"]


@pytest.mark.recipe
def test_bach_builds_offline_from_music21s_corpus():
    dataset = build("bach", cache_dir=default_cache_dir(), log=False)
    manifest = dataset.manifest
    assert 400 <= manifest["pieces_with_windows"] <= 433
    assert all(manifest["windows_per_split"][s] > 500 for s in SPLITS)
    assert 0.02 < manifest["density_play"] < 0.1 and 0.005 < manifest["density_articulate"] < manifest["density_play"]


def run_cli(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "datasets", "build", *args], cwd=ROOT, capture_output=True, text=True, timeout=120
    )


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["midi:/no/such/folder"], "no such folder"),
        (["midi:{empty}"], "no .mid or .midi files"),
        (["polyphonic:/no/such.json"], "no such file"),
        (["wav:foo"], "unknown source"),
        (["synthetic", "--num-timesteps", "0"], "num_timesteps is 0"),
        (["synthetic", "--low", "60", "--high", "60"], "pitch range 60..60 is empty"),
        (["polyphonic:{bad_json}"], "cannot load"),
    ],
)
def test_bad_input_gives_one_line_and_exit_2(tmp_path, args, message):
    (tmp_path / "empty").mkdir()
    (tmp_path / "bad.json").write_text("{not json")
    args = [a.format(empty=tmp_path / "empty", bad_json=tmp_path / "bad.json") for a in args]
    result = run_cli(*args, "--cache-dir", str(tmp_path / "cache"))
    assert result.returncode == 2
    assert message in result.stderr and "Traceback" not in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1


def test_cli_prints_a_summary(tmp_path):
    result = run_cli("synthetic", "--cache-dir", str(tmp_path))
    assert result.returncode == 0, result.stderr
    assert "windows            train" in result.stdout
    manifest = json.loads(next(tmp_path.glob("windows-*/manifest.json")).read_text())
    assert manifest["windows_sha256"] in result.stdout


# ------------------------------------------------------------------ bounds and corrupt inputs
def huge_tick_midi(path: Path) -> None:
    """A valid, tiny MIDI file whose note-off lies 2**27 ticks later: gigabytes of rows without a bound."""
    import mido

    midi = mido.MidiFile(ticks_per_beat=96)
    midi.tracks.append(
        mido.MidiTrack(
            [mido.Message("note_on", note=60, velocity=90, time=0), mido.Message("note_off", note=60, time=2**27)]
        )
    )
    midi.save(str(path))


def write_synthetic_midi(folder: Path, n: int = 3) -> None:
    from datasets.encoding import decode_states
    from datasets.sources import synthetic_pieces

    for piece in synthetic_pieces(n_pieces=n):
        decode_states(piece.states).write(str(folder / f"{piece.id}.mid"))


def test_a_huge_file_in_a_folder_is_refused_by_the_bounds_and_reported(tmp_path, cache_dir):
    write_synthetic_midi(tmp_path)
    huge_tick_midi(tmp_path / "huge.mid")
    assert (tmp_path / "huge.mid").stat().st_size < 100
    dataset = build(f"midi:{tmp_path}", cache_dir=cache_dir, log=False)
    (skipped,) = dataset.manifest["skipped"]
    assert skipped["file"] == "huge.mid" and "beyond max_ticks" in skipped["reason"]
    rows = WindowSpec(max_ticks=2**31, max_rows_per_piece=1000)
    dataset = build(f"midi:{tmp_path}", rows, cache_dir=cache_dir, log=False)
    assert "beyond max_rows_per_piece 1,000" in dataset.manifest["skipped"][0]["reason"]


def test_a_folder_where_nothing_is_readable_is_an_error_naming_it(tmp_path, cache_dir):
    (tmp_path / "a.mid").write_bytes(b"MThd garbage")
    (tmp_path / "b.mid").write_bytes(b"")
    with pytest.raises(SourceError, match=rf"{tmp_path}: none of its 2 files could be encoded \(first: a.mid"):
        build(f"midi:{tmp_path}", cache_dir=cache_dir, log=False)


def test_zero_windows_is_an_error(tmp_path, cache_dir):
    path = tmp_path / "empty.json"
    path.write_text(json.dumps({"train": [], "valid": [], "test": []}))
    with pytest.raises(SourceError, match="0 windows of 15 rows from 0 pieces"):
        build(f"polyphonic:{path}", cache_dir=cache_dir, log=False)


def test_corrupt_pieces_cache_is_rebuilt_and_refresh_rebuilds_it(tmp_path):
    first = build("synthetic:3", cache_dir=tmp_path, log=False)
    (pieces,) = tmp_path.glob("pieces-*.npz")
    pieces.write_bytes(b"PK\x03\x04 not a zip at all")
    for folder in tmp_path.glob("windows-*"):  # force the windows to be cut again from the pieces
        (folder / "dataset.npz").unlink()
    rebuilt = build("synthetic:3", cache_dir=tmp_path, log=False)
    assert rebuilt.hash == first.hash and rebuilt.manifest["cache"].startswith("rebuilt")
    before = pieces.stat().st_mtime_ns
    assert build("synthetic:3", cache_dir=tmp_path, log=False, refresh=True).hash == first.hash
    assert pieces.stat().st_mtime_ns != before, "--refresh re-encodes the pieces too"


@pytest.mark.parametrize(
    "content",
    [
        {"train": [[[60, "x"]]], "valid": [], "test": []},
        {"train": [[[60, 300]]], "valid": [], "test": []},
        {"train": [7], "valid": [], "test": []},
        {"train": "abc", "valid": [], "test": []},
        {"train": [[[True]]], "valid": [], "test": []},
    ],
)
def test_malformed_polyphonic_content_is_one_line_naming_the_file(tmp_path, cache_dir, content):
    path = tmp_path / "bad.json"
    path.write_text(json.dumps(content))
    with pytest.raises(SourceError) as caught:
        build(f"polyphonic:{path}", cache_dir=cache_dir, log=False)
    assert str(path) in str(caught.value) and "\n" not in str(caught.value)


def test_deeply_nested_json_is_one_line_not_a_recursion_error(tmp_path):
    path = tmp_path / "deep.json"
    path.write_text("[" * 200_000 + "]" * 200_000)
    with pytest.raises(SourceError, match=r"deep\.json: nested too deeply"):
        load_polyphonic(path)


def limited_file_size(limit: int):
    """A ``preexec_fn`` that makes every file write beyond ``limit`` bytes fail (EFBIG), as a full disk does."""
    import resource

    return lambda: resource.setrlimit(resource.RLIMIT_FSIZE, (limit, limit))


def test_a_full_disk_is_one_line_exit_2_and_leaves_no_partial_file(tmp_path):
    cache = tmp_path / "cache"
    result = subprocess.run(
        [sys.executable, "-m", "datasets", "build", "synthetic", "--cache-dir", str(cache)],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
        preexec_fn=limited_file_size(8_000),
    )
    assert result.returncode == 2 and "Traceback" not in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1 and "File too large" in result.stderr
    assert str(cache) in result.stderr, "the line names the file that could not be written"
    leftovers = [p for p in cache.rglob("*") if p.is_file() and (".tmp" in p.name or p.stat().st_size >= 8_000)]
    assert not leftovers
    assert not list(cache.glob("windows-*/dataset.npz")), "no artifact without its manifest"


@pytest.mark.shared
def test_the_seed_profile_trains_on_every_song_of_the_original_as_it_did(shared_data, cache_dir):
    """122 songs kept, one batch per song, each song's first window skipped: 122 batches, 1,169 windows."""
    from eval.bench.tasks import window_spec
    from eval.config import load_profile

    profile = load_profile("seed").override(data={"source": f"midi:{POP_MIDI}"})
    dataset = build(profile.data.source, window_spec(profile), cache_dir=cache_dir, log=False)
    (epoch,) = batch_order(dataset, 0, profile.model.batch_size, 1, profile.data.order, split=None)
    assert len(epoch) == 122 and sum(len(batch) for batch in epoch) == 1169
    assert profile.data.train_on == "all" and profile.model.chain_start == "fresh"
