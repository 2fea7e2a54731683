"""JAX RNN-RBM: the reference (`impls.rnn_rbm.numpy`) line for line as pure functions; jax.grad, lax.scan, jit.

The cost ``mean F_t(v(t)) - F_t(v*(t))`` is built with the negative samples v* under ``stop_gradient``, so
``jax.grad`` gives the reference's CD-k + BPTT gradient (Boulanger-Lewandowski, Bengio & Vincent, ICML 2012,
sec. 3). The RNN runs as a ``lax.scan`` over time, an epoch as a ``lax.scan`` over updates (the ``scan`` mode) or
one compiled call per update (``update``: the same keys, so the same draws).
"""

from __future__ import annotations

from functools import partial

import jax
import jax.numpy as jnp
import numpy as np

from impls.backends import jax as backend
from impls.common import Mode, bucketed_shape
from impls.rnn_rbm.interface import RNNRBM, RNNRBMConfig, RNNRBMNoise, RNNRBMParams, Weights


def recurrence(w: Weights, v: jax.Array) -> tuple[jax.Array, jax.Array]:
    """``(u(t-1), u(t))`` for every frame of ``v`` (batch, T, n_visible): the RNN over the true frames."""
    batch, R = v.shape[0], w.u0.shape[0]
    drive = v @ w.W_vu + w.b_u  # the part of every step that does not depend on u: one product

    def step(previous: jax.Array, drive_t: jax.Array) -> tuple[jax.Array, jax.Array]:
        u_t = jnp.tanh(drive_t + previous @ w.W_uu)
        return u_t, u_t

    _, u = jax.lax.scan(step, jnp.broadcast_to(w.u0, (batch, R)), jnp.swapaxes(drive, 0, 1))
    u = jnp.swapaxes(u, 0, 1)
    u_previous = jnp.concatenate([jnp.broadcast_to(w.u0, (batch, 1, R)), u[:, :-1]], 1)
    return u_previous, u


def biases(w: Weights, u_previous: jax.Array) -> tuple[jax.Array, jax.Array]:
    """``b_v(t) = b_v + u(t-1) W_uv`` and ``b_h(t) = b_h + u(t-1) W_uh``."""
    return w.b_v + u_previous @ w.W_uv, w.b_h + u_previous @ w.W_uh


def gibbs(w: Weights, v: jax.Array, b_v: jax.Array, b_h: jax.Array, u_h: jax.Array, u_v: jax.Array) -> jax.Array:
    """``len(u_h)`` block-Gibbs steps v -> h -> v of the conditional RBMs, step s drawing with ``u_h[s], u_v[s]``.

    A ``lax.scan`` over the steps: one compiled step, not k unrolled copies (CD-15 compiles in a fraction).
    """
    dt = v.dtype

    def step(v: jax.Array, draws: tuple[jax.Array, jax.Array]) -> tuple[jax.Array, None]:
        h = (draws[0] < jax.nn.sigmoid(v @ w.W + b_h)).astype(dt)
        return (draws[1] < jax.nn.sigmoid(h @ w.W.T + b_v)).astype(dt), None

    return jax.lax.scan(step, v, (u_h, u_v))[0]


def free_energy(w: Weights, v: jax.Array, b_v: jax.Array, b_h: jax.Array) -> jax.Array:
    """``F_t(v) = -v b_v(t) - sum_j softplus(v W + b_h(t))_j`` per frame."""
    return -(v * b_v).sum(-1) - jnp.logaddexp(0, v @ w.W + b_h).sum(-1)


def cost(w: Weights, v: jax.Array, noise: RNNRBMNoise, mask: jax.Array) -> jax.Array:
    """``mean_{b,t} F_t(v(t)) - F_t(v*(t))`` with v* under stop_gradient: its gradient is CD-k + BPTT.

    The mean is over the frames where ``mask`` is 1: padding after a chunk's end (or whole padded chunks) adds
    nothing, since the RNN is causal, so every update can have one shape and compile once.
    """
    u_previous, _ = recurrence(w, v)
    b_v, b_h = biases(w, u_previous)
    v_star = jax.lax.stop_gradient(gibbs(w, v, b_v, b_h, noise.h, noise.v))
    energy = free_energy(w, v, b_v, b_h) - free_energy(w, v_star, b_v, b_h)
    return (energy * mask).sum() / mask.sum()


def clip(grads: Weights, clip_norm: float) -> Weights:
    """``grads`` scaled to global norm ``clip_norm`` if larger (0: unchanged)."""
    if not clip_norm:
        return grads
    norm = jnp.sqrt(sum((g**2).sum() for g in grads))
    return Weights(*(g * jnp.minimum(1, clip_norm / norm) for g in grads))


