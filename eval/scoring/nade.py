"""The RNN-NADE's exact likelihood, computed by the scorer itself in float64 from exported parameters.

Scoring never trusts an implementation's arithmetic (`eval.scoring.sequences`): the RNN runs here over each held-out
piece from ``u0`` (the RNN-RBM's, `frame_biases`), and frame t's NADE (Boulanger-Lewandowski, Bengio & Vincent, ICML
2012, sec. 5; Larochelle & Murray, AISTATS 2011) gives

    log p(v(t) | v(<t)) = sum_i v_i z_i - softplus(z_i),   z_i = b_v(t)_i + sigmoid(b_h(t) + sum_{j<i} v_j W[j]) . V[i]

exactly: a product of sigmoids, no partition function, so no bracket. The sums over earlier units are a cumulative
sum here (the implementations use a masked product), so the two are computed differently and checked against each
other (tests/scoring/test_nade_scorer.py).
"""

from __future__ import annotations

import numpy as np
from scipy.special import expit

from eval.scoring.sequences import frame_biases
from impls import RNNNADEParams

BLOCK = 256  # frames per step: a (BLOCK, n_visible, n_hidden) hidden layer, 27 MB at 88 x 150


def nade_log_probs(params: RNNNADEParams, v: np.ndarray, b_v: np.ndarray, b_h: np.ndarray) -> np.ndarray:
    """``log p(v)`` of frames ``v`` (n, n_visible) under NADEs with biases ``b_v`` (n, n_visible), ``b_h`` (n,
    n_hidden), all in float64; (n,) in nats, ``BLOCK`` frames at a time."""
    W, V = np.asarray(params.W, np.float64), np.asarray(params.V, np.float64)
    out = np.empty(len(v))
    for start in range(0, len(v), BLOCK):
        frames = np.asarray(v[start : start + BLOCK], np.float64)
        steps = frames[:, :, None] * W  # unit j's contribution v_j W[j] to the units after it
        a = np.zeros_like(steps)
        np.cumsum(steps[:, :-1], axis=1, out=a[:, 1:])  # sum over j < i: an exclusive cumulative sum over units
        a += b_h[start : start + BLOCK, None, :]
        z = b_v[start : start + BLOCK] + np.einsum("nih,ih->ni", expit(a), V)
        out[start : start + BLOCK] = (frames * z - np.logaddexp(0, z)).sum(-1)
    return out


def pieces_log_probs(params: RNNNADEParams, pieces: list[np.ndarray], chosen: np.ndarray | None = None) -> np.ndarray:
    """Exact ``log p(v(t) | v(<t))`` of every frame of ``pieces`` stacked (or of the ``chosen`` ones), in float64.

    Each piece's RNN runs over its whole true past from ``u0``; then the NADE scores only the frames asked for.
    """
    p = params.astype(np.float64)
    biases = [frame_biases(p, piece) for piece in pieces]  # the RNN-RBM's recurrence: the same seven parameters
    v = np.concatenate([np.asarray(piece, np.float64) for piece in pieces])
    b_v, b_h = np.concatenate([b[0] for b in biases]), np.concatenate([b[1] for b in biases])
    if chosen is not None:
        v, b_v, b_h = v[chosen], b_v[chosen], b_h[chosen]
    return nade_log_probs(p, v, b_v, b_h)
