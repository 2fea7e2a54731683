"""TensorFlow implementation: the reference line for line, compiled with tf.function."""

from __future__ import annotations

import numpy as np
import tensorflow as tf

from impls.backends import tf as backend
from impls.common import Mode, binary_bytes
from impls.rbm.interface import RBM, CDNoise, RBMConfig, RBMParams


def bernoulli(u: tf.Tensor, p: tf.Tensor) -> tf.Tensor:
    """``1.0 where u < p``: ``ceil(p - u)`` is exactly that (p - u > 0 iff u < p), without a bool tensor."""
    return tf.math.ceil(p - u)


class TFRBM(RBM):
    """Binary RBM trained by CD-k / PCD-k with TensorFlow 2 (tf.function over a whole epoch).

    Modes: ``function`` (TensorFlow's graph executor) and ``xla`` (the same functions with ``jit_compile``).
    """

    name = "tf"
    backend = backend
    MODES = (
        Mode("function", "tf.function over an epoch (TensorFlow's graph executor)"),
        Mode("xla", "tf.function with jit_compile: the epoch's loop compiled by XLA"),
    )

    def __init__(self, config: RBMConfig, params: RBMParams, seed: int) -> None:
        super().__init__(config, params, seed)  # the backend's determinism and precision switches
        self.dtype = tf.as_dtype(config.dtype)
        self.device = backend.device_name(config.device)
        with tf.device(self.device):
            self.W, self.b_v, self.b_h = (
                tf.Variable(np.asarray(a), dtype=self.dtype) for a in (params.W, params.b_v, params.b_h)
            )
            self.velocity = [tf.Variable(tf.zeros_like(t)) for t in (self.W, self.b_v, self.b_h)]
            self.generator = tf.random.Generator.from_seed(int(seed))
            # PCD: hidden state of the persistent chain, seeded from the data by the first update
            self.chain = tf.Variable(
                tf.zeros((config.batch_size, config.n_hidden), self.dtype), shape=(None, config.n_hidden)
            )
            self.has_chain = tf.Variable(False)
        self.data: tf.Tensor | None = None
        xla = self.mode == "xla"
        self._epoch = tf.function(self._epoch_fn, jit_compile=xla, reduce_retracing=True)
        self._update = tf.function(self._cd_update, jit_compile=xla, reduce_retracing=True)

    def _tensor(self, array: np.ndarray) -> tf.Tensor:
        with tf.device(self.device):
            return tf.convert_to_tensor(np.asarray(array), dtype=self.dtype)

    def set_data(self, windows: np.ndarray) -> None:
        with tf.device(self.device):
            self.data = tf.convert_to_tensor(binary_bytes(windows))  # bytes: each batch converted after its gather

    def _fit_chain(self, chains: int) -> None:
        """PCD's chain takes the size of the first batch it sees."""
        if not bool(self.has_chain.numpy()) and self.chain.shape[0] != chains:
            self.chain.assign(tf.zeros((chains, self.config.n_hidden), self.dtype))

    def _rate(self, learning_rate: float | None) -> tf.Tensor:
        return tf.constant(self.rate(learning_rate), self.dtype)  # a tensor: a new rate does not retrace

    def train_epoch(self, batches: list[np.ndarray], learning_rate: float | None = None) -> None:
        self._fit_chain(len(batches[0]))
        rate = self._rate(learning_rate)
        if len({len(b) for b in batches}) == 1:  # one compiled loop over equal batches
            self._epoch(tf.constant(np.stack(batches), tf.int64), rate)
        else:  # ragged batches (the original's per-piece loop): one compiled step each
            for rows in batches:
                self._epoch(tf.constant(np.asarray(rows)[None], tf.int64), rate)

    def _epoch_fn(self, batches: tf.Tensor, rate: tf.Tensor) -> None:
        k, V, H = self.config.cd_steps, self.config.n_visible, self.config.n_hidden
        for index in tf.range(tf.shape(batches)[0]):
            v = tf.cast(tf.gather(self.data, batches[index]), self.dtype)
            n = tf.shape(v)[0]
            chains = tf.shape(self.chain)[0] if self.config.persistent else n
            uniform = self.generator.uniform
            h_data = uniform((n, H), dtype=self.dtype)
            h_chain = uniform((n, H), dtype=self.dtype) if self.config.chain_start == "fresh" else None
            noise = CDNoise(
                h_data, uniform((k, chains, V), dtype=self.dtype), uniform((k, chains, H), dtype=self.dtype), h_chain
            )
            self._cd_update(v, noise, rate)

    def cd_update(self, v: np.ndarray, noise: CDNoise, learning_rate: float | None = None) -> None:
        self._fit_chain(len(noise.v[0]))
        noise = CDNoise(*(None if u is None else self._tensor(u) for u in noise))
        self._update(self._tensor(v), noise, self._rate(learning_rate))

    def persistent_chain(self) -> np.ndarray | None:
        return self.chain.numpy() if self.config.persistent and bool(self.has_chain.numpy()) else None

    def _cd_update(self, v0: tf.Tensor, noise: CDNoise, rate: tf.Tensor) -> None:
        config, dt = self.config, self.dtype
        ph0 = tf.sigmoid(v0 @ self.W + self.b_h)
        h0 = bernoulli(noise.h_data, ph0)
        start = h0 if noise.h_chain is None else bernoulli(noise.h_chain, ph0)  # fresh: the original's own draw
        h = tf.where(self.has_chain, self.chain, start) if config.persistent else start
        for step in range(config.cd_steps):
            pv = tf.sigmoid(tf.matmul(h, self.W, transpose_b=True) + self.b_v)
            vk = bernoulli(noise.v[step], pv)
            phk = tf.sigmoid(vk @ self.W + self.b_h)
            h = bernoulli(noise.h[step], phk)
        if config.persistent:
            self.chain.assign(h)
            self.has_chain.assign(True)
        positive = h0 if config.statistics == "samples" else ph0
        negative = h if config.statistics == "samples" else phk
        n_data, n_chain = tf.cast(tf.shape(v0)[0], dt), tf.cast(tf.shape(vk)[0], dt)
        gradient_W = (
            tf.matmul(v0, positive, transpose_a=True) / n_data - tf.matmul(vk, negative, transpose_a=True) / n_chain
        )
        if config.weight_decay:
            gradient_W -= tf.constant(config.weight_decay, dt) * self.W
        gradients = (
            gradient_W,
            tf.reduce_mean(v0, 0) - tf.reduce_mean(vk, 0),
            tf.reduce_mean(positive, 0) - tf.reduce_mean(negative, 0),
        )
        for parameter, velocity, gradient in zip((self.W, self.b_v, self.b_h), self.velocity, gradients):
            if config.momentum:  # velocity = momentum * velocity + rate * gradient; parameter += velocity
                velocity.assign(tf.constant(config.momentum, dt) * velocity + rate * gradient)
                parameter.assign_add(velocity)
            else:
                parameter.assign_add(rate * gradient)

    def hidden_probs(self, v: np.ndarray) -> np.ndarray:
        return tf.sigmoid(self._tensor(v) @ self.W + self.b_h).numpy()

    def visible_probs(self, h: np.ndarray) -> np.ndarray:
        return tf.sigmoid(tf.matmul(self._tensor(h), self.W, transpose_b=True) + self.b_v).numpy()

    def free_energy(self, v: np.ndarray) -> np.ndarray:
        v = self._tensor(v)
        return (-tf.linalg.matvec(v, self.b_v) - tf.reduce_sum(tf.nn.softplus(v @ self.W + self.b_h), 1)).numpy()

    def sample(self, n: int, steps: int, start: str | np.ndarray = "zeros") -> np.ndarray:
        start_rng = np.random.default_rng(int(self.generator.uniform_full_int((), tf.int32).numpy()) & 0x7FFFFFFF)
        return self._gibbs(self._tensor(self._start(n, start, start_rng)), tf.constant(steps)).numpy().astype(np.uint8)

    @tf.function(reduce_retracing=True)
    def _gibbs(self, v: tf.Tensor, steps: tf.Tensor) -> tf.Tensor:
        n = tf.shape(v)[0]
        for _ in tf.range(steps):
            h = tf.cast(
                self.generator.uniform((n, self.config.n_hidden), dtype=self.dtype) < tf.sigmoid(v @ self.W + self.b_h),
                self.dtype,
            )
            pv = tf.sigmoid(tf.matmul(h, self.W, transpose_b=True) + self.b_v)
            v = tf.cast(self.generator.uniform((n, self.config.n_visible), dtype=self.dtype) < pv, self.dtype)
        return v

    def five_products_ms(self, batch: int, repeats: int = 50) -> float:
        v, h = (self._tensor(a) for a in self.timing_batch(batch))
        v1, h1 = 1 - v, 1 - h

        def products():
            W = self.W
            return (
                v @ W,
                tf.matmul(h, W, transpose_b=True),
                v1 @ W,
                tf.matmul(v, h, transpose_a=True),
                tf.matmul(v1, h1, transpose_a=True),
            )

        return self._in_graph_ms(products, repeats)

    def draw_ms(self, batch: int, repeats: int = 50) -> float:
        k, V, H = self.config.cd_steps, self.config.n_visible, self.config.n_hidden
        with tf.device(self.device):
            uniform = tf.random.Generator.from_seed(0).uniform
        draws = (batch, H), (k, batch, V), (k, batch, H)
        return self._in_graph_ms(lambda: tuple(uniform(shape, dtype=self.dtype) for shape in draws), repeats)

    def _in_graph_ms(self, work, repeats: int, per_loop: int = 10) -> float:
        """Milliseconds per call of ``work`` inside one tf.function loop (as in training, no per-call dispatch)."""

        @tf.function
        def loop(n: tf.Tensor) -> tf.Tensor:
            results = work()
            for _ in tf.range(n - 1):
                results = work()
            return results[0][0, 0]

        steps = tf.constant(per_loop)
        return self.best_ms(lambda: loop(steps).numpy(), max(1, repeats // per_loop)) / per_loop

    def params(self) -> RBMParams:
        return RBMParams(*(t.numpy() for t in (self.W, self.b_v, self.b_h))).astype(np.float64)
