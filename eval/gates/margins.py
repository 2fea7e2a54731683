"""The verdict's margins, derived from measurements: ``python -m eval margins CALIBRATION_RUN [--noise RUN]``.

One calibration per (model, dataset) (`eval.scoring.calibrations`): the run's rows name both, and the margins are
written to ``reports/baselines/margins/<model>-<dataset>.json``. ``python -m eval margins --plan PROFILE`` prints
the ``[sweep]`` a calibration run of any profile needs: the recipe change and the fault are derived from its
model (`plan`).

A margin is the difference between a framework and the NumPy reference that the verdict must not call
equivalent. Guessed margins were 3-6 times the seed-to-seed spread and let a PyTorch with momentum 0.5 pass as
equivalent; here each one is measured, and so is whether the seeds run can confirm it:

* **the smallest effect that matters** — a calibration run (e.g. ``--profile margins``: the NumPy reference, five
  seeds, the profile's recipe and the same recipe with its learning rate halved) gives, per score, the mean
  paired change that halving the rate makes, with its 95 % interval. A framework that differs from the
  reference as much as a halved rate does is broken. The margin is **half that effect** (the convention of
  non-inferiority trials: a margin of 50 % of the effect to preserve, FDA guidance 2016, section IV.B).
* **noise** — the paired spread between implementations that are equivalent by construction: the frameworks
  of a default run (``--noise``, the committed example report) minus the reference, per seed, pooled.
* **where the halving moves a score by less than its noise** (its interval holds 0) no recipe effect defines
  what matters; the margin is then the *noise floor*: the smallest margin that a paired TOST over the
  verdict's seeds confirms with 80 % power for truly equivalent implementations. So it is, too, where half
  the effect is below that floor: such a margin calls truly equivalent frameworks ? and, by chance or by
  harmless arithmetic, ✗ (measured: PyTorch's scale consistency on the RNN-RBM's JSB calibration, ✗ at half the
  effect, 0.0004, with the unchanged recipe). The window RBM's Bach calibration predates this rule: its scale
  consistency margin is half the effect, 0.0063, under its floor of 0.0177.
* **power** — for each margin, the seeds a TOST needs to call truly equivalent implementations equivalent with
  80 % power (`seeds_needed`); a report whose seeds are fewer says so beside the verdict.

The calibration run also holds an injected fault, a config change a broken port could make (`plan`: the window
RBM's momentum 0.5 instead of the profile's; the RNN-RBM's learning rate a quarter of the profile's); its verdict
against the recipe at the verdict's seeds is recorded, and the tests check that it never comes out ✓ on a score
it moves.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

import numpy as np
import pandas as pd
from scipy import stats

from core.errors import ConfigError
from core.files import atomic_write_text
from eval.config import Profile
from eval.models import plugin
from eval.scoring import calibrations, catalogue
from eval.scoring.stats import equivalence, interval
from impls import reference

SCHEMA = calibrations.SCHEMA
VERDICT_SEEDS = 3  # the default profile's seeds: the power the report's verdict has
POWER = 0.8
ALPHA = 0.05


@dataclass(frozen=True)
class Plan:
    """The three recipes of a calibration run, as ``{"section.key": value}`` points of its sweep."""

    base: dict[str, float]
    change: dict[str, float]  # the smallest recipe change that matters: the learning rate halved
    fault: dict[str, float]  # an injected fault the verdict must catch
    change_description: str
    fault_description: str

    def sweep(self) -> dict[str, list[float]]:
        """The ``[sweep]`` whose grid holds the three points (with two keys, a fourth, both at once, is unused)."""
        return {key: sorted({p[key] for p in (self.base, self.change, self.fault)}, reverse=True) for key in self.base}


def plan(profile: Profile) -> Plan:
    """The calibration of ``profile``'s model: its learning rate halved, and the fault its plug-in names
    (`eval.models.base.ModelPlugin.calibration_fault`), each as points of the calibration run's sweep."""
    model, rate = profile.model, profile.model.learning_rate
    base = {"model.learning_rate": rate}
    change = {"model.learning_rate": rate / 2}
    wrong, what = plugin(model.kind).calibration_fault(model)
    for key in wrong:  # a key the fault moves stays at the profile's value in the other two recipes
        base.setdefault(key, getattr(model, key.partition(".")[2]))
        change.setdefault(key, getattr(model, key.partition(".")[2]))
    return Plan(base, change, base | wrong, "learning_rate halved", what)


def final_scores(frame: pd.DataFrame) -> pd.DataFrame:
    """Per-seed final values (no curves, only ``ok`` rows) of the verdict's scores."""
    rows = frame[frame.epoch.isna() & (frame.status == "ok") & frame.metric.isin(catalogue.verdict_scores())]
    return rows


def _point(rows: pd.DataFrame, point: dict[str, float], where: str) -> pd.DataFrame:
    missing = [key for key in point if key not in rows.columns]
    mask = np.ones(len(rows), bool)
    for key, value in point.items():
        if key not in missing:
            mask &= np.isclose(rows[key].astype(float), value)
    if missing or not mask.any():
        wanted = ", ".join(f"{k} = {v:g}" for k, v in point.items())
        raise ConfigError(f"{where}: no finished rows at {wanted}; a calibration run sweeps what "
                          "python -m eval margins --plan PROFILE prints (README, The verdict's margins)")  # fmt: skip
    return rows[mask]


