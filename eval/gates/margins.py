"""The verdict's margins, derived from measurements: ``python -m eval margins CALIBRATION_RUN [--noise RUN]``.

A margin is the difference between a framework and the NumPy reference that the verdict must not call
equivalent. Guessed margins were 3-6 times the seed-to-seed spread and let a PyTorch with momentum 0.5 pass as
equivalent; here each one is measured, and so is whether the seeds run can confirm it:

* **the smallest effect that matters** — a calibration run (``--profile margins``: the NumPy reference, five
  seeds, the default recipe and the same recipe with its learning rate halved) gives, per score, the mean
  paired change that halving the rate makes, with its 95 % interval. A framework that differs from the
  reference as much as a halved rate does is broken. The margin is **half that effect** (the convention of
  non-inferiority trials: a margin of 50 % of the effect to preserve, FDA guidance 2016, section IV.B).
* **noise** — the paired spread between implementations that are equivalent by construction: the frameworks
  of a default run (``--noise``, the committed example report) minus the reference, per seed, pooled.
* **where the halving moves a score by less than its noise** (its interval holds 0) no recipe effect defines
  what matters; the margin is then the *noise floor*: the smallest margin that a paired TOST over the
  verdict's seeds confirms with 80 % power for truly equivalent implementations.
* **power** — for each margin, the seeds a TOST needs to call truly equivalent implementations equivalent with
  80 % power (`seeds_needed`); a report whose seeds are fewer says so beside the verdict.

The calibration run also holds an injected fault (momentum 0.5 instead of 0.9); its verdict against the
default recipe at the verdict's seeds is recorded, and the tests check that it never comes out ✓ on a score
it moves.
"""

from __future__ import annotations

import json
import math
from datetime import UTC, datetime
from pathlib import Path

import numpy as np
import pandas as pd
from scipy import stats

from core.files import atomic_write_text
from core.paths import BASELINES
from eval.scoring import catalogue
from eval.scoring.stats import equivalence, interval
from impls import reference

MARGINS = BASELINES / "margins.json"
SCHEMA = 1
BASE = {"model.learning_rate": 0.005, "model.momentum": 0.9}
CHANGE = {"model.learning_rate": 0.0025, "model.momentum": 0.9}  # the smallest recipe change that matters
FAULT = {"model.learning_rate": 0.005, "model.momentum": 0.5}  # an injected fault the verdict must catch
VERDICT_SEEDS = 3  # the default profile's seeds: the power the report's verdict has
POWER = 0.8
ALPHA = 0.05


def final_scores(frame: pd.DataFrame) -> pd.DataFrame:
    """Per-seed final values (no curves, only ``ok`` rows) of the verdict's scores."""
    rows = frame[frame.epoch.isna() & (frame.status == "ok") & frame.metric.isin(catalogue.margins())]
    return rows


def _point(rows: pd.DataFrame, point: dict[str, float]) -> pd.DataFrame:
    mask = np.ones(len(rows), bool)
    for key, value in point.items():
        mask &= np.isclose(rows[key].astype(float), value)
    return rows[mask]


def per_seed(rows: pd.DataFrame, metric: str) -> pd.Series:
    return rows[rows.metric == metric].groupby("seed").value.mean().sort_index()


def paired(a: pd.Series, b: pd.Series) -> np.ndarray:
    """``a - b`` over the seeds both have."""
    seeds = a.index.intersection(b.index)
    return (a[seeds] - b[seeds]).to_numpy(float)


def noise_spread(noise: pd.DataFrame, metric: str) -> tuple[float, int]:
    """Pooled standard deviation (and degrees of freedom) of framework-minus-reference differences over seeds."""
    base = reference()
    rows = final_scores(noise)
    ref = per_seed(rows[rows.impl == base], metric)
    squares, dof = 0.0, 0
    for _, group in rows[rows.impl != base].groupby("impl"):
        differences = paired(per_seed(group, metric), ref)
        if len(differences) > 1:
            squares += float(((differences - differences.mean()) ** 2).sum())
            dof += len(differences) - 1
    return (math.sqrt(squares / dof), dof) if dof else (math.nan, 0)


