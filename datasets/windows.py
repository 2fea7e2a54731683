"""Windows of note states, splits by piece, and batch orders shared by every framework."""

from __future__ import annotations

import hashlib
import json
from dataclasses import asdict, dataclass, field

import numpy as np

from core.errors import ConfigError
from core.typed import at_least, check
from datasets.encoding import N_PITCHES, EncodeOptions
from datasets.sources import SPLITS, Piece


@dataclass(frozen=True)
class WindowSpec:
    """How pieces are cut into flat training vectors.

    A window is ``num_timesteps`` rows of pitches ``low..high-1``, each row
    ``[play | articulate]`` (or play only), flattened row-major: 2,340 values
    by default, the 2016 model's visible layer.
    """

    num_timesteps: int = field(default=15, metadata=at_least(1))
    stride: int = field(default=15, metadata=at_least(1))
    low: int = field(default=24, metadata={"low": 0, "high": N_PITCHES - 1})
    high: int = field(default=102, metadata={"low": 1, "high": N_PITCHES})
    articulation: bool = True
    cut_at_time_signature: bool = False
    min_rows: int = field(
        default=1, metadata=at_least(1)
    )  # pieces with fewer rows are left out (the original kept > 50)
    # a longer piece is refused and reported (52 minutes at 120 bpm)
    max_rows_per_piece: int = field(default=50_000, metadata=at_least(1))
    # a MIDI file whose last event lies later is refused and reported
    max_ticks: int = field(default=50_000_000, metadata=at_least(1))
    # keep each piece's last partial window, padded with silent rows: every frame is then scored (the published
    # polyphonic benchmarks score every frame of every test piece); `Dataset.frames` counts the real ones
    pad_last: bool = False
    # windows of the training split start every `train_stride` rows (0: every `stride`); overlapping training
    # windows show the model every frame at every position of a window, while held-out windows stay disjoint
    train_stride: int = field(default=0, metadata={"low": 0, "high": 1_000_000})

    def __post_init__(self) -> None:
        check(self)  # the one check of these declarations (a ConfigError: one line)
        if self.low >= self.high:
            raise ConfigError(
                f"pitch range {self.low}..{self.high} is empty: low {self.low} must be below high {self.high}"
            )

    @property
    def encode_options(self) -> EncodeOptions:
        """What encoding the pieces needs (it keys the pieces cache)."""
        return EncodeOptions(self.cut_at_time_signature, self.max_rows_per_piece, self.max_ticks)

    @property
    def n_pitches(self) -> int:
        return self.high - self.low

    @property
    def row_width(self) -> int:
        return self.n_pitches * (2 if self.articulation else 1)

    @property
    def n_visible(self) -> int:
        return self.num_timesteps * self.row_width

    def rows(self, states: np.ndarray) -> np.ndarray:
        """Select this spec's columns from a full ``[rows, 256]`` note-state matrix."""
        play = states[:, self.low : self.high]
        if not self.articulation:
            return play
        return np.hstack([play, states[:, N_PITCHES + self.low : N_PITCHES + self.high]])

    def to_matrix(self, window: np.ndarray) -> np.ndarray:
        """A flat window (or a sequence model's piece of any length) back to ``[rows, row_width]``."""
        return np.asarray(window).reshape(-1, self.row_width)


def split_of(piece_id: str) -> str:
    """Deterministic 80/10/10 split from the piece id alone (stable across runs and machines)."""
    bucket = int(hashlib.sha256(piece_id.encode()).hexdigest()[:8], 16) % 10
    return "train" if bucket < 8 else "valid" if bucket < 9 else "test"


def cut_windows(states: np.ndarray, spec: WindowSpec) -> np.ndarray:
    """Non-overlapping (by default) windows of one piece; leftover rows are dropped, or padded (``pad_last``)."""
    return _cut(states, spec)[0]


def _cut(states: np.ndarray, spec: WindowSpec, stride: int | None = None) -> tuple[np.ndarray, np.ndarray]:
    """Windows of one piece and the number of the piece's own rows in each (the rest is silent padding)."""
    rows = spec.rows(states)
    starts = list(range(0, len(rows) - spec.num_timesteps + 1, stride or spec.stride))
    frames = [spec.num_timesteps] * len(starts)
    covered = starts[-1] + spec.num_timesteps if starts else 0
    if spec.pad_last and covered < len(rows):  # the rows no full window reached, then silence
        rest = rows[covered:]
        rows = np.vstack([rows, np.zeros((spec.num_timesteps - len(rest), rows.shape[1]), rows.dtype)])
        starts.append(covered)
        frames.append(len(rest))
    if not starts:
        return np.zeros((0, spec.n_visible), dtype=np.uint8), np.zeros(0, np.int32)
    windows = np.stack([rows[s : s + spec.num_timesteps].reshape(-1) for s in starts]).astype(np.uint8)
    return windows, np.asarray(frames, np.int32)


