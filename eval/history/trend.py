"""The trend gate: has the newest commit moved a score away from its recent history, and since which commit?

The test: a changepoint scan on per-commit means
------------------------------------------------
Each commit contributes one number per series (one metric of one implementation on one machine): the mean of its
per-seed values. For every candidate first commit ``k`` of a change among the newest ``window`` commits (with at
least ``min_before`` commits before it), the commits split into *before* (``< k``) and *after* (``>= k``, always
ending at the newest commit) and get a pooled two-sample t statistic::

    T_k = (mean_after - mean_before) / sqrt(s² (1/n_after + 1/n_before)),   s² pooled over both segments

Two questions share the level ``alpha`` (Bonferroni, ``alpha / 2`` each): does the newest commit alone differ
from all before it (``T`` at ``k`` = the newest; exactly Student t with ``n - 2`` degrees of freedom under the null),
and does any split of the scan (``max_k |T_k|``)? The first is what a CI gate is asked at each commit, and asked
alone it is far more powerful than as one of twenty splits; the second catches changes that build up over several
commits. When either answers, the change starts at the ``k`` with the largest ``|T_k|`` (the maximum-likelihood
changepoint of a mean shift in Gaussian noise, Hawkins 1977; Worsley 1979): for a step, its first commit; for a
slow drift, the commit that best splits it, inside the drift rather than at its start.

Why per-commit means, not per-seed values: reruns of one commit with the same seeds are nearly identical for
deterministic frameworks, while throughputs move together with the machine's load in a run; the scatter of commit
means measures what actually varies between commits, whatever its cause, where a seed-level test would either miss
or over-call it. Seeds still narrow each commit's mean.

The false-alarm rate
--------------------
The newest commit's p-value is Student t's. The scan's comes from the distribution of ``max_k |T_k|``: ``T_k`` is
unchanged by the location and scale of the data, so when commit means are independent and normal with no change,
that distribution depends only on the number of commits and the splits scanned. It is simulated once for each such
shape (20 000 draws of standard normal means, a fixed seed: the same on every machine; p-values resolve to
1/20 001), and the p-value is the share of draws at least as extreme (plus one, over draws plus one). The series'
p-value is twice the smaller of the two; a change is *significant* when it is below ``alpha``: for one series the
chance of an alarm on a history without any change is at most ``alpha`` (default 0.01, one alarm in a hundred gate
runs of that series). `gate` checks many series at once (metrics × implementations × machines) and divides its
``alpha`` (default 0.05) among them (Bonferroni), so its family-wise false-alarm rate is at most 0.05 however many
series it reads. Heavier tails than normal make alarms likelier than stated; the practical floor below keeps them
rare. Measured on 6 000 histories of 50 commits of pure noise (three seeds each) at ``alpha`` = 0.01: 0.9 % alarms
without the floor, 0.45 % with it; ``tests/history/test_history.py`` checks both stay under 1 % plus three binomial
standard errors, and the gate's family-wise rate over ten series under 5 % plus as much.

What is big enough to flag: half the verdict's margin
-----------------------------------------------------
The verdict's margin (`eval.scoring.calibrations.margins`) is the suite's measure of the smallest difference that
matters. A series uses the calibration of its own model and dataset (the history's ``model`` and ``dataset``
columns); a verdict score whose series has none is ``not judged`` (neither failed nor silently passed: the gate
prints it), never judged with another model's margin. A significant change is flagged only when its size — the
mean of the newest (up to ``recent``) commits minus the mean before the change — is at least ``floor × margin``
(``floor`` = 0.5): a change whose estimate is under half the margin is never flagged, however many commits prove
it is real. Half, not the whole margin, because an estimate of a change of exactly the margin falls below the
margin half the time: at half the margin a margin-sized step is flagged, for three seeds per commit and a margin
of 2.8 seed standard deviations (as in ``reports/baselines/margins/rbm-bach.json``), at its very first commit in
about 93 % of histories (the noise of one commit's mean allows no more at this level) and from its second
commit on in over 98 %; the commit named is its first in about 97 % of these (otherwise a neighbour that noise
moved towards the new level). A slow drift that totals the margin over 20 commits is flagged by its end. A
metric outside the verdict has no floor: every statistically significant change counts.

The verdict
-----------
Each score's direction (`eval.scoring.catalogue.describe`) decides what a change is: a move in the bad direction
is a ``regression`` (the gate fails), one in the good direction an ``improvement`` (reported, the gate passes), and
any move of a directionless score (``better == "none"``: a statistic to match, not to push) a ``change`` (the gate
fails, as the quality gate does). Otherwise ``steady``, or ``too short`` with fewer than ``min_before + 1`` commits,
or ``not judged`` (a verdict score without a calibrated margin for the series).
A change older than ``window`` commits is history, not news: the gate judged it when it came.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from functools import lru_cache

import numpy as np
import pandas as pd
from scipy import stats

from eval.scoring.calibrations import margins
from eval.scoring.catalogue import describe, verdict_scores

ALPHA = 0.01  # one series
FAMILY_ALPHA = 0.05  # the gate over every series it reads
WINDOW = 20  # candidate first commits of a change: the newest 20
HISTORY = 50  # commits read, newest last
MIN_BEFORE = 5  # commits before a change, at least
FLOOR = 0.5  # of the margin: smaller changes are never flagged
RECENT = 5  # the newest commits whose mean measures the size of a change
DRAWS = 20_000  # simulated null histories per shape
FAILING = ("regression", "change")


@dataclass(frozen=True)
class Trend:
    """The gate's verdict on one series.

    Attributes
    ----------
    metric : str
        The score.
    status : {"regression", "improvement", "change", "steady", "too short", "not judged"}
        ``regression`` / ``change`` fail the gate; ``improvement`` is reported.
    first_commit : str or None
        The first commit of the change (the scan's best split), None when none is flagged.
    newest_commit : str
        The commit judged.
    shift : float
        Mean of the newest ``recent`` commits after the split minus the mean before it (NaN when too short).
    margin : float
        The practical size (the verdict's margin; 0 when the metric has none); flagged only at ``floor × margin``.
    p_value : float
        Twice the smaller of the newest commit's and the scan's p-values (Bonferroni); NaN when too short.
    alpha : float
        The level it was judged at.
    commits : int
        Commits read.
    """

    metric: str
    status: str
    first_commit: str | None
    newest_commit: str
    shift: float
    margin: float
    p_value: float
    alpha: float
    commits: int

    @property
    def failed(self) -> bool:
        return self.status in FAILING


def _statistics(means: np.ndarray, splits: np.ndarray) -> np.ndarray:
    """``T_k`` for each row of ``means`` (draws × commits) and each first commit ``k`` of ``splits``."""
    n = means.shape[1]
    centred = means - means.mean(axis=1, keepdims=True)  # cumulative sums of squares stay exact enough
    s1, s2 = np.cumsum(centred, axis=1), np.cumsum(centred**2, axis=1)
    n_before, n_after = splits.astype(float), (n - splits).astype(float)
    sum_before, sum_after = s1[:, splits - 1], s1[:, -1:] - s1[:, splits - 1]
    mean_before, mean_after = sum_before / n_before, sum_after / n_after
    squares_before = s2[:, splits - 1] - n_before * mean_before**2
    squares_after = s2[:, -1:] - s2[:, splits - 1] - n_after * mean_after**2
    squares = squares_before + squares_after
    variance = np.maximum(squares, 0.0) / (n - 2)
    difference = mean_after - mean_before
    scale = np.sqrt(variance * (1 / n_after + 1 / n_before))
    tiny = np.abs(means).max(axis=1, keepdims=True) * 1e-12  # identical commits: zero spread, no rounding noise
    steady = np.abs(difference) <= tiny
    with np.errstate(divide="ignore", invalid="ignore"):
        t = np.where(steady, 0.0, difference / np.where(scale > tiny, scale, 0.0))
    return t


@lru_cache(maxsize=64)
def _null(n: int, first: int) -> np.ndarray:
    """Sorted ``max |T_k|`` of `DRAWS` histories of ``n`` independent standard normal commit means."""
    draws = np.random.default_rng(20_260_801).standard_normal((DRAWS, n))
    return np.sort(np.abs(_statistics(draws, np.arange(first, n))).max(axis=1))


def p_value(statistic: float, n: int, first: int) -> float:
    """Share of simulated change-free histories whose scan is at least ``statistic`` (with one added, as usual)."""
    null = _null(n, first)
    beyond = len(null) - np.searchsorted(null, statistic, side="left")
    return float((beyond + 1) / (len(null) + 1))


def own_margin(metric: str, model: str | None, dataset: str | None) -> float | None:
    """The verdict's margin of ``metric`` calibrated for ``model`` on ``dataset``; None where a verdict score has
    none (not judged); 0 (no floor) for a score outside the verdict."""
    return margins(None, model, dataset).get(metric) if metric in verdict_scores() else 0.0


def change(
    commits: Sequence[str],
    means: Sequence[float],
    metric: str,
    margin: float | None = None,
    alpha: float = ALPHA,
    window: int = WINDOW,
    history: int = HISTORY,
    min_before: int = MIN_BEFORE,
    floor: float = FLOOR,
    recent: int = RECENT,
    better: str | None = None,
    model: str | None = None,
    dataset: str | None = None,
) -> Trend:
    """Judge the newest commit of one series against its recent history: a `Trend`, whose ``first_commit`` names
    where the change began when one is flagged.

    Parameters
    ----------
    commits, means : sequence
        Commits in commit-time order, newest last, and each one's mean over seeds (NaN commits are dropped).
    metric : str
        The score: its direction comes from the catalogue unless ``better`` is given.
    margin : float, optional
        The smallest change that matters; default `own_margin` of the series' ``model`` and ``dataset``.
    alpha : float
        The level for this one series (shared by its two tests).
    window, history, min_before, floor, recent : int, int, int, float, int
        See the module docstring.
    better : {"higher", "lower", "none"}, optional
        Override the catalogue's direction (tests; metrics it does not know).
    """
    values = np.asarray(means, float)
    names = [str(c) for c in commits]
    if len(names) != len(values):
        raise ValueError(f"{metric}: {len(names)} commits but {len(values)} means")
    keep = np.isfinite(values)
    values, names = values[keep][-history:], [c for c, k in zip(names, keep) if k][-history:]
    n, newest = len(values), names[-1] if names else ""
    margin = own_margin(metric, model, dataset) if margin is None else float(margin)
    if margin is None:
        return Trend(metric, "not judged", None, newest, math.nan, math.nan, math.nan, alpha, n)
    better = better or describe(metric)[1]
    first = max(min_before, n - window)
    if n < min_before + 1:
        return Trend(metric, "too short", None, newest, math.nan, margin, math.nan, alpha, n)
    splits = np.arange(first, n)
    t = _statistics(values[None, :], splits)[0]
    best = int(np.argmax(np.abs(t)))
    p_scan = p_value(float(abs(t[best])), n, first)
    p_newest = float(2 * stats.t.sf(abs(t[-1]), n - 2))  # the newest commit alone: exactly t with n - 2 dof
    split = int(splits[best])  # where the change began: the best split (the maximum-likelihood changepoint)
    p = min(1.0, 2 * min(p_scan, p_newest))  # Bonferroni over the two questions
    shift = float(values[split:][-recent:].mean() - values[:split].mean())
    if p >= alpha or abs(shift) < floor * margin or shift == 0:
        return Trend(metric, "steady", None, newest, shift, margin, p, alpha, n)
    status = "change" if better == "none" else "improvement" if (shift > 0) == (better == "higher") else "regression"
    return Trend(metric, status, names[split], newest, shift, margin, p, alpha, n)


def trend_of(series: pd.DataFrame, metric: str, **options) -> Trend:
    """`change` on one series of `eval.history.store.series` (one machine, implementation, ...; ordered rows)."""
    return change(series.commit.tolist(), series["mean"].tolist(), metric, **options)


def _series_key(key: dict) -> dict[str, str]:
    """The series' model and dataset (the calibration its margin comes from), where the history names them."""
    return {name: str(key[name]) for name in ("model", "dataset") if name in key and not pd.isna(key[name])}


def gate(
    frames: dict[str, pd.DataFrame],
    alpha: float = FAMILY_ALPHA,
    keys: Sequence[str] = ("machine", "profile", "dataset", "model", "impl", "device", "point"),
    **options,
) -> pd.DataFrame:
    """Every series of every metric judged at ``alpha`` / (number of series): family-wise false alarms <= alpha.

    Parameters
    ----------
    frames : dict
        ``{metric: eval.history.store.series(metric, ...)}``.
    alpha : float
        The family-wise level.
    keys : sequence of str
        The columns that tell series apart (those present are used).
    **options
        Passed to `change` (``window``, ``floor``, ...).

    Returns
    -------
    pandas.DataFrame
        One row per series: its keys, then the `Trend` fields; ``failed`` marks regressions and changes.
    """
    groups = []
    for metric, frame in frames.items():
        if frame.empty:
            continue
        by = [k for k in keys if k in frame.columns]
        for key, rows in frame.groupby(by, dropna=False, sort=True) if by else [((), frame)]:
            groups.append((metric, dict(zip(by, key if isinstance(key, tuple) else (key,))), rows))
    each = alpha / max(len(groups), 1)
    table = [
        key
        | asdict(trend := trend_of(rows, metric, alpha=each, **_series_key(key), **options))
        | {"failed": trend.failed}
        for metric, key, rows in groups
    ]
    return pd.DataFrame(table)
