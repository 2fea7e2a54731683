"""JAX implementation: the reference line for line as pure functions, jit + lax.scan over an epoch."""

from __future__ import annotations

from functools import partial
from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

from impls.backends import jax as backend
from impls.common import Mode, binary_bytes
from impls.rbm.interface import RBM, CDNoise, RBMConfig, RBMParams


class State(NamedTuple):
    """Everything a CD update changes: parameters, momentum's velocities and the persistent chain."""

    W: jax.Array
    b_v: jax.Array
    b_h: jax.Array
    velocity: tuple[jax.Array, jax.Array, jax.Array]
    chain: jax.Array  # PCD: hidden state of the persistent chain
    has_chain: jax.Array  # False until the first PCD update seeds the chain from the data


def cd_update(config: RBMConfig, state: State, v0: jax.Array, noise: CDNoise, rate: jax.Array) -> State:
    """One CD-k / PCD-k update; the same arithmetic as `impls.rbm.numpy.NumpyRBM.cd_update`."""
    W, b_v, b_h, velocity, chain, has_chain = state
    dt = W.dtype
    ph0 = jax.nn.sigmoid(v0 @ W + b_h)
    h0 = (noise.h_data < ph0).astype(dt)
    start = h0 if noise.h_chain is None else (noise.h_chain < ph0).astype(dt)  # fresh: the original's own draw
    h = jnp.where(has_chain, chain, start) if config.persistent else start
    for step in range(config.cd_steps):
        pv = jax.nn.sigmoid(h @ W.T + b_v)
        vk = (noise.v[step] < pv).astype(dt)
        phk = jax.nn.sigmoid(vk @ W + b_h)
        h = (noise.h[step] < phk).astype(dt)
    positive = h0 if config.statistics == "samples" else ph0
    negative = h if config.statistics == "samples" else phk
    gradient_W = v0.T @ positive / v0.shape[0] - vk.T @ negative / vk.shape[0]
    if config.weight_decay:
        gradient_W = gradient_W - config.weight_decay * W
    gradients = (gradient_W, v0.mean(0) - vk.mean(0), positive.mean(0) - negative.mean(0))
    rate = rate.astype(dt)
    if config.momentum:  # velocity = momentum * velocity + rate * gradient; parameter += velocity
        velocity = tuple(config.momentum * u + rate * g for u, g in zip(velocity, gradients))
        steps = velocity
    else:
        steps = tuple(rate * g for g in gradients)
    W, b_v, b_h = (p + s for p, s in zip((W, b_v, b_h), steps))
    chain = h if config.persistent else chain
    return State(W, b_v, b_h, velocity, chain, jnp.asarray(config.persistent) | has_chain)


def draw_noise(config: RBMConfig, key: jax.Array, batch: int, chains: int, dtype) -> CDNoise:
    k, V, H = config.cd_steps, config.n_visible, config.n_hidden
    k_data, k_v, k_h, k_chain = jax.random.split(key, 4)
    fresh = config.chain_start == "fresh"
    return CDNoise(
        jax.random.uniform(k_data, (batch, H), dtype),
        jax.random.uniform(k_v, (k, chains, V), dtype),
        jax.random.uniform(k_h, (k, chains, H), dtype),
        jax.random.uniform(k_chain, (batch, H), dtype) if fresh else None,
    )


DRAW_GROUP_BYTES = 4 * 2**20  # the noise `train_group` draws in one go, at most (at least one update's)