def noise_floor(spread: float, seeds: int, alpha: float = ALPHA, power: float = POWER) -> float:
    """The smallest margin a paired TOST over ``seeds`` confirms with ``power`` when the true difference is 0.

    Normal-approximation sample size of TOST with a zero true difference (Chow, Shao & Wang, *Sample Size
    Calculations in Clinical Research*, 2nd ed., section 3.2), with Student t quantiles for few seeds.
    """
    dof = seeds - 1
    return (stats.t.ppf(1 - alpha, dof) + stats.t.ppf(1 - (1 - power) / 2, dof)) * spread / math.sqrt(seeds)


def seeds_needed(spread: float, margin: float, alpha: float = ALPHA, power: float = POWER, most: int = 1000) -> int:
    """Fewest seeds whose TOST calls truly equivalent implementations equivalent with ``power`` at ``margin``."""
    if not spread > 0:
        return 2
    for seeds in range(2, most + 1):
        if noise_floor(spread, seeds, alpha, power) <= margin:
            return seeds
    return most


def derive(calibration: pd.DataFrame, noise: pd.DataFrame) -> dict:
    """Per verdict score: the effect of the smallest change, the noise, the margin and its basis, the fault verdict."""
    rows = final_scores(calibration)
    base, change, fault = (_point(rows, p) for p in (BASE, CHANGE, FAULT))
    out = {}
    for metric in catalogue.margins():
        unit = catalogue.describe(metric)[0]
        reference_values = per_seed(base, metric)
        effect = interval(paired(per_seed(change, metric), reference_values))
        spread, dof = noise_spread(noise, metric)
        clear = effect.n >= 2 and (effect.low > 0 or effect.high < 0)
        floor = noise_floor(spread, VERDICT_SEEDS)
        if clear:
            margin, basis = abs(effect.mean) / 2, "half the effect of halving the learning rate"
        else:
            margin, basis = (
                floor,
                f"noise floor at {VERDICT_SEEDS} seeds (halving the rate moves it less than its noise)",
            )
        fault_values = per_seed(fault, metric)
        seeds = sorted(reference_values.index.intersection(fault_values.index))[:VERDICT_SEEDS]
        fault_effect = interval(paired(fault_values, reference_values))
        test = equivalence(fault_values[seeds].tolist(), reference_values[seeds].tolist(), margin, ALPHA)
        out[metric] = {
            "unit": unit,
            "margin": float(margin),
            "basis": basis,
            "effect_of_change": [effect.mean, effect.low, effect.high],
            "noise_sd": spread,
            "noise_dof": dof,
            "noise_floor": floor,
            "seeds_needed": seeds_needed(spread, margin),
            "fault_effect": [fault_effect.mean, fault_effect.low, fault_effect.high],
            "fault_verdict": test.verdict,
        }
    return out


def write(calibration_run: Path, noise_run: Path, scores: dict, path: Path = MARGINS) -> None:
    """Record the margins with what they came from (atomic: the old file stays on failure)."""
    record = {
        "schema": SCHEMA,
        "created": datetime.now(UTC).isoformat(timespec="seconds"),
        "calibration_run": calibration_run.name,
        "noise_run": noise_run.name,
        "change": {"from": BASE, "to": CHANGE},
        "fault": FAULT,
        "verdict_seeds": VERDICT_SEEDS,
        "power": POWER,
        "alpha": ALPHA,
        "scores": scores,
    }
    atomic_write_text(path, json.dumps(record, indent=1) + "\n")


def table(scores: dict) -> pd.DataFrame:
    """The derivation as a table (what ``python -m eval margins`` prints and the README quotes)."""

    def span(values: list[float]) -> str:
        return f"{values[0]:.3g} [{values[1]:.3g}, {values[2]:.3g}]"

    return pd.DataFrame(
        [
            {
                "metric": metric,
                "lr/2 effect, 95 %": span(entry["effect_of_change"]),
                "noise sd": f"{entry['noise_sd']:.3g}",
                "margin": f"{entry['margin']:.3g} {entry['unit']}".strip(),
                "basis": "½ lr/2 effect" if entry["basis"].startswith("half") else "noise floor",
                "seeds for 80 %": entry["seeds_needed"],
                "momentum 0.5 effect": span(entry["fault_effect"]),
                f"fault verdict ({VERDICT_SEEDS} seeds)": entry["fault_verdict"],
            }
            for metric, entry in scores.items()
        ]
    ).set_index("metric")
