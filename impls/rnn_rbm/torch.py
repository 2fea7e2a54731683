"""PyTorch RNN-RBM: the reference (`impls.rnn_rbm.numpy`) line for line, gradients by autograd, tensors on device.

The cost ``mean F_t(v(t)) - F_t(v*(t))`` is built with the negative samples v* detached, so autograd's
gradient is the reference's CD-k + BPTT gradient (Boulanger-Lewandowski, Bengio & Vincent, ICML 2012, sec. 3).
Three modes (`MODES`): ``manual``, the reference's hand-written gradients (`gradients`) without autograd, every
bias added inside its product and each time step two kernels; ``eager``, the cost through autograd, one kernel per
operation; ``compile``, the cost through ``torch.compile`` (its forward and backward each one inductor graph, the
RNN's steps and the Gibbs steps unrolled), every update padded with silent frames to ``(batch_size, chunk_length)``
and masked, as JAX's, so that one shape compiles once.
"""

from __future__ import annotations

import numpy as np
import torch

from impls.backends import torch as backend
from impls.common import Mode
from impls.rnn_rbm.interface import RNNRBM, RNNRBMConfig, RNNRBMNoise, RNNRBMParams, Weights


def recurrence(w: Weights, v: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """``(u(t-1), u(t))`` for every frame of ``v`` (batch, T, n_visible): the RNN over the true frames."""
    batch = v.shape[0]
    drive = v @ w.W_vu + w.b_u  # the part of every step that does not depend on u: one product
    previous, states = w.u0.expand(batch, -1), []
    for drive_t in drive.unbind(1):  # one view per frame (autograd: one gradient buffer, not one per frame)
        previous = torch.tanh(torch.addmm(drive_t, previous, w.W_uu))  # two kernels a step
        states.append(previous)
    u = torch.stack(states, 1)
    u_previous = torch.cat([w.u0.expand(batch, 1, -1), u[:, :-1]], 1)
    return u_previous, u


def biases(w: Weights, u_previous: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """``b_v(t) = b_v + u(t-1) W_uv`` and ``b_h(t) = b_h + u(t-1) W_uh``."""
    return w.b_v + u_previous @ w.W_uv, w.b_h + u_previous @ w.W_uh


def gibbs(
    w: Weights, v: torch.Tensor, b_v: torch.Tensor, b_h: torch.Tensor, u_h: torch.Tensor, u_v: torch.Tensor
) -> torch.Tensor:
    """``len(u_h)`` block-Gibbs steps v -> h -> v of the conditional RBMs, step s drawing with ``u_h[s], u_v[s]``."""
    dt = v.dtype
    for step in range(len(u_h)):
        h = (u_h[step] < torch.sigmoid(v @ w.W + b_h)).to(dt)
        v = (u_v[step] < torch.sigmoid(h @ w.W.T + b_v)).to(dt)
    return v


def free_energy(w: Weights, v: torch.Tensor, b_v: torch.Tensor, b_h: torch.Tensor) -> torch.Tensor:
    """``F_t(v) = -v b_v(t) - sum_j softplus(v W + b_h(t))_j`` per frame (softplus as log(1 + e^x), no threshold)."""
    x = v @ w.W + b_h
    return -(v * b_v).sum(-1) - torch.logaddexp(x, torch.zeros_like(x)).sum(-1)


def cost(w: Weights, v: torch.Tensor, noise: RNNRBMNoise, mask: torch.Tensor | None = None) -> torch.Tensor:
    """``mean_{b,t} F_t(v(t)) - F_t(v*(t))`` with v* detached: its gradient is CD-k + BPTT.

    With a ``mask``, the mean over the frames where it is 1 (padding after a chunk's end adds nothing: the RNN is
    causal)."""
    u_previous, _ = recurrence(w, v)
    b_v, b_h = biases(w, u_previous)
    v_star = gibbs(w, v, b_v, b_h, noise.h, noise.v).detach()
    energy = free_energy(w, v, b_v, b_h) - free_energy(w, v_star, b_v, b_h)
    return torch.mean(energy) if mask is None else (energy * mask).sum() / mask.sum()


def gradients(w: Weights, v: torch.Tensor, noise: RNNRBMNoise) -> tuple[torch.Tensor, Weights]:
    """The reference's `gradients` (``impls.rnn_rbm.numpy``: CD-k + BPTT written out) without autograd: the ``manual``
    mode. Every frame is a row; ``addmm`` adds each bias inside its product; the Gibbs chain's sigmoids run in place
    and its comparisons write floats, so a step is three kernels a layer and a time step two."""
    batch, T, _ = v.shape
    n = batch * T  # the cost is a mean over every frame of every chunk
    rows = lambda x: x.reshape(-1, x.shape[-1])  # (..., k) as (frames, k)
    u_previous, u = recurrence(w, v)
    u_previous, v = rows(u_previous), rows(v)
    b_v, b_h = torch.addmm(w.b_v, u_previous, w.W_uv), torch.addmm(w.b_h, u_previous, w.W_uh)
    x = torch.addmm(b_h, v, w.W)  # v W + b_h(t): F(v), p(h | v) and Gibbs step 0
    p_h, W_T = torch.sigmoid(x), w.W.T.contiguous()
    h, p, v_star, q = torch.empty_like(x), torch.empty_like(x), torch.empty_like(v), torch.empty_like(v)
    draws = zip(noise.h.reshape(len(noise.h), n, -1), noise.v.reshape(len(noise.v), n, -1))  # step s: frames' rows
    for step, (u_h, u_v) in enumerate(draws):
        torch.lt(u_h, p_h if step == 0 else torch.sigmoid_(torch.addmm(b_h, v_star, w.W, out=p)), out=h)
        torch.lt(u_v, torch.sigmoid_(torch.addmm(b_v, h, W_T, out=q)), out=v_star)
    x_star = torch.addmm(b_h, v_star, w.W)
    softplus = lambda z: torch.nn.functional.softplus(z).sum()  # vectorised (logaddexp is not), the same in float32
    cost = ((v_star * b_v).sum() - (v * b_v).sum() + softplus(x_star) - softplus(x)) / n
    p_h_star = torch.sigmoid_(x_star)
    # each frame's RBM: dF/db_v(t) = -v, dF/db_h(t) = -p(h | v), dF/dW = -v^T p(h | v)
    d_b_v, d_b_h = (v_star - v) / n, (p_h_star - p_h) / n
    d_W = (v_star.T @ p_h_star - v.T @ p_h) / n
    return cost, Weights(d_W, *through_time(w, v, u_previous, u, d_b_v, d_b_h))


def through_time(w: Weights, v: torch.Tensor, u_previous: torch.Tensor, u: torch.Tensor, d_b_v: torch.Tensor,
                 d_b_h: torch.Tensor) -> tuple[torch.Tensor, ...]:  # fmt: skip
    """``(b_v, b_h, W_uv, W_uh, W_uu, W_vu, b_u, u0)``'s gradients from every frame's ``dC/db_v(t)``, ``dC/db_h(t)``
    (the reference's biases' gradients and BPTT, ``impls.rnn_rbm.numpy.through_time``) for the ``manual`` modes of
    both RNN models; ``v``, ``u_previous`` and the two bias gradients are rows (every frame of ``u``'s (batch, T))."""
    batch, T, R = u.shape  # R may be 0: the frame NADE
    d_u_previous = torch.addmm(d_b_v @ w.W_uv.T, d_b_h, w.W_uh.T).view(batch, T, R)  # dC/du(t-1) via the biases
    d_u, d_drives = torch.zeros_like(u[:, 0]), []  # BPTT: dC/du(t) from the frames after t; u(T) reaches nothing
    W_uu_T = w.W_uu.T.contiguous()  # a small addmm is ~2 us slower with a transposed operand
    for slope_t, d_u_previous_t in zip(reversed((1 - u * u).unbind(1)), reversed(d_u_previous.unbind(1))):
        d_drives.append(d_u * slope_t)  # through the tanh
        d_u = torch.addmm(d_u_previous_t, d_drives[-1], W_uu_T)  # now dC/du(t-1)
    d_drive = torch.stack(d_drives[::-1], 1).reshape(batch * T, R)
    return (d_b_v.sum(0), d_b_h.sum(0), u_previous.T @ d_b_v, u_previous.T @ d_b_h, u_previous.T @ d_drive,
            v.T @ d_drive, d_drive.sum(0), d_u.sum(0))  # fmt: skip


def clip(grads: tuple[torch.Tensor, ...], clip_norm: float) -> tuple[torch.Tensor, ...]:
    """``grads`` scaled to global norm ``clip_norm`` if larger (0: unchanged)."""
    if not clip_norm:
        return grads
    norm = torch.sqrt(sum((g**2).sum() for g in grads))
    return tuple(g * torch.clamp(clip_norm / norm, max=1) for g in grads)


class TorchRNNRBM(RNNRBM):
    """RNN-RBM trained by CD-k and BPTT with PyTorch autograd (parameters updated in place on the device)."""

    name = "torch"
    backend = backend
    MODES = (
        Mode("manual", "the reference's hand-written gradients, no autograd: two kernels a time step"),
        Mode("eager", "the cost through autograd, one kernel per operation, dispatched from Python"),
        Mode("compile", "torch.compile of the cost (forward and backward graphs); updates padded to one shape"),
    )

    def __init__(self, config: RNNRBMConfig, params: RNNRBMParams, seed: int) -> None:
        super().__init__(config, params, seed)  # the backend's determinism and strict float32 products
        self.device = torch.device(config.device)
        self.dtype = backend.dtype(config.dtype)
        autograd = self.mode != "manual"
        self.weights = Weights(*(self._tensor(a).requires_grad_(autograd) for a in params.arrays()))
        self.generator = torch.Generator(self.device).manual_seed(int(seed))
        self._cost = torch.compile(cost, dynamic=False) if self.mode == "compile" else cost

    def reseed(self, seed: int) -> None:
        self.generator.manual_seed(int(seed))

    def _tensor(self, array: np.ndarray) -> torch.Tensor:
        return torch.as_tensor(np.asarray(array), dtype=self.dtype, device=self.device).clone()

    def _noise(
        self, batch: int, n_frames: int, k: int | None = None, generator: torch.Generator | None = None
    ) -> RNNRBMNoise:
        k, H, V = self.config.cd_steps if k is None else k, self.config.n_hidden, self.config.n_visible
        generator = generator or self.generator
        uniform = lambda *shape: torch.rand(shape, generator=generator, dtype=self.dtype, device=self.device)
        return RNNRBMNoise(uniform(k, batch, n_frames, H), uniform(k, batch, n_frames, V))

    def train_chunks(
        self, chunks: np.ndarray, noise: list[RNNRBMNoise] | None = None, learning_rate: float | None = None
    ) -> np.ndarray:
        rate, costs = self.rate(learning_rate), []
        for index, v in enumerate(self.updates(chunks, noise)):
            if noise is None:
                draws = self._noise(*v.shape[:2])
            else:
                draws = RNNRBMNoise(*(self._tensor(u) for u in self.checked_noise(noise[index], *v.shape[:2])))
            costs.append(self._cd_update(self._tensor(v), draws, rate))
        return torch.stack(costs).cpu().numpy().astype(np.float64)  # one host copy per call

    def cd_update(self, v: np.ndarray, noise: RNNRBMNoise, learning_rate: float | None = None) -> float:
        v = self._tensor(self.sequences(v))
        noise = RNNRBMNoise(*(self._tensor(u) for u in self.checked_noise(noise, *v.shape[:2])))
        return float(self._cd_update(v, noise, self.rate(learning_rate)))

    def _padded(self, v: torch.Tensor, noise: RNNRBMNoise) -> tuple[torch.Tensor, RNNRBMNoise, torch.Tensor]:
        """``v``, its noise and a mask, padded with zeros to ``(batch_size, chunk_length)`` frames (at least)."""
        batch, frames = max(self.config.batch_size, v.shape[0]), max(self.config.chunk_length, v.shape[1])
        pad = lambda x: torch.nn.functional.pad(x, (0, 0, 0, frames - x.shape[-2], 0, batch - x.shape[-3]))
        mask = pad(torch.ones_like(v[..., :1]))[..., 0]
        return pad(v), RNNRBMNoise(pad(noise.h), pad(noise.v)), mask

    def _cd_update(self, v: torch.Tensor, noise: RNNRBMNoise, rate: float) -> torch.Tensor:
        mask = None
        if self.mode == "manual":
            with torch.no_grad():
                loss, grads = gradients(self.weights, v, noise)
        else:
            if self.mode == "compile":  # one shape: one compilation
                v, noise, mask = self._padded(v, noise)
            loss = self._cost(self.weights, v, noise, mask)
            grads = torch.autograd.grad(loss, self.weights)
        with torch.no_grad():
            for parameter, gradient in zip(self.weights, clip(grads, self.config.clip_norm)):
                parameter.sub_(rate * gradient)  # plain SGD, in place
        return loss.detach()

    @torch.no_grad()
    def conditional_biases(self, v: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        v = self._tensor(self.sequences(v))
        b_v, b_h = biases(self.weights, recurrence(self.weights, v)[0])
        return b_v.cpu().numpy(), b_h.cpu().numpy()

    @torch.no_grad()
    def frame_free_energies(self, v: np.ndarray) -> np.ndarray:
        v = self._tensor(self.sequences(v))
        return free_energy(self.weights, v, *biases(self.weights, recurrence(self.weights, v)[0])).cpu().numpy()

    @torch.no_grad()
    def generate(
        self,
        n_pieces: int,
        n_frames: int,
        k: int | None = None,
        noise: RNNRBMNoise | None = None,
        start: np.ndarray | None = None,
    ) -> np.ndarray:
        w = self.weights
        if noise is not None:
            u_h, u_v = (self._tensor(u) for u in self.checked_noise(noise, n_pieces, n_frames))
        start = self._tensor(self.generation_start(n_pieces, n_frames, start))
        frames = []
        u = w.u0.expand(n_pieces, -1)  # u(0)
        for t in range(n_frames):
            if noise is None:  # the model's own draws, one frame at a time (never the whole piece's at once)
                u_h, u_v = self._noise(n_pieces, 1, k)
            s = 0 if noise is None else t
            b_v, b_h = biases(w, u)
            v = gibbs(w, start[:, t], b_v, b_h, u_h[:, :, s], u_v[:, :, s])
            frames.append(v)
            u = torch.tanh(v @ w.W_vu + w.b_u + u @ w.W_uu)  # the RNN is fed the sampled frame
        return torch.stack(frames, 1).cpu().numpy().astype(np.uint8)

    def draw_ms(self, batch: int, n_frames: int, repeats: int = 20) -> float:
        generator = torch.Generator(self.device).manual_seed(0)
        synchronize = torch.cuda.synchronize if self.device.type == "cuda" else lambda: None
        return self.best_ms(lambda: (self._noise(batch, n_frames, generator=generator), synchronize()), repeats)

    def params(self) -> RNNRBMParams:
        return RNNRBMParams(*(t.detach().cpu().numpy() for t in self.weights)).astype(np.float64)