def check_calibration_run(profile: Profile, recipe: Plan, where: str) -> None:
    """Refuse, in one line, a run whose profile does not sweep ``recipe``'s three points: not a calibration run."""
    needed = recipe.sweep()
    if any(not any(math.isclose(float(v), value) for v in profile.sweep.get(key, ())) for key, values in
           needed.items() for value in values):  # fmt: skip
        swept = ", ".join(profile.sweep) or "nothing"
        wanted = ", ".join(f"{key} = {json.dumps(values)}" for key, values in needed.items())
        raise ConfigError(f"{where}: not a calibration run (its profile {profile.name} sweeps {swept}, a calibration "
                          f"run of it sweeps {wanted}); run one with the [sweep] python -m eval margins --plan PROFILE "
                          "prints (README, The verdict's margins)")  # fmt: skip


def key_of(frame: pd.DataFrame, where: str) -> tuple[str, str]:
    """The (model, dataset) every row of a run names; a run of several, or of rows naming none, is refused."""
    if missing := [c for c in ("model", "dataset") if c not in frame.columns]:
        raise ConfigError(f"{where}: its rows have no {' or '.join(missing)} column (a run of an older version?); "
                          "calibrate on a run of this version")  # fmt: skip
    pairs = frame[["model", "dataset"]].dropna().drop_duplicates()
    if len(pairs) != 1:
        found = "; ".join(f"{m}/{d}" for m, d in pairs.itertuples(index=False)) or "none"
        raise ConfigError(f"{where}: a calibration needs rows of one model on one dataset, found {found}; "
                          "calibrate each (model, dataset) on its own run")  # fmt: skip
    model, dataset = pairs.iloc[0]
    return str(model), calibrations.dataset_key(dataset)


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


def unchanged_verdicts(noise: pd.DataFrame, metric: str, margin: float) -> dict[str, str]:
    """The verdict at ``margin`` of each framework of the noise run, the unchanged recipe, against the reference."""
    rows = final_scores(noise)
    ref = per_seed(rows[rows.impl == reference()], metric)
    out = {}
    for impl, group in rows[rows.impl != reference()].groupby("impl"):
        mine = per_seed(group, metric)
        seeds = ref.index.intersection(mine.index)
        out[str(impl)] = equivalence(mine[seeds].tolist(), ref[seeds].tolist(), margin, ALPHA).verdict
    return out


def derive(calibration: pd.DataFrame, noise: pd.DataFrame, recipe: Plan, where: str = "calibration run") -> dict:
    """Per verdict score the run has: the effect of the smallest change, the noise, the margin and its basis, the
    fault's effect and verdict."""
    rows = final_scores(calibration)
    base, change, fault = (_point(rows, p, where) for p in (recipe.base, recipe.change, recipe.fault))
    out = {}
    for metric in [m for m in catalogue.verdict_scores() if m in set(rows.metric)]:
        unit = catalogue.describe(metric)[0]
        reference_values = per_seed(base, metric)
        effect = interval(paired(per_seed(change, metric), reference_values))
        spread, dof = noise_spread(noise, metric)
        clear = effect.n >= 2 and (effect.low > 0 or effect.high < 0)
        floor = noise_floor(spread, VERDICT_SEEDS)
        if clear and abs(effect.mean) / 2 >= floor:
            margin, basis = abs(effect.mean) / 2, "half the effect of halving the learning rate"
        else:  # a margin under the floor calls equivalent frameworks ? or, by chance, ✗ at the verdict's seeds
            why = "halving the rate moves it less than its noise" if not clear else "half its effect is below it"
            margin, basis = floor, f"noise floor at {VERDICT_SEEDS} seeds ({why})"
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
            "unchanged_verdicts": unchanged_verdicts(noise, metric, margin),
        }
    return out


def write(
    calibration_run: Path, noise_run: Path, scores: dict, recipe: Plan, key: tuple[str, str], **about: object
) -> Path:
    """Record one calibration with what it came from (atomic: the old file stays on failure); returns its path.

    A record that `eval.scoring.calibrations.problem` refuses (a NaN margin: a noise run of the reference alone) is
    a `ConfigError`, nothing written.

    ``about`` adds fields (``profile``, ``row_units``, ``basis``: what the recipe is, in words); ``folder`` (a
    Path) writes elsewhere than ``reports/baselines/margins/``.
    """
    folder = Path(about.pop("folder", calibrations.FOLDER))  # type: ignore[arg-type]
    path = folder / calibrations.file_name(*key)
    record = {
        "schema": SCHEMA,
        "model": key[0],
        "dataset": key[1],
        **about,
        "created": datetime.now(UTC).isoformat(timespec="seconds"),
        "calibration_run": calibration_run.name,
        "noise_run": noise_run.name,
        "change": {"from": recipe.base, "to": recipe.change},
        "change_description": recipe.change_description,
        "fault": recipe.fault,
        "fault_description": recipe.fault_description,
        "verdict_seeds": VERDICT_SEEDS,
        "power": POWER,
        "alpha": ALPHA,
        "scores": scores,
    }
    if problem := calibrations.problem(record):  # never write what every reader would refuse; the old file stays
        raise ConfigError(f"{path}: not written: {problem}; the runs give no usable calibration (a noise run needs "
                          "frameworks besides the reference, on the calibration run's seeds)")  # fmt: skip
    folder.mkdir(parents=True, exist_ok=True)
    atomic_write_text(path, json.dumps(record, indent=1) + "\n")
    return path


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
                "fault effect": span(entry["fault_effect"]),
                f"fault verdict ({VERDICT_SEEDS} seeds)": entry["fault_verdict"],
                "unchanged recipe": " ".join(entry.get("unchanged_verdicts", {}).values()),
            }
            for metric, entry in scores.items()
        ]
    ).set_index("metric")
