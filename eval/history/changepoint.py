"""The statistics of the trend gate (`eval.history.trend`, whose docstring gives the method and its figures).

Each function takes many histories at once (rows: commit means of one series, oldest first) and returns one value
per row: the rank scan for changes that build up, the persistence test for the newest commits, where a change
began, and its size.
"""

from __future__ import annotations

from functools import lru_cache

import numpy as np
from scipy import interpolate, special, stats

CAP = 5.0  # successive differences count up to this many times their median in the noise's scale
TAILS = 3  # degrees of freedom of the Student t noise the persistence test is calibrated for
DRAWS = 20_000  # simulated change-free histories per shape (the scan)
REFERENCE = 4_000  # simulated sets of commits before, per number of them (the persistence test)
GRID = np.geomspace(0.05, 1e4, 34)  # distances at which the persistence test's p-value is computed
RESOLVED = 100  # simulated sets a p-value of the persistence test must rest on, effectively
SEED = 20_260_801


def _tiny(values: np.ndarray) -> np.ndarray:
    """Differences below this are rounding, not change (identical commits: zero spread)."""
    return np.abs(values).max(axis=1, keepdims=True) * 1e-12


def rank_scan(values: np.ndarray, splits: np.ndarray) -> np.ndarray:
    """Standardised Wilcoxon rank sums of the commits ``>= k`` against those before, each row × each ``k``."""
    n = values.shape[1]
    ranks = stats.rankdata(values, axis=1)  # midranks: tied commits share theirs
    after = np.cumsum(ranks[:, ::-1], axis=1)[:, ::-1][:, splits]
    n_after = (n - splits).astype(float)
    spread = np.sqrt(n_after * (n - n_after) * (n + 1) / 12)  # without ties: ties only make the sum less spread
    return (after - n_after * (n + 1) / 2) / spread


@lru_cache(maxsize=64)
def _scan_null(n: int, first: int, last: int) -> np.ndarray:
    """Sorted ``max |Z_k|`` of `DRAWS` histories of ``n`` exchangeable commits (any continuous noise)."""
    draws = np.random.default_rng(SEED).random((DRAWS, n))
    return np.sort(np.abs(rank_scan(draws, np.arange(first, last + 1))).max(axis=1))


def scan_p(statistic: np.ndarray, n: int, first: int, last: int) -> np.ndarray:
    """Share of simulated change-free histories whose scan is at least ``statistic`` (with one added, as usual)."""
    null = _scan_null(n, first, last)
    return (len(null) - np.searchsorted(null, statistic, side="left") + 1) / (len(null) + 1)


