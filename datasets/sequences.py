"""Pieces as sequences of frames, and the seeded order of training chunks, for sequence models (the RNN-RBM).

A sequence model reads the same dataset artifact as the window RBM: the windows of a piece, cut end to end
(``stride == num_timesteps``), laid one after another are the piece's rows, so both models train and are scored
on the same bytes and the same test rows. Frame ``f`` of the dataset is row ``f % num_timesteps`` of window
``f // num_timesteps``; a padded window's silent rows (``pad_last``) are not frames.
"""

from __future__ import annotations

import numpy as np

from datasets.windows import SPLITS, Dataset

QUANTUM = 8  # a piece's last chunk is cut to a multiple of this many frames: few distinct shapes to compile


def frame_table(dataset: Dataset) -> np.ndarray:
    """Every row of every window, (n_windows * num_timesteps, row_width): frame indices point into it."""
    return dataset.windows.reshape(-1, dataset.spec.row_width)


def piece_frames(dataset: Dataset, split: str) -> list[np.ndarray]:
    """Each piece of ``split`` as the indices of its frames in order (into `frame_table`).

    Raises ValueError (one line) when the windows overlap, so that they are not a piece's rows end to end.
    """
    spec = dataset.spec
    step = spec.train_stride if split == "train" and spec.train_stride else spec.stride
    if step != spec.num_timesteps:
        raise ValueError(
            f"{split} windows of {spec.num_timesteps} rows start every {step} rows: they overlap or leave gaps; "
            "a sequence model needs stride = num_timesteps"
        )
    windows = dataset.indices(split)
    rows = np.arange(spec.num_timesteps)
    pieces = []
    for piece in np.unique(dataset.piece[windows]):  # windows of a piece are stored in order
        mine = windows[dataset.piece[windows] == piece]
        frames = (mine[:, None] * spec.num_timesteps + rows)[rows < dataset.frames[mine][:, None]]
        pieces.append(frames)
    return pieces


def chunks(pieces: list[np.ndarray], chunk_length: int) -> list[np.ndarray]:
    """Each piece cut into consecutive chunks of ``chunk_length`` frames.

    A piece's remainder (or a piece shorter than a chunk) becomes one chunk cut down to a multiple of `QUANTUM`
    frames, so at most ``QUANTUM - 1`` frames of a piece go unused and a compiled framework sees few shapes.
    """
    out = []
    for frames in pieces:
        whole = len(frames) // chunk_length * chunk_length
        out += [frames[start : start + chunk_length] for start in range(0, whole, chunk_length)]
        rest = (len(frames) - whole) // QUANTUM * QUANTUM
        if rest:
            out.append(frames[whole : whole + rest])
    return out


def chunk_order(
    dataset: Dataset,
    seed: int | np.random.SeedSequence,
    chunk_length: int,
    batch_size: int,
    epochs: int,
    split: str | None = "train",
) -> list[list[np.ndarray]]:
    """Updates of the training chunks, one list per epoch; each update is a (chunks, frames) array of frame indices.

    Each epoch draws a fresh permutation of the chunks, gathers chunks of one length into updates of up to
    ``batch_size`` (in permuted order) and permutes the updates, all from ``seed``. ``split=None``: every piece.
    """
    rng = np.random.default_rng(seed)
    if split is None:
        pieces = [f for name in SPLITS for f in piece_frames(dataset, name)]
    else:
        pieces = piece_frames(dataset, split)
    cut = chunks(pieces, chunk_length)
    order = []
    for _ in range(epochs):
        permuted = [cut[i] for i in rng.permutation(len(cut))]
        updates = []
        for length in sorted({len(c) for c in permuted}):
            same = [c for c in permuted if len(c) == length]
            updates += [np.stack(same[i : i + batch_size]) for i in range(0, len(same), batch_size)]
        order.append([updates[i] for i in rng.permutation(len(updates))])
    return order


def held_out_pieces(dataset: Dataset, split: str, piece_rows: int) -> list[np.ndarray]:
    """The music of ``split`` as pieces of ``piece_rows`` rows (consecutive cuts; a shorter piece whole).

    The anchor of the whole-piece statistics: generated pieces of ``piece_rows`` rows beside music cut alike.
    """
    table, out = frame_table(dataset), []
    for frames in piece_frames(dataset, split):
        rows = table[frames]
        out += [rows[i : i + piece_rows] for i in range(0, max(1, len(rows) - piece_rows + 1), piece_rows)]
    return out
