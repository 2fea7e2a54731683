"""PyTorch RNN-NADE: the reference (`impls.rnn_nade.numpy`) line for line, tensors on device.

The cost ``mean_t -log p(v(t) | v(<t))`` is exact, so autograd's gradient (the ``eager`` mode) is the reference's
hand-written NADE + BPTT gradient (Boulanger-Lewandowski, Bengio & Vincent, ICML 2012, sec. 5); the ``manual`` mode
(the default: faster) writes that gradient out (`gradients`) instead. Adam is written out as the reference's.
"""

from __future__ import annotations

import numpy as np
import torch

from impls.backends import torch as backend
from impls.common import Mode
from impls.rnn_nade.interface import BETA1, BETA2, EPSILON, RNNNADE, RNNNADEConfig, RNNNADENoise, RNNNADEParams, Weights
from impls.rnn_rbm.torch import biases, clip, recurrence, through_time


def past(v: torch.Tensor) -> torch.Tensor:
    """``past[..., i, j] = v_j`` where ``j < i``, else 0 (..., n_visible, n_visible): the units each unit is given."""
    n = v.shape[-1]
    return v[..., None, :] * torch.ones(n, n, dtype=v.dtype, device=v.device).tril(-1)


def nade(w: Weights, v: torch.Tensor, b_v: torch.Tensor, b_h: torch.Tensor) -> torch.Tensor:
    """Every unit's logit ``z_i = b_v_i + sigmoid(b_h + sum_{j<i} v_j W[j]) . V[i]``, all units and frames at once."""
    h = torch.sigmoid(b_h[..., None, :] + past(v) @ w.W)
    return b_v + torch.einsum("...ih,ih->...i", h, w.V)


def log_probs(v: torch.Tensor, z: torch.Tensor) -> torch.Tensor:
    """``log p(v) = sum_i v_i z_i - softplus(z_i)`` (softplus as log(1 + e^z), no threshold)."""
    return (v * z - torch.logaddexp(z, torch.zeros_like(z))).sum(-1)


def cost(w: Weights, v: torch.Tensor) -> torch.Tensor:
    """``mean_{b,t} -log p(v(t) | v(<t))``: exact, so its gradient is the reference's."""
    u_previous, _ = recurrence(w, v)
    b_v, b_h = biases(w, u_previous)
    return -torch.mean(log_probs(v, nade(w, v, b_v, b_h)))


def gradients(w: Weights, v: torch.Tensor) -> tuple[torch.Tensor, Weights]:
    """The reference's `gradients` (``impls.rnn_nade.numpy``: the NADE's gradient and BPTT written out) without
    autograd: the ``manual`` mode. Every frame is a row; ``h (1 - h)`` times the gradient above it is one
    ``sigmoid_backward`` kernel, softplus the vectorised one (logaddexp is not), the same in float32."""
    batch, T, _ = v.shape
    n = batch * T  # the cost is a mean over every frame of every chunk
    rows = lambda x: x.reshape(n, *x.shape[2:])  # (batch, T, ...) as (frames, ...)
    u_previous, u = recurrence(w, v)
    u_previous, v = rows(u_previous), rows(v)
    b_v, b_h = torch.addmm(w.b_v, u_previous, w.W_uv), torch.addmm(w.b_h, u_previous, w.W_uh)
    given = past(v)  # (frames, n_visible, n_visible)
    h = torch.sigmoid_(torch.matmul(given, w.W).add_(b_h[:, None]))  # every unit's hidden layer, every frame
    z = torch.linalg.vecdot(h, w.V).add_(b_v)
    cost = (torch.nn.functional.softplus(z).sum() - (v * z).sum()) / n
    # each frame's NADE: dC/dz_i = sigmoid(z_i) - v_i, and z_i = b_v(t)_i + h_i . V[i]
    d_b_v = torch.sigmoid_(z).sub_(v).div_(n)  # = dC/dz = dC/db_v(t)
    d_V = (d_b_v[..., None] * h).sum(0)
    d_a = torch.ops.aten.sigmoid_backward(d_b_v[..., None] * w.V, h)  # dC/da_i, h_i = sigmoid(a_i)
    d_W = given.reshape(-1, given.shape[-1]).T @ d_a.reshape(-1, d_a.shape[-1])  # v_j dC/da_i over units i > j
    return cost, Weights(d_W, d_V, *through_time(w, v, u_previous, u, d_b_v, d_a.sum(1)))


