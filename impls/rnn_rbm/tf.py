"""TensorFlow RNN-RBM: the reference (`impls.rnn_rbm.numpy`) line for line, tf.GradientTape inside tf.function.

The cost ``mean F_t(v(t)) - F_t(v*(t))`` is built with the negative samples v* under ``tf.stop_gradient``, so
the tape's gradient is the reference's CD-k + BPTT gradient (Boulanger-Lewandowski, Bengio & Vincent, ICML
2012, sec. 3). The RNN runs as a ``tf.scan`` over time; an epoch drawing its own noise is one tf.function loop, run
by TensorFlow's graph executor (the ``function`` mode) or compiled by XLA (``xla``: ``jit_compile``, every update
padded with silent frames to ``(batch_size, chunk_length)`` and masked, one shape; XLA draws its own Philox numbers,
so only updates from explicit noise equal the other mode's). The ``manual`` mode runs the reference's hand-written
gradients (`gradients`) without a tape, both time loops unrolled: one graph per update shape, traced on its first use.

The ``manual`` and ``function`` modes draw their noise with XLA's threefry (`threefry_uniform`, seeded per update by
the model's generator): TensorFlow's own CPU kernels have only Philox, which took about twice as long for as many
numbers (README, "Execution modes"); both modes draw the same numbers for the same seed.
"""

from __future__ import annotations

import numpy as np
import tensorflow as tf

from impls.backends import tf as backend
from impls.common import Mode
from impls.rnn_rbm.interface import RNNRBM, RNNRBMConfig, RNNRBMNoise, RNNRBMParams, Weights


def recurrence(w: Weights, v: tf.Tensor) -> tuple[tf.Tensor, tf.Tensor]:
    """``(u(t-1), u(t))`` for every frame of ``v`` (batch, T, n_visible): the RNN over the true frames."""
    u0 = tf.broadcast_to(w.u0, [tf.shape(v)[0], tf.shape(w.u0)[0]])
    drive = v @ w.W_vu + w.b_u  # the part of every step that does not depend on u: one product
    step = lambda previous, drive_t: tf.tanh(drive_t + previous @ w.W_uu)
    u = tf.transpose(tf.scan(step, tf.transpose(drive, [1, 0, 2]), initializer=u0), [1, 0, 2])
    u_previous = tf.concat([u0[:, None], u[:, :-1]], 1)
    return u_previous, u


def biases(w: Weights, u_previous: tf.Tensor) -> tuple[tf.Tensor, tf.Tensor]:
    """``b_v(t) = b_v + u(t-1) W_uv`` and ``b_h(t) = b_h + u(t-1) W_uh``."""
    return w.b_v + u_previous @ w.W_uv, w.b_h + u_previous @ w.W_uh


def gibbs(w: Weights, v: tf.Tensor, b_v: tf.Tensor, b_h: tf.Tensor, u_h: tf.Tensor, u_v: tf.Tensor) -> tf.Tensor:
    """``len(u_h)`` block-Gibbs steps v -> h -> v of the conditional RBMs, step s drawing with ``u_h[s], u_v[s]``."""
    dt = v.dtype
    for step in range(u_h.shape[0]):  # a static k: the steps unroll in the graph
        h = tf.cast(u_h[step] < tf.sigmoid(v @ w.W + b_h), dt)
        v = tf.cast(u_v[step] < tf.sigmoid(tf.matmul(h, w.W, transpose_b=True) + b_v), dt)
    return v


def free_energy(w: Weights, v: tf.Tensor, b_v: tf.Tensor, b_h: tf.Tensor) -> tf.Tensor:
    """``F_t(v) = -v b_v(t) - sum_j softplus(v W + b_h(t))_j`` per frame."""
    return -tf.reduce_sum(v * b_v, -1) - tf.reduce_sum(tf.nn.softplus(v @ w.W + b_h), -1)


def cost(w: Weights, v: tf.Tensor, noise: RNNRBMNoise, mask: tf.Tensor | None = None) -> tf.Tensor:
    """``mean_{b,t} F_t(v(t)) - F_t(v*(t))`` with v* under stop_gradient: its gradient is CD-k + BPTT.

    With a ``mask``, the mean over the frames where it is 1 (padding after a chunk's end adds nothing: the RNN is
    causal)."""
    u_previous, _ = recurrence(w, v)
    b_v, b_h = biases(w, u_previous)
    v_star = tf.stop_gradient(gibbs(w, v, b_v, b_h, noise.h, noise.v))
    energy = free_energy(w, v, b_v, b_h) - free_energy(w, v_star, b_v, b_h)
    return tf.reduce_mean(energy) if mask is None else tf.reduce_sum(energy * mask) / tf.reduce_sum(mask)


