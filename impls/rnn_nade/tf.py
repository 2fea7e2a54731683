"""TensorFlow RNN-NADE: the reference (`impls.rnn_nade.numpy`) line for line, inside tf.function.

The cost ``mean_t -log p(v(t) | v(<t))`` is exact, so the tape's gradient (the ``function`` and ``update`` modes) is
the reference's hand-written NADE + BPTT gradient (Boulanger-Lewandowski, Bengio & Vincent, ICML 2012, sec. 5); the
``manual`` mode writes that gradient out (`gradients`, its time loops unrolled in a graph per update shape) instead.
Adam is written out as the reference's. Elsewhere the RNN runs as a ``tf.scan`` over time, an epoch as one
tf.function loop, generation as a ``tf.scan`` over frames around a ``tf.scan`` over units.
"""

from __future__ import annotations

import numpy as np
import tensorflow as tf

from impls.backends import tf as backend
from impls.common import Mode
from impls.rnn_nade.interface import BETA1, BETA2, EPSILON, RNNNADE, RNNNADEConfig, RNNNADENoise, RNNNADEParams, Weights
from impls.rnn_rbm.tf import biases, clip, recurrence, unrolled_recurrence, unrolled_through_time


def past(v: tf.Tensor) -> tf.Tensor:
    """``past[..., i, j] = v_j`` where ``j < i``, else 0 (..., n_visible, n_visible): the units each unit is given."""
    return v[..., None, :] * tf.constant(np.tri(v.shape[-1], k=-1), v.dtype)


def nade(w: Weights, v: tf.Tensor, b_v: tf.Tensor, b_h: tf.Tensor) -> tf.Tensor:
    """Every unit's logit ``z_i = b_v_i + sigmoid(b_h + sum_{j<i} v_j W[j]) . V[i]``, all units and frames at once."""
    h = tf.sigmoid(b_h[..., None, :] + tf.tensordot(past(v), w.W, 1))  # one product, not one per frame
    return b_v + tf.einsum("...ih,ih->...i", h, w.V)


def log_probs(v: tf.Tensor, z: tf.Tensor) -> tf.Tensor:
    """``log p(v) = sum_i v_i z_i - softplus(z_i)``."""
    return tf.reduce_sum(v * z - tf.nn.softplus(z), -1)


def cost(w: Weights, v: tf.Tensor) -> tf.Tensor:
    """``mean_{b,t} -log p(v(t) | v(<t))``: exact, so its gradient is the reference's."""
    u_previous, _ = recurrence(w, v)
    b_v, b_h = biases(w, u_previous)
    return -tf.reduce_mean(log_probs(v, nade(w, v, b_v, b_h)))


def gradients(w: Weights, v: tf.Tensor) -> tuple[tf.Tensor, Weights]:
    """The reference's `gradients` (``impls.rnn_nade.numpy``: the NADE's gradient and BPTT written out) without a
    tape: the ``manual`` mode. Every frame is a row; ``h (1 - h)`` times the gradient above it is one ``SigmoidGrad``;
    the time loops unroll over the static number of frames (a graph per update shape), as the RNN-RBM's."""
    batch, T, n_visible = v.shape
    n = batch * T  # the cost is a mean over every frame of every chunk
    w = Weights(*(tf.convert_to_tensor(p) for p in w))  # each variable read once, not once a time step
    v = tf.reshape(v, [n, n_visible])
    u_previous, u = unrolled_recurrence(w, v, batch, T)
    b_v, b_h = w.b_v + u_previous @ w.W_uv, w.b_h + u_previous @ w.W_uh
    given = past(v)  # (frames, n_visible, n_visible)
    h = tf.sigmoid(b_h[:, None] + tf.tensordot(given, w.W, 1))  # every unit's hidden layer, every frame
    z = b_v + tf.reduce_sum(h * w.V, -1)
    cost = (tf.reduce_sum(tf.nn.softplus(z)) - tf.reduce_sum(v * z)) / n
    # each frame's NADE: dC/dz_i = sigmoid(z_i) - v_i, and z_i = b_v(t)_i + h_i . V[i]
    d_b_v = (tf.sigmoid(z) - v) / n  # = dC/dz = dC/db_v(t)
    d_V = tf.reduce_sum(d_b_v[..., None] * h, 0)
    d_a = tf.raw_ops.SigmoidGrad(y=h, dy=d_b_v[..., None] * w.V)  # dC/da_i, h_i = sigmoid(a_i)
    d_W = tf.matmul(tf.reshape(given, [-1, n_visible]), tf.reshape(d_a, [-1, w.W.shape[-1]]), transpose_a=True)
    return cost, Weights(d_W, d_V, *unrolled_through_time(w, v, u_previous, u, d_b_v, tf.reduce_sum(d_a, 1)))


