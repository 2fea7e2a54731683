"""The trend gate: has a score moved away from its recent history, for good, and since which commit?

What is judged, and why one commit is not enough
------------------------------------------------
Each commit contributes one number per series (one metric of one implementation on one machine): the mean of its
per-seed values. Per-commit means, not per-seed values: reruns of one commit with the same seeds are nearly
identical for deterministic frameworks, while throughputs move together with the machine's load in a run; the
scatter of commit means measures what actually varies between commits, whatever its cause. That scatter is not
normal: a loaded machine moves one run far (one fresh-clone run put JAX at 0.17 of the roofline where quiet runs
give 0.43-0.55), and such throughputs look like Student t noise with 3 degrees of freedom. A gate that trusts
normal tails cries wolf there (the pooled t tests this gate used before failed 68 % of change-free histories of
100 such series, at a stated 5 %). So one commit alone, however far out, is never a change: a change must last
``persist`` (2) commits, and its p-values hold for t noise with `changepoint.TAILS` (3) degrees of freedom.

Two tests share the level ``alpha`` (weighted Bonferroni: `SCAN` = 1/4 to the scan, 3/4 to the persistence test):

- *Persistence* (`changepoint.persistence`): do the newest ``j`` commits all lie on one side of the commits before
  them, how far out? The distance of the nearest of them from the median of those before, in units of their
  spread, measured from their successive differences (each capped at five times their median: an old step or one
  outlier in the history barely inflates it, while the series' heavier tails widen it). Its p-value is exact for
  t noise (3 degrees of freedom) at any history length: for each of 4 000 simulated sets of commits before (fixed
  seed), t's exact chance that ``j`` new commits all lie that far out, averaged; lighter tails (normal noise) alarm
  less. The average resolves tiny p-values (no count of draws), except where it would rest on fewer than 100 of
  the sets (a short history, a tiny p-value): there the p-value stops falling. Values that come in steps (ties)
  count half their smallest gap less. Asked for ``j`` = 2, 3, 4, 5 (`SHARES` 0.7, 0.1, 0.1, 0.1 of its part):
  a change seen at three or more commits needs each commit less far out.
- *The rank scan* (`changepoint.rank_scan`): for every candidate first commit ``k`` among the newest ``window``
  (at least ``min_before`` commits before it, ``persist`` after), the standardised Wilcoxon rank sum of the
  commits from ``k`` on against those before (midranks for ties); the statistic is the largest ``|Z_k|``. Ranks
  make its null the same for any continuous noise, heavy tails and outliers included: simulated once per shape
  (20 000 histories, a fixed seed; p-values resolve to 1/20 001). It catches changes that build up over commits.

The change begins at the split whose two parts lie closest to their own medians (least absolute deviations: the
maximum-likelihood changepoint of a shift in Laplace noise, which one outlier pulls less than it pulls means): for a
step its first commit, for a slow drift a commit inside it. Its size is the median of the differences between each
of the newest (up to ``recent``) commits from there on and each commit before (Hodges-Lehmann).

The false-alarm rate
--------------------
For one series the chance of an alarm on a history without any change is at most ``alpha`` (default 0.01) for t
noise, and less for lighter tails. `gate` divides its ``alpha`` (default 0.05) among the series it reads
(Bonferroni). Measured on 100 series × 1 000 change-free histories of 50 commits (three seeds, margin 2.8 seed
standard deviations, each series at 0.05 %), family-wise, with the floor below (without it): normal noise 0.2 %
(2.1 %; before 3.0 %), t noise of the same spread 1.9 % (2.7 %; before 68 %), t noise per seed 0.7 % (1.7 %),
commit means rounded to two spreads 0.6 % (without). The limit is gross outliers beyond t's tails: two in a row
look exactly like a change that lasted two commits. At a rate ε of such runs, all one way (a loaded machine only
slows), about ε² of series alarm per gate run: with 2 % of runs ten spreads off, 4.6 % of histories (5.9 %)
(before 92 %), about 3 % (4 %) when they fall either way. `tests/history/test_trend_robust.py` checks these.

What is big enough to flag: half the verdict's margin
-----------------------------------------------------
The verdict's margin (`eval.scoring.calibrations.margins`) is the suite's measure of the smallest difference that
matters. A series uses the calibration of its own model and dataset (the history's ``model`` and ``dataset``
columns); a verdict score whose series has none is ``not judged`` (neither failed nor silently passed: the gate
prints it), never judged with another model's margin. A significant change is flagged only when its size is at
least ``floor × margin`` (``floor`` = 0.5): a change whose estimate is under half the margin is never flagged,
however many commits prove it is real. Half, because an estimate of a change of exactly the margin falls below it
half the time. A step of the margin (three seeds a commit, a margin of 2.8 seed standard deviations as in
``reports/baselines/margins/rbm-bach.json``; 4 000 histories) is flagged at one series' level at its second
commit in 99 % of histories with normal or t noise, 94 % with 2 % gross outliers, naming its first commit in
96-98 % (at its first commit in 3 %: when the commit before happened to lie far out the same way); at the level
of a gate of 100 series by its second commit in 76 % (normal), 89 % (t), by its third in 95 %, 97.5 %, by its
fourth in over 99 % (before: 70 % at its first commit, 92 % by its second, for normal noise). A slow drift that
totals the margin over 20 commits is flagged by its end in 99.8 % or more. A metric outside the verdict has no
floor: every statistically significant change counts.

The verdict
-----------
Each score's direction (`eval.scoring.catalogue.describe`) decides what a change is: a move in the bad direction
is a ``regression`` (the gate fails), one in the good direction an ``improvement`` (reported, the gate passes), and
any move of a directionless score (``better == "none"``: a statistic to match, not to push) a ``change`` (the gate
fails, as the quality gate does). Otherwise ``steady``, or ``too short`` with fewer than ``min_before + persist``
commits, or ``not judged`` (a verdict score without a calibrated margin for the series).
A change older than ``window`` commits is history, not news: the gate judged it when it came.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from typing import NamedTuple

import numpy as np
import pandas as pd

from eval.history.changepoint import best_split, hodges_lehmann, persistence, persistence_p, rank_scan, scan_p
from eval.scoring.calibrations import margins
from eval.scoring.catalogue import describe, verdict_scores

ALPHA = 0.01  # one series
FAMILY_ALPHA = 0.05  # the gate over every series it reads
WINDOW = 20  # candidate first commits of a change: the newest 20
HISTORY = 50  # commits read, newest last
MIN_BEFORE = 5  # commits before a change, at least
PERSIST = 2  # commits a change must last: one commit alone, however far out, may be a loaded machine
SCAN = 0.25  # of the level: the rank scan; the rest the persistence test
SHARES = (0.7, 0.1, 0.1, 0.1)  # of the persistence test's part: the newest PERSIST, PERSIST + 1, ... commits
FLOOR = 0.5  # of the margin: smaller changes are never flagged
RECENT = 5  # the newest commits whose level measures the size of a change
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
        The first commit of the change (the best split), None when none is flagged.
    newest_commit : str
        The commit judged.
    shift : float
        The change's size: the median difference between the newest (up to ``recent``) commits from the split on
        and the commits before it (NaN when too short).
    margin : float
        The practical size (the verdict's margin; 0 when the metric has none); flagged only at ``floor × margin``.
    p_value : float
        The smaller of the scan's and the persistence test's p-values, each over its share of the level (weighted
        Bonferroni); NaN when too short.
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


class Judged(NamedTuple):
    """`judge` on many histories of one length: one entry per history."""

    p_value: np.ndarray
    split: np.ndarray  # index of the first commit of the change (the best split)
    shift: np.ndarray
    flagged: np.ndarray


def judge(
    values: np.ndarray,
    margin: float,
    alpha: float = ALPHA,
    window: int = WINDOW,
    min_before: int = MIN_BEFORE,
    floor: float = FLOOR,
    recent: int = RECENT,
    persist: int = PERSIST,
) -> Judged:
    """`change`'s test on many histories at once (rows: histories of ``n >= min_before + persist`` commit means,
    newest last): the p-value, where the change began, its size, and whether it is flagged."""
    n = values.shape[1]
    first, last = max(min_before, n - window), n - persist
    splits = np.arange(first, last + 1)
    p_scan = scan_p(np.abs(rank_scan(values, splits)).max(axis=1), n, first, last)
    p_newest = np.min(
        [persistence_p(persistence(values, j), n - j, j) / share for j, share in enumerate(SHARES, persist)
         if n - j >= min_before],
        axis=0,
    )  # fmt: skip
    p = np.minimum(1.0, np.minimum(p_scan / SCAN, p_newest / (1 - SCAN)))  # Bonferroni, weighted
    split = best_split(values, splits)
    shift = hodges_lehmann(values, split, recent)
    return Judged(p, split, shift, (p < alpha) & (np.abs(shift) >= floor * margin) & (shift != 0))


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
    persist: int = PERSIST,
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
    window, history, min_before, floor, recent, persist : int, int, int, float, int, int
        See the module docstring (``persist``: the commits a change must last, 1 to judge the newest alone).
    better : {"higher", "lower", "none"}, optional
        Override the catalogue's direction (tests; metrics it does not know).
    """
    values = np.asarray(means, float)
    names = [str(c) for c in commits]
    if len(names) != len(values):
        raise ValueError(f"{metric}: {len(names)} commits but {len(values)} means")
    if min_before < 2 or not 1 <= persist <= window:
        raise ValueError(f"{metric}: min_before {min_before} (at least 2), persist {persist} (1 to window {window})")
    keep = np.isfinite(values)
    values, names = values[keep][-history:], [c for c, k in zip(names, keep) if k][-history:]
    n, newest = len(values), names[-1] if names else ""
    margin = own_margin(metric, model, dataset) if margin is None else float(margin)
    if margin is None:
        return Trend(metric, "not judged", None, newest, math.nan, math.nan, math.nan, alpha, n)
    better = better or describe(metric)[1]
    if n < min_before + persist:
        return Trend(metric, "too short", None, newest, math.nan, margin, math.nan, alpha, n)
    judged = judge(values[None, :], margin, alpha, window, min_before, floor, recent, persist)
    p, split, shift = float(judged.p_value[0]), int(judged.split[0]), float(judged.shift[0])
    if not judged.flagged[0]:
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
