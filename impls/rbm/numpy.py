"""The NumPy reference: the specification in code. Every framework reads like this file."""

from __future__ import annotations

import numpy as np

from impls.backends import numpy as backend
from impls.common import Mode, binary_bytes, uniforms
from impls.rbm.interface import RBM, CDNoise, RBMConfig, RBMParams


def sigmoid(x: np.ndarray) -> np.ndarray:
    """``1 / (1 + exp(-x))`` in the input's precision, one new array (measured faster than tanh or scipy's expit).

    ``exp(-x)`` overflows to inf below x = -88 in float32, giving exactly 0: correct, so the warning is silenced.
    """
    with np.errstate(over="ignore"):
        y = np.exp(-x)
    y += 1
    return np.reciprocal(y, out=y)


def sigmoid_into(x: np.ndarray) -> np.ndarray:
    """`sigmoid` in place: the same operations, so the same bits."""
    with np.errstate(over="ignore"):
        np.exp(np.negative(x, out=x), out=x)
    x += 1
    return np.reciprocal(x, out=x)


class NumpyRBM(RBM):
    """Binary RBM trained by CD-k / PCD-k in plain NumPy (float32 or float64).

    ``cd_update`` is the specification (the ``plain`` mode). The ``buffers`` mode runs the same operations in the
    same order into arrays allocated once per batch shape (`_cd_update_buffers`): the same bits, without a large
    allocation (and its page faults) per product. The ``fused`` mode (`_cd_update_fused`), the default as the
    fastest, does the same arithmetic in fewer passes over memory, each sum in another order: within float32
    rounding of the specification.
    """

    name = "numpy"
    backend = backend
    MODES = (  # fused first: the fastest equivalent mode (1.04x buffers, 1.07x plain in a quiet ablation, README)
        Mode("fused", "the biases inside the products, the gradient one product; within float32 rounding", ("cpu",)),
        Mode("plain", "a new array per operation (the specification)", ("cpu",)),
        Mode("buffers", "the same operations into arrays allocated once per batch shape", ("cpu",)),
    )

    def __init__(self, config: RBMConfig, params: RBMParams, seed: int) -> None:
        super().__init__(config, params, seed)
        if config.device != "cpu":
            raise ValueError(f"numpy runs on the cpu only, not {config.device!r}")
        self.dtype = np.dtype(config.dtype)
        self.W, self.b_v, self.b_h = (np.array(a, dtype=self.dtype) for a in (params.W, params.b_v, params.b_h))
        self.velocity = [np.zeros_like(a) for a in (self.W, self.b_v, self.b_h)]  # momentum's running step
        if self.mode == "fused":  # W and b_v as views of one (V, H + 1) array, so one product adds b_v, one steps both
            self.W_b_v = np.column_stack([self.W, self.b_v])
            self.velocity_W_b_v = np.zeros_like(self.W_b_v)
            self.W, self.b_v = self.W_b_v[:, :-1], self.W_b_v[:, -1]
            self.velocity[:2] = self.velocity_W_b_v[:, :-1], self.velocity_W_b_v[:, -1]
        self.rng = np.random.default_rng(seed)
        self.chain: np.ndarray | None = None  # PCD: hidden state of the persistent chain
        self.data: np.ndarray | None = None

    def set_data(self, windows: np.ndarray) -> None:
        self.data = binary_bytes(windows)  # each batch converted to the dtype by `cd_update`

    def train_epoch(self, batches: list[np.ndarray], learning_rate: float | None = None) -> None:
        for rows in batches:
            chains = len(rows) if self.chain is None else len(self.chain)
            if self.mode != "fused":
                self.cd_update(self.data[rows], self.draw_noise(len(rows), chains), learning_rate)
                continue
            b = self._buffers(len(rows), chains)  # the batch and its noise into arrays kept for the shape
            np.copyto(b["v0"], np.take(self.data, rows, axis=0, out=b["v0 bytes"]))
            noise = self.draw_noise(len(rows), chains, out=b)
            self._cd_update_fused(b["v0"], noise, self.dtype.type(self.rate(learning_rate)))

    def draw_noise(
        self, batch: int, chains: int, rng: np.random.Generator | None = None, out: dict | None = None
    ) -> CDNoise:
        """One update's uniforms (``out``: arrays named as `CDNoise`'s fields to draw into; the same numbers)."""
        k, V, H = self.config.cd_steps, self.config.n_visible, self.config.n_hidden
        out = out or {}

        def uniform(name: str, shape: tuple[int, ...]) -> np.ndarray:
            return uniforms(rng or self.rng, shape, self.dtype, out=out.get(name))

        h_data = uniform("h_data", (batch, H))
        h_chain = uniform("h_chain", (batch, H)) if self.config.chain_start == "fresh" else None
        return CDNoise(h_data, uniform("v", (k, chains, V)), uniform("h", (k, chains, H)), h_chain)

    def cd_update(self, v: np.ndarray, noise: CDNoise, learning_rate: float | None = None) -> None:
        config, dt = self.config, self.dtype
        v0 = np.asarray(v, dt)
        noise = CDNoise(*(None if u is None else np.asarray(u, dt) for u in noise))
        if self.mode in ("buffers", "fused"):
            update = self._cd_update_buffers if self.mode == "buffers" else self._cd_update_fused
            return update(v0, noise, dt.type(self.rate(learning_rate)))
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

    def _cd_update_buffers(self, v0: np.ndarray, noise: CDNoise, rate: np.floating) -> None:
        """`cd_update` line for line, each result written into a buffer of `_buffers` (``out=``)."""
        config = self.config
        b = self._buffers(len(v0), len(noise.v[0]))
        ph0, h0, h = self._positive_phase_into(b, v0, noise)
        for step in range(config.cd_steps):
            pv = sigmoid_into(np.add(np.matmul(h, self.W.T, out=b["pv"]), self.b_v, out=b["pv"]))
            vk = self._draw_into(b, "vk", noise.v[step], pv)
            phk = sigmoid_into(np.add(np.matmul(vk, self.W, out=b["phk"]), self.b_h, out=b["phk"]))
            h = self._draw_into(b, "hk", noise.h[step], phk)
        positive, negative = self._keep_chain_and_statistics(ph0, h0, phk, h)
        gradient_W, negative_W = b["gradient_W"], b["negative_W"]
        np.matmul(v0.T, positive, out=gradient_W)
        gradient_W /= len(v0)
        np.matmul(vk.T, negative, out=negative_W)
        negative_W /= len(vk)
        gradient_W -= negative_W
        if config.weight_decay:
            gradient_W -= np.multiply(self.dtype.type(config.weight_decay), self.W, out=negative_W)
        gradient_v = np.subtract(v0.mean(0, out=b["mean_v0"]), vk.mean(0, out=b["mean_vk"]), out=b["mean_v0"])
        gradient_h = np.subtract(
            positive.mean(0, out=b["mean_h0"]), negative.mean(0, out=b["mean_hk"]), out=b["mean_h0"]
        )
        for parameter, velocity, gradient in zip(
            (self.W, self.b_v, self.b_h), self.velocity, (gradient_W, gradient_v, gradient_h)
        ):
            if config.momentum:
                velocity *= self.dtype.type(config.momentum)
                velocity += np.multiply(rate, gradient, out=gradient)
                parameter += velocity
            else:
                parameter += np.multiply(rate, gradient, out=gradient)

    def _cd_update_fused(self, v0: np.ndarray, noise: CDNoise, rate: np.floating) -> None:
        """`cd_update` in fewer passes over memory, each sum in another order (within float32 rounding of it).

        ``b_v`` is added inside the visible product by a column beside the hidden state, both negated,
        ``[-h -1] [W b_v]^T = -x`` (exactly: negation commutes with rounding), so ``exp(-x)`` needs no pass to
        negate; the gradients of ``W`` and ``b_v`` are one product of the stacked phases,
        ``[v0; vk]^T [p0 1; -pk -1]``, its operand scaled first by the rate over the batch; one momentum step moves
        ``W`` and ``b_v`` together. The batch and the noise arrive in kept arrays (`train_epoch`).
        """
        config, H = self.config, self.config.n_hidden
        n, m = len(v0), len(noise.v[0])
        b = self._buffers(n, m)
        samples, statistics, negated_h = b["samples"], b["statistics"], b["negated h"]
        if v0 is not b["v0"]:  # a batch given to `cd_update`
            np.copyto(b["v0"], v0)
        ph0, h0, h = self._positive_phase_into(b, b["v0"], noise)
        vk = samples[n:]
        for step in range(config.cd_steps):
            np.negative(h, out=negated_h[:, :H])  # [-h -1] [W b_v]^T is -x exactly: no pass to negate x
            x = np.matmul(negated_h, self.W_b_v.T, out=b["pv"])  # -(h W^T + b_v)
            with np.errstate(over="ignore", invalid="ignore"):  # exp(-x) = inf: u inf > 1, and 0 inf (NaN) is off
                odds = np.exp(x, out=x)  # u < 1 / (1 + e^-x) is u (1 + e^-x) < 1: no reciprocal
                odds += 1
                odds *= noise.v[step]
            np.copyto(vk, np.less(odds, 1, out=b["vk<"]))
            phk = sigmoid_into(np.add(np.matmul(vk, self.W, out=b["phk"]), self.b_h, out=b["phk"]))
            h = self._draw_into(b, "hk", noise.h[step], phk)
        positive, negative = self._keep_chain_and_statistics(ph0, h0, phk, h)
        step_b_h = rate * (positive.mean(0) - negative.mean(0))
        np.multiply(positive, rate / n, out=statistics[:n, :H])
        np.multiply(negative, -rate / m, out=statistics[n:, :H])
        statistics[:n, H], statistics[n:, H] = rate / n, -rate / m
        step = np.matmul(samples.T, statistics, out=b["gradient"])  # rate * the gradients of [W b_v]
        if config.weight_decay:
            decay = np.multiply(self.W_b_v, rate * self.dtype.type(config.weight_decay), out=b["decay"])
            decay[:, H] = 0  # W's only
            step -= decay
        for parameter, velocity, change in (
            (self.W_b_v, self.velocity_W_b_v, step),
            (self.b_h, self.velocity[2], step_b_h),
        ):
            if config.momentum:
                velocity *= self.dtype.type(config.momentum)
                velocity += change
                parameter += velocity
            else:
                parameter += change

    def _positive_phase_into(self, b: dict, v0: np.ndarray, noise: CDNoise) -> tuple[np.ndarray, ...]:
        """``(p(h | v0), its sample, the chain's first hidden state)`` into the buffers ``b``, as `cd_update`."""
        ph0 = sigmoid_into(np.add(np.matmul(v0, self.W, out=b["ph0"]), self.b_h, out=b["ph0"]))
        h0 = self._draw_into(b, "h0", noise.h_data, ph0)
        if self.config.persistent and self.chain is not None:
            return ph0, h0, self.chain
        if noise.h_chain is not None:
            return ph0, h0, self._draw_into(b, "h_start", noise.h_chain, ph0)
        return ph0, h0, h0

    def _keep_chain_and_statistics(self, ph0: np.ndarray, h0: np.ndarray, phk: np.ndarray, h: np.ndarray) -> tuple:
        """PCD's chain kept (a copy: ``h`` is a buffer the next update overwrites), and ``(positive, negative)`` hidden
        statistics of the gradient, as `cd_update`: samples or probabilities."""
        if self.config.persistent:
            self.chain = h.copy()
        samples = self.config.statistics == "samples"
        return (h0, h) if samples else (ph0, phk)

    def _buffers(self, batch: int, chains: int) -> dict[str, np.ndarray]:
        """The arrays of one update of this batch shape, allocated on its first update."""
        key = (batch, chains)
        if getattr(self, "_buffer_key", None) != key:
            V, H, dt = self.config.n_visible, self.config.n_hidden, self.dtype
            shapes = {"ph0": (batch, H), "h0": (batch, H), "h_start": (batch, H), "pv": (chains, V),
                      "vk": (chains, V), "phk": (chains, H), "hk": (chains, H), "gradient_W": (V, H),
                      "negative_W": (V, H), "mean_v0": (V,), "mean_vk": (V,), "mean_h0": (H,),
                      "mean_hk": (H,)}  # fmt: skip
            self._buffer_store = {name: np.empty(shape, dt) for name, shape in shapes.items()}
            self._buffer_store |= {f"{name}<": np.empty(shapes[name], bool) for name in ("h0", "h_start", "vk", "hk")}
            if self.mode == "fused":
                k, store = self.config.cd_steps, self._buffer_store
                store |= {"samples": np.empty((batch + chains, V), dt), "v0 bytes": np.empty((batch, V), np.uint8),
                          "statistics": np.empty((batch + chains, H + 1), dt), "gradient": np.empty((V, H + 1), dt),
                          "decay": np.empty((V, H + 1), dt), "negated h": np.full((chains, H + 1), -1, dt),
                          "h_data": np.empty((batch, H), dt), "h_chain": np.empty((batch, H), dt),
                          "v": np.empty((k, chains, V), dt), "h": np.empty((k, chains, H), dt)}  # fmt: skip
                store["v0"] = store["samples"][:batch]
            self._buffer_key = key
        return self._buffer_store

    @staticmethod
    def _draw_into(b: dict[str, np.ndarray], name: str, u: np.ndarray, p: np.ndarray) -> np.ndarray:
        """``(u < p).astype(dtype)`` into the buffer ``name`` (the comparison into its boolean twin)."""
        np.copyto(b[name], np.less(u, p, out=b[f"{name}<"]))
        return b[name]

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
