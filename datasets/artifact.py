"""Build, cache and verify dataset artifacts (windows + manifest).

Two cache levels, both keyed by content: the encoded pieces of a source
(expensive for ``bach``: music21 parses every score) and the windowed
artifact of a source under one `WindowSpec`. Every file's sha256 is in the
manifest, so a corrupted artifact is detected on load and rebuilt.
"""

from __future__ import annotations

import hashlib
import json
import time
from dataclasses import asdict
from pathlib import Path

import numpy as np
from tqdm import tqdm

from core.files import atomic_write, atomic_write_text, sha256_file
from core.paths import cache_dir as default_cache_dir
from datasets.encoding import ENCODER_VERSION, EncodeOptions
from datasets.sources import Piece, Source, SourceError, parse_source
from datasets.windows import SPLITS, Dataset, WindowSpec, make_dataset

ARTIFACT_VERSION = "2"


class DatasetError(SourceError):
    """A dataset artifact that is missing or fails its hash check (one line, exit 2)."""


def _key(*parts: object) -> str:
    return hashlib.sha256(json.dumps(parts, sort_keys=True, default=str).encode()).hexdigest()[:20]


def _savez(path: Path, **arrays: np.ndarray) -> None:
    with Path(path).open("wb") as handle:
        np.savez_compressed(handle, **arrays)


def _source_key(source: Source, options: EncodeOptions) -> str:
    """The content key of a source's pieces, from what the `Source` declares (its string is not parsed again)."""
    inputs = [(item.name, item.sha256) for item in source.inputs]
    return _key(source.kind, source.cache_id, inputs, asdict(options), ENCODER_VERSION, source.tool_version)


def _load_pieces(path: Path) -> tuple[list[Piece], list[dict]] | None:
    """The cached pieces if the file matches the sha256 beside it; None (rebuild) for any corruption."""
    try:
        if sha256_file(path) != json.loads(path.with_suffix(".json").read_text())["sha256"]:
            return None
        with np.load(path, allow_pickle=False) as data:
            meta = json.loads(str(data["meta"]))
            bounds = np.cumsum([0, *meta["lengths"]])
            states = data["states"]
            pieces = [Piece(i, states[a:b], s) for i, s, a, b in zip(meta["ids"], meta["splits"], bounds, bounds[1:])]
            return pieces, meta["skipped"]
    except Exception:  # a corrupt cache of any kind (BadZipFile, zlib, JSON, shapes) is rebuilt, never fatal
        return None


def _save_pieces(path: Path, pieces: list[Piece], skipped: list[dict]) -> None:
    meta = {
        "ids": [p.id for p in pieces],
        "splits": [p.split for p in pieces],
        "lengths": [len(p.states) for p in pieces],
        "skipped": skipped,
    }
    states = np.concatenate([p.states for p in pieces]) if pieces else np.zeros((0, 256), np.uint8)
    atomic_write(path, lambda tmp: _savez(tmp, states=states, meta=np.array(json.dumps(meta))))
    atomic_write_text(path.with_suffix(".json"), json.dumps({"sha256": sha256_file(path)}))


def _encode(source: Source, spec: WindowSpec, cache: Path, log, refresh: bool) -> tuple[list[Piece], list[dict]]:
    path = cache / f"pieces-{_source_key(source, spec.encode_options)}.npz"
    if not refresh and path.exists() and (loaded := _load_pieces(path)) is not None:
        return loaded
    with tqdm(
        total=source.total, desc=f"encoding {source.name}", unit="piece", disable=None if log else True, leave=False
    ) as bar:
        pieces, skipped = source.load(spec.encode_options, bar.update)
    _save_pieces(path, pieces, skipped)
    return pieces, skipped


def _verify(folder: Path) -> Dataset | None:
    """Load a cached artifact if its manifest and hashes check out; None means rebuild."""
    try:
        manifest = json.loads((folder / "manifest.json").read_text())
        if sha256_file(folder / "dataset.npz") != manifest["artifact_sha256"]:
            return None
        with np.load(folder / "dataset.npz", allow_pickle=False) as data:
            dataset = Dataset(
                data["windows"],
                data["split"],
                data["piece"],
                list(manifest["piece_ids"]),
                WindowSpec(**manifest["spec"]),
                manifest,
                data.get("frames"),
            )
        return dataset if dataset.hash == manifest["windows_sha256"] else None
    except Exception:  # any corruption means: rebuild
        return None