def _median(rows: np.ndarray) -> np.ndarray:
    """The median of each row (a sort: cheaper than `numpy.median` for the short rows here)."""
    ordered, m = np.sort(rows, axis=1), rows.shape[1]
    return (ordered[:, (m - 1) // 2] + ordered[:, m // 2]) / 2


def centre_and_scale(before: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Each row's median and the spread of its successive differences, each difference capped at `CAP` times
    their median: an old step or one outlier among them cannot inflate it, while heavier tails still widen it."""
    steps = np.abs(np.diff(before, axis=1))
    cap = CAP * _median(steps)[:, None]
    steps = np.minimum(steps, np.where(cap > 0, cap, np.inf))  # mostly identical commits: no cap
    return _median(before), np.sqrt(np.mean(steps**2, axis=1) / 2)


def persistence(values: np.ndarray, persist: int) -> np.ndarray:
    """How far the newest ``persist`` commits all lie on one side of the commits before them: the smallest
    distance from their median, in units of their successive-difference scale (0 when they straddle it). Each
    distance counts half the values' resolution (their smallest gap) less: on values that come in steps, as
    rounded scores do, one step out is not yet beyond (a continuity correction; nothing for continuous values)."""
    centre, scale = centre_and_scale(values[:, :-persist])
    tiny = _tiny(values)
    gaps = np.diff(np.sort(values, axis=1), axis=1)
    resolution = np.min(np.where(gaps > tiny, gaps, np.inf), axis=1, keepdims=True)
    distance = values[:, -persist:] - centre[:, None]
    distance = np.sign(distance) * np.maximum(np.abs(distance) - np.where(np.isinf(resolution), 0, resolution) / 2, 0)
    with np.errstate(divide="ignore", invalid="ignore"):
        z = np.where(np.abs(distance) <= tiny, 0.0, distance / np.where(scale[:, None] > tiny, scale[:, None], 0.0))
    return np.maximum(z.min(axis=1), (-z).min(axis=1))


@lru_cache(maxsize=8)
def _tails(n_before: int) -> tuple[np.ndarray, np.ndarray]:
    """For each of `REFERENCE` simulated sets of ``n_before`` commits of t noise, the chance that one more commit
    lies above (below) its median by each distance of `GRID` in units of its scale: exact, grid × draws."""
    centre, scale = centre_and_scale(np.random.default_rng(SEED).standard_t(TAILS, (REFERENCE, n_before)))
    reach = GRID[:, None] * scale
    return special.stdtr(TAILS, -centre - reach), special.stdtr(TAILS, centre - reach)


@lru_cache(maxsize=1024)
def _persistence_curve(n_before: int, persist: int) -> tuple[interpolate.CubicSpline, float]:
    """log p against log distance of `persistence`: the chance that ``persist`` new commits all lie at least that
    far out on one side, averaged over the simulated commits before; and the largest log distance it resolves
    (where the average still rests on at least `RESOLVED` of them, effectively: beyond, rare sets decide it)."""
    up, down = _tails(n_before)
    terms = up**persist + down**persist  # grid × draws
    with np.errstate(invalid="ignore"):
        effective = terms.sum(axis=1) ** 2 / (terms**2).sum(axis=1)  # Kish's effective number of draws
    resolved = max(int(np.cumprod(effective >= RESOLVED).sum()), 2)
    log_grid = np.log(GRID[:resolved])
    return interpolate.CubicSpline(log_grid, np.log(terms[:resolved].mean(axis=1))), float(log_grid[-1])


def persistence_p(distance: np.ndarray, n_before: int, persist: int) -> np.ndarray:
    """The p-value of `persistence` under Student t noise with `TAILS` degrees of freedom; beyond the distance
    the simulation resolves, the p-value there (conservative: few commits before resolve no tiny p-value)."""
    curve, end = _persistence_curve(n_before, persist)
    p = np.exp(curve(np.minimum(np.log(np.clip(distance, GRID[0], None)), end)))
    return np.where(distance <= 0, 1.0, np.where(np.isinf(distance), 0.0, np.minimum(p, 1.0)))


def best_split(values: np.ndarray, splits: np.ndarray) -> np.ndarray:
    """Each row's first commit of a change: the split whose two segments lie closest to their own medians (least
    absolute deviations: the maximum-likelihood changepoint of a shift in Laplace noise, which one outlier cannot
    pull as far as it pulls the means)."""
    before = np.arange(values.shape[1]) < splits[:, None]  # splits × commits
    best = np.empty(len(values), int)
    for rows in np.array_split(np.arange(len(values)), max(1, -(-len(values) // 1000))):  # MBs at a time
        cost = np.zeros((len(rows), len(splits)))
        for part in (before, ~before):
            segment = np.where(part, values[rows, None, :], np.nan)  # rows × splits × commits
            ordered, count, each = np.sort(segment, axis=-1), part.sum(axis=1), np.arange(len(splits))  # NaN last
            median = (ordered[:, each, (count - 1) // 2] + ordered[:, each, count // 2]) / 2
            cost += np.nansum(np.abs(segment - median[..., None]), axis=-1)
        best[rows] = splits[np.argmin(cost, axis=1)]
    return best


def hodges_lehmann(values: np.ndarray, split: np.ndarray, recent: int) -> np.ndarray:
    """The size of each row's change: the median of the differences between each of the newest (up to
    ``recent``) commits from ``split`` on and each commit before it (Hodges-Lehmann, the rank sum's estimate)."""
    shift = np.empty(len(values))
    for k in np.unique(split):
        rows = split == k
        after, before = values[rows, k:][:, -recent:], values[rows, :k]
        shift[rows] = np.median(after[:, :, None] - before[:, None, :], axis=(1, 2))
    return shift
