"""Likelihood-type scores from exported parameters, in float64: one copy for every framework.

Free energy, pseudo-likelihood (exact and the two one-bit estimators people
know), the exact log partition function for small hidden layers (the oracle
the annealing estimators of `eval.scoring.ais` are tested against) and the
training monitors.
"""

from __future__ import annotations

import numpy as np
from scipy.special import expit, log_expit, logsumexp

from impls.rbm.interface import RBMParams


def softplus(x: np.ndarray) -> np.ndarray:
    return np.logaddexp(0.0, x)


def free_energy(params: RBMParams, v: np.ndarray) -> np.ndarray:
    """``F(v) = -v b_v - sum_j softplus(v W + b_h)_j`` per row, float64."""
    v = np.asarray(v, np.float64)
    return -(v @ params.b_v) - softplus(v @ params.W + params.b_h).sum(axis=1)


def pseudo_log_likelihood(params: RBMParams, v: np.ndarray, chunk_cells: int = 2_000_000) -> np.ndarray:
    """Exact ``PL(v) = sum_i log p(v_i | v_-i)`` per window.

    Flipping bit i moves the hidden pre-activations by ``s_i W_i`` with
    ``s_i = 1 - 2 v_i``, and ``log p(v_i | v_-i) = log sigmoid(F(flip_i v) - F(v))``,
    so all flips of a window cost O(n_visible * n_hidden); windows are
    processed in chunks of about ``chunk_cells`` (window, bit, hidden) cells.
    """
    v = np.asarray(v, np.float64)
    n_visible, n_hidden = params.W.shape
    per_chunk = max(1, chunk_cells // (n_visible * n_hidden))
    out = np.empty(len(v))
    for start in range(0, len(v), per_chunk):
        block = v[start : start + per_chunk]
        sign = 1.0 - 2.0 * block  # (n, V)
        active = block @ params.W + params.b_h  # (n, H)
        flipped = active[:, None, :] + sign[:, :, None] * params.W[None]  # (n, V, H)
        delta = -sign * params.b_v - (softplus(flipped) - softplus(active)[:, None, :]).sum(axis=2)
        out[start : start + len(block)] = log_expit(delta).sum(axis=1)
    return out


def one_bit_pl(params: RBMParams, v: np.ndarray, bits: np.ndarray) -> np.ndarray:
    """The stochastic one-bit PL estimate ``V * log sigmoid(F(flip_i v) - F(v))``, bit ``bits[n]`` for row n.

    scikit-learn's ``BernoulliRBM.score_samples`` draws one uniformly random
    bit per row (`sklearn_bits`); the Theano tutorial uses one bit index for
    the whole batch and rotates it between calls (`theano_bits`).
    """
    v = np.asarray(v, np.float64)
    flipped = v.copy()
    rows = np.arange(len(v))
    flipped[rows, bits] = 1 - flipped[rows, bits]
    return v.shape[1] * log_expit(free_energy(params, flipped) - free_energy(params, v))


def sklearn_bits(n_rows: int, n_visible: int, rng: np.random.Generator) -> np.ndarray:
    return rng.integers(0, n_visible, n_rows)


def theano_bits(n_rows: int, call_index: int, n_visible: int, start: int = 0) -> np.ndarray:
    """The Theano tutorial's bit: one index for the whole batch, advancing by one per call from ``start``."""
    return np.full(n_rows, (start + call_index) % n_visible)


EXACT_HIDDEN = 20  # 2^20 hidden states: about a second for 88 visible units, the oracle's limit


def exact_log_partition(params: RBMParams, chunk: int = 1 << 14) -> float:
    """``log Z`` by summing over all 2^n_hidden hidden states (the oracle; n_hidden <= 20)."""
    n_hidden = params.W.shape[1]
    if n_hidden > EXACT_HIDDEN:
        raise ValueError(f"exact log Z enumerates 2^{n_hidden} states; use AIS for more than 20 hidden units")
    terms = []
    for start in range(0, 1 << n_hidden, chunk):
        codes = np.arange(start, min(start + chunk, 1 << n_hidden))
        h = ((codes[:, None] >> np.arange(n_hidden)) & 1).astype(np.float64)
        terms.append(h @ params.b_h + softplus(h @ params.W.T + params.b_v).sum(axis=1))
    return float(logsumexp(np.concatenate(terms)))


def exact_marginal_log_probability(params: RBMParams, v: np.ndarray, real: np.ndarray, chunk: int = 1 << 14,
                                   log_z: float | None = None) -> np.ndarray:  # fmt: skip
    """``log p(v_1..v_r)`` of each row with its units after ``real[i]`` summed out, exact by enumerating the hidden
    states (n_hidden <= 20): a padded window's own rows, its silent padding marginalised away instead of scored.

    ``sum_{v_pad} exp(-F(v))`` is ``sum_h exp(h b_h + v_r (b_r + W_r h)) prod_pad (1 + e^{b_j + W_j h})``: the padded
    units leave a softplus per unit in every hidden state's term. A row with ``real`` = all its units gets
    ``-F(v) - log Z``. ``log_z``: the model's exact log Z where the caller has it (else enumerated here).
    """
    n_hidden = params.W.shape[1]
    if n_hidden > EXACT_HIDDEN:
        raise ValueError(f"the exact marginal enumerates 2^{n_hidden} states; at most {EXACT_HIDDEN} hidden units")
    v, real = np.asarray(v, np.float64), np.asarray(real)
    log_z = exact_log_partition(params, chunk) if log_z is None else log_z
    out = -free_energy(params, v) - log_z  # whole rows: nothing to sum out
    for r in np.unique(real[real < v.shape[1]]):
        rows = np.flatnonzero(real == r)
        own = v[rows, :r]
        drive = own @ params.W[:r] + params.b_h  # each row's hidden biases with its own units clamped
        total = np.full(len(rows), -np.inf)  # log of the sum over the hidden states enumerated so far
        for start in range(0, 1 << n_hidden, chunk):
            codes = np.arange(start, min(start + chunk, 1 << n_hidden))
            h = ((codes[:, None] >> np.arange(n_hidden)) & 1).astype(np.float64)
            padded = softplus(h @ params.W[r:].T + params.b_v[r:]).sum(axis=1)  # the summed-out units
            total = np.logaddexp(total, logsumexp(drive @ h.T + padded, axis=1))
        out[rows] = own @ params.b_v[:r] + total - log_z
    return out


def base_rate_biases(train: np.ndarray, smoothing: float = 1.0) -> np.ndarray:
    """Visible biases of the base-rate model: logits of the smoothed training marginals."""
    p = (np.asarray(train, np.float64).sum(axis=0) + smoothing) / (len(train) + 2 * smoothing)
    return np.log(p) - np.log1p(-p)


def reconstruction_cross_entropy(params: RBMParams, v: np.ndarray) -> float:
    """Mean cross-entropy (nats per window) of one deterministic up-down pass ``v -> p(h|v) -> p(v|h)``."""
    v = np.asarray(v, np.float64)
    logits = expit(v @ params.W + params.b_h) @ params.W.T + params.b_v
    return float(-(v * log_expit(logits) + (1 - v) * log_expit(-logits)).sum(axis=1).mean())


def free_energy_gap(params: RBMParams, train: np.ndarray, valid: np.ndarray) -> float:
    """Mean free energy of validation minus training windows: a rising gap means overfitting."""
    return float(free_energy(params, valid).mean() - free_energy(params, train).mean())
