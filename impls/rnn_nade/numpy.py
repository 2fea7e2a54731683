"""The NumPy RNN-NADE reference: the specification in code, its exact gradient (NADE + BPTT) written out by hand.

Training follows section 5 of Boulanger-Lewandowski, Bengio & Vincent (ICML 2012): (1) run the RNN over the true
frames, (2) compute every frame's biases b_v(t), b_h(t), (3) evaluate every frame's NADE on its true frame, all
units and frames at once (unit i's hidden pre-activation sums v_j W[j] over the units j < i: one masked product),
(4) take the gradient of ``C = mean_t -log p(v(t) | v(<t))`` with respect to the NADE's weights and each frame's
biases and (5) propagate the latter back through time to the RNN's parameters; then one Adam step. The other
frameworks compute the same cost and let autodiff do (4)-(5); they read like the functions here.
`frame_log_probs` scores exported parameters in float64, the scorer's copy of the likelihood.
"""

from __future__ import annotations

import numpy as np

from impls.backends import numpy as backend
from impls.rbm.numpy import sigmoid
from impls.rnn_nade.interface import BETA1, BETA2, EPSILON, RNNNADE, RNNNADEConfig, RNNNADENoise, RNNNADEParams, Weights
from impls.rnn_rbm.numpy import biases, flat, recurrence


def past(v: np.ndarray) -> np.ndarray:
    """``past[..., i, j] = v_j`` where ``j < i``, else 0 (..., n_visible, n_visible): the units each unit is given."""
    return v[..., None, :] * np.tri(v.shape[-1], k=-1, dtype=v.dtype)


