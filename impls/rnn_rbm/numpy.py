"""The NumPy RNN-RBM reference: the specification in code, gradients (CD + BPTT) written out by hand.

Training follows section 3 of Boulanger-Lewandowski, Bengio & Vincent (ICML 2012): (1) run the RNN over the
true frames, (2) compute every frame's biases b_v(t), b_h(t), (3) draw v*(t) by k Gibbs steps from v(t),
(4) take each frame's CD gradient of ``C = F_t(v(t)) - F_t(v*(t))`` (v* constant) and (5) propagate its
gradient with respect to b_v(t), b_h(t) back through time to the RNN's parameters. The other frameworks
write `gradients` out in their own operations (JAX's default mode, PyTorch's and TensorFlow's ``manual``), or
compute the same cost and let autodiff do (4)-(5) (their other modes); they read like the functions here.

The ``buffers`` mode (`gradients_into`) runs the same operations into arrays allocated once (shared by every update
shape), with the per-step work of the two time loops cut to three calls, and without the products the specification
repeats (``v W + b_h`` three times, ``v* W + b_h`` twice): the same parameters bit for bit (tested). Only its reported
cost differs, within float32 rounding: its softplus is vectorised (`softplus`; ``np.logaddexp`` is a scalar loop).
"""

from __future__ import annotations

import math

import numpy as np

from impls.backends import numpy as backend
from impls.common import Mode
from impls.rbm.numpy import sigmoid
from impls.rnn_rbm.interface import RNNRBM, RNNRBMConfig, RNNRBMNoise, RNNRBMParams, Weights