def adam(config: RNNNADEConfig, w: Weights, m: Weights, s: Weights, step: tf.Variable, grads, rate: tf.Tensor) -> None:
    """Adam's next step, on the variables: the gradient clipped, plus ``weight_decay * p``, bias-corrected."""
    step.assign_add(1)
    k = tf.cast(step, tf.float64)  # 1 - 0.999^k loses 4 digits to cancellation in float32: as the reference, in float64
    correction1, correction2 = (tf.cast(1 - beta**k, rate.dtype) for beta in (BETA1, BETA2))
    for p, m_p, s_p, g in zip(w, m, s, clip(grads, config.clip_norm)):
        g = g + config.weight_decay * p
        m_p.assign(BETA1 * m_p + (1 - BETA1) * g)
        s_p.assign(BETA2 * s_p + (1 - BETA2) * g * g)
        p.assign_sub(rate * (m_p / correction1) / (tf.sqrt(s_p / correction2) + EPSILON))


def sample_frame(w: Weights, b_v: tf.Tensor, b_h: tf.Tensor, uniforms: tf.Tensor) -> tf.Tensor:
    """One frame of each piece (n, n_visible) drawn unit by unit from its NADE with ``uniforms`` (n, n_visible)."""

    def unit(carry: tuple[tf.Tensor, tf.Tensor], inputs) -> tuple[tf.Tensor, tf.Tensor]:
        a, _ = carry
        b_v_i, u_i, W_i, V_i = inputs
        v_i = tf.cast(u_i < tf.sigmoid(b_v_i + tf.linalg.matvec(tf.sigmoid(a), V_i)), a.dtype)
        return a + v_i[:, None] * W_i, v_i

    inputs = (tf.transpose(b_v), tf.transpose(uniforms), w.W, w.V)  # units first
    _, v = tf.scan(unit, inputs, initializer=(b_h, b_v[:, 0]))
    return tf.transpose(v)