def gradients(w: Weights, v: tf.Tensor, noise: RNNRBMNoise) -> tuple[tf.Tensor, Weights]:
    """The reference's `gradients` (``impls.rnn_rbm.numpy``: CD-k + BPTT written out) without a tape: the ``manual``
    mode. Every frame is a row; the time loops unroll over the static number of frames (a graph per update shape)."""
    batch, T, k = v.shape[0], v.shape[1], noise.h.shape[0]
    n = batch * T  # the cost is a mean over every frame of every chunk
    w = Weights(*(tf.convert_to_tensor(p) for p in w))  # each variable read once, not once a time step
    rows = lambda x: tf.reshape(x, [-1, x.shape[-1]])  # (..., k) as (frames, k)
    v = rows(v)
    u_previous, u = unrolled_recurrence(w, v, batch, T)
    b_v, b_h = w.b_v + u_previous @ w.W_uv, w.b_h + u_previous @ w.W_uh
    x = v @ w.W + b_h  # v W + b_h(t): F(v), p(h | v) and Gibbs step 0
    p_h, v_star = tf.sigmoid(x), v
    draws = zip(tf.unstack(tf.reshape(noise.h, [k, n, -1])), tf.unstack(tf.reshape(noise.v, [k, n, -1])))
    for step, (u_h, u_v) in enumerate(draws):  # step s: every frame's rows
        h = tf.cast(u_h < (p_h if step == 0 else tf.sigmoid(v_star @ w.W + b_h)), v.dtype)
        v_star = tf.cast(u_v < tf.sigmoid(tf.matmul(h, w.W, transpose_b=True) + b_v), v.dtype)
    x_star = v_star @ w.W + b_h
    softplus = lambda z: tf.reduce_sum(tf.nn.softplus(z))
    cost = (tf.reduce_sum(v_star * b_v) - tf.reduce_sum(v * b_v) + softplus(x_star) - softplus(x)) / n
    p_h_star = tf.sigmoid(x_star)
    # each frame's RBM: dF/db_v(t) = -v, dF/db_h(t) = -p(h | v), dF/dW = -v^T p(h | v)
    d_b_v, d_b_h = (v_star - v) / n, (p_h_star - p_h) / n
    d_W = (tf.matmul(v_star, p_h_star, transpose_a=True) - tf.matmul(v, p_h, transpose_a=True)) / n
    return cost, Weights(d_W, *unrolled_through_time(w, v, u_previous, u, d_b_v, d_b_h))


def unrolled_recurrence(w: Weights, v: tf.Tensor, batch: int, T: int) -> tuple[tf.Tensor, tf.Tensor]:
    """`recurrence` for the ``manual`` modes of both RNN models, its steps unrolled over the static ``T``: ``v`` is
    rows (every frame of (batch, T)), u(t-1) comes out as rows, u(t) as (batch, T, n_recurrent)."""
    R = w.u0.shape[0]
    drive = tf.reshape(v @ w.W_vu + w.b_u, [batch, T, R])  # v(t) W_vu + b_u: one product
    previous, states = tf.broadcast_to(w.u0, [batch, R]), []
    for drive_t in tf.unstack(drive, axis=1):
        previous = tf.tanh(drive_t + previous @ w.W_uu)
        states.append(previous)
    u = tf.stack(states, 1)
    return tf.reshape(tf.concat([tf.broadcast_to(w.u0, [batch, 1, R]), u[:, :-1]], 1), [batch * T, R]), u


