"""MIDI -> note states -> windows -> cached dataset artifacts, identical for every framework."""

from datasets.artifact import build, default_cache_dir
from datasets.sources import Piece, SourceError
from datasets.windows import SPLITS, Dataset, WindowSpec, batch_order, order_hash

__all__ = [
    "SPLITS",
    "Dataset",
    "Piece",
    "SourceError",
    "WindowSpec",
    "batch_order",
    "build",
    "default_cache_dir",
    "order_hash",
]