def cd_update(config: RNNRBMConfig, w: Weights, v: jax.Array, noise: RNNRBMNoise, mask: jax.Array, rate: jax.Array):
    """One CD-k + BPTT step of plain SGD: ``(new weights, cost before the step)``."""
    loss, grads = jax.value_and_grad(cost)(w, v, noise, mask)
    return Weights(*(p - rate * g for p, g in zip(w, clip(grads, config.clip_norm)))), loss


def draw_noise(config: RNNRBMConfig, key: jax.Array, batch: int, n_frames: int, k: int, dtype) -> RNNRBMNoise:
    k_h, k_v = jax.random.split(key)
    h = jax.random.uniform(k_h, (k, batch, n_frames, config.n_hidden), dtype)
    return RNNRBMNoise(h, jax.random.uniform(k_v, (k, batch, n_frames, config.n_visible), dtype))


@partial(jax.jit, static_argnums=0, donate_argnums=1)
def train_scan(config: RNNRBMConfig, w: Weights, batches: jax.Array, masks: jax.Array, sources, rate: jax.Array):
    """Updates over equal-shaped (padded) batches in one compiled ``lax.scan``; ``sources``: stacked noise or keys."""

    def body(w: Weights, inputs) -> tuple[Weights, jax.Array]:
        v, mask, source = inputs
        if isinstance(source, RNNRBMNoise):
            noise = source
        else:
            noise = draw_noise(config, source, v.shape[0], v.shape[1], config.cd_steps, v.dtype)
        return cd_update(config, w, v, noise, mask, rate)

    return jax.lax.scan(body, w, (batches, masks, sources))


@partial(jax.jit, static_argnums=0, donate_argnums=(1, 2))
def train_keyed(config: RNNRBMConfig, w: Weights, key: jax.Array, batches: jax.Array, masks: jax.Array,
                rate: jax.Array):  # fmt: skip
    """`train_scan` on the model's own draws, its keys split inside the compiled call as the caller would have
    split them (the same keys, so the same draws): ``(weights, the model's next key, costs)``."""
    key, sub = jax.random.split(key)
    w, costs = train_scan.__wrapped__(config, w, batches, masks, jax.random.split(sub, batches.shape[0]), rate)
    return w, key, costs


@partial(jax.jit, static_argnums=(0, 4))
def generate_scan(config: RNNRBMConfig, w: Weights, start: jax.Array, sources, k: int) -> jax.Array:
    """Frames one after the other in a ``lax.scan``; ``sources``: per-frame noise (time first) or keys."""

    def step(u: jax.Array, inputs) -> tuple[jax.Array, jax.Array]:
        start_t, source = inputs
        if isinstance(source, tuple):
            u_h, u_v = source
        else:  # the model's own draws, one frame at a time
            u_h, u_v = (x[:, :, 0] for x in draw_noise(config, source, start_t.shape[0], 1, k, start_t.dtype))
        b_v, b_h = biases(w, u)
        v = gibbs(w, start_t, b_v, b_h, u_h, u_v)
        return jnp.tanh(v @ w.W_vu + w.b_u + u @ w.W_uu), v  # the RNN is fed the sampled frame

    u0 = jnp.broadcast_to(w.u0, (start.shape[0], w.u0.shape[0]))  # u(0)
    _, frames = jax.lax.scan(step, u0, (jnp.swapaxes(start, 0, 1), sources))
    return jnp.swapaxes(frames, 0, 1)


_conditional_biases = jax.jit(lambda w, v: biases(w, recurrence(w, v)[0]))
_frame_free_energies = jax.jit(lambda w, v: free_energy(w, v, *biases(w, recurrence(w, v)[0])))


