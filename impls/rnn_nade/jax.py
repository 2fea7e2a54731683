"""JAX RNN-NADE: the reference (`impls.rnn_nade.numpy`) line for line as pure functions; jax.grad, lax.scan, jit.

The cost ``mean_t -log p(v(t) | v(<t))`` is exact, so ``jax.grad`` gives the reference's hand-written NADE + BPTT
gradient (Boulanger-Lewandowski, Bengio & Vincent, ICML 2012, sec. 5); Adam is written out as the reference's. The
RNN runs as a ``lax.scan`` over time, an epoch as one compiled ``lax.scan`` over updates (the ``scan`` mode) or one
compiled call per update (``update``: the same arithmetic), generation as a ``lax.scan`` over frames around a
``lax.scan`` over units.
"""

from __future__ import annotations

from functools import partial
from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

from impls.backends import jax as backend
from impls.common import Mode, bucketed_shape
from impls.rnn_nade.interface import BETA1, BETA2, EPSILON, RNNNADE, RNNNADEConfig, RNNNADENoise, RNNNADEParams, Weights
from impls.rnn_rbm.jax import biases, recurrence


class Adam(NamedTuple):
    """Adam's state: the step count and both moments (a pytree, carried through the scan with the weights)."""

    step: jax.Array
    m: Weights
    s: Weights


def past(v: jax.Array) -> jax.Array:
    """``past[..., i, j] = v_j`` where ``j < i``, else 0 (..., n_visible, n_visible): the units each unit is given."""
    return v[..., None, :] * jnp.tri(v.shape[-1], k=-1, dtype=v.dtype)


def nade(w: Weights, v: jax.Array, b_v: jax.Array, b_h: jax.Array) -> jax.Array:
    """Every unit's logit ``z_i = b_v_i + sigmoid(b_h + sum_{j<i} v_j W[j]) . V[i]``, all units and frames at once."""
    h = jax.nn.sigmoid(b_h[..., None, :] + past(v) @ w.W)
    return b_v + jnp.einsum("...ih,ih->...i", h, w.V)


def log_probs(v: jax.Array, z: jax.Array) -> jax.Array:
    """``log p(v) = sum_i v_i z_i - softplus(z_i)``."""
    return (v * z - jnp.logaddexp(0, z)).sum(-1)


def cost(w: Weights, v: jax.Array, mask: jax.Array) -> jax.Array:
    """``mean -log p(v(t) | v(<t))`` over the frames where ``mask`` is 1: exact, so its gradient is the reference's.

    Padding after a chunk's end (or whole padded chunks) adds nothing, since the RNN is causal, so every update can
    have one shape and compile once.
    """
    u_previous, _ = recurrence(w, v)
    b_v, b_h = biases(w, u_previous)
    return -(log_probs(v, nade(w, v, b_v, b_h)) * mask).sum() / mask.sum()


def clip(grads: Weights, clip_norm: float) -> Weights:
    """``grads`` scaled to global norm ``clip_norm`` if larger (0: unchanged)."""
    if not clip_norm:
        return grads
    norm = jnp.sqrt(sum((g**2).sum() for g in grads))
    return Weights(*(g * jnp.minimum(1, clip_norm / norm) for g in grads))


def adam(config: RNNNADEConfig, w: Weights, state: Adam, grads: Weights, rate: jax.Array) -> tuple[Weights, Adam]:
    """Adam's next step: the gradient clipped, plus ``weight_decay * p``, bias-corrected; new weights and state."""
    step = state.step + 1
    k = step.astype(jnp.float64)  # 1 - 0.999^k loses 4 digits to cancellation in float32: as the reference, in float64
    correction1, correction2 = ((1 - beta**k).astype(rate.dtype) for beta in (BETA1, BETA2))
    grads = Weights(*(g + config.weight_decay * p for p, g in zip(w, clip(grads, config.clip_norm))))
    m = Weights(*(BETA1 * m_p + (1 - BETA1) * g for m_p, g in zip(state.m, grads)))
    s = Weights(*(BETA2 * s_p + (1 - BETA2) * g * g for s_p, g in zip(state.s, grads)))
    w = Weights(
        *(p - rate * (m_p / correction1) / (jnp.sqrt(s_p / correction2) + EPSILON) for p, m_p, s_p in zip(w, m, s))
    )
    return w, Adam(step, m, s)


@partial(jax.jit, static_argnums=0, donate_argnums=(1, 2))
def train_scan(config: RNNNADEConfig, w: Weights, state: Adam, batches: jax.Array, masks: jax.Array, rate: jax.Array):
    """Updates over equal-shaped (padded) batches in one compiled ``lax.scan``: ``((weights, state), costs)``."""

    def body(carry: tuple[Weights, Adam], inputs) -> tuple[tuple[Weights, Adam], jax.Array]:
        w, state = carry
        v, mask = inputs
        loss, grads = jax.value_and_grad(cost)(w, v, mask)
        return adam(config, w, state, grads, rate), loss

    return jax.lax.scan(body, (w, state), (batches, masks))


def sample_frame(w: Weights, b_v: jax.Array, b_h: jax.Array, uniforms: jax.Array) -> jax.Array:
    """One frame of each piece (n, n_visible) drawn unit by unit from its NADE with ``uniforms`` (n, n_visible)."""

    def unit(a: jax.Array, inputs) -> tuple[jax.Array, jax.Array]:
        b_v_i, u_i, W_i, V_i = inputs
        v_i = (u_i < jax.nn.sigmoid(b_v_i + jax.nn.sigmoid(a) @ V_i)).astype(a.dtype)
        return a + v_i[:, None] * W_i, v_i

    _, v = jax.lax.scan(unit, b_h, (b_v.T, uniforms.T, w.W, w.V))  # units first
    return v.T