def unrolled_through_time(w: Weights, v: tf.Tensor, u_previous: tf.Tensor, u: tf.Tensor, d_b_v: tf.Tensor,
                          d_b_h: tf.Tensor) -> tuple[tf.Tensor, ...]:  # fmt: skip
    """``(b_v, b_h, W_uv, W_uh, W_uu, W_vu, b_u, u0)``'s gradients from every frame's ``dC/db_v(t)``, ``dC/db_h(t)``
    (the reference's biases' gradients and BPTT) for the ``manual`` modes of both RNN models, the steps back unrolled
    over ``u``'s static (batch, T); ``v``, ``u_previous`` and the bias gradients are rows."""
    batch, T, R = u.shape
    d_u_previous = tf.matmul(d_b_v, w.W_uv, transpose_b=True) + tf.matmul(d_b_h, w.W_uh, transpose_b=True)
    d_u, d_drives = tf.zeros_like(u[:, 0]), []  # BPTT: dC/du(t) from the frames after t; u(T) reaches nothing
    slopes, d_u_previous = tf.unstack(1 - u * u, axis=1), tf.unstack(tf.reshape(d_u_previous, [batch, T, R]), axis=1)
    for slope_t, d_u_previous_t in zip(reversed(slopes), reversed(d_u_previous)):
        d_drives.append(d_u * slope_t)  # through the tanh
        d_u = d_u_previous_t + tf.matmul(d_drives[-1], w.W_uu, transpose_b=True)  # now dC/du(t-1)
    d_drive = tf.reshape(tf.stack(d_drives[::-1], 1), [batch * T, R])
    transposed = lambda a, b: tf.matmul(a, b, transpose_a=True)
    return (tf.reduce_sum(d_b_v, 0), tf.reduce_sum(d_b_h, 0), transposed(u_previous, d_b_v),
            transposed(u_previous, d_b_h), transposed(u_previous, d_drive), transposed(v, d_drive),
            tf.reduce_sum(d_drive, 0), tf.reduce_sum(d_u, 0))  # fmt: skip


@tf.function(jit_compile=True)
def threefry_uniform(seeds: list[tf.Tensor], shapes: list[tuple[int, ...]], dtype: tf.DType) -> list[tf.Tensor]:
    """Uniform draws in [0, 1) of each static shape from its stateless seed (int64 [2]) by XLA's threefry: compiled by
    XLA even inside a graph that is not (TensorFlow's own kernels offer only Philox on a CPU, about 2x slower here)."""
    return [tf.random.stateless_uniform(shape, seed, dtype=dtype, alg="threefry") for seed, shape in zip(seeds, shapes)]


def clip(grads: list[tf.Tensor], clip_norm: float) -> list[tf.Tensor]:
    """``grads`` scaled to global norm ``clip_norm`` if larger (0: unchanged)."""
    if not clip_norm:
        return grads
    norm = tf.sqrt(tf.add_n([tf.reduce_sum(g**2) for g in grads]))
    return [g * tf.minimum(tf.constant(1, g.dtype), clip_norm / norm) for g in grads]