@dataclass
class Dataset:
    """Windows of every piece with their split and piece index; ``hash`` proves sameness."""

    windows: np.ndarray  # uint8[N, V]
    split: np.ndarray  # int8[N], index into SPLITS
    piece: np.ndarray  # int32[N], index into piece_ids
    piece_ids: list[str]
    spec: WindowSpec
    manifest: dict = field(default_factory=dict)
    frames: np.ndarray | None = None  # int32[N]: the piece's own rows in each window (``pad_last``), else all

    def __post_init__(self) -> None:
        if self.frames is None:
            self.frames = np.full(len(self.windows), self.spec.num_timesteps, np.int32)

    @property
    def hash(self) -> str:
        digest = hashlib.sha256()
        for array in (self.windows, self.split, self.piece, *([self.frames] if self.spec.pad_last else [])):
            digest.update(np.ascontiguousarray(array).tobytes())
        spec = asdict(self.spec)
        for option in ("pad_last", "train_stride"):  # a spec from before these options hashes as it did
            if not spec[option]:
                del spec[option]
        digest.update(json.dumps(spec, sort_keys=True).encode())
        return digest.hexdigest()

    def indices(self, split: str) -> np.ndarray:
        return np.flatnonzero(self.split == SPLITS.index(split))

    def subset(self, split: str) -> np.ndarray:
        return self.windows[self.indices(split)]


def make_dataset(pieces: list[Piece], spec: WindowSpec) -> Dataset:
    """Cut every piece into windows; a piece keeps its source's split or gets one by id."""
    windows, split, piece, frames = [], [], [], []
    for index, item in enumerate(pieces):
        where = item.split or split_of(item.id)
        stride = spec.train_stride if where == "train" else None
        cut, counts = _cut(item.states if len(item.states) >= spec.min_rows else item.states[:0], spec, stride)
        windows.append(cut)
        frames.append(counts)
        split.append(np.full(len(cut), SPLITS.index(where), np.int8))
        piece.append(np.full(len(cut), index, np.int32))
    return Dataset(
        windows=np.concatenate(windows) if windows else np.zeros((0, spec.n_visible), np.uint8),
        split=np.concatenate(split) if split else np.zeros(0, np.int8),
        piece=np.concatenate(piece) if piece else np.zeros(0, np.int32),
        piece_ids=[item.id for item in pieces],
        spec=spec,
        frames=np.concatenate(frames) if frames else np.zeros(0, np.int32),
    )


def batch_order(
    dataset: Dataset,
    seed: int | np.random.SeedSequence,
    batch_size: int,
    epochs: int,
    mode: str = "shuffle",
    split: str | None = "train",
) -> list[list[np.ndarray]]:
    """Batches of row indices into ``dataset.windows``, one list per epoch.

    ``shuffle``: a fresh permutation of the training windows each epoch, cut
    into full batches (the remainder, different each epoch, is dropped so
    every batch has the same shape). ``seed``: the 2016 original's loop —
    pieces in order, each cut into batches of up to ``batch_size``
    consecutive windows starting at its *second* window, never shuffled.
    ``split=None`` trains on every window, as the original did (it had no
    held-out songs).
    """
    train = dataset.indices(split) if split else np.arange(len(dataset.windows))
    if mode == "shuffle":
        rng = np.random.default_rng(seed)
        n_batches = len(train) // batch_size
        epochs_out = []
        for _ in range(epochs):
            permuted = rng.permutation(train)[: n_batches * batch_size]
            epochs_out.append(list(permuted.reshape(n_batches, batch_size)))
        return epochs_out
    if mode == "seed":
        batches = []
        for piece in np.unique(dataset.piece[train]):
            rows = train[dataset.piece[train] == piece]
            batches += [rows[start : start + batch_size] for start in range(1, len(rows), batch_size)]
        return [list(batches) for _ in range(epochs)]
    raise ValueError(f"batch order {mode!r} is unknown; use shuffle or seed")


def order_hash(order: list[list[np.ndarray]]) -> str:
    """sha256 over every batch of every epoch (lengths included; a 2-D batch of chunks its width too)."""
    digest = hashlib.sha256()
    for epoch in order:
        for batch in epoch:
            digest.update(np.int64(len(batch)).tobytes() + np.asarray(batch, np.int64).tobytes())
            if np.ndim(batch) == 2:
                digest.update(b"w" + np.int64(np.shape(batch)[1]).tobytes())
    return digest.hexdigest()