@jax.jit
def generate_scan(w: Weights, uniforms: jax.Array) -> jax.Array:
    """Frames one after the other in a ``lax.scan``, the RNN fed each sampled frame; ``uniforms`` (n, T, n_visible)."""

    def frame(u: jax.Array, uniforms_t: jax.Array) -> tuple[jax.Array, jax.Array]:
        v = sample_frame(w, *biases(w, u), uniforms_t)
        return jnp.tanh(v @ w.W_vu + w.b_u + u @ w.W_uu), v

    u0 = jnp.broadcast_to(w.u0, (uniforms.shape[0], w.u0.shape[0]))  # u(0)
    _, frames = jax.lax.scan(frame, u0, jnp.swapaxes(uniforms, 0, 1))
    return jnp.swapaxes(frames, 0, 1)


_conditional_biases = jax.jit(lambda w, v: biases(w, recurrence(w, v)[0]))
_frame_log_probs = jax.jit(lambda w, v: log_probs(v, nade(w, v, *biases(w, recurrence(w, v)[0]))))


class JaxRNNNADE(RNNNADE):
    """RNN-NADE trained by jax.grad and Adam with JAX (explicit keys, jit, scan over time, updates and units)."""

    name = "jax"
    backend = backend
    MODES = (
        Mode("scan", "one compiled lax.scan over a call's updates (each padded to its bucket of lengths, masked)"),
        Mode("update", "one compiled call per update, the loop in Python"),
    )

    FRAME_BUCKET = 8  # updates padded to a multiple of 8 frames: <= 13 compiled shapes for chunks of 100

    def __init__(self, config: RNNNADEConfig, params: RNNNADEParams, seed: int) -> None:
        super().__init__(config, params, seed)  # the backend's strict float32 products
        self.dtype = jnp.dtype(config.dtype)
        self.device = backend.device(config.device)
        self.weights = Weights(*(self._array(a) for a in params.arrays()))
        zeros = lambda: Weights(*(jnp.zeros_like(a) for a in self.weights))
        self.adam = Adam(jax.device_put(jnp.zeros((), jnp.int32), self.device), zeros(), zeros())
        self.key = jax.device_put(jax.random.key(int(seed)), self.device)

    def _array(self, array: np.ndarray) -> jax.Array:
        return jax.device_put(np.asarray(array, self.dtype), self.device)  # converted by NumPy: no dispatch

    def _next_key(self) -> jax.Array:
        self.key, key = jax.random.split(self.key)
        return key

    def train_epoch(self, batches: list[np.ndarray], learning_rate: float | None = None) -> np.ndarray:
        """`RNNNADE.train_epoch` without waiting for each update's cost: the host pads the next update while the
        device runs this one (JAX dispatches asynchronously)."""
        costs = [self._train(self.updates(self.table[rows]), learning_rate) for rows in batches]
        return np.array([np.asarray(c, np.float64).mean() for c in costs])

    def train_chunks(self, chunks: np.ndarray, learning_rate: float | None = None) -> np.ndarray:
        return np.asarray(self._train(self.updates(chunks), learning_rate), np.float64)

    def update(self, v: np.ndarray, learning_rate: float | None = None) -> float:
        v = self.sequences(v)
        return float(self._train([v], learning_rate, v.shape[:2])[0])

    def _train(self, updates: list[np.ndarray], learning_rate: float | None, shape: tuple[int, int] | None = None):
        """The updates, each padded with silent frames to ``shape`` (default: one shape per `FRAME_BUCKET` of
        lengths, `impls.common.bucketed_shape`) and masked, in one compiled scan; their costs (a device array:
        reading it waits for the updates)."""
        if shape is None:
            shape = bucketed_shape(updates, self.config.batch_size, self.config.chunk_length, self.FRAME_BUCKET)
        batches = np.zeros((len(updates), *shape, self.config.n_visible))
        masks = np.zeros((len(updates), *shape))
        for index, v in enumerate(updates):
            batches[index, : len(v), : v.shape[1]], masks[index, : len(v), : v.shape[1]] = v, 1
        rate = self._array(self.rate(learning_rate))  # an array: a new rate does not recompile
        batches, masks = self._array(batches), self._array(masks)
        if self.mode == "scan":
            (self.weights, self.adam), costs = train_scan(self.config, self.weights, self.adam, batches, masks, rate)
            return costs
        costs = []
        for index in range(len(updates)):  # the same arrays, one update (and one dispatch) at a time
            one = batches[index : index + 1], masks[index : index + 1]
            (self.weights, self.adam), cost = train_scan(self.config, self.weights, self.adam, *one, rate)
            costs.append(cost)
        return jnp.concatenate(costs)

    def conditional_biases(self, v: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        b_v, b_h = _conditional_biases(self.weights, self._array(self.sequences(v)))
        return np.asarray(b_v), np.asarray(b_h)

    def frame_log_probs(self, v: np.ndarray) -> np.ndarray:
        return np.asarray(_frame_log_probs(self.weights, self._array(self.sequences(v))))

    def generate(self, n_pieces: int, n_frames: int, noise: RNNNADENoise | None = None) -> np.ndarray:
        if noise is None:
            shape = (n_pieces, n_frames, self.config.n_visible)
            uniforms = jax.random.uniform(self._next_key(), shape, self.dtype)
        else:
            uniforms = self._array(self.checked_noise(noise, n_pieces, n_frames).v)
        return np.asarray(generate_scan(self.weights, uniforms)).astype(np.uint8)

    def params(self) -> RNNNADEParams:
        return RNNNADEParams(*(np.asarray(a) for a in self.weights)).astype(np.float64)
