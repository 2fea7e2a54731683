"""The RNN-RBM's conditional RBMs, computed by the scorer itself: every frame's biases from its true past.

Scoring never trusts an implementation's own arithmetic: the trained parameters are exported (`RNNRBMParams`)
and the RNN is run here, in float64, over each held-out piece from ``u0`` (Boulanger-Lewandowski et al. 2012,
eqs. 9-11). Frame t's RBM then has the shared weights ``W`` and the biases ``b_v(t)``, ``b_h(t)``, and
``log p(v(t) | v(<t)) = -F_t(v(t)) - log Z_t`` is scored by `eval.scoring.frames`.
"""

from __future__ import annotations

import numpy as np

from datasets.windows import WindowSpec
from impls import RNNRBMParams


def frame_biases(params: RNNRBMParams, piece: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """``(b_v(t), b_h(t))`` of every frame of one piece (T, n_visible), each (T, n) in float64.

    ``b_v(t) = b_v + u(t-1) W_uv``, ``b_h(t) = b_h + u(t-1) W_uh``, ``u(t) = tanh(b_u + u(t-1) W_uu + v(t) W_vu)``
    and ``u(0) = u0``: frame t's biases depend on the frames before t only.
    """
    p = params.astype(np.float64)
    v = np.asarray(piece, np.float64)
    drive = v @ p.W_vu + p.b_u
    previous = np.empty((len(v), len(p.u0)))
    u = p.u0
    for t in range(len(v)):
        previous[t] = u
        u = np.tanh(drive[t] + u @ p.W_uu)
    return p.b_v + previous @ p.W_uv, p.b_h + previous @ p.W_uh


def pieces_biases(params: RNNRBMParams, pieces: list[np.ndarray]) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Every frame of ``pieces`` stacked: ``(frames, b_v, b_h)``, each (sum of lengths, n) in float64."""
    biases = [frame_biases(params, piece) for piece in pieces]
    frames = np.concatenate([np.asarray(p, np.float64) for p in pieces])
    return frames, np.concatenate([b[0] for b in biases]), np.concatenate([b[1] for b in biases])


def joined(windows: np.ndarray, spec: WindowSpec, piece_rows: int) -> list[np.ndarray]:
    """Sampled windows laid end to end as pieces of ``piece_rows`` rows: what a window model offers as a piece."""
    rows = windows.reshape(-1, spec.row_width)
    return [rows[start : start + piece_rows] for start in range(0, len(rows) - piece_rows + 1, piece_rows)]


def as_windows(pieces: np.ndarray, num_timesteps: int) -> np.ndarray:
    """Pieces (n, T, width) cut into windows of ``num_timesteps`` rows, flat (n * T // num_timesteps, ...)."""
    n, T, width = pieces.shape
    usable = T // num_timesteps * num_timesteps
    return pieces[:, :usable].reshape(n * (usable // num_timesteps), num_timesteps * width)