def nade(w: Weights, v: np.ndarray, b_v: np.ndarray, b_h: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Every unit's logit ``z_i`` (..., n_visible) and hidden layer ``h_i`` (..., n_visible, n_hidden) given ``v``.

    ``h_i = sigmoid(b_h + sum_{j<i} v_j W[j])`` and ``z_i = b_v_i + h_i . V[i]``, so ``p(v_i = 1 | v_<i) =
    sigmoid(z_i)``; all units of all frames at once (``v``, ``b_v``: (..., n_visible), ``b_h``: (..., n_hidden)),
    the sums over earlier units as one masked product (measured faster than a cumulative sum over units).
    """
    h = sigmoid(b_h[..., None, :] + past(v) @ w.W)
    return b_v + np.einsum("...ih,ih->...i", h, w.V), h


def log_probs(v: np.ndarray, z: np.ndarray) -> np.ndarray:
    """``log p(v) = sum_i v_i log sigmoid(z_i) + (1 - v_i) log sigmoid(-z_i) = sum_i v_i z_i - softplus(z_i)``."""
    return (v * z - np.logaddexp(0, z)).sum(-1)


def gradients(w: Weights, v: np.ndarray) -> tuple[float, Weights]:
    """The cost ``mean_{b,t} -log p(v(t) | v(<t))`` and its exact gradient (NADE + BPTT)."""
    u_previous, u = recurrence(w, v)
    b_v, b_h = biases(w, u_previous)
    z, h = nade(w, v, b_v, b_h)
    cost = -np.mean(log_probs(v, z))
    n = v.shape[0] * v.shape[1]  # the cost is a mean over every frame of every chunk
    # each frame's NADE: dC/dz_i = sigmoid(z_i) - v_i, and z_i = b_v(t)_i + h_i . V[i]
    d_b_v = (sigmoid(z) - v) / n  # = dC/dz = dC/db_v(t)
    d_V = np.einsum("bti,btih->ih", d_b_v, h)
    d_a = d_b_v[..., None] * w.V * h * (1 - h)  # dC/da_i, a_i = b_h(t) + sum_{j<i} v_j W[j] (h_i's pre-activation)
    d_b_h = d_a.sum(-2)  # every unit's a_i holds b_h(t)
    d_W = flat(past(v)).T @ flat(d_a)  # dC/dW[j] = sum over frames and units i > j of v_j dC/da_i
    return float(cost), Weights(d_W, d_V, *bptt(w, v, u_previous, u, d_b_v, d_b_h))


def bptt(
    w: Weights, v: np.ndarray, u_previous: np.ndarray, u: np.ndarray, d_b_v: np.ndarray, d_b_h: np.ndarray
) -> tuple[np.ndarray, ...]:
    """``(b_v, b_h, W_uv, W_uh, W_uu, W_vu, b_u, u0)``'s gradients from every frame's ``dC/db_v(t)``, ``dC/db_h(t)``.

    The RNN-RBM's backpropagation through time (`impls.rnn_rbm.numpy.gradients`): only the frames' biases differ.
    """
    d_W_uv, d_W_uh = flat(u_previous).T @ flat(d_b_v), flat(u_previous).T @ flat(d_b_h)
    # u(t-1) reaches the cost through frame t's biases and through u(t)
    d_u_previous = d_b_v @ w.W_uv.T + d_b_h @ w.W_uh.T  # dC/du(t-1) through frame t's biases
    d_drive = np.zeros_like(u)  # dC/d(b_u + u(t-1) W_uu + v(t) W_vu) for every frame
    d_u = np.zeros_like(u[:, 0])  # dC/du(t), from the frames after t; u(T) reaches nothing
    for t in reversed(range(v.shape[1])):
        d_drive[:, t] = d_u * (1 - u[:, t] ** 2)  # through the tanh
        d_u = d_u_previous[:, t] + d_drive[:, t] @ w.W_uu.T  # now dC/du(t-1)
    d_W_uu, d_W_vu = flat(u_previous).T @ flat(d_drive), flat(v).T @ flat(d_drive)
    d_b_u, d_u0 = d_drive.sum((0, 1)), d_u.sum(0)  # d_u is now dC/du(0) = dC/du0, per sequence
    return d_b_v.sum((0, 1)), d_b_h.sum((0, 1)), d_W_uv, d_W_uh, d_W_uu, d_W_vu, d_b_u, d_u0


def clip(grads: Weights, clip_norm: float) -> Weights:
    """``grads`` scaled to global norm ``clip_norm`` if larger (0: unchanged)."""
    if not clip_norm:
        return grads
    norm = np.sqrt(sum((g**2).sum() for g in grads))
    return Weights(*(g * min(1, clip_norm / norm) for g in grads)) if norm > clip_norm else grads


def adam(config: RNNNADEConfig, w: Weights, m: Weights, s: Weights, step: int, grads: Weights, rate: float) -> None:
    """Adam's ``step``-th step (from 1), in place on ``w`` and the moments ``m``, ``s``.

    The gradient is clipped, then ``weight_decay * p`` is added (L2); ``p -= rate * m_hat / (sqrt(s_hat) + eps)``
    with the bias-corrected moments ``m_hat = m / (1 - beta1^step)``, ``s_hat = s / (1 - beta2^step)``.
    """
    correction1, correction2 = 1 - BETA1**step, 1 - BETA2**step
    for p, m_p, s_p, g in zip(w, m, s, clip(grads, config.clip_norm)):
        g = g + config.weight_decay * p
        m_p[...] = BETA1 * m_p + (1 - BETA1) * g
        s_p[...] = BETA2 * s_p + (1 - BETA2) * g * g
        p -= rate * (m_p / correction1) / (np.sqrt(s_p / correction2) + EPSILON)


def sample_frame(w: Weights, b_v: np.ndarray, b_h: np.ndarray, uniforms: np.ndarray) -> np.ndarray:
    """One frame of each piece (n, n_visible) drawn unit by unit from its NADE; unit i is on where ``uniforms[:, i]
    < p(v_i = 1 | v_<i)``, and its ``v_i W[i]`` then joins the hidden pre-activation of the units after it."""
    a, v = b_h.copy(), np.empty_like(uniforms)
    for i in range(len(w.W)):
        v[:, i] = uniforms[:, i] < sigmoid(b_v[:, i] + sigmoid(a) @ w.V[i])
        a += v[:, i, None] * w.W[i]
    return v


def frame_log_probs(params: RNNNADEParams, sequences: np.ndarray, block: int = 64) -> np.ndarray:
    """Exact ``log p(v(t) | v(<t))`` of every frame of ``sequences`` (batch, T, n_visible), (batch, T), in float64.

    The scorer's copy: exported parameters, the RNN over the true past from ``u0``, the NADE ``block`` frames at
    a time (a long piece's (T, n_visible, n_hidden) hidden layer would not fit). Score pieces of different lengths
    one at a time (batch 1).
    """
    w = Weights(*params.astype(np.float64).arrays())
    v = np.asarray(sequences, np.float64)
    b_v, b_h = biases(w, recurrence(w, v)[0])
    out = np.empty(v.shape[:2])
    for start in range(0, v.shape[1], block):
        frames = slice(start, start + block)
        out[:, frames] = log_probs(v[:, frames], nade(w, v[:, frames], b_v[:, frames], b_h[:, frames])[0])
    return out


class NumpyRNNNADE(RNNNADE):
    """RNN-NADE trained by the hand-written exact gradient and Adam in plain NumPy (float32 or float64)."""

    name = "numpy"
    backend = backend

    def __init__(self, config: RNNNADEConfig, params: RNNNADEParams, seed: int) -> None:
        super().__init__(config, params, seed)
        if config.device != "cpu":
            raise ValueError(f"numpy runs on the cpu only, not {config.device!r}")
        self.dtype = np.dtype(config.dtype)
        self.weights = Weights(*(np.array(a, dtype=self.dtype) for a in params.arrays()))
        self.moments = [Weights(*(np.zeros_like(a) for a in self.weights)) for _ in range(2)]  # Adam's m and s
        self.step = 0
        self.rng = np.random.default_rng(seed)

    def train_chunks(self, chunks: np.ndarray, learning_rate: float | None = None) -> np.ndarray:
        return np.array([self.update(v, learning_rate) for v in self.updates(chunks)])

    def update(self, v: np.ndarray, learning_rate: float | None = None) -> float:
        v = self.sequences(v).astype(self.dtype)
        cost, grads = gradients(self.weights, v)
        self.step += 1
        adam(self.config, self.weights, *self.moments, self.step, grads, self.dtype.type(self.rate(learning_rate)))
        return cost

    def conditional_biases(self, v: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        v = self.sequences(v).astype(self.dtype)
        return biases(self.weights, recurrence(self.weights, v)[0])

    def frame_log_probs(self, v: np.ndarray) -> np.ndarray:
        v = self.sequences(v).astype(self.dtype)
        return log_probs(v, nade(self.weights, v, *biases(self.weights, recurrence(self.weights, v)[0]))[0])

    def generate(self, n_pieces: int, n_frames: int, noise: RNNNADENoise | None = None) -> np.ndarray:
        w = self.weights
        if noise is None:
            noise = RNNNADENoise.draw(self.rng, self.config, n_pieces, n_frames)
        uniforms = np.asarray(self.checked_noise(noise, n_pieces, n_frames).v, self.dtype)
        frames = np.empty_like(uniforms)
        u = np.broadcast_to(w.u0, (n_pieces, len(w.u0)))  # u(0)
        for t in range(n_frames):
            frames[:, t] = v = sample_frame(w, *biases(w, u), uniforms[:, t])
            u = np.tanh(v @ w.W_vu + w.b_u + u @ w.W_uu)  # the RNN is fed the sampled frame
        return frames.astype(np.uint8)

    def params(self) -> RNNNADEParams:
        return RNNNADEParams(*self.weights).astype(np.float64)
