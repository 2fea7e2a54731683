"""Per-frame likelihood of a sequence of RBMs (the RNN-RBM): exact, AIS, RAISE and their bracket.

In the RNN-RBM (Boulanger-Lewandowski, Bengio & Vincent, ICML 2012) frame t is a binary RBM with shared
weights ``W`` and its own biases ``b_v[t]``, ``b_h[t]`` from an RNN over the past frames, so
``log p(v_t | past) = -F_t(v_t) - log Z_t`` with ``F_t(v) = -v.b_v[t] - sum_j softplus(b_h[t] + v W)_j``
and a partition function per frame. Everything is batched over frames, in float64, in chunks of frames
(memory well under a gigabyte). Shared parameters: ``W`` (V, H), ``b_v`` (N, V), ``b_h`` (N, H), frames
``v`` (N, V) of 0/1 in any numeric dtype, ``betas`` rising from 0 to 1 (`schedule`), ``runs`` chains per
frame, ``rng`` a ``np.random.Generator``; mismatched shapes raise a one-line ValueError.

Both estimators anneal the interaction from the frame's factorial model
``p_0(v, h) ∝ exp(v.b_v + h.b_h)`` (exact ``log Z_0 = sum softplus(b_v) + sum softplus(b_h)``)
to its RBM, ``p_β ∝ exp(v.b_v + h.b_h + β vWh)``, with ``h`` summed out of the weights,
``log f_β(v) = v.b_v + sum_j softplus(b_h + β vW)_j``, and one block-Gibbs step ``v -> h -> v`` per ``β``:

* **AIS** (Salakhutdinov & Murray, 2008): chains from ``p_0``; ``log Z_t`` low on average, NLL optimistic.
* **RAISE** (Burda, Grosse & Salakhutdinov, AISTATS 2015): chains from the data frame down to ``p_0``;
  a stochastic lower bound on ``log p(v_t)``, so the NLL is pessimistic.

Each step's log-weight ``sum_j [softplus(x_j + δ A_j) - softplus(x_j)]`` (``A = vW``) is the log of a
product of ratios ``(1 + e^y) / (1 + e^x)`` the Gibbs step needs anyway: one logarithm per group of hidden
units, not two per unit; groups are sized from ``|A_j| <= sum_i |W_ij|`` so no product can overflow.
"""

from __future__ import annotations

import time
from dataclasses import dataclass

import numpy as np
from scipy.special import entr, expit, logsumexp

from eval.scoring.ais import schedule as schedule  # re-exported: the betas these functions take
from eval.scoring.likelihood import EXACT_HIDDEN, softplus

Array = np.ndarray

CHUNK_ROWS = 8192  # chains (frames x runs) per block: ~10 arrays of 8192 x H float64, a few tens of MB
_SAFE_LOG = 600.0  # a product of ratios whose log stays within ±600 neither overflows nor underflows


def _check(W: np.ndarray, b_v: np.ndarray, b_h: np.ndarray, v: np.ndarray | None = None) -> tuple[np.ndarray, ...]:
    """The inputs as float64 arrays, or a one-line ValueError naming the mismatch."""
    W, b_v, b_h = (np.asarray(a, np.float64) for a in (W, b_v, b_h))
    if W.ndim != 2 or b_v.ndim != 2 or b_h.ndim != 2:
        raise ValueError(f"want W (V, H), b_v (N, V), b_h (N, H); got {W.shape}, {b_v.shape}, {b_h.shape}")
    if b_v.shape[1] != W.shape[0] or b_h.shape[1] != W.shape[1] or len(b_v) != len(b_h):
        raise ValueError(f"shapes disagree: W {W.shape}, b_v {b_v.shape}, b_h {b_h.shape}")
    if v is None:
        return W, b_v, b_h
    v = np.asarray(v, np.float64)
    if v.shape != b_v.shape:
        raise ValueError(f"v has shape {v.shape}; want {b_v.shape}, one frame per row of b_v")
    return W, b_v, b_h, v


def _check_betas(betas: np.ndarray, runs: int) -> np.ndarray:
    betas = np.asarray(betas, np.float64)
    if betas.ndim != 1 or len(betas) < 2 or betas[0] != 0 or betas[-1] != 1 or np.any(np.diff(betas) < 0) or runs < 1:
        raise ValueError(f"want betas rising from 0 to 1 (as schedule(n) returns) and runs >= 1, got {runs} runs")
    return betas