class JaxRNNRBM(RNNRBM):
    """RNN-RBM trained by CD-k and BPTT with JAX (explicit keys, jax.grad, jit, scan over time and updates)."""

    name = "jax"
    backend = backend
    MODES = (
        Mode("scan", "one compiled lax.scan over a call's updates (each padded to its bucket of lengths, masked)"),
        Mode("update", "one compiled call per update, the loop in Python"),
    )

    FRAME_BUCKET = 8  # updates padded to a multiple of 8 frames: <= 13 compiled shapes for chunks of 100

    def __init__(self, config: RNNRBMConfig, params: RNNRBMParams, seed: int) -> None:
        super().__init__(config, params, seed)  # the backend's strict float32 products
        self.dtype = jnp.dtype(config.dtype)
        self.device = backend.device(config.device)
        self.weights = Weights(*(self._array(a) for a in params.arrays()))
        self.key = jax.device_put(jax.random.key(int(seed)), self.device)

    def reseed(self, seed: int) -> None:
        self.key = jax.device_put(jax.random.key(int(seed)), self.device)

    def _array(self, array: np.ndarray) -> jax.Array:
        return jax.device_put(np.asarray(array, self.dtype), self.device)  # converted by NumPy: no dispatch

    def _next_key(self) -> jax.Array:
        self.key, key = jax.random.split(self.key)
        return key

    def _rate(self, learning_rate: float | None) -> jax.Array:
        return self._array(self.rate(learning_rate))  # an array: a new rate does not recompile

    def train_chunks(
        self, chunks: np.ndarray, noise: list[RNNRBMNoise] | None = None, learning_rate: float | None = None
    ) -> np.ndarray:
        return np.asarray(self._train(self.updates(chunks, noise), noise, learning_rate), np.float64)

    def train_epoch(self, batches: list[np.ndarray], learning_rate: float | None = None) -> np.ndarray:
        """`RNNRBM.train_epoch` without waiting for each update's cost: the host pads the next update while the
        device runs this one (JAX dispatches asynchronously)."""
        costs = [self._train(self.updates(self.table[rows]), None, learning_rate) for rows in batches]
        return np.array([np.asarray(c, np.float64).mean() for c in costs])

    def cd_update(self, v: np.ndarray, noise: RNNRBMNoise, learning_rate: float | None = None) -> float:
        v = self.sequences(v)
        return float(self._train([v], [noise], learning_rate, v.shape[:2])[0])

    @backend.unrolled_threefry()  # its threefry unrolled where it compiles: the same draws, 0.85x a JSB epoch
    def _train(
        self, updates: list[np.ndarray], noise, learning_rate: float | None, shape: tuple[int, int] | None = None
    ):
        """The updates, each padded with silent frames to ``shape`` (default: one shape per `FRAME_BUCKET` of
        lengths, `impls.common.bucketed_shape`: a few shapes, a few compilations) and masked, in one compiled scan;
        their costs (a device array: reading it waits for the updates)."""
        if shape is None:
            shape = bucketed_shape(updates, self.config.batch_size, self.config.chunk_length, self.FRAME_BUCKET)
        batches, masks = self.padded(updates, shape)
        if noise is None and self.mode == "scan":
            batches, masks, rate = self._array(batches), self._array(masks), self._rate(learning_rate)
            self.weights, self.key, costs = train_keyed(self.config, self.weights, self.key, batches, masks, rate)
            return costs
        if noise is None:
            sources = jax.random.split(self._next_key(), len(updates))
        else:
            checked = [self.checked_noise(n, *v.shape[:2]) for n, v in zip(noise, updates)]
            padded = []
            for part, width in ((0, self.config.n_hidden), (1, self.config.n_visible)):
                stacked = np.zeros((len(updates), len(checked[0][0]), *shape, width))
                for index, draws in enumerate(checked):
                    u = np.asarray(draws[part])
                    stacked[index, :, : u.shape[1], : u.shape[2]] = u
                padded.append(self._array(stacked))
            sources = RNNRBMNoise(*padded)
        batches, masks, rate = self._array(batches), self._array(masks), self._rate(learning_rate)
        if self.mode == "scan":
            self.weights, costs = train_scan(self.config, self.weights, batches, masks, sources, rate)
            return costs
        costs = []
        for index in range(len(updates)):  # the same arrays and keys, one update (and one dispatch) at a time
            one = jax.tree_util.tree_map(lambda a, i=index: a[i : i + 1], (batches, masks, sources))
            self.weights, cost = train_scan(self.config, self.weights, *one, rate)
            costs.append(cost)
        return jnp.concatenate(costs)

    def conditional_biases(self, v: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        b_v, b_h = _conditional_biases(self.weights, self._array(self.sequences(v)))
        return np.asarray(b_v), np.asarray(b_h)

    def frame_free_energies(self, v: np.ndarray) -> np.ndarray:
        return np.asarray(_frame_free_energies(self.weights, self._array(self.sequences(v))))

    @backend.unrolled_threefry()
    def generate(
        self,
        n_pieces: int,
        n_frames: int,
        k: int | None = None,
        noise: RNNRBMNoise | None = None,
        start: np.ndarray | None = None,
    ) -> np.ndarray:
        start = self._array(self.generation_start(n_pieces, n_frames, start))
        if noise is None:
            k = self.config.cd_steps if k is None else k
            sources = jax.random.split(self._next_key(), n_frames)
        else:
            u_h, u_v = self.checked_noise(noise, n_pieces, n_frames)
            k, sources = len(u_h), tuple(self._array(np.moveaxis(u, 2, 0)) for u in (u_h, u_v))  # time first
        return np.asarray(generate_scan(self.config, self.weights, start, sources, k)).astype(np.uint8)

    @backend.unrolled_threefry()  # the ceiling's draws compiled as the update's are
    def draw_ms(self, batch: int, n_frames: int, repeats: int = 20) -> float:
        key, k = jax.device_put(jax.random.key(0), self.device), self.config.cd_steps
        draw = jax.jit(lambda key: draw_noise(self.config, key, batch, n_frames, k, self.dtype))
        return self.best_ms(lambda: jax.block_until_ready(draw(key)), repeats)

    def params(self) -> RNNRBMParams:
        return RNNRBMParams(*(np.asarray(a) for a in self.weights)).astype(np.float64)
