"""Log-likelihood with a bracket: forward AIS (optimistic) and reverse annealing, RAISE (conservative).

Both anneal through the same distributions over the visible units, with the
hidden units summed out,

    f_b(v) = exp((1 - b) a.v + b b_v.v) * prod_j (1 + exp(b (v W + b_h)_j)),

from the base-rate model (``b = 0``: independent units with the training
marginals ``a``) to the RBM (``b = 1``), one block-Gibbs transition per ``b``.

* **AIS** (Salakhutdinov & Murray, 2008) starts chains from the base model and
  estimates ``Z`` without bias, so ``log Z`` is underestimated on average
  (Jensen) and the test log-likelihood ``-F(v) - log Z`` *over*estimated —
  badly when a mode of the model is never reached (effective sample size ~1).
* **RAISE** (Burda, Grosse & Salakhutdinov, AISTATS 2015) runs the same
  transitions backwards from each test window down to the base model; its
  weight is an unbiased estimate of the annealing model's probability of that
  window, so its log is a stochastic *lower* bound in expectation.

Reported together as a bracket ``[RAISE, AIS]`` per model; where the two meet,
the log-likelihood is known to that width. Chains run in float32 (the cost),
weights accumulate in float64.

**Two starts.** A trained RBM can hold most of its mass in a mode far from the
music (CD-1's dense spurious mode). Chains started from the base-rate model
(sparse, like the music) never reach it: log Z comes out hundreds of nats too
low with one run carrying all the weight. Chains started from the uniform
model reach the dense mode but can miss the sparse one. AIS therefore runs
from both, and keeps the larger estimate (each is a stochastic lower bound on
log Z); RAISE then anneals along the kept path. The gap between the two
starts is reported: a large gap is a multimodal model.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from itertools import pairwise

import numpy as np
from scipy.special import logsumexp

from eval.scoring.likelihood import free_energy, softplus
from impls.base import Params


def paper_schedule() -> np.ndarray:
    """Salakhutdinov & Murray's 14,500 inverse temperatures: 500 in [0, .5), 4,000 in [.5, .9), 10,000 in [.9, 1]."""
    return schedule(14_500)


def schedule(n: int) -> np.ndarray:
    """``n`` inverse temperatures with the paper's shape: 1/29 in [0, .5), 8/29 in [.5, .9), 20/29 in [.9, 1]."""
    first, second = n // 29, 8 * n // 29
    return np.concatenate(
        [
            np.linspace(0, 0.5, first, endpoint=False),
            np.linspace(0.5, 0.9, second, endpoint=False),
            np.linspace(0.9, 1.0, n - first - second),
        ]
    )


quick_schedule = schedule  # the name the earlier code used


@dataclass
class AISResult:
    """``log_z`` with its spread: ``log_z_low``/``log_z_high`` are log(Z_hat -/+ 3 std of Z_hat)."""

    log_z: float
    log_z_stderr: float  # delta-method standard error of log Z_hat: std(w / mean w) / sqrt(runs)
    effective_runs: float  # (sum w)^2 / sum w^2: near 1 means one run dominates and log Z is unreliable
    log_z_low: float
    log_z_high: float
    log_weights: np.ndarray


class _Annealer:
    """The intermediate distributions and their Gibbs transitions, shared by AIS and RAISE."""

    def __init__(self, params: Params, base_biases: np.ndarray, rng: np.random.Generator) -> None:
        self.W = params.W.astype(np.float32)
        self.b_v = params.b_v.astype(np.float32)
        self.b_h = params.b_h
        self.a = np.asarray(base_biases, np.float64)
        self.a32 = self.a.astype(np.float32)
        self.shift = (params.b_v - self.a).astype(np.float32)  # b_v - a: the visible term's slope in beta
        self.rng = rng
        # p_0 carries the base model's hidden units too: prod_j (1 + e^0) = 2^n_hidden
        self.log_z_base = float(softplus(self.a).sum() + len(self.b_h) * np.log(2.0))

    def sample(self, logits: np.ndarray) -> np.ndarray:
        """Float32 Bernoulli(sigmoid(logits)): ``u < sigmoid(x)`` is ``2u - 1 < tanh(x / 2)`` (no overflow)."""
        u = self.rng.random(logits.shape, dtype=np.float32)
        return (2 * u - 1 < np.tanh(0.5 * logits)).astype(np.float32)

    def active(self, v: np.ndarray) -> np.ndarray:
        return (v @ self.W).astype(np.float64) + self.b_h

    def log_f(self, beta: float, v: np.ndarray, active: np.ndarray) -> np.ndarray:
        """``log f_beta(v)`` up to the constant ``a.v`` term shared by every beta (it cancels in differences)."""
        return beta * (v @ self.shift) + softplus(beta * active).sum(1)

    def transition(self, beta: float, active: np.ndarray) -> np.ndarray:
        """One block-Gibbs step v -> h -> v' of ``f_beta``, from the hidden pre-activations of v."""
        h = self.sample((beta * active).astype(np.float32))
        logits = h @ (np.float32(beta) * self.W.T)
        logits += np.float32(1 - beta) * self.a32 + np.float32(beta) * self.b_v
        return self.sample(logits)


