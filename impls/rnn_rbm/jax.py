"""JAX RNN-RBM: the reference (`impls.rnn_rbm.numpy`) line for line as pure functions; lax.scan, jit.

`gradients` is the reference's CD-k + BPTT gradient written out (Boulanger-Lewandowski, Bengio & Vincent, ICML
2012, sec. 3): BPTT a reversed ``lax.scan`` of one product a step, each weight's gradient one product over every
frame. The ``autodiff`` mode takes the same gradient by ``jax.grad`` of the cost ``mean F_t(v(t)) - F_t(v*(t))``
(v* under ``stop_gradient``), whose transposed scan also adds ``W_uu``'s gradient into its carry at every step;
written out, an epoch takes 0.86x its time (2026-12-07, paired epochs, 1 thread). The RNN runs as a ``lax.scan``
over time, an epoch as a ``lax.scan`` over updates (the ``scan`` and ``autodiff`` modes) or one compiled call per
update (``update``: the same keys, so the same draws).
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


def gibbs(w: Weights, v: jax.Array, b_v: jax.Array, b_h: jax.Array, u_h: jax.Array, u_v: jax.Array, first: int = 0
          ) -> jax.Array:  # fmt: skip
    """Block-Gibbs steps v -> h -> v of the conditional RBMs from step ``first`` to ``len(u_h)``, step s drawing
    with ``u_h[s], u_v[s]``.

    A ``lax.scan`` over the steps: one compiled step, not k unrolled copies (CD-15 compiles in a fraction). It scans
    over step numbers, indexing the noise in place (``u_h[1:]`` would copy all but a step of it).
    """
    dt = v.dtype

    def step(v: jax.Array, s: jax.Array) -> tuple[jax.Array, None]:
        h = (u_h[s] < jax.nn.sigmoid(v @ w.W + b_h)).astype(dt)
        return visible_sample(w, h, b_v, u_v[s]), None

    return jax.lax.scan(step, v, jnp.arange(first, len(u_h)))[0]


def visible_sample(w: Weights, h: jax.Array, b_v: jax.Array, u_v: jax.Array) -> jax.Array:
    """v ~ p(v | h) of the conditional RBMs, drawn with ``u_v``."""
    return (u_v < jax.nn.sigmoid(h @ w.W.T + b_v)).astype(h.dtype)


def free_energy(w: Weights, v: jax.Array, b_v: jax.Array, b_h: jax.Array) -> jax.Array:
    """``F_t(v) = -v b_v(t) - sum_j softplus(v W + b_h(t))_j`` per frame."""
    return -(v * b_v).sum(-1) - softplus(v @ w.W + b_h).sum(-1)


def softplus(x: jax.Array) -> jax.Array:
    """``log(1 + e^x)`` without overflow."""
    return jnp.logaddexp(0, x)


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


def gradients(w: Weights, v: jax.Array, noise: RNNRBMNoise, mask: jax.Array) -> tuple[jax.Array, Weights]:
    """The reference's `impls.rnn_rbm.numpy.gradients` over the frames where ``mask`` is 1: ``(cost, gradient)``.

    Padding after a chunk's end adds nothing: there v is silent and v* is masked to silence, so v* W + b_h(t) is
    v W + b_h(t) exactly, its frames' gradients are 0 and BPTT carries nothing through them (the RNN is causal).
    Gibbs step 0's hidden probabilities are ``p(h | v)`` of the gradient, computed once.
    """
    u_previous, u = recurrence(w, v)
    b_v, b_h = biases(w, u_previous)
    x = v @ w.W + b_h  # v W + b_h(t): F(v), p(h | v), Gibbs step 0
    p_h = jax.nn.sigmoid(x)
    v_star = visible_sample(w, (noise.h[0] < p_h).astype(v.dtype), b_v, noise.v[0])
    v_star = gibbs(w, v_star, b_v, b_h, noise.h, noise.v, first=1) * mask[..., None]
    x_star = v_star @ w.W + b_h
    free_energies = -(v * b_v).sum(-1) - softplus(x).sum(-1), -(v_star * b_v).sum(-1) - softplus(x_star).sum(-1)
    n = mask.sum()  # the cost is a mean over every true frame of every chunk
    p_h_star = jax.nn.sigmoid(x_star)
    # each frame's RBM: dF/db_v(t) = -v, dF/db_h(t) = -p(h | v), dF/dW = -v^T p(h | v)
    d_b_v, d_b_h = (v_star - v) / n, (p_h_star - p_h) / n
    d_W = (flat(v_star).T @ flat(p_h_star) - flat(v).T @ flat(p_h)) / n
    d_W_uv, d_W_uh = flat(u_previous).T @ flat(d_b_v), flat(u_previous).T @ flat(d_b_h)
    d_u_previous = d_b_v @ w.W_uv.T + d_b_h @ w.W_uh.T  # dC/du(t-1) through frame t's biases
    d_W_uu, d_W_vu, d_b_u, d_u0 = through_time(w, v, u_previous, u, d_u_previous)
    gradient = Weights(d_W, d_b_v.sum((0, 1)), d_b_h.sum((0, 1)), d_W_uv, d_W_uh, d_W_uu, d_W_vu, d_b_u, d_u0)
    return ((free_energies[0] - free_energies[1]) * mask).sum() / n, gradient


def through_time(w: Weights, v: jax.Array, u_previous: jax.Array, u: jax.Array, d_u_previous: jax.Array
                 ) -> tuple[jax.Array, jax.Array, jax.Array, jax.Array]:  # fmt: skip
    """BPTT as the reference's `impls.rnn_rbm.numpy.through_time`: a reversed scan carrying dC/du(t)."""

    W_uu_T = w.W_uu.T  # outside the loop: inside, XLA copied the transpose at every step (0.27 ms an update)

    def step(d_u: jax.Array, inputs: tuple[jax.Array, jax.Array]) -> tuple[jax.Array, jax.Array]:
        d_u_previous_t, u_t = inputs
        d_drive_t = d_u * (1 - u_t**2)  # through the tanh
        return d_u_previous_t + d_drive_t @ W_uu_T, d_drive_t  # now dC/du(t-1)

    time_first = (jnp.swapaxes(d_u_previous, 0, 1), jnp.swapaxes(u, 0, 1))
    d_u, d_drive = jax.lax.scan(step, jnp.zeros_like(u[:, 0]), time_first, reverse=True)
    d_drive = jnp.swapaxes(d_drive, 0, 1)
    d_W_uu, d_W_vu = flat(u_previous).T @ flat(d_drive), flat(v).T @ flat(d_drive)
    return d_W_uu, d_W_vu, d_drive.sum((0, 1)), d_u.sum(0)  # d_u is now dC/du(0) = dC/du0, per sequence


