"""The NumPy reference: the specification in code. Every framework reads like this file."""

from __future__ import annotations

import numpy as np

from impls.backends import numpy as backend
from impls.rbm.interface import RBM, CDNoise, RBMConfig, RBMParams


def sigmoid(x: np.ndarray) -> np.ndarray:
    """``1 / (1 + exp(-x))`` in the input's precision, one new array (measured faster than tanh or scipy's expit).

    ``exp(-x)`` overflows to inf below x = -88 in float32, giving exactly 0: correct, so the warning is silenced.
    """
    with np.errstate(over="ignore"):
        y = np.exp(-x)
    y += 1
    return np.reciprocal(y, out=y)


class NumpyRBM(RBM):
    """Binary RBM trained by CD-k / PCD-k in plain NumPy (float32 or float64)."""

    name = "numpy"
    backend = backend

    def __init__(self, config: RBMConfig, params: RBMParams, seed: int) -> None:
        super().__init__(config, params, seed)
        if config.device != "cpu":
            raise ValueError(f"numpy runs on the cpu only, not {config.device!r}")
        self.dtype = np.dtype(config.dtype)
        self.W, self.b_v, self.b_h = (np.array(a, dtype=self.dtype) for a in (params.W, params.b_v, params.b_h))
        self.velocity = [np.zeros_like(a) for a in (self.W, self.b_v, self.b_h)]  # momentum's running step
        self.rng = np.random.default_rng(seed)
        self.chain: np.ndarray | None = None  # PCD: hidden state of the persistent chain
        self.data: np.ndarray | None = None

    def set_data(self, windows: np.ndarray) -> None:
        self.data = np.asarray(windows, dtype=self.dtype)

    def train_epoch(self, batches: list[np.ndarray], learning_rate: float | None = None) -> None:
        for rows in batches:
            v = self.data[rows]
            chains = len(v) if self.chain is None else len(self.chain)
            self.cd_update(v, self.draw_noise(len(v), chains), learning_rate)

    def draw_noise(self, batch: int, chains: int, rng: np.random.Generator | None = None) -> CDNoise:
        k, V, H = self.config.cd_steps, self.config.n_visible, self.config.n_hidden
        uniform = (rng or self.rng).random
        h_data = uniform((batch, H), self.dtype)
        h_chain = uniform((batch, H), self.dtype) if self.config.chain_start == "fresh" else None
        return CDNoise(h_data, uniform((k, chains, V), self.dtype), uniform((k, chains, H), self.dtype), h_chain)

    def cd_update(self, v: np.ndarray, noise: CDNoise, learning_rate: float | None = None) -> None:
        config, dt = self.config, self.dtype
        v0 = np.asarray(v, dt)
        noise = CDNoise(*(None if u is None else np.asarray(u, dt) for u in noise))
        ph0 = self.hidden_probs(v0)
        h0 = (noise.h_data < ph0).astype(dt)
        if config.persistent and self.chain is not None:
            h = self.chain
        elif noise.h_chain is not None:  # the original's gibbs_sample draws its own first hidden state
            h = (noise.h_chain < ph0).astype(dt)
        else:
            h = h0
        for step in range(config.cd_steps):
            pv = self.visible_probs(h)
            vk = (noise.v[step] < pv).astype(dt)
            phk = self.hidden_probs(vk)
            h = (noise.h[step] < phk).astype(dt)
        if config.persistent:
            self.chain = h
        positive = h0 if config.statistics == "samples" else ph0
        negative = h if config.statistics == "samples" else phk
        gradient_W = v0.T @ positive / len(v0) - vk.T @ negative / len(vk)
        if config.weight_decay:
            gradient_W -= dt.type(config.weight_decay) * self.W
        gradients = (gradient_W, v0.mean(0) - vk.mean(0), positive.mean(0) - negative.mean(0))
        rate = dt.type(self.rate(learning_rate))
        for parameter, velocity, gradient in zip((self.W, self.b_v, self.b_h), self.velocity, gradients):
            if config.momentum:  # velocity = momentum * velocity + rate * gradient; parameter += velocity
                velocity *= dt.type(config.momentum)
                velocity += rate * gradient
                parameter += velocity
            else:
                parameter += rate * gradient

    def persistent_chain(self) -> np.ndarray | None:
        return self.chain

    def hidden_probs(self, v: np.ndarray) -> np.ndarray:
        return sigmoid(np.asarray(v, self.dtype) @ self.W + self.b_h)

    def visible_probs(self, h: np.ndarray) -> np.ndarray:
        return sigmoid(np.asarray(h, self.dtype) @ self.W.T + self.b_v)

    def free_energy(self, v: np.ndarray) -> np.ndarray:
        v = np.asarray(v, self.dtype)
        return -(v @ self.b_v) - np.logaddexp(0, v @ self.W + self.b_h).sum(axis=1)

    def sample(self, n: int, steps: int, start: str | np.ndarray = "zeros") -> np.ndarray:
        v = self._start(n, start, self.rng).astype(self.dtype)
        for _ in range(steps):
            h = (self.rng.random((n, self.config.n_hidden), self.dtype) < self.hidden_probs(v)).astype(self.dtype)
            v = (self.rng.random((n, self.config.n_visible), self.dtype) < self.visible_probs(h)).astype(self.dtype)
        return v.astype(np.uint8)

    def five_products_ms(self, batch: int, repeats: int = 50) -> float:
        v, h = self.timing_batch(batch)
        v1, h1 = 1 - v, 1 - h
        return self.best_ms(lambda: (v @ self.W, h @ self.W.T, v1 @ self.W, v.T @ h, v1.T @ h1), repeats)

    def draw_ms(self, batch: int, repeats: int = 50) -> float:
        rng = np.random.default_rng(0)
        return self.best_ms(lambda: self.draw_noise(batch, batch, rng), repeats)

    def params(self) -> RBMParams:
        return RBMParams(self.W, self.b_v, self.b_h).astype(np.float64)