def load(path: Path | str, expected_hash: str | None = None) -> Dataset:
    """A built dataset artifact (its folder or its ``dataset.npz``), checked against its manifest.

    Raises `DatasetError` (one line) if the files are missing, corrupt, or
    hash to something other than ``expected_hash``: nothing trains on bytes
    other than the ones the run recorded.
    """
    folder = Path(path).parent if Path(path).suffix == ".npz" else Path(path)
    dataset = _verify(folder)
    if dataset is None:
        raise DatasetError(f"{folder}: dataset artifact missing or corrupt; rebuild it with python -m datasets build")
    if expected_hash is not None and dataset.hash != expected_hash:
        raise DatasetError(
            f"{folder}: dataset hash {dataset.hash[:12]} differs from the expected {expected_hash[:12]}; "
            "the inputs changed since the run began"
        )
    dataset.manifest["artifact_path"] = str(folder / "dataset.npz")
    return dataset


def build(
    source_spec: str,
    spec: WindowSpec | None = None,
    cache_dir: Path | None = None,
    refresh: bool = False,
    log: bool = True,
) -> Dataset:
    """Build (or load from cache) the windowed dataset of a source.

    Raises `datasets.sources.SourceError` (one-line message) on bad input, and
    `DatasetError` (one line) if the machine runs out of memory on the way. The
    returned dataset's ``manifest`` records the source, every input's sha256,
    the encoding and window parameters, counts per split, skipped files with
    reasons, the windows' sha256 and whether the cache was used.
    """
    spec = spec or WindowSpec()
    try:
        return _build(source_spec, spec, cache_dir, refresh, log)
    except MemoryError as error:  # the arrays die with the traceback, when this block ends
        detail = " ".join(str(error).split())[:160] or "MemoryError"
    raise DatasetError(
        f"{source_spec}: out of memory while building its dataset ({detail}); free memory, or give a smaller "
        "source (fewer or shorter pieces) or a smaller window"
    )


def _build(source_spec: str, spec: WindowSpec, cache_dir: Path | None, refresh: bool, log: bool) -> Dataset:
    cache = Path(cache_dir) if cache_dir else default_cache_dir()
    cache.mkdir(parents=True, exist_ok=True)
    source = parse_source(source_spec)
    started = time.perf_counter()
    folder = cache / f"windows-{_key(_source_key(source, spec.encode_options), asdict(spec), ARTIFACT_VERSION)}"
    status = "built"
    if not refresh and folder.exists():
        dataset = _verify(folder)
        if dataset is not None:
            dataset.manifest.update(
                cache="hit", seconds=round(time.perf_counter() - started, 3), artifact_path=str(folder / "dataset.npz")
            )
            return dataset
        status = "rebuilt: cached artifact failed its hash check"
    pieces, skipped = _encode(source, spec, cache, log, refresh)
    dataset = make_dataset(pieces, spec)
    if not len(dataset.windows):
        raise SourceError(
            f"{source.name}: 0 windows of {spec.num_timesteps} rows from {len(pieces)} pieces "
            f"({len(skipped)} skipped); give longer pieces or lower num_timesteps/min_rows"
        )
    counts = {s: int((dataset.split == i).sum()) for i, s in enumerate(SPLITS)}
    pieces_per_split = {s: len({int(p) for p in dataset.piece[dataset.split == i]}) for i, s in enumerate(SPLITS)}
    half = spec.n_pitches
    matrix = dataset.windows.reshape(len(dataset.windows), spec.num_timesteps, spec.row_width)
    manifest = {
        "artifact_version": ARTIFACT_VERSION,
        "encoder_version": ENCODER_VERSION,
        "source": source.name,
        "inputs": [{"name": i.name, "sha256": i.sha256} for i in source.inputs],
        "spec": asdict(spec),
        "pieces": len(pieces),
        "pieces_with_windows": int(sum(pieces_per_split.values())),
        "pieces_per_split": pieces_per_split,
        "windows_per_split": counts,
        "skipped": skipped,
        "density_play": float(matrix[..., :half].mean()) if matrix.size else 0.0,
        "density_articulate": float(matrix[..., half:].mean()) if matrix.size and spec.articulation else None,
        "piece_ids": dataset.piece_ids,
        "n_visible": spec.n_visible,
    }
    folder.mkdir(exist_ok=True)
    arrays = {"windows": dataset.windows, "split": dataset.split, "piece": dataset.piece}
    if spec.pad_last:
        arrays["frames"] = dataset.frames
    atomic_write(folder / "dataset.npz", lambda tmp: _savez(tmp, **arrays))
    manifest["windows_sha256"] = dataset.hash
    manifest["artifact_sha256"] = sha256_file(folder / "dataset.npz")
    atomic_write_text(folder / "manifest.json", json.dumps(manifest, indent=1))
    dataset.manifest = {
        **manifest,
        "cache": status,
        "seconds": round(time.perf_counter() - started, 3),
        "artifact_path": str(folder / "dataset.npz"),
    }
    return dataset