def draws_ahead(config: RBMConfig, batch: int, chains: int, dtype) -> int:
    """How many updates' noise `train_group` draws in one go: as many as `DRAW_GROUP_BYTES` hold, at least one.

    Drawn inside each update of the epoch's scan, XLA's CPU threefry ran in small pieces (and the comparisons using
    it took as long again). At the default shape (0.98 MB of noise an update) in paired epochs (1 thread, 2-core
    AMD EPYC, 2026-12-07) against drawing inside: 2 updates at once 0.74x the epoch, 4 0.6x, 8 0.62x, 16 0.7-0.8x,
    40 1.0x; at batch 1000 (9.8 MB an update) 1 update 0.73x, 4 1.07x: the noise outgrowing the cache.
    """
    return max(1, DRAW_GROUP_BYTES // noise_bytes(config, batch, chains, dtype))


def noise_bytes(config: RBMConfig, batch: int, chains: int, dtype) -> int:
    """The bytes of one update's noise (`draw_noise`)."""
    units = batch * config.n_hidden * (2 if config.chain_start == "fresh" else 1)
    units += config.cd_steps * chains * (config.n_visible + config.n_hidden)
    return units * np.dtype(dtype).itemsize


@partial(jax.jit, static_argnums=(0, 6), donate_argnums=1)
def train_batches(
    config: RBMConfig, state: State, data: jax.Array, batches: jax.Array, key: jax.Array, rate: jax.Array, ahead: int
) -> State:
    """CD updates over equal-sized batches of row indices: one compiled `lax.scan` over groups of ``ahead`` updates
    (`train_group`, `draws_ahead`), the remainder one more group; each update's key as `train_batches_one_by_one`'s."""
    keys = jax.random.split(key, batches.shape[0])
    full = batches.shape[0] // ahead * ahead
    grouped = lambda x: x[:full].reshape(-1, ahead, *x.shape[1:])
    if full:
        body = lambda state, inputs: (train_group(config, state, data, *inputs, rate), None)
        state, _ = jax.lax.scan(body, state, (grouped(batches), grouped(keys)))
    if full < batches.shape[0]:
        state = train_group(config, state, data, batches[full:], keys[full:], rate)
    return state


def train_group(config: RBMConfig, state: State, data: jax.Array, rows: jax.Array, keys: jax.Array, rate: jax.Array):
    """The updates of a few batches (``rows``: one row of indices each) in turn, every update's noise drawn first in
    one vectorised call (``vmap`` over ``keys``: the numbers of one draw per update; why: `draws_ahead`)."""
    noises = draw_group(config, keys, rows.shape[1], chain_count(config, state, rows.shape[1]), state.W.dtype)
    update = lambda state, v0, noise: cd_update(config, state, v0.astype(state.W.dtype), noise, rate)  # bytes in
    state, _ = jax.lax.scan(
        lambda state, inputs: (update(state, data[inputs[0]], inputs[1]), None), state, (rows, noises)
    )
    return state


def chain_count(config: RBMConfig, state: State, batch: int) -> int:
    """The negative phase's chains for a batch of ``batch`` windows: PCD's persistent ones, or one per window."""
    return state.chain.shape[0] if config.persistent else batch


def draw_group(config: RBMConfig, keys: jax.Array, batch: int, chains: int, dtype) -> CDNoise:
    """The noise of one update per key, drawn in one vectorised call (stacked along a first axis)."""
    return jax.vmap(lambda key: draw_noise(config, key, batch, chains, dtype))(keys)


def train_batch(config: RBMConfig, state: State, data: jax.Array, rows: jax.Array, key: jax.Array, rate: jax.Array):
    """One CD update on the rows ``rows`` of ``data``, its noise drawn from ``key`` (the ``update`` mode)."""
    noise = draw_noise(config, key, rows.shape[0], chain_count(config, state, rows.shape[0]), state.W.dtype)
    return cd_update(config, state, data[rows].astype(state.W.dtype), noise, rate)  # the windows are bytes


def train_batches_one_by_one(
    config: RBMConfig, state: State, data: jax.Array, batches: jax.Array, key: jax.Array, rate: jax.Array
) -> State:
    """`train_batches` with one compiled call per update (the ``update`` mode): the same keys, so the same draws."""
    for rows, batch_key in zip(batches, jax.random.split(key, len(batches))):
        state = _train_batch_jit(config, state, data, rows, batch_key, rate)
    return state


_train_batch_jit = jax.jit(train_batch, static_argnums=0, donate_argnums=1)


@partial(jax.jit, static_argnums=0)
def _cd_update_jit(config: RBMConfig, state: State, v0: jax.Array, noise: CDNoise, rate: jax.Array) -> State:
    return cd_update(config, state, v0, noise, rate)


@partial(jax.jit, static_argnums=(0, 3))
def gibbs(config: RBMConfig, state: State, v: jax.Array, steps: int, key: jax.Array) -> jax.Array:
    """``steps`` block-Gibbs steps v -> h -> v from ``v``."""

    def body(step: int, v: jax.Array) -> jax.Array:
        k_h, k_v = jax.random.split(jax.random.fold_in(key, step))
        h = jax.random.uniform(k_h, (v.shape[0], config.n_hidden), v.dtype) < jax.nn.sigmoid(v @ state.W + state.b_h)
        pv = jax.nn.sigmoid(h.astype(v.dtype) @ state.W.T + state.b_v)
        return (jax.random.uniform(k_v, v.shape, v.dtype) < pv).astype(v.dtype)

    return jax.lax.fori_loop(0, steps, body, v)


class JaxRBM(RBM):
    """Binary RBM trained by CD-k / PCD-k with JAX (explicit keys, jit, scan over each epoch)."""

    name = "jax"
    backend = backend
    MODES = (
        Mode("scan", "one compiled lax.scan over an epoch's updates, a few updates' noise drawn at a time"),
        Mode("update", "one compiled call per update, the loop in Python"),
    )

    def __init__(self, config: RBMConfig, params: RBMParams, seed: int) -> None:
        super().__init__(config, params, seed)  # the backend's precision switch
        self.dtype = jnp.dtype(config.dtype)
        self.device = backend.device(config.device)
        W, b_v, b_h = (self._array(a) for a in (params.W, params.b_v, params.b_h))
        velocity = tuple(jnp.zeros_like(a) for a in (W, b_v, b_h))
        chain = self._array(np.zeros((config.batch_size, config.n_hidden)))
        self.state = State(W, b_v, b_h, velocity, chain, jax.device_put(jnp.asarray(False), self.device))
        self.key = jax.device_put(jax.random.key(int(seed)), self.device)
        self.data: jax.Array | None = None

    def _array(self, array: np.ndarray) -> jax.Array:
        return jax.device_put(jnp.asarray(np.asarray(array), self.dtype), self.device)

    def _next_key(self) -> jax.Array:
        self.key, key = jax.random.split(self.key)
        return key

    def _fit_chain(self, chains: int) -> None:
        """PCD's chain takes the size of the first batch it sees."""
        if not bool(self.state.has_chain) and self.state.chain.shape[0] != chains:
            self.state = self.state._replace(chain=self._array(np.zeros((chains, self.config.n_hidden))))

    def set_data(self, windows: np.ndarray) -> None:
        self.data = jax.device_put(binary_bytes(windows), self.device)  # bytes: each batch converted

    def _rate(self, learning_rate: float | None) -> jax.Array:
        return jax.device_put(jnp.asarray(self.rate(learning_rate), self.dtype), self.device)

    def train_epoch(self, batches: list[np.ndarray], learning_rate: float | None = None) -> None:
        self._fit_chain(len(batches[0]))
        rate = self._rate(learning_rate)
        groups = [np.stack(batches)] if len({len(b) for b in batches}) == 1 else [np.asarray(b)[None] for b in batches]
        for group in groups:  # ragged batches (the original's per-piece loop) run one scan each
            rows = jax.device_put(jnp.asarray(group), self.device)
            if self.mode == "scan":
                batch = rows.shape[1]
                ahead = draws_ahead(self.config, batch, chain_count(self.config, self.state, batch), self.dtype)
                self.state = train_batches(self.config, self.state, self.data, rows, self._next_key(), rate, ahead)
            else:
                self.state = train_batches_one_by_one(self.config, self.state, self.data, rows, self._next_key(), rate)
        jax.block_until_ready(self.state)

    def cd_update(self, v: np.ndarray, noise: CDNoise, learning_rate: float | None = None) -> None:
        self._fit_chain(len(noise.v[0]))
        noise = CDNoise(*(None if u is None else self._array(u) for u in noise))
        self.state = _cd_update_jit(self.config, self.state, self._array(v), noise, self._rate(learning_rate))

    def persistent_chain(self) -> np.ndarray | None:
        return np.asarray(self.state.chain) if self.config.persistent and bool(self.state.has_chain) else None

    def hidden_probs(self, v: np.ndarray) -> np.ndarray:
        return np.asarray(jax.nn.sigmoid(self._array(v) @ self.state.W + self.state.b_h))

    def visible_probs(self, h: np.ndarray) -> np.ndarray:
        return np.asarray(jax.nn.sigmoid(self._array(h) @ self.state.W.T + self.state.b_v))

    def free_energy(self, v: np.ndarray) -> np.ndarray:
        v = self._array(v)
        return np.asarray(-(v @ self.state.b_v) - jax.nn.softplus(v @ self.state.W + self.state.b_h).sum(1))

    def sample(self, n: int, steps: int, start: str | np.ndarray = "zeros") -> np.ndarray:
        start_rng = np.random.default_rng(np.asarray(jax.random.key_data(self._next_key())).ravel())
        v = self._array(self._start(n, start, start_rng))
        return np.asarray(gibbs(self.config, self.state, v, steps, self._next_key())).astype(np.uint8)

    def five_products_ms(self, batch: int, repeats: int = 50) -> float:
        v, h = (self._array(a) for a in self.timing_batch(batch))
        v1, h1 = 1 - v, 1 - h
        products = jax.jit(lambda W, v, h, v1, h1: (v @ W, h @ W.T, v1 @ W, v.T @ h, v1.T @ h1))
        return self.best_ms(lambda: jax.block_until_ready(products(self.state.W, v, h, v1, h1)), repeats)

    def draw_ms(self, batch: int, repeats: int = 50, per_loop: int = 10) -> float:
        """Per update's draws as training draws them (`train_group`: `draws_ahead` updates' at once), inside one
        compiled loop (no per-call dispatch)."""
        ahead = draws_ahead(self.config, batch, batch, self.dtype)
        draws = lambda keys: draw_group(self.config, keys, batch, batch, self.dtype)

        @jax.jit
        def loop(key: jax.Array) -> CDNoise:
            first = draws(jax.random.split(key, ahead))
            body = lambda i, _: draws(jax.random.split(jax.random.fold_in(key, i), ahead))
            return jax.lax.fori_loop(1, per_loop, body, first)

        key = jax.device_put(jax.random.key(0), self.device)
        best = self.best_ms(lambda: jax.block_until_ready(loop(key)), max(1, repeats // per_loop))
        return best / per_loop / ahead

    def params(self) -> RBMParams:
        return RBMParams(*(np.asarray(a) for a in (self.state.W, self.state.b_v, self.state.b_h))).astype(np.float64)