@torch.no_grad()
def adam(config: RNNNADEConfig, w: Weights, m: Weights, s: Weights, step: int, grads, rate: float) -> None:
    """Adam's ``step``-th step (from 1), in place: the gradient clipped, plus ``weight_decay * p``, bias-corrected."""
    correction1, correction2 = 1 - BETA1**step, 1 - BETA2**step
    for p, m_p, s_p, g in zip(w, m, s, clip(grads, config.clip_norm)):
        g = g + config.weight_decay * p
        m_p.copy_(BETA1 * m_p + (1 - BETA1) * g)
        s_p.copy_(BETA2 * s_p + (1 - BETA2) * g * g)
        p.sub_(rate * (m_p / correction1) / (torch.sqrt(s_p / correction2) + EPSILON))


def sample_frame(w: Weights, b_v: torch.Tensor, b_h: torch.Tensor, uniforms: torch.Tensor) -> torch.Tensor:
    """One frame of each piece (n, n_visible) drawn unit by unit from its NADE with ``uniforms`` (n, n_visible)."""
    a, units = b_h.clone(), []
    for i in range(len(w.W)):
        v_i = (uniforms[:, i] < torch.sigmoid(b_v[:, i] + torch.sigmoid(a) @ w.V[i])).to(a.dtype)
        a += v_i[:, None] * w.W[i]
        units.append(v_i)
    return torch.stack(units, 1)


class TorchRNNNADE(RNNNADE):
    """RNN-NADE trained by its written-out gradient (or autograd) and Adam in PyTorch (parameters and moments
    updated in place on the device)."""

    name = "torch"
    backend = backend
    MODES = (
        Mode("manual", "the reference's hand-written gradient, no autograd"),
        Mode("eager", "the cost through autograd, one kernel per operation, dispatched from Python"),
    )

    def __init__(self, config: RNNNADEConfig, params: RNNNADEParams, seed: int) -> None:
        super().__init__(config, params, seed)  # the backend's determinism and strict float32 products
        self.device = torch.device(config.device)
        self.dtype = backend.dtype(config.dtype)
        autograd = self.mode != "manual"
        self.weights = Weights(*(self._tensor(a).requires_grad_(autograd) for a in params.arrays()))
        self.moments = [Weights(*(torch.zeros_like(a) for a in self.weights)) for _ in range(2)]  # Adam's m and s
        self.step = 0
        self.generator = torch.Generator(self.device).manual_seed(int(seed))

    def _tensor(self, array: np.ndarray) -> torch.Tensor:
        return torch.as_tensor(np.asarray(array), dtype=self.dtype, device=self.device).clone()

    def train_chunks(self, chunks: np.ndarray, learning_rate: float | None = None) -> np.ndarray:
        rate = self.rate(learning_rate)
        costs = [self._update(self._tensor(v), rate) for v in self.updates(chunks)]
        return torch.stack(costs).cpu().numpy().astype(np.float64)  # one host copy per call

    def update(self, v: np.ndarray, learning_rate: float | None = None) -> float:
        return float(self._update(self._tensor(self.sequences(v)), self.rate(learning_rate)))

    def _update(self, v: torch.Tensor, rate: float) -> torch.Tensor:
        if self.mode == "manual":
            with torch.no_grad():
                loss, grads = gradients(self.weights, v)
        else:
            loss = cost(self.weights, v)
            grads = torch.autograd.grad(loss, self.weights)
        self.step += 1
        adam(self.config, self.weights, *self.moments, self.step, grads, rate)
        return loss.detach()

    @torch.no_grad()
    def conditional_biases(self, v: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        v = self._tensor(self.sequences(v))
        b_v, b_h = biases(self.weights, recurrence(self.weights, v)[0])
        return b_v.cpu().numpy(), b_h.cpu().numpy()

    @torch.no_grad()
    def frame_log_probs(self, v: np.ndarray) -> np.ndarray:
        v = self._tensor(self.sequences(v))
        return log_probs(v, nade(self.weights, v, *biases(self.weights, recurrence(self.weights, v)[0]))).cpu().numpy()

    @torch.no_grad()
    def generate(self, n_pieces: int, n_frames: int, noise: RNNNADENoise | None = None) -> np.ndarray:
        w = self.weights
        if noise is None:
            shape = (n_pieces, n_frames, self.config.n_visible)
            uniforms = torch.rand(shape, generator=self.generator, dtype=self.dtype, device=self.device)
        else:
            uniforms = self._tensor(self.checked_noise(noise, n_pieces, n_frames).v)
        frames = []
        u = w.u0.expand(n_pieces, -1)  # u(0)
        for t in range(n_frames):
            v = sample_frame(w, *biases(w, u), uniforms[:, t])
            frames.append(v)
            u = torch.tanh(v @ w.W_vu + w.b_u + u @ w.W_uu)  # the RNN is fed the sampled frame
        return torch.stack(frames, 1).cpu().numpy().astype(np.uint8)

    def params(self) -> RNNNADEParams:
        return RNNNADEParams(*(t.detach().cpu().numpy() for t in self.weights)).astype(np.float64)