class TFRNNRBM(RNNRBM):
    """RNN-RBM trained by CD-k and BPTT with TensorFlow 2 (tf.Variables, GradientTape in tf.function)."""

    name = "tf"
    backend = backend
    MODES = (
        Mode("manual", "the reference's hand-written gradients, no tape, time loops unrolled: a graph per shape"),
        Mode("function", "tf.function over a call's updates (TensorFlow's graph executor)"),
        Mode("xla", "tf.function with jit_compile: the updates' loop compiled by XLA"),
    )

    def __init__(self, config: RNNRBMConfig, params: RNNRBMParams, seed: int) -> None:
        super().__init__(config, params, seed)  # the backend's determinism and strict float32 products
        self.dtype = tf.as_dtype(config.dtype)
        self.device = backend.device_name(config.device)
        with tf.device(self.device):
            self.weights = Weights(*(tf.Variable(np.asarray(a), dtype=self.dtype) for a in params.arrays()))
            self.generator = tf.random.Generator.from_seed(int(seed))
        xla = self.mode == "xla"  # static shapes: k is read from the noise's shape
        self._update = tf.function(self._cd_update, jit_compile=xla)
        self._graphs: dict[tuple, tf.types.experimental.ConcreteFunction] = {}  # `manual`: one per update shape
        self._epoch = tf.function(self._epoch_fn, jit_compile=xla, reduce_retracing=True)
        self._generate = tf.function(self._generate_fn)
        self._biases = tf.function(lambda v: biases(self.weights, recurrence(self.weights, v)[0]))

    def reseed(self, seed: int) -> None:
        self.generator.reset_from_seed(int(seed))

    def _tensor(self, array: np.ndarray) -> tf.Tensor:
        with tf.device(self.device):
            return tf.convert_to_tensor(np.asarray(array), dtype=self.dtype)

    def _noise(self, batch: tf.Tensor, n_frames: tf.Tensor, k: int) -> RNNRBMNoise:
        H, V = self.config.n_hidden, self.config.n_visible
        uniform = lambda *shape: self.generator.uniform(tf.stack(shape), dtype=self.dtype)
        h = tf.ensure_shape(uniform(k, batch, n_frames, H), [k, None, None, H])  # k stays static for `gibbs`
        return RNNRBMNoise(h, tf.ensure_shape(uniform(k, batch, n_frames, V), [k, None, None, V]))

    def _compiled_noise(self, batch: int, n_frames: int, k: int) -> RNNRBMNoise:
        """One update's noise by `threefry_uniform` (the ``manual`` and ``function`` modes), its two seeds drawn by the
        model's generator: the same numbers for the same seed in both modes."""
        shapes = [(k, batch, n_frames, n) for n in (self.config.n_hidden, self.config.n_visible)]
        return RNNRBMNoise(*threefry_uniform(tf.unstack(self.generator.make_seeds(2), axis=1), shapes, self.dtype))

    def _rate(self, learning_rate: float | None) -> tf.Tensor:
        return tf.constant(self.rate(learning_rate), self.dtype)  # a tensor: a new rate does not retrace

    def train_chunks(
        self, chunks: np.ndarray, noise: list[RNNRBMNoise] | None = None, learning_rate: float | None = None
    ) -> np.ndarray:
        updates, rate = self.updates(chunks, noise), self._rate(learning_rate)
        if noise is not None:
            return np.array([self.cd_update(v, n, learning_rate) for v, n in zip(updates, noise, strict=True)])
        if self.mode == "manual":  # a graph per update shape, one call per update
            costs = [self._in_graph(self._drawn_update, self._tensor(v), rate) for v in updates]
            return np.array([c.numpy() for c in costs], np.float64)
        if self.mode == "xla":  # one static shape: XLA compiles once (a loop whose shapes change crashes it, seen)
            batches, masks = self.padded(updates, self.padded_shape(updates))
            return self._epoch(self._tensor(batches), rate, self._tensor(masks)).numpy().astype(np.float64)
        draws = [self._in_graph(self._drawn_noise, self._tensor(v)) for v in updates]  # as `manual` draws
        stacked = lambda part: RNNRBMNoise(*(tf.stack(u) for u in zip(*draws[part])))
        full = len(updates) if len(updates[-1]) == len(updates[0]) else len(updates) - 1
        costs = [self._epoch(self._tensor(np.stack(updates[:full])), rate, None, stacked(slice(full)))]  # one loop
        if full < len(updates):
            costs.append(self._epoch(self._tensor(updates[-1][None]), rate, None, stacked(slice(full, None))))
        return np.concatenate([c.numpy() for c in costs]).astype(np.float64)

    def _epoch_fn(self, batches: tf.Tensor, rate: tf.Tensor, masks: tf.Tensor | None = None,
                  noises: RNNRBMNoise | None = None) -> tf.Tensor:  # fmt: skip
        """The updates of ``batches`` in a graph loop, from ``noises`` (one per update) or drawn inside (``xla``)."""
        costs = tf.TensorArray(self.dtype, size=tf.shape(batches)[0])
        for index in tf.range(tf.shape(batches)[0]):
            v, mask = batches[index], None if masks is None else masks[index]
            if noises is None:
                noise = self._noise(tf.shape(v)[0], tf.shape(v)[1], self.config.cd_steps)
            else:
                noise = RNNRBMNoise(noises.h[index], noises.v[index])
            costs = costs.write(index, self._cd_update(v, noise, rate, mask))
        return costs.stack()

    def _in_graph(self, update, v: tf.Tensor, *args) -> tf.Tensor:
        """``update(v, *args)`` in a graph per shape (`backend.in_graph`): the ``manual`` mode's updates, whose time
        loops unroll over the frames, and an update's draws."""
        return backend.in_graph(self._graphs, update, v, *args)

    def _drawn_update(self, v: tf.Tensor, rate: tf.Tensor) -> tf.Tensor:
        return self._cd_update(v, self._drawn_noise(v), rate)

    def _drawn_noise(self, v: tf.Tensor) -> RNNRBMNoise:
        return self._compiled_noise(v.shape[0], v.shape[1], self.config.cd_steps)

    def _given_update(self, v: tf.Tensor, noise: RNNRBMNoise, rate: tf.Tensor) -> tf.Tensor:
        return self._cd_update(v, noise, rate)

    def cd_update(self, v: np.ndarray, noise: RNNRBMNoise, learning_rate: float | None = None) -> float:
        v = self._tensor(self.sequences(v))
        noise = RNNRBMNoise(*(self._tensor(u) for u in self.checked_noise(noise, *v.shape[:2])))
        if self.mode == "manual":
            return float(self._in_graph(self._given_update, v, noise, self._rate(learning_rate)))
        return float(self._update(v, noise, self._rate(learning_rate)))

    def _cd_update(self, v: tf.Tensor, noise: RNNRBMNoise, rate: tf.Tensor, mask: tf.Tensor | None = None) -> tf.Tensor:
        if self.mode == "manual":
            loss, grads = gradients(self.weights, v, noise)
        else:
            with tf.GradientTape() as tape:
                loss = cost(self.weights, v, noise, mask)
            grads = tape.gradient(loss, list(self.weights))
        for parameter, gradient in zip(self.weights, clip(grads, self.config.clip_norm)):
            parameter.assign_sub(rate * gradient)  # plain SGD
        return loss

    def conditional_biases(self, v: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        b_v, b_h = self._biases(self._tensor(self.sequences(v)))
        return b_v.numpy(), b_h.numpy()

    def frame_free_energies(self, v: np.ndarray) -> np.ndarray:
        v = self._tensor(self.sequences(v))
        return free_energy(self.weights, v, *self._biases(v)).numpy()

    def generate(
        self,
        n_pieces: int,
        n_frames: int,
        k: int | None = None,
        noise: RNNRBMNoise | None = None,
        start: np.ndarray | None = None,
    ) -> np.ndarray:
        start = self._tensor(self.generation_start(n_pieces, n_frames, start))
        if noise is None:
            frames = self._generate(start, None, self.config.cd_steps if k is None else k)
        else:
            u_h, u_v = (self._tensor(np.moveaxis(u, 2, 0)) for u in self.checked_noise(noise, n_pieces, n_frames))
            frames = self._generate(start, (u_h, u_v), len(u_h[0]))  # noise time first
        return frames.numpy().astype(np.uint8)

    def _generate_fn(self, start: tf.Tensor, noise: tuple[tf.Tensor, tf.Tensor] | None, k: int) -> tf.Tensor:
        w, n = self.weights, tf.shape(start)[0]

        def step(carry: tuple[tf.Tensor, tf.Tensor], inputs) -> tuple[tf.Tensor, tf.Tensor]:
            u, _ = carry
            start_t, source = inputs
            if noise is None:  # the model's own draws, one frame at a time
                u_h, u_v = (x[:, :, 0] for x in self._noise(n, 1, k))
            else:
                u_h, u_v = source
            b_v, b_h = biases(w, u)
            v = gibbs(w, start_t, b_v, b_h, u_h, u_v)
            return tf.tanh(v @ w.W_vu + w.b_u + u @ w.W_uu), v  # the RNN is fed the sampled frame

        u0 = tf.broadcast_to(w.u0, [n, tf.shape(w.u0)[0]])  # u(0)
        sources = tf.zeros(tf.shape(start)[1:2]) if noise is None else noise
        inputs = (tf.transpose(start, [1, 0, 2]), sources)
        _, frames = tf.scan(step, inputs, initializer=(u0, tf.zeros_like(start[:, 0])))
        return tf.transpose(frames, [1, 0, 2])

    def draw_ms(self, batch: int, n_frames: int, repeats: int = 20) -> float:
        with tf.device(self.device):
            generator = tf.random.Generator.from_seed(0)
        shapes = [(self.config.cd_steps, batch, n_frames, n) for n in (self.config.n_hidden, self.config.n_visible)]
        if self.mode == "xla":  # the generator's own numbers
            draw = tf.function(lambda: [generator.uniform(shape, dtype=self.dtype) for shape in shapes])
        else:  # the seeds and the threefry draws of `_compiled_noise`, in a graph as in the update
            seeds = lambda: tf.unstack(generator.make_seeds(2), axis=1)
            draw = tf.function(lambda: threefry_uniform(seeds(), shapes, self.dtype))
        return self.best_ms(lambda: [u[0, 0, 0, 0].numpy() for u in draw()], repeats)  # a scalar read: finished

    def params(self) -> RNNRBMParams:
        return RNNRBMParams(*(t.numpy() for t in self.weights)).astype(np.float64)
