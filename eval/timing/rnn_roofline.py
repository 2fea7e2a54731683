"""The RNN models' rooflines: the dense products of one update, timed alone in NumPy float32.

The RNN-RBM (`step_products_ms`): one update on a (batch, T) chunk of frames does, per frame, ``2k`` Gibbs
products and two free-energy products of the conditional RBMs (``n_visible x n_hidden``), the RNN's input and bias
products (``n_visible x n_recurrent``, ``n_recurrent x (n_visible + n_hidden)``), the T sequential recurrent products
forward and back (``n_recurrent x n_recurrent``), and the gradient products of all six matrices. Timed as the fewest
dense products that do that arithmetic (one per matrix and direction, every frame at once where the model allows
it), they bound from above what any implementation can reach on this machine: ``frames / products time``.
Speeds are compared only as ratios measured in the same run.

An epoch's updates differ in shape (chunks end with their music: JSB's ~123 updates an epoch come in ~18 shapes,
55 frames a chunk on average), and a short update's products run at another distance from the machine's peak than
the largest's. So the roofline of an epoch is its own updates' products (`epoch_products`: each shape timed once,
weighted by its count), not the largest update's extrapolated, which on JSB (2026-12-07) was 4.6 % too fast a frame
for the RNN-RBM (small products, and 2T recurrent ones for fewer frames each) and 2.9 % too slow for the RNN-NADE
(its masked product's operands fit the caches better when short).

The RNN-NADE (`nade_products_ms`): per frame, the masked product (every unit's hidden pre-activation from the units
before it: ``n_visible`` rows of the ``n_visible x n_visible`` masked past times ``W``), every unit's logit (its
hidden layer times its row of ``V``), and in the gradient the same two backwards (``dW`` from the masked past,
``dV``); the RNN's products as the RNN-RBM's (input, biases, the recurrence forward and back, four gradients).
"""

from __future__ import annotations

import time
from collections import Counter
from collections.abc import Callable

import numpy as np

from impls import RNNNADEConfig, RNNRBMConfig


def epoch_products(products_ms: Callable[[int, int], float], updates: list[np.ndarray]) -> tuple[float, float]:
    """``(frames, products ms)`` of the mean update of ``updates`` (each a (chunks, frames) array of frame indices):
    ``products_ms(chunks, frames)`` timed once for each distinct shape, weighted by how many updates have it."""
    shapes = Counter(update.shape for update in updates)
    total_ms = sum(count * products_ms(*shape) for shape, count in shapes.items())
    return sum(update.size for update in updates) / len(updates), total_ms / len(updates)


def step_products_ms(config: RNNRBMConfig, batch: int, frames: int, repeats: int = 5) -> float:
    """Milliseconds (best of ``repeats``) for the dense products of one update on ``batch`` chunks of ``frames``."""
    rng = np.random.default_rng(0)  # its own stream: timing never touches a model's generator
    V, H, R, n = config.n_visible, config.n_hidden, config.n_recurrent, batch * frames
    f32 = np.float32
    v, h, u = (rng.random((n, k)).astype(f32) for k in (V, H, R))
    W, W_vu, W_uv, W_uh, W_uu = (rng.random(s).astype(f32) for s in ((V, H), (V, R), (R, V), (R, H), (R, R)))
    state = rng.random((batch, R)).astype(f32)
    best = np.inf
    for _ in range(repeats):
        started = time.perf_counter()
        for _ in range(config.cd_steps):  # Gibbs: h from v, v from h
            v @ W, h @ W.T
        v @ W, v @ W  # free energies of v and v*
        v.T @ h, v.T @ h  # dW: positive and negative statistics
        v @ W_vu, u @ W_uv, u @ W_uh  # the RNN's input; b_v(t), b_h(t)
        for _ in range(2 * frames):  # the recurrence forward, then back through time
            state @ W_uu
        v @ W_uv.T, h @ W_uh.T  # dC/du(t-1) through the biases
        u.T @ v, u.T @ h, u.T @ u, v.T @ u  # gradients of W_uv, W_uh, W_uu, W_vu
        best = min(best, time.perf_counter() - started)
    return best * 1e3


def nade_products_ms(config: RNNNADEConfig, batch: int, frames: int, repeats: int = 5) -> float:
    """Milliseconds (best of ``repeats``) for the dense products of one RNN-NADE update on ``batch`` chunks of
    ``frames``: the NADE's four (batched over units where each unit has its own row) and the RNN's."""
    rng = np.random.default_rng(0)  # its own stream: timing never touches a model's generator
    V, H, R, n = config.n_visible, config.n_hidden, config.n_recurrent, batch * frames
    f32 = np.float32
    v, b_h, u = (rng.random((n, k)).astype(f32) for k in (V, H, R))
    masked = rng.random((n * V, V)).astype(f32)  # every frame's masked past, one row per unit
    h, d_z = rng.random((V, n, H)).astype(f32), rng.random((V, n, 1)).astype(f32)  # per unit: hidden layer, dC/dz
    W, W_out = rng.random((V, H)).astype(f32), rng.random((V, H, 1)).astype(f32)
    W_vu, W_uv, W_uh, W_uu = (rng.random(s).astype(f32) for s in ((V, R), (R, V), (R, H), (R, R)))
    d_a = rng.random((n * V, H)).astype(f32)
    state = rng.random((batch, R)).astype(f32)
    best = np.inf
    for _ in range(repeats):
        started = time.perf_counter()
        masked @ W, np.matmul(h, W_out)  # every unit's pre-activation (the masked product), every unit's logit
        np.matmul(h.transpose(0, 2, 1), d_z), masked.T @ d_a  # dV, dW (the masked product's gradient)
        v @ W_vu, u @ W_uv, u @ W_uh  # the RNN's input; b_v(t), b_h(t)
        for _ in range(2 * frames):  # the recurrence forward, then back through time
            state @ W_uu
        v @ W_uv.T, b_h @ W_uh.T  # dC/du(t-1) through the biases
        u.T @ v, u.T @ b_h, u.T @ u, v.T @ u  # gradients of W_uv, W_uh, W_uu, W_vu
        best = min(best, time.perf_counter() - started)
    return best * 1e3
