"""MIDI -> note states -> windows -> cached dataset artifacts, identical for every framework.

``build(source, spec)`` encodes (or loads from the cache) and returns a `Dataset`;
``load(path, expected_hash)`` opens a built artifact and proves it is the one expected.
Sources are a catalogue, one module per kind in ``datasets/sources/``; ``source_help()`` lists them.
"""

from datasets.artifact import DatasetError, build, default_cache_dir, load
from datasets.encoding import EncodeOptions
from datasets.sequences import chunk_order, frame_table, held_out_pieces, piece_frames
from datasets.sources import Piece, SourceError, source_help
from datasets.windows import SPLITS, Dataset, WindowSpec, batch_order, order_hash

__all__ = [
    "SPLITS",
    "Dataset",
    "DatasetError",
    "EncodeOptions",
    "Piece",
    "SourceError",
    "WindowSpec",
    "batch_order",
    "build",
    "chunk_order",
    "default_cache_dir",
    "frame_table",
    "held_out_pieces",
    "load",
    "order_hash",
    "piece_frames",
    "source_help",
]