def flat(x: jax.Array) -> jax.Array:
    """Every frame of every chunk a row."""
    return x.reshape(-1, x.shape[-1])


def clip(grads: Weights, clip_norm: float) -> Weights:
    """``grads`` scaled to global norm ``clip_norm`` if larger (0: unchanged)."""
    if not clip_norm:
        return grads
    norm = jnp.sqrt(sum((g**2).sum() for g in grads))
    return Weights(*(g * jnp.minimum(1, clip_norm / norm) for g in grads))


def cd_update(config: RNNRBMConfig, w: Weights, v: jax.Array, noise: RNNRBMNoise, mask: jax.Array, rate: jax.Array,
              autodiff: bool = False):  # fmt: skip
    """One CD-k + BPTT step of plain SGD: ``(new weights, cost before the step)``; the gradient written out
    (`gradients`) or by ``jax.grad`` of `cost`."""
    loss, grads = jax.value_and_grad(cost)(w, v, noise, mask) if autodiff else gradients(w, v, noise, mask)
    return Weights(*(p - rate * g for p, g in zip(w, clip(grads, config.clip_norm)))), loss


def draw_noise(config: RNNRBMConfig, key: jax.Array, batch: int, n_frames: int, k: int, dtype) -> RNNRBMNoise:
    k_h, k_v = jax.random.split(key)
    h = jax.random.uniform(k_h, (k, batch, n_frames, config.n_hidden), dtype)
    return RNNRBMNoise(h, jax.random.uniform(k_v, (k, batch, n_frames, config.n_visible), dtype))


@partial(jax.jit, static_argnums=(0, 6), donate_argnums=1)
def train_scan(config: RNNRBMConfig, w: Weights, batches: jax.Array, masks: jax.Array, sources, rate: jax.Array,
               autodiff: bool = False):  # fmt: skip
    """Updates over equal-shaped (padded) batches in one compiled ``lax.scan``; ``sources``: stacked noise or keys."""

    def body(w: Weights, inputs) -> tuple[Weights, jax.Array]:
        v, mask, source = inputs
        if isinstance(source, RNNRBMNoise):
            noise = source
        else:
            noise = draw_noise(config, source, v.shape[0], v.shape[1], config.cd_steps, v.dtype)
        return cd_update(config, w, v, noise, mask, rate, autodiff)

    return jax.lax.scan(body, w, (batches, masks, sources))


@partial(jax.jit, static_argnums=(0, 6), donate_argnums=(1, 2))
def train_keyed(config: RNNRBMConfig, w: Weights, key: jax.Array, batches: jax.Array, masks: jax.Array,
                rate: jax.Array, autodiff: bool = False):  # fmt: skip
    """`train_scan` on the model's own draws, its keys split inside the compiled call as the caller would have
    split them (the same keys, so the same draws): ``(weights, the model's next key, costs)``."""
    key, sub = jax.random.split(key)
    keys = jax.random.split(sub, batches.shape[0])
    w, costs = train_scan.__wrapped__(config, w, batches, masks, keys, rate, autodiff)
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
    """RNN-RBM trained by CD-k and BPTT with JAX (explicit keys, jit, scan over time and updates)."""

    name = "jax"
    backend = backend
    MODES = (
        Mode("scan", "the gradient written out, one compiled lax.scan over a call's updates (padded, masked)"),
        Mode("update", "the same, one compiled call per update, the loop in Python"),
        Mode("autodiff", "the gradient by jax.grad of the cost, one compiled lax.scan over a call's updates"),
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
        autodiff = self.mode == "autodiff"
        if noise is None and self.mode != "update":
            batches, masks, rate = self._array(batches), self._array(masks), self._rate(learning_rate)
            self.weights, self.key, costs = train_keyed(
                self.config, self.weights, self.key, batches, masks, rate, autodiff
            )
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
        if self.mode != "update":
            self.weights, costs = train_scan(self.config, self.weights, batches, masks, sources, rate, autodiff)
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