def recurrence(w: Weights, v: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """``(u(t-1), u(t))`` for every frame of ``v`` (batch, T, n_visible): the RNN over the true frames."""
    batch, T, _ = v.shape
    drive = v @ w.W_vu + w.b_u  # the part of every step that does not depend on u: one product
    u = np.empty((batch, T, len(w.u0)), v.dtype)
    previous = np.broadcast_to(w.u0, (batch, len(w.u0)))
    for t in range(T):
        previous = u[:, t] = np.tanh(drive[:, t] + previous @ w.W_uu)
    u_previous = np.concatenate([np.broadcast_to(w.u0, (batch, 1, len(w.u0))), u[:, :-1]], axis=1)
    return u_previous, u


def biases(w: Weights, u_previous: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """``b_v(t) = b_v + u(t-1) W_uv`` and ``b_h(t) = b_h + u(t-1) W_uh``."""
    return w.b_v + u_previous @ w.W_uv, w.b_h + u_previous @ w.W_uh


def gibbs(w: Weights, v: np.ndarray, b_v: np.ndarray, b_h: np.ndarray, u_h: np.ndarray, u_v: np.ndarray) -> np.ndarray:
    """``len(u_h)`` block-Gibbs steps v -> h -> v of the conditional RBMs, step s drawing with ``u_h[s], u_v[s]``."""
    dt = v.dtype
    for step in range(len(u_h)):
        h = (u_h[step] < sigmoid(v @ w.W + b_h)).astype(dt)
        v = (u_v[step] < sigmoid(h @ w.W.T + b_v)).astype(dt)
    return v


def free_energy(w: Weights, v: np.ndarray, b_v: np.ndarray, b_h: np.ndarray) -> np.ndarray:
    """``F_t(v) = -v b_v(t) - sum_j softplus(v W + b_h(t))_j`` per frame."""
    return -(v * b_v).sum(-1) - np.logaddexp(0, v @ w.W + b_h).sum(-1)


def gradients(w: Weights, v: np.ndarray, noise: RNNRBMNoise) -> tuple[float, Weights]:
    """The cost ``mean_{b,t} F_t(v(t)) - F_t(v*(t))`` and its gradient, v* held constant (CD-k + BPTT)."""
    u_previous, u = recurrence(w, v)
    b_v, b_h = biases(w, u_previous)
    v_star = gibbs(w, v, b_v, b_h, noise.h, noise.v)
    cost = np.mean(free_energy(w, v, b_v, b_h) - free_energy(w, v_star, b_v, b_h))
    n = v.shape[0] * v.shape[1]  # the cost is a mean over every frame of every chunk
    p_h, p_h_star = sigmoid(v @ w.W + b_h), sigmoid(v_star @ w.W + b_h)
    # each frame's RBM: dF/db_v(t) = -v, dF/db_h(t) = -p(h | v), dF/dW = -v^T p(h | v)
    d_b_v, d_b_h = (v_star - v) / n, (p_h_star - p_h) / n
    d_W = (flat(v_star).T @ flat(p_h_star) - flat(v).T @ flat(p_h)) / n
    d_W_uv, d_W_uh = flat(u_previous).T @ flat(d_b_v), flat(u_previous).T @ flat(d_b_h)
    d_u_previous = d_b_v @ w.W_uv.T + d_b_h @ w.W_uh.T  # dC/du(t-1) through frame t's biases
    d_W_uu, d_W_vu, d_b_u, d_u0 = through_time(w, v, u_previous, u, d_u_previous)
    d_b_v, d_b_h = d_b_v.sum((0, 1)), d_b_h.sum((0, 1))
    return float(cost), Weights(d_W, d_b_v, d_b_h, d_W_uv, d_W_uh, d_W_uu, d_W_vu, d_b_u, d_u0)


def through_time(w: Weights, v: np.ndarray, u_previous: np.ndarray, u: np.ndarray, d_u_previous: np.ndarray
                 ) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:  # fmt: skip
    """BPTT: the gradients of ``W_uu, W_vu, b_u, u0`` from ``dC/du(t-1)`` through each frame's own outputs
    (``d_u_previous``); u(t-1) reaches the cost through frame t's outputs and through u(t)."""
    d_drive = np.zeros_like(u)  # dC/d(b_u + u(t-1) W_uu + v(t) W_vu) for every frame
    d_u = np.zeros_like(u[:, 0])  # dC/du(t), from the frames after t; u(T) reaches nothing
    for t in reversed(range(v.shape[1])):
        d_drive[:, t] = d_u * (1 - u[:, t] ** 2)  # through the tanh
        d_u = d_u_previous[:, t] + d_drive[:, t] @ w.W_uu.T  # now dC/du(t-1)
    d_W_uu, d_W_vu = flat(u_previous).T @ flat(d_drive), flat(v).T @ flat(d_drive)
    return d_W_uu, d_W_vu, d_drive.sum((0, 1)), d_u.sum(0)  # d_u is now dC/du(0) = dC/du0, per sequence


@np.errstate(over="ignore")  # exp(-x) overflows to inf where x < -88: its sigmoid is then 0, as it should be
def gradients_into(w: Weights, v: np.ndarray, noise: RNNRBMNoise, b: dict) -> tuple[float, Weights]:
    """`gradients` with every large result written into the buffers ``b`` (`buffers`): the same bits.

    Two exact identities save work: ``-(v W + b_h) = v (-W) + (-b_h)`` in IEEE arithmetic, so the Gibbs chain
    computes ``exp(-x)`` without negating ``x`` each step; and Gibbs step 0's hidden probabilities are
    ``p(h | v)`` of the gradient, computed once.
    """
    batch, T, _ = v.shape
    u, step = b["u"], b["step"]  # the recurrence, one step at a time into u's views
    np.add(np.matmul(v, w.W_vu, out=b["drive"]), w.b_u, out=b["drive"])  # v(t) W_vu + b_u: one product
    previous = np.broadcast_to(w.u0, (batch, len(w.u0)))
    for drive_t, u_t in zip(b["drive_steps"], b["u_steps"]):
        previous = np.tanh(np.add(drive_t, np.matmul(previous, w.W_uu, out=step), out=step), out=u_t)
    u_previous = b["u_previous"]
    u_previous[:, 0], u_previous[:, 1:] = w.u0, u[:, :-1]
    b_v = np.add(w.b_v, np.matmul(u_previous, w.W_uv, out=b["b_v"]), out=b["b_v"])
    b_h = np.add(w.b_h, np.matmul(u_previous, w.W_uh, out=b["b_h"]), out=b["b_h"])
    minus_b_v, minus_b_h = np.negative(b_v, out=b["-b_v"]), np.negative(b_h, out=b["-b_h"])
    minus_W, minus_W_T = np.negative(w.W, out=b["-W"]), np.negative(w.W.T, out=b["-W.T"])  # W.T contiguous: faster
    x = np.add(np.matmul(v, w.W, out=b["x"]), b_h, out=b["x"])  # v W + b_h(t): F(v), p(h | v), Gibbs step 0
    p_h = exp_plus_one_reciprocal(np.negative(x, out=b["p_h"]))
    v_star = v
    for step_index in range(len(noise.h)):
        p = p_h if step_index == 0 else exp_plus_one_reciprocal(
            np.add(np.matmul(v_star, minus_W, out=b["-x_h"]), minus_b_h, out=b["-x_h"]))  # fmt: skip
        h = draw_into(b, "h", noise.h[step_index], p)
        p = exp_plus_one_reciprocal(np.add(np.matmul(h, minus_W_T, out=b["-x_v"]), minus_b_v, out=b["-x_v"]))
        v_star = draw_into(b, "v", noise.v[step_index], p)
    x_star = np.add(np.matmul(v_star, w.W, out=b["x*"]), b_h, out=b["x*"])
    free_energies = -(v * b_v).sum(-1) - softplus(x).sum(-1), -(v_star * b_v).sum(-1) - softplus(x_star).sum(-1)
    cost = np.mean(free_energies[0] - free_energies[1])
    n = batch * T
    p_h_star = exp_plus_one_reciprocal(np.negative(x_star, out=x_star))
    d_b_v = np.divide(np.subtract(v_star, v, out=b["d_b_v"]), n, out=b["d_b_v"])
    d_b_h = np.divide(np.subtract(p_h_star, p_h, out=b["d_b_h"]), n, out=b["d_b_h"])
    d_W = (flat(v_star).T @ flat(p_h_star) - flat(v).T @ flat(p_h)) / n
    d_W_uv, d_W_uh = flat(u_previous).T @ flat(d_b_v), flat(u_previous).T @ flat(d_b_h)
    d_u_previous = np.matmul(d_b_v, w.W_uv.T, out=b["d_u_previous"])
    d_u_previous += d_b_h @ w.W_uh.T
    np.subtract(1, np.square(u, out=b["slope"]), out=b["slope"])  # through the tanh: every frame at once
    d_u, d_drive = b["d_u"], b["d_drive"]
    d_u[...] = 0
    for d_drive_t, slope_t, d_u_previous_t in zip(b["d_drive_steps"], b["slope_steps"], b["d_u_previous_steps"]):
        np.multiply(d_u, slope_t, out=d_drive_t)
        np.add(d_u_previous_t, np.matmul(d_drive_t, w.W_uu.T, out=d_u), out=d_u)
    d_W_uu, d_W_vu = flat(u_previous).T @ flat(d_drive), flat(v).T @ flat(d_drive)
    return float(cost), Weights(d_W, d_b_v.sum((0, 1)), d_b_h.sum((0, 1)), d_W_uv, d_W_uh, d_W_uu, d_W_vu,
                                d_drive.sum((0, 1)), d_u.sum(0))  # fmt: skip


def buffers(w: Weights, batch: int, T: int, storage: dict[str, np.ndarray]) -> dict:
    """The arrays of `gradients_into` for updates of ``batch`` chunks of ``T`` frames, and the per-step views of
    its two time loops (reversed for the one back through time).

    Each array is a contiguous view of the front of a flat array in ``storage`` (grown when too small), so the
    buffers of every update shape share one allocation: the chunks of a piece's end are shorter, and an epoch of
    JSB has ~18 shapes in a shuffled order.
    """
    (V, H), R, dt = w.W.shape, len(w.u0), w.W.dtype
    per_frame = {"drive": R, "u": R, "u_previous": R, "b_v": V, "b_h": H, "-b_v": V, "-b_h": H, "x": H, "p_h": H,
                 "-x_h": H, "-x_v": V, "h": H, "v": V, "x*": H, "d_b_v": V, "d_b_h": H, "d_u_previous": R,
                 "d_drive": R, "slope": R, "h<": H, "v<": V}  # fmt: skip
    shapes = {name: (batch, T, n) for name, n in per_frame.items()}
    shapes |= {"step": (batch, R), "d_u": (batch, R), "-W": (V, H), "-W.T": (H, V)}
    b: dict = {}
    for name, shape in shapes.items():
        size = math.prod(shape)
        if name not in storage or storage[name].size < size:
            storage[name] = np.empty(size, bool if name.endswith("<") else dt)
        b[name] = storage[name][:size].reshape(shape)
    b |= {f"{name}_steps": [b[name][:, t] for t in range(T)] for name in ("drive", "u")}
    b |= {f"{name}_steps": [b[name][:, t] for t in reversed(range(T))] for name in ("d_drive", "slope", "d_u_previous")}
    return b


def exp_plus_one_reciprocal(minus_x: np.ndarray) -> np.ndarray:
    """``sigmoid(x)`` in place from ``-x``: `sigmoid`'s operations after its negation, so the same bits (overflow
    ignored by `gradients_into`'s ``errstate``: one context an update, not one a call, 1.8 % of an epoch)."""
    np.exp(minus_x, out=minus_x)
    minus_x += 1
    return np.reciprocal(minus_x, out=minus_x)


def draw_into(b: dict, name: str, u: np.ndarray, p: np.ndarray) -> np.ndarray:
    """``(u < p).astype(dtype)`` into the buffer ``name`` (the comparison into its boolean twin)."""
    np.copyto(b[name], np.less(u, p, out=b[f"{name}<"]))
    return b[name]


def softplus(x: np.ndarray) -> np.ndarray:
    """``log(1 + exp(x))`` as ``max(x, 0) + log1p(exp(-|x|))``: vectorised, ~8x faster than ``np.logaddexp(0, x)``
    (a scalar loop) here, within float32 rounding of it."""
    return np.maximum(x, 0) + np.log1p(np.exp(-np.abs(x)))


def prediction_gradients(w: Weights, v: np.ndarray, c: np.ndarray) -> tuple[float, Weights, np.ndarray]:
    """The RNN pre-training cost (paper sec. 3; tutorial, "How to improve"): the cross-entropy of each frame under
    independent Bernoullis ``sigmoid(c + u(t-1) W_uv)`` predicted from the frames before it, summed over units and
    averaged over frames; its gradient for ``W_uv, W_uu, W_vu, b_u, u0`` (the others' entries zero) and for the
    prediction's own bias ``c``."""
    u_previous, u = recurrence(w, v)
    logits = c + u_previous @ w.W_uv
    cost = float(np.mean((np.logaddexp(0, logits) - v * logits).sum(-1)))
    d_logits = (sigmoid(logits) - v) / (v.shape[0] * v.shape[1])
    d_W_uu, d_W_vu, d_b_u, d_u0 = through_time(w, v, u_previous, u, d_logits @ w.W_uv.T)
    zero = Weights(*(np.zeros_like(a) for a in w))
    grads = zero._replace(W_uv=flat(u_previous).T @ flat(d_logits), W_uu=d_W_uu, W_vu=d_W_vu, b_u=d_b_u, u0=d_u0)
    return cost, grads, d_logits.sum((0, 1))


def flat(x: np.ndarray) -> np.ndarray:
    """(batch, T, ..., n) as (batch * T * ..., n): every frame a row (n may be 0: an RNN-NADE without recurrence)."""
    return x.reshape(math.prod(x.shape[:-1]), x.shape[-1])


def clip(grads: Weights, clip_norm: float) -> Weights:
    """``grads`` scaled to global norm ``clip_norm`` if larger (0: unchanged)."""
    if not clip_norm:
        return grads
    norm = np.sqrt(sum((g**2).sum() for g in grads))
    return Weights(*(g * min(1, clip_norm / norm) for g in grads)) if norm > clip_norm else grads


class NumpyRNNRBM(RNNRBM):
    """RNN-RBM trained by CD-k and hand-written BPTT in plain NumPy (float32 or float64)."""

    name = "numpy"
    backend = backend
    MODES = (  # buffers first: the faster (1.3x in a quiet ablation, README), with the same parameters
        Mode("buffers", "the same operations into arrays allocated once (every shape), no product repeated",
             ("cpu",)),
        Mode("plain", "a new array per operation (the specification)", ("cpu",)),
    )  # fmt: skip

    def __init__(self, config: RNNRBMConfig, params: RNNRBMParams, seed: int) -> None:
        super().__init__(config, params, seed)
        if config.device != "cpu":
            raise ValueError(f"numpy runs on the cpu only, not {config.device!r}")
        self.dtype = np.dtype(config.dtype)
        self.weights = Weights(*(np.array(a, dtype=self.dtype) for a in params.arrays()))
        self.rng = np.random.default_rng(seed)
        self.buffer_storage: dict[str, np.ndarray] = {}  # the `buffers` mode's arrays, shared by every update shape
        self.buffer_sets: dict[tuple[int, int], dict] = {}  # their views per update shape

    def reseed(self, seed: int) -> None:
        self.rng = np.random.default_rng(seed)

    def _noise(self, batch: int, n_frames: int, k: int | None = None) -> RNNRBMNoise:
        return RNNRBMNoise.draw(self.rng, self.config, batch, n_frames, k)

    def train_chunks(
        self, chunks: np.ndarray, noise: list[RNNRBMNoise] | None = None, learning_rate: float | None = None
    ) -> np.ndarray:
        costs = []
        for index, v in enumerate(self.updates(chunks, noise)):
            draws = self._noise(*v.shape[:2]) if noise is None else noise[index]
            costs.append(self.cd_update(v, draws, learning_rate))
        return np.array(costs)

    def cd_update(self, v: np.ndarray, noise: RNNRBMNoise, learning_rate: float | None = None) -> float:
        v = self.sequences(v).astype(self.dtype)
        noise = RNNRBMNoise(*(np.asarray(u, self.dtype) for u in self.checked_noise(noise, *v.shape[:2])))
        if self.mode == "buffers":
            shape = v.shape[:2]
            if shape not in self.buffer_sets:
                self.buffer_sets[shape] = buffers(self.weights, *shape, self.buffer_storage)
            cost, grads = gradients_into(self.weights, v, noise, self.buffer_sets[shape])
        else:
            cost, grads = gradients(self.weights, v, noise)
        rate = self.dtype.type(self.rate(learning_rate))
        for parameter, gradient in zip(self.weights, clip(grads, self.config.clip_norm)):
            parameter -= rate * gradient  # plain SGD, in place
        return cost

    def conditional_biases(self, v: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        v = self.sequences(v).astype(self.dtype)
        return biases(self.weights, recurrence(self.weights, v)[0])

    def frame_free_energies(self, v: np.ndarray) -> np.ndarray:
        v = self.sequences(v).astype(self.dtype)
        return free_energy(self.weights, v, *biases(self.weights, recurrence(self.weights, v)[0]))

    def generate(
        self,
        n_pieces: int,
        n_frames: int,
        k: int | None = None,
        noise: RNNRBMNoise | None = None,
        start: np.ndarray | None = None,
    ) -> np.ndarray:
        w, dt = self.weights, self.dtype
        if noise is not None:
            u_h, u_v = (np.asarray(u, dt) for u in self.checked_noise(noise, n_pieces, n_frames))
        start = self.generation_start(n_pieces, n_frames, start).astype(dt)
        frames = np.empty((n_pieces, n_frames, self.config.n_visible), dt)
        u = np.broadcast_to(w.u0, (n_pieces, len(w.u0)))  # u(0)
        for t in range(n_frames):
            if noise is None:  # the model's own draws, one frame at a time (never the whole piece's at once)
                u_h, u_v = self._noise(n_pieces, 1, k)
            s = 0 if noise is None else t
            b_v, b_h = biases(w, u)
            frames[:, t] = v = gibbs(w, start[:, t], b_v, b_h, u_h[:, :, s], u_v[:, :, s])
            u = np.tanh(v @ w.W_vu + w.b_u + u @ w.W_uu)  # the RNN is fed the sampled frame
        return frames.astype(np.uint8)

    def draw_ms(self, batch: int, n_frames: int, repeats: int = 20) -> float:
        rng = np.random.default_rng(0)
        return self.best_ms(lambda: RNNRBMNoise.draw(rng, self.config, batch, n_frames), repeats)

    def params(self) -> RNNRBMParams:
        return RNNRBMParams(*self.weights).astype(np.float64)


def pretrained(
    params: RNNRBMParams, frames: np.ndarray, epochs: int, seed: int | np.random.SeedSequence, learning_rate: float
) -> RNNRBMParams:
    """The paper's initialisation (sec. 3): ``W``, ``b_v``, ``b_h`` from an RBM trained on the frames alone.

    The NumPy reference RBM in float64, CD-1 with probability statistics and momentum 0.9, batches of 100 frames
    in a seeded order, the rate decaying linearly over ``epochs``; the RNN's parameters are kept as drawn.
    """
    from impls.rbm.interface import RBMConfig, RBMParams
    from impls.rbm.numpy import NumpyRBM

    n_visible, n_hidden = params.W.shape
    config = RBMConfig(n_visible=n_visible, n_hidden=n_hidden, learning_rate=learning_rate, batch_size=100,
                       momentum=0.9, statistics="probabilities", precision="float64")  # fmt: skip
    order_seed, model_seed = np.random.SeedSequence(seed).spawn(2) if isinstance(seed, int) else seed.spawn(2)
    specification = NumpyRBM.in_mode("plain")  # the published pretrainings' arithmetic, bit for bit
    rbm = specification(config, RBMParams(params.W, params.b_v, params.b_h), int(model_seed.generate_state(1)[0]))
    rbm.set_data(np.asarray(frames, np.uint8))
    rng, usable = np.random.default_rng(order_seed), len(frames) // 100 * 100
    for epoch in range(epochs):
        rbm.train_epoch(
            list(rng.permutation(len(frames))[:usable].reshape(-1, 100)), learning_rate * (1 - epoch / epochs)
        )
    trained = rbm.params()
    return RNNRBMParams(trained.W, trained.b_v, trained.b_h, *params.arrays()[3:])


def pretrained_rnn(
    params: RNNRBMParams,
    chunks: list[np.ndarray],
    epochs: int,
    seed: int | np.random.SeedSequence,
    learning_rate: float,
) -> RNNRBMParams:
    """The paper's RNN initialisation (sec. 3; the tutorial's notes): ``W_uv, W_uu, W_vu, b_u, u0`` trained as an RNN
    that predicts each frame from the ones before it (`prediction_gradients`), by plain SGD on one chunk at a time in
    a seeded order, float64, the rate decaying linearly over ``epochs`` (the paper prefers Hessian-free optimisation:
    not here). The prediction's own bias is dropped afterwards; the RBM's weights are kept as given.
    """
    w = Weights(*(np.array(a, np.float64) for a in params.arrays()))
    c = np.zeros(len(w.b_v))
    rng = np.random.default_rng(seed)
    for epoch in range(epochs):
        rate = learning_rate * (1 - epoch / epochs)
        for index in rng.permutation(len(chunks)):
            _, grads, d_c = prediction_gradients(w, np.asarray(chunks[index], np.float64)[None], c)
            for parameter, gradient in zip(w, grads):
                parameter -= rate * gradient
            c -= rate * d_c
    return RNNRBMParams(*w)