class TFRNNNADE(RNNNADE):
    """RNN-NADE trained by its written-out gradient (or tf.GradientTape) and Adam in TensorFlow 2 (tf.Variables,
    updates in tf.function)."""

    name = "tf"
    backend = backend
    MODES = (
        Mode("manual", "the reference's hand-written gradient, no tape, time loops unrolled: a graph per shape"),
        Mode("function", "tf.function over a call's updates (TensorFlow's graph executor)"),
        Mode("update", "one tf.function call per update (a graph per update shape), the loop in Python"),
    )

    def __init__(self, config: RNNNADEConfig, params: RNNNADEParams, seed: int) -> None:
        super().__init__(config, params, seed)  # the backend's determinism and strict float32 products
        self.dtype = tf.as_dtype(config.dtype)
        self.device = backend.device_name(config.device)
        with tf.device(self.device):
            self.weights = Weights(*(tf.Variable(np.asarray(a), dtype=self.dtype) for a in params.arrays()))
            self.moments = [Weights(*(tf.Variable(tf.zeros_like(a)) for a in self.weights)) for _ in range(2)]
            self.step = tf.Variable(0, dtype=tf.int64)  # Adam's step count
            self.generator = tf.random.Generator.from_seed(int(seed))
        self._graphs: dict[tuple, tf.types.experimental.ConcreteFunction] = {}  # an update's, one per shape
        self._epoch = tf.function(self._epoch_fn, reduce_retracing=True)
        self._generate = tf.function(self._generate_fn)
        self._biases = tf.function(lambda v: biases(self.weights, recurrence(self.weights, v)[0]))
        self._log_probs = tf.function(lambda v: log_probs(v, nade(self.weights, v, *self._biases(v))))

    def _tensor(self, array: np.ndarray) -> tf.Tensor:
        with tf.device(self.device):
            return tf.convert_to_tensor(np.asarray(array), dtype=self.dtype)

    def _rate(self, learning_rate: float | None) -> tf.Tensor:
        return tf.constant(self.rate(learning_rate), self.dtype)  # a tensor: a new rate does not retrace

    def train_chunks(self, chunks: np.ndarray, learning_rate: float | None = None) -> np.ndarray:
        updates, rate = self.updates(chunks), self._rate(learning_rate)
        if self.mode in ("manual", "update"):  # a graph per update shape, one call per update
            return np.array([self._in_graph(self._tensor(v), rate).numpy() for v in updates], np.float64)
        full = len(updates) if len(updates[-1]) == len(updates[0]) else len(updates) - 1
        costs = [self._epoch(self._tensor(np.stack(updates[:full])), rate)]  # the full batches in one loop
        if full < len(updates):
            costs.append(self._epoch(self._tensor(updates[-1][None]), rate))
        return np.concatenate([c.numpy() for c in costs]).astype(np.float64)

    def _epoch_fn(self, batches: tf.Tensor, rate: tf.Tensor) -> tf.Tensor:
        costs = tf.TensorArray(self.dtype, size=tf.shape(batches)[0])
        for index in tf.range(tf.shape(batches)[0]):
            costs = costs.write(index, self._update_fn(batches[index], rate))
        return costs.stack()

    def update(self, v: np.ndarray, learning_rate: float | None = None) -> float:
        return float(self._in_graph(self._tensor(self.sequences(v)), self._rate(learning_rate)))

    def _in_graph(self, v: tf.Tensor, rate: tf.Tensor) -> tf.Tensor:
        """One update in a graph per shape (`backend.in_graph`)."""
        return backend.in_graph(self._graphs, self._update_fn, v, rate)

    def _update_fn(self, v: tf.Tensor, rate: tf.Tensor) -> tf.Tensor:
        if self.mode == "manual":
            loss, grads = gradients(self.weights, v)
        else:
            with tf.GradientTape() as tape:
                loss = cost(self.weights, v)
            grads = tape.gradient(loss, list(self.weights))
        adam(self.config, self.weights, *self.moments, self.step, grads, rate)
        return loss

    def conditional_biases(self, v: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        b_v, b_h = self._biases(self._tensor(self.sequences(v)))
        return b_v.numpy(), b_h.numpy()

    def frame_log_probs(self, v: np.ndarray) -> np.ndarray:
        return self._log_probs(self._tensor(self.sequences(v))).numpy()

    def generate(self, n_pieces: int, n_frames: int, noise: RNNNADENoise | None = None) -> np.ndarray:
        if noise is None:
            with tf.device(self.device):
                uniforms = self.generator.uniform((n_pieces, n_frames, self.config.n_visible), dtype=self.dtype)
        else:
            uniforms = self._tensor(self.checked_noise(noise, n_pieces, n_frames).v)
        return self._generate(uniforms).numpy().astype(np.uint8)

    def _generate_fn(self, uniforms: tf.Tensor) -> tf.Tensor:
        w = self.weights

        def frame(carry: tuple[tf.Tensor, tf.Tensor], uniforms_t: tf.Tensor) -> tuple[tf.Tensor, tf.Tensor]:
            u, _ = carry
            v = sample_frame(w, *biases(w, u), uniforms_t)
            return tf.tanh(v @ w.W_vu + w.b_u + u @ w.W_uu), v  # the RNN is fed the sampled frame

        u0 = tf.broadcast_to(w.u0, [tf.shape(uniforms)[0], tf.shape(w.u0)[0]])  # u(0)
        _, frames = tf.scan(frame, tf.transpose(uniforms, [1, 0, 2]), initializer=(u0, tf.zeros_like(uniforms[:, 0])))
        return tf.transpose(frames, [1, 0, 2])

    def params(self) -> RNNNADEParams:
        return RNNNADEParams(*(t.numpy() for t in self.weights)).astype(np.float64)