def frame_free_energy(W: Array, b_v: Array, b_h: Array, v: Array) -> Array:
    """Free energy of each frame under its own RBM, the exact part of ``-log p(v_t)``.

    Returns
    -------
    np.ndarray
        ``F_t(v_t) = -v_t.b_v[t] - sum_j softplus(b_h[t] + v_t W)_j``, shape ``(N,)``, float64.
    """
    W, b_v, b_h, v = _check(W, b_v, b_h, v)  # (N, H) float64 is 48 MB at 40,000 frames: no chunks needed
    return -np.einsum("nv,nv->n", v, b_v) - softplus(v @ W + b_h).sum(axis=1)


def exact_frame_log_partition(W: Array, b_v: Array, b_h: Array, chunk: int = 1 << 22, over: str = "smaller") -> Array:
    """Exact ``log Z_t`` per frame by enumerating one layer's 2^k states: the oracle AIS is tested against.

    With one layer fixed the other sums out in closed form, ``log Z_t = logsumexp_a [a.c_t + sum_i
    softplus(d_t + a C)_i]``. The cost is ``N 2^k (V + H)``: keep ``N`` modest for ``k`` near 20.

    Parameters
    ----------
    chunk
        Most (frames x states x other units) cells in one block, 8 bytes each.
    over
        The layer to enumerate: ``"hidden"``, ``"visible"`` or the ``"smaller"``; at most `EXACT_HIDDEN` units.

    Returns
    -------
    np.ndarray
        ``log Z_t``, shape ``(N,)``; ValueError when the layer is too large.
    """
    W, b_v, b_h = _check(W, b_v, b_h)
    if over == "smaller":
        over = "hidden" if W.shape[1] <= W.shape[0] else "visible"
    if over not in ("hidden", "visible"):
        raise ValueError(f"over must be 'smaller', 'hidden' or 'visible', got {over!r}")
    coupling, own, other = (W.T, b_h, b_v) if over == "hidden" else (W, b_v, b_h)
    k, m = coupling.shape
    if k > EXACT_HIDDEN:
        raise ValueError(f"exact log Z enumerates 2^{k} {over} states; use AIS above {EXACT_HIDDEN} units")
    states = min(1 << k, max(1, chunk // max(m, 1)))
    frames = max(1, chunk // (states * max(m, 1)))
    out = np.full(len(own), -np.inf)
    for first in range(0, 1 << k, states):
        codes = np.arange(first, min(first + states, 1 << k))
        a = ((codes[:, None] >> np.arange(k)) & 1).astype(np.float64)  # (S, k)
        coupled = a @ coupling  # (S, m)
        for start in range(0, len(own), frames):
            s = slice(start, start + frames)
            terms = own[s] @ a.T + softplus(coupled[None] + other[s, None, :]).sum(axis=2)  # (n, S)
            out[s] = np.logaddexp(out[s], logsumexp(terms, axis=1))
    return out


BASES = ("meanfield", "meanfield-joint", "model")  # the annealing paths' starting points; see `_base`


def mean_field(W: Array, b_v: Array, b_h: Array, iterations: int = 50, tol: float = 1e-7) -> tuple[Array, Array, Array]:
    """The factorial mean-field fixed point ``q(v) q(h)`` of every frame's RBM and its lower bound on ``log Z_t``.

    Alternating block updates ``μ = σ(b_v + W ν)``, ``ν = σ(b_h + Wᵀ μ)``, vectorised over frames: units of one
    layer do not interact, so each block update is an exact coordinate ascent of the bound (monotone, no damping
    needed); stops after `iterations` or once no mean moves by more than `tol`.

    Returns
    -------
    tuple[Array, Array, Array]
        ``μ`` (N, V), ``ν`` (N, H) and the bound ``g_t = b_v.μ + b_h.ν + μᵀWν + H(μ) + H(ν) <= log Z_t`` (N,).
    """
    W, b_v, b_h = _check(W, b_v, b_h)
    mu = expit(b_v)
    nu = expit(b_h + mu @ W)
    for _ in range(iterations):
        new_mu = expit(b_v + nu @ W.T)
        new_nu = expit(b_h + new_mu @ W)
        moved = max(np.abs(new_mu - mu).max(initial=0.0), np.abs(new_nu - nu).max(initial=0.0))
        mu, nu = new_mu, new_nu
        if moved < tol:
            break
    entropy = (entr(mu) + entr(1 - mu)).sum(axis=1) + (entr(nu) + entr(1 - nu)).sum(axis=1)
    bound = (b_v * mu).sum(axis=1) + (b_h * nu).sum(axis=1) + np.einsum("nv,nv->n", mu @ W, nu) + entropy
    return mu, nu, bound


def _logit(p: Array) -> Array:
    p = np.clip(p, 1e-3, 1 - 1e-3)
    return np.log(p) - np.log1p(-p)


def _base(W: Array, b_v: Array, b_h: Array, base: str) -> tuple[Array, Array, Array | None]:
    """The base's visible and hidden biases ``(b_A, c_A)`` per frame, and the mean-field bound (None for "model").

    The path is ``p_β(v, h) ∝ exp((1-β)(b_A.v + c_A.h) + β(b_v.v + b_h.h + vWh))``, ``log Z_0 = sum softplus(b_A)
    + sum softplus(c_A)``:

    * ``"meanfield"`` (Salakhutdinov & Murray, 2008): ``b_A = logit(clip(μ, 1e-3, 1 - 1e-3))``, ``c_A = 0``;
    * ``"meanfield-joint"``: the factorial ``q(v) q(h)`` itself, ``c_A = logit(clip(ν))`` too;
    * ``"model"``: the frame's own biases, ``b_A = b_v``, ``c_A = b_h``: only ``W`` is annealed, from 0.
    """
    if base == "model":
        return b_v, b_h, None
    if base not in BASES:
        raise ValueError(f"base must be one of {', '.join(BASES)}; got {base!r}")
    mu, nu, bound = mean_field(W, b_v, b_h)
    return _logit(mu), (_logit(nu) if base == "meanfield-joint" else np.zeros_like(b_h)), bound


def _log_z0(base_v: Array, base_h: Array) -> Array:  # the factorial base's exact log Z_0 per frame
    return softplus(base_v).sum(axis=1) + softplus(base_h).sum(axis=1)


class _Chains:
    """Chains for a block of frames, ``runs`` rows per frame, between the base (β=0) and the frame's RBM (β=1).

    With ``h`` summed out, ``log f_β(v) = v.(b_A + β(b_v - b_A)) + sum_j softplus(c_A + β s)_j``, where
    ``s = b_h - c_A + vW`` is the hidden units' slope along the path (``vW`` alone on the "model" path).
    """

    def __init__(
        self, W: Array, b_v: Array, b_h: Array, runs: int, rng: np.random.Generator,
        base_v: Array | None = None, base_h: Array | None = None,
    ) -> None:  # fmt: skip
        base_v = b_v if base_v is None else base_v
        base_h = b_h if base_h is None else base_h
        self.W, self.WT, self.rng = W, np.ascontiguousarray(W.T), rng
        self.b_v, self.b_h = np.repeat(b_v, runs, axis=0), np.repeat(base_h, runs, axis=0)  # b_h: c_A, the offset
        self.base_v = np.repeat(base_v, runs, axis=0)
        lift_v, shift = b_v - base_v, b_h - base_h
        self.lift_v = np.repeat(lift_v, runs, axis=0) if np.any(lift_v) else None  # b_v - b_A
        self.shift = np.repeat(shift, runs, axis=0) if np.any(shift) else None  # b_h - c_A
        self.p_lo, self.p_hi, self.ratio, self.h = (np.empty(self.b_h.shape) for _ in range(4))
        w_abs = np.abs(W).sum(axis=0) + (np.abs(shift).max(axis=0) if len(shift) else 0.0)
        self.w_abs = w_abs.max(initial=0.0)  # |s_j| <= this for binary v
        self.fast = np.abs(base_h).max(initial=0.0) + self.w_abs < 700.0  # every e^x stays finite

    def sample_visible(self, logits: Array) -> Array:
        """Bernoulli(sigmoid(y)) in float64 from bulk uniforms: 1 with probability ``1 - 1/(1 + e^y)``."""
        with np.errstate(over="ignore"):  # e^y = inf still samples 1
            np.exp(logits, out=logits)
        logits += 1.0
        logits *= self.rng.random(logits.shape)
        return np.greater(logits, 1.0, out=logits, casting="unsafe")

    def slope(self, v: Array) -> Array:
        A = v @ self.W
        if self.shift is not None:
            A += self.shift
        return A

    def increment(self, v: Array, lo: float, hi: float) -> Array:
        """``log f_hi(v) - log f_lo(v)`` per row; leaves ``1 + e^x`` at lo and hi as `step` does."""
        out = self.step(self.slope(v), lo, hi)
        if self.lift_v is not None:
            out += (hi - lo) * np.einsum("nv,nv->n", v, self.lift_v)
        return out

    def step(self, A: Array, lo: float, hi: float) -> Array:
        """``sum_j softplus(c + hi A)_j - softplus(c + lo A)_j`` per row (``c`` = `b_h`, the hidden offset c_A);
        leaves ``1 + e^x`` at lo and hi.

        ``softplus(y) - softplus(x) = log((1 + e^y) / (1 + e^x))``, and with ``y - x = δA`` each ratio
        lies within ``exp(±δ |A_j|)``, so products over groups of ``G`` units with ``G δ max|A_j| <= 600``
        stay finite: one logarithm per group instead of one per unit.
        """
        with np.errstate(over="ignore"):  # only where not self.fast, which then uses softplus itself
            for beta, out in ((lo, self.p_lo), (hi, self.p_hi)):
                np.multiply(A, beta, out=out)
                out += self.b_h
                np.exp(out, out=out)
                out += 1.0
        if not self.fast:
            return (softplus(self.b_h + hi * A) - softplus(self.b_h + lo * A)).sum(axis=1)
        np.divide(self.p_hi, self.p_lo, out=self.ratio)
        width, slope = A.shape[1], (hi - lo) * self.w_abs
        if slope * width <= _SAFE_LOG:
            return np.log(self.ratio.prod(axis=1))
        starts = np.arange(0, width, max(1, int(_SAFE_LOG / slope)))
        return np.log(np.multiply.reduceat(self.ratio, starts, axis=1)).sum(axis=1)

    def transition(self, one_plus_exp: Array, beta: float) -> Array:
        """``h ~ p_β(h | v)`` from ``1 + e^x`` at ``beta`` (h = 1 where u (1 + e^x) > 1), then ``v ~ p_β(v | h)``."""
        self.rng.random(out=self.h)
        self.h *= one_plus_exp
        np.greater(self.h, 1.0, out=self.h, casting="unsafe")
        logits = self.h @ (beta * self.WT)
        if self.lift_v is None:
            logits += self.b_v
        else:
            logits += self.base_v
            logits += beta * self.lift_v
        return self.sample_visible(logits)

    def forward(self, betas: Array) -> Array:
        """AIS from the base: ``log w - log Z_0`` per row, ``sum_k log f_k(v_k) - log f_{k-1}(v_k)``."""
        v = self.sample_visible(self.base_v.copy())
        log_w = np.zeros(len(v))
        for k in range(1, len(betas)):
            log_w += self.increment(v, betas[k - 1], betas[k])
            if k < len(betas) - 1:
                v = self.transition(self.p_hi, betas[k])
        return log_w

    def backward(self, v: Array, betas: Array) -> Array:
        """RAISE from data rows ``v``: ``S = sum_k log f_k(v_{k-1}) - log f_{k-1}(v_{k-1})`` down the reverse chain.

        The visible terms of ``log [p_0(v_0) prod_k f_k(v_k) / f_k(v_{k-1})]`` telescope: it is ``-F(v) - log Z_0 - S``.
        """
        self.step(self.slope(v), betas[-2], betas[-1])  # 1 + e^x at β = 1 for the first transition
        p_next = self.p_hi.copy()
        total = np.zeros(len(v))
        for k in range(len(betas) - 1, 0, -1):
            v = self.transition(p_next, betas[k])
            total += self.increment(v, betas[k - 1], betas[k])
            p_next[...] = self.p_lo
        return total


def _blocks(n: int, runs: int):
    per = max(1, CHUNK_ROWS // runs)
    return (slice(start, min(start + per, n)) for start in range(0, n, per))


def _log_mean(log_w: Array) -> tuple[Array, Array, Array]:
    """Per frame (rows of ``log_w``): log of the mean weight, its delta-method stderr, the effective runs."""
    log_mean = logsumexp(log_w, axis=1) - np.log(log_w.shape[1])
    ratio = np.exp(log_w - log_mean[:, None])  # weights relative to their mean
    stderr = ratio.std(axis=1) / np.sqrt(log_w.shape[1])
    return log_mean, stderr, ratio.sum(axis=1) ** 2 / (ratio**2).sum(axis=1)


@dataclass(frozen=True)
class FrameAIS:
    """AIS per frame: ``log Z_t`` (N,), its delta-method stderr (N,), the ESS of the weights (N,), seconds,
    and the mean-field lower bound on ``log Z_t`` (N,) when the base is a mean-field one (else None)."""

    log_z: Array
    stderr: Array
    effective_runs: Array
    seconds: float
    mean_field_bound: Array | None = None


def _ais(W, b_v, b_h, base_v, base_h, betas, runs, rng) -> tuple[Array, Array, Array]:
    log_w = np.empty((len(b_v), runs))
    for s in _blocks(len(b_v), runs):
        chains = _Chains(W, b_v[s], b_h[s], runs, rng, base_v[s], base_h[s])
        log_w[s] = chains.forward(betas).reshape(-1, runs)
    log_mean, stderr, effective = _log_mean(log_w)
    return _log_z0(base_v, base_h) + log_mean, stderr, effective


def _raise(W, b_v, b_h, v, base_v, base_h, betas, runs, rng) -> tuple[Array, Array]:
    log_w = np.empty((len(v), runs))
    for s in _blocks(len(v), runs):
        chains = _Chains(W, b_v[s], b_h[s], runs, rng, base_v[s], base_h[s])
        log_w[s] = -chains.backward(np.repeat(v[s], runs, axis=0), betas).reshape(-1, runs)
    log_mean, stderr, _ = _log_mean(log_w)
    return log_mean - frame_free_energy(W, b_v, b_h, v) - _log_z0(base_v, base_h), stderr


def frame_ais(
    W: Array, b_v: Array, b_h: Array, betas: Array, runs: int, rng: np.random.Generator, base: str = "meanfield"
) -> FrameAIS:
    """AIS estimate of every frame's ``log Z_t``, all frames' chains batched as one matrix per block.

    Each β costs two matrix products over (frames x runs) rows. ``Z_t`` is unbiased, so ``log Z_t``
    is low on average (Jensen) — by a lot when the effective runs are near 1. `base` picks the path's start
    (`_base`): the mean-field one by default, close to a trained model's peaked conditionals.

    Returns
    -------
    FrameAIS
        ``log_z``, delta-method ``stderr`` and ``effective_runs`` per frame, the seconds taken (the mean-field
        fixed point included) and the mean-field bound.
    """
    started = time.perf_counter()
    W, b_v, b_h = _check(W, b_v, b_h)
    betas = _check_betas(betas, runs)
    base_v, base_h, bound = _base(W, b_v, b_h, base)
    log_z, stderr, effective = _ais(W, b_v, b_h, base_v, base_h, betas, runs, rng)
    return FrameAIS(log_z, stderr, effective, time.perf_counter() - started, bound)


def frame_raise(
    W: Array, b_v: Array, b_h: Array, v: Array, betas: Array, runs: int, rng: np.random.Generator,
    base: str = "meanfield",
) -> tuple[Array, Array, float]:  # fmt: skip
    """RAISE: a stochastic lower bound on each frame's ``log p(v_t)``, the pessimistic end of the bracket.

    ``runs`` reverse chains per frame start at the data frame and step down β = 1 -> 0 with the forward
    transitions (each reversible) along `base`'s path, ending in the base's exact log-probability.

    Returns
    -------
    tuple[Array, Array, float]
        The log of the mean weight over the runs per frame (N,) (a tighter bound than the mean of the logs
        `raise_log_likelihood` reports), its delta-method stderr (N,), and the seconds taken.
    """
    started = time.perf_counter()
    W, b_v, b_h, v = _check(W, b_v, b_h, v)
    betas = _check_betas(betas, runs)
    base_v, base_h, _ = _base(W, b_v, b_h, base)
    log_p, stderr = _raise(W, b_v, b_h, v, base_v, base_h, betas, runs, rng)
    return log_p, stderr, time.perf_counter() - started


@dataclass(frozen=True)
class FrameBracket:
    """Mean NLL per frame between AIS (optimistic, low) and RAISE (pessimistic, high), nats."""

    ais_nll_per_frame: float  # mean over all frames of F_t(v_t) + log Z_t(AIS) (control variate off the AIS frames)
    raise_nll_per_frame: float | None  # AIS mean + the subset's mean RAISE - AIS gap; None without RAISE
    width_per_frame: float | None  # raise - ais
    ais_stderr: float  # of the mean: per-frame delta-method stderrs combined (+ the AIS frames' sampling)
    raise_stderr: float | None  # of the mean: the gap's sampling over the subset and RAISE's runs (+ AIS sampling)
    effective_runs: float  # median over the AIS frames of the AIS effective runs
    min_effective_runs: float  # the worst frame
    frames: int
    raise_frames: int
    ais_seconds: float  # the mean-field fixed point over every frame included
    raise_seconds: float | None
    exact_nll_per_frame: float | None  # the oracle, when one layer has at most EXACT_HIDDEN units
    ais_frames: int = 0  # frames AIS ran on (= frames unless a subset was asked for)
    mean_field_gap: float | None = None  # mean over the AIS frames of log Z_AIS - mean-field bound; None: "model"


@dataclass(frozen=True)
class _Frames:
    """The checked inputs of `frame_likelihood_bracket` and what every estimate shares: the exact energies, the base."""

    W: Array
    b_v: Array
    b_h: Array
    v: Array
    energy: Array  # F_t(v_t) per frame, exact
    base_v: Array
    base_h: Array
    bound: Array | None  # the mean-field lower bound on log Z_t per frame; None on the "model" path


@dataclass(frozen=True)
class _AISPart:
    """The AIS end of the bracket: what the RAISE end builds on, and the fields of `FrameBracket` it fills."""

    frames: Array  # indices of the frames AIS ran on, sorted
    nll: Array  # F_t(v_t) + log Z_t(AIS) per AIS frame
    mean: float  # mean NLL per frame over every frame (the control variate when AIS ran on a subset)
    run_var: float  # AIS's run noise in that mean
    sampling_var: float  # the subset's sampling noise in that mean (0 on every frame)
    effective: Array  # effective runs per AIS frame
    mean_field_gap: float | None
    seconds: float


def _ais_on_frames(
    frames: _Frames, betas: Array, runs: int, ais_frames: int, rng: np.random.Generator, started: float
) -> _AISPart:
    """AIS on every frame or on a random subset carried to all by the mean-field bound: the bracket's low end."""
    n = len(frames.v)
    every = ais_frames == 0 or ais_frames >= n
    if not every and frames.bound is None:
        raise ValueError("ais_frames < frames needs a mean-field base (the control variate); got base='model'")
    ais_set = np.arange(n) if every else np.sort(rng.choice(n, ais_frames, False))
    m = len(ais_set)
    log_z, log_z_err, effective = _ais(
        frames.W, frames.b_v[ais_set], frames.b_h[ais_set], frames.base_v[ais_set], frames.base_h[ais_set],
        betas, runs, rng,
    )  # fmt: skip
    seconds = time.perf_counter() - started
    nll = frames.energy[ais_set] + log_z  # per AIS frame
    run_var = (log_z_err**2).sum() / m**2
    gap_mf = None
    if frames.bound is not None:
        diff = log_z - frames.bound[ais_set]
        gap_mf = float(diff.mean())
    if every:
        mean, sampling_var = float(nll.mean()), 0.0
    else:
        mean = float((frames.energy + frames.bound).mean()) + gap_mf
        sampling_var = diff.var(ddof=1) / m * (1 - m / n) if m > 1 else 0.0
    return _AISPart(ais_set, nll, mean, run_var, sampling_var, effective, gap_mf, seconds)


_NO_RAISE = (None, None, None, None, 0)  # `_raise_on_frames`'s answer when RAISE is skipped


def _raise_on_frames(
    frames: _Frames, ais: _AISPart, betas: Array, runs: int, raise_frames: int, rng: np.random.Generator
) -> tuple[float, float, float, float, int]:
    """RAISE on all or a random subset of the AIS frames, entering through its mean gap to AIS: the high end.

    Returns the mean NLL per frame, the width, the stderr, the seconds and how many frames RAISE ran on.
    """
    started = time.perf_counter()
    m, n = len(ais.frames), len(frames.v)
    within = np.arange(m) if raise_frames == 0 or raise_frames >= m else np.sort(rng.choice(m, raise_frames, False))
    subset, chosen = ais.frames[within], len(within)
    log_p, stderr = _raise(
        frames.W, frames.b_v[subset], frames.b_h[subset], frames.v[subset], frames.base_v[subset],
        frames.base_h[subset], _check_betas(betas, runs), runs, rng,
    )  # fmt: skip
    seconds = time.perf_counter() - started
    gap = -log_p - ais.nll[within]
    raise_mean = ais.mean + float(gap.mean())
    width = raise_mean - ais.mean
    sampling = gap.var(ddof=1) / chosen * (1 - chosen / n) if chosen > 1 else 0.0
    raise_stderr = float(np.sqrt(sampling + (stderr**2).sum() / chosen**2 + ais.sampling_var))
    return raise_mean, width, raise_stderr, seconds, chosen


def _exact_nll_per_frame(frames: _Frames) -> float | None:
    """The oracle's mean NLL per frame when one layer is small enough to enumerate, else None."""
    if min(frames.W.shape) > EXACT_HIDDEN:
        return None
    return float((frames.energy + exact_frame_log_partition(frames.W, frames.b_v, frames.b_h)).mean())


def _frame_bracket(
    frames: _Frames, ais: _AISPart, raised: tuple[float, float, float, float, int], exact: float | None
) -> FrameBracket:
    """The AIS part, `_raise_on_frames`'s answer and the oracle as one `FrameBracket`."""
    raise_mean, width, raise_stderr, raise_seconds, chosen = raised
    return FrameBracket(
        ais_nll_per_frame=ais.mean,
        raise_nll_per_frame=raise_mean,
        width_per_frame=width,
        ais_stderr=float(np.sqrt(ais.run_var + ais.sampling_var)),
        raise_stderr=raise_stderr,
        effective_runs=float(np.median(ais.effective)),
        min_effective_runs=float(ais.effective.min()),
        frames=len(frames.v),
        raise_frames=chosen,
        ais_seconds=ais.seconds,
        raise_seconds=raise_seconds,
        exact_nll_per_frame=exact,
        ais_frames=len(ais.frames),
        mean_field_gap=ais.mean_field_gap,
    )


def frame_likelihood_bracket(
    W: Array,
    b_v: Array,
    b_h: Array,
    v: Array,
    forward_betas: Array,
    runs: int,
    backward_betas: Array | None,
    raise_frames: int,
    rng: np.random.Generator,
    *,
    ais_frames: int = 0,
    base: str = "meanfield",
) -> FrameBracket:
    """Mean NLL per frame bracketed by AIS on all or some frames and RAISE on some of those.

    ``F_t(v_t)`` is exact, so only ``log Z_t`` needs estimating. With ``ais_frames`` < N, AIS runs on a random
    subset S and the mean-field bound ``g_t`` (every frame, closed form) carries it to all frames:
    ``mean_t log Z_t ≈ mean_all(g) + mean_S(log Z_AIS - g)`` (a control variate; needs a mean-field base), its
    stderr the spread of ``log Z_AIS - g`` over S with the finite-population correction, and AIS's run noise.
    RAISE enters only through the per-frame gap ``RAISE NLL_t - AIS NLL_t`` on a random subset of S, whose mean
    estimates its mean over all frames; its spread over that subset, with the finite-population correction
    (0 for every frame), joins RAISE's run noise (and the AIS subset's sampling, when S is not every frame).

    Parameters
    ----------
    forward_betas, runs
        AIS's schedule and chains per frame (RAISE uses as many).
    backward_betas
        RAISE's schedule; None skips RAISE.
    raise_frames
        0: RAISE on every AIS frame; else on that many of them drawn without replacement.
    ais_frames
        0 (or >= N): AIS on every frame; else on that many drawn without replacement.
    base
        The annealing path's start, see `_base`: "meanfield" (default), "meanfield-joint" or "model".

    Returns
    -------
    FrameBracket
        With the exact mean NLL too when H or V <= `EXACT_HIDDEN`.
    """
    W, b_v, b_h, v = _check(W, b_v, b_h, v)
    if ais_frames < 0 or raise_frames < 0:
        raise ValueError(
            f"ais_frames and raise_frames must be 0 (every frame) or positive, got {ais_frames}, {raise_frames}"
        )
    started = time.perf_counter()
    forward_betas = _check_betas(forward_betas, runs)
    energy = frame_free_energy(W, b_v, b_h, v)
    frames = _Frames(W, b_v, b_h, v, energy, *_base(W, b_v, b_h, base))
    ais = _ais_on_frames(frames, forward_betas, runs, ais_frames, rng, started)
    raised = _NO_RAISE
    if backward_betas is not None:
        raised = _raise_on_frames(frames, ais, backward_betas, runs, raise_frames, rng)
    return _frame_bracket(frames, ais, raised, _exact_nll_per_frame(frames))