def ais_log_partition(
    params: Params,
    base_biases: np.ndarray,
    betas: np.ndarray | None = None,
    runs: int = 100,
    seed: int | np.random.SeedSequence = 0,
) -> AISResult:
    """Annealed importance sampling estimate of ``log Z`` with ``runs`` chains in parallel."""
    betas = paper_schedule() if betas is None else np.asarray(betas, np.float64)
    annealer = _Annealer(params, base_biases, np.random.default_rng(seed))
    v = annealer.sample(np.broadcast_to(annealer.a32, (runs, len(annealer.a))))
    log_w = np.zeros(runs)
    for previous, beta in pairwise(betas):
        active = annealer.active(v)
        log_w += annealer.log_f(beta, v, active) - annealer.log_f(previous, v, active)
        v = annealer.transition(beta, active)
    log_mean = float(logsumexp(log_w) - np.log(runs))
    ratio = np.exp(log_w - log_mean)  # weights relative to their mean
    spread = 3 * ratio.std() / np.sqrt(runs)
    log_z = annealer.log_z_base + log_mean
    low = log_z + (np.log(1 - spread) if spread < 1 else -np.inf)
    effective = float(ratio.sum() ** 2 / (ratio**2).sum())
    return AISResult(log_z, float(ratio.std() / np.sqrt(runs)), effective, low, log_z + np.log1p(spread), log_w)


def raise_log_likelihood(
    params: Params,
    windows: np.ndarray,
    base_biases: np.ndarray,
    betas: np.ndarray,
    repeats: int = 2,
    seed: int | np.random.SeedSequence = 0,
) -> np.ndarray:
    """RAISE: ``repeats`` reverse-annealing estimates of ``log p(v)`` per window, shape ``(repeats, n)``.

    From ``v_K = v`` the chain steps down, ``v_{k-1} ~ T_k(. | v_k)`` (block
    Gibbs is reversible, so the reverse kernel is the forward one), and
    ``log w = log p_0(v_0) + sum_k [log f_k(v_k) - log f_k(v_{k-1})]``; each
    ``log w`` is a stochastic lower bound on the annealing model's ``log q(v)``.
    """
    betas = np.asarray(betas, np.float64)
    annealer = _Annealer(params, base_biases, np.random.default_rng(seed))
    n = len(windows)
    v = np.tile(np.asarray(windows, np.float32), (repeats, 1))
    log_w = np.zeros(len(v))
    active = annealer.active(v)
    for beta in betas[:0:-1]:  # b_K = 1 down to b_1
        log_w += annealer.log_f(beta, v, active)
        v = annealer.transition(beta, active)
        active = annealer.active(v)
        log_w -= annealer.log_f(beta, v, active)
    # log_f leaves out a.v; over the chain those terms telescope to a.v_K - a.v_0, and log p_0(v_0) is
    # a.v_0 - sum softplus(a): together a.(the window) minus the base model's normaliser.
    log_w += np.tile(np.asarray(windows, np.float64), (repeats, 1)) @ annealer.a - softplus(annealer.a).sum()
    return log_w.reshape(repeats, n)


@dataclass
class Bracket:
    """Mean test log-likelihood per window between RAISE (low) and AIS (high), with their spreads."""

    ais: float
    ais_stderr: float  # from the spread of log Z over the AIS runs
    raise_: float | None
    raise_stderr: float | None  # from the spread of log w over the repeats of each window
    log_z: float
    log_z_stderr: float
    effective_runs: float
    base: str  # the start whose log Z was kept
    log_z_by_base: dict[str, float]
    ais_seconds: float
    raise_seconds: float

    @property
    def width(self) -> float | None:
        return None if self.raise_ is None else self.ais - self.raise_

    @property
    def base_gap(self) -> float:
        """How much lower the other start's log Z came out (0 with one start): a multimodality alarm."""
        values = list(self.log_z_by_base.values())
        return max(values) - min(values)


def ais_bases(train: np.ndarray) -> dict[str, np.ndarray]:
    """The two starts: the base-rate model of the training windows and the uniform model."""
    from eval.scoring.likelihood import base_rate_biases

    rate = base_rate_biases(train)
    return {"base-rate": rate, "uniform": np.zeros_like(rate)}


def likelihood_bracket(
    params: Params,
    windows: np.ndarray,
    bases: dict[str, np.ndarray] | np.ndarray,
    ais_betas: np.ndarray,
    ais_runs: int,
    raise_betas: np.ndarray | None,
    rng: np.random.Generator,
    raise_repeats: int = 2,
) -> Bracket:
    """AIS from each start (keeping the largest log Z) and RAISE along its path, on the same windows."""
    bases = bases if isinstance(bases, dict) else {"base": np.asarray(bases)}
    started = time.perf_counter()
    results = {
        name: ais_log_partition(params, a, ais_betas, ais_runs, rng.integers(2**63)) for name, a in bases.items()
    }
    base = max(results, key=lambda name: results[name].log_z)
    ais = results[base]
    ais_seconds = time.perf_counter() - started
    unnormalised = -free_energy(params, windows)
    raise_mean = raise_stderr = None
    started = time.perf_counter()
    if raise_betas is not None and len(raise_betas) > 1:
        log_w = raise_log_likelihood(params, windows, bases[base], raise_betas, raise_repeats, rng.integers(2**63))
        raise_mean = float(log_w.mean())
        raise_stderr = float(np.sqrt(log_w.var(axis=0, ddof=1).mean() / log_w.size)) if raise_repeats > 1 else None
    return Bracket(
        ais=float(unnormalised.mean() - ais.log_z),
        ais_stderr=ais.log_z_stderr,
        raise_=raise_mean,
        raise_stderr=raise_stderr,
        log_z=ais.log_z,
        log_z_stderr=ais.log_z_stderr,
        effective_runs=ais.effective_runs,
        base=base,
        log_z_by_base={name: r.log_z for name, r in results.items()},
        ais_seconds=ais_seconds,
        raise_seconds=time.perf_counter() - started,
    )
