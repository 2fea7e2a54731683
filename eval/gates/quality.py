"""The sample-quality regression gate: ``python -m eval quality``.

Trains every installed implementation on the ``quick`` profile with K fixed
seeds and compares the scores with ``reports/baselines/quality.json``. A
metric fails when its mean over the seeds moves in the bad direction by more
than ``max(3 * baseline std, RELATIVE_FLOOR * |baseline mean|, ABSOLUTE_FLOOR)``
(metrics without a better direction fail on a move either way); a move in the
good direction is reported, not failed. An implementation whose mean differs
from the NumPy reference's by more than the same kind of tolerance fails too.

The gate cannot pass on nothing: an implementation or seed of the baseline
that produced no rows is a failure, and so is a gate that checked nothing.

Nor on another recipe, nor on a baseline it cannot trust: the baseline records
the run it was made from (the profile as run, the dataset hash, the seeds), and
a run whose recipe (``data``, ``model``, ``run.epochs``, ``run.seeds``,
``eval``) or dataset differs is refused; so is a baseline whose values are not
finite numbers, whose spreads are absurd, or whose names and directions the
catalogues do not know (one line each, exit 2).
"""

from __future__ import annotations

import json
import math
from datetime import UTC, datetime
from pathlib import Path

import pandas as pd

from core.errors import UserError
from core.paths import BASELINES
from eval.config import profile_from_dict
from eval.scoring import catalogue
from impls import frameworks
from impls import reference as reference_framework

BASELINE = BASELINES / "quality.json"
SEEDS = (0, 1, 2)
RELATIVE_FLOOR = 0.05
ABSOLUTE_FLOOR = 0.005
SCHEMA = 2  # 2: the recorded run (spec, dataset_hash) and a strictly validated content
# The sections of a spec that define the numbers; run.executor, threads, timeout_s, retries and impls do not change a
# value (implementations are compared by the gate itself: a baseline one without rows is MISSING).
RECIPE = ("data", "model", "run.epochs", "run.seeds", "run.patience", "eval")  # patience: the epoch scored
# A seed-to-seed spread beyond this many times max(|mean|, 1) is not a measurement: the tolerance (3 std) would then
# admit any value of the metric, a sign flip included. Real baselines spread by a few percent at most (the committed
# one by < 4% of max(|mean|, 1)), so 10 leaves room for noisy metrics yet refuses a std of 1e9 or one typed for a mean.
MAX_STD_RATIO = 10.0
DIRECTIONS = ("higher", "lower", "none")


class BaselineError(UserError):
    """Missing or malformed baseline (one line, exit 2)."""


def summarise(frame: pd.DataFrame) -> dict[str, dict[str, dict]]:
    """Per implementation and gated metric: mean, std over seeds, direction, seeds seen, problems."""
    out: dict[str, dict[str, dict]] = {}
    runs = frame[~frame.impl.isin(["sklearn", "roofline"]) & frame.epoch.isna()]  # final scores, not curves
    # In seed order: a parallel executor writes tasks as they finish, and a sum in another order differs in the last
    # bit (the same per-seed values gave a mean 1 ulp apart), so a baseline would change with nothing changed.
    runs = runs.sort_values("seed", kind="stable")
    for impl, group in runs.groupby("impl"):
        out[impl] = {}
        for metric in catalogue.gated():
            rows = group[group.metric == metric]
            ok = rows[rows.status == "ok"]
            problems = sorted({f"{s}: {r}" for s, r in zip(rows.status, rows.reason) if s != "ok"})
            if not len(rows):
                problems = sorted({f"{s}: {r}" for s, r in zip(group.status, group.reason) if s != "ok"}) or ["missing"]
            out[impl][metric] = {
                "mean": float(ok.value.mean()) if len(ok) else None,
                "std": float(ok.value.std(ddof=1)) if len(ok) > 1 else 0.0,
                "better": str(rows.better.iloc[0]) if len(rows) else "none",
                "n": len(ok),
                "seeds": sorted(int(s) for s in ok.seed.unique()),
                "problems": problems,
            }
    return out


def _row(check: str, impl: str, metric: str, base, current, allowed, verdict: str) -> dict:
    return {
        "check": check,
        "impl": impl,
        "metric": metric,
        "baseline": base,
        "current": current,
        "tolerance": allowed,
        "verdict": verdict,
    }


def failures(table: pd.DataFrame) -> pd.DataFrame:
    """The rows that fail the gate."""
    return table[table.verdict.str.startswith(("REGRESSION", "INCONSISTENT", "MISSING"))]


def tolerance(mean: float, std: float) -> float:
    return max(3 * std, RELATIVE_FLOOR * abs(mean), ABSOLUTE_FLOOR)


def _number(value: object) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)


def _seeds_problem(seeds: object) -> str | None:
    if (
        not isinstance(seeds, list)
        or not seeds
        or not all(isinstance(s, int) and not isinstance(s, bool) and s >= 0 for s in seeds)
    ):
        return f"seeds {seeds!r} are not a non-empty list of non-negative integers"
    if len(set(seeds)) != len(seeds):
        return f"seeds {seeds!r} repeat a seed"
    return None


def _entry_problem(impl: str, metric: str, entry: object, seeds: list[int] | None) -> str | None:
    """What is wrong with one baseline entry, or None."""
    name = repr(f"{impl}/{metric}")[1:-1]  # one line whatever the file holds
    if not isinstance(entry, dict) or not {"mean", "std", "better", "n"} <= set(entry):
        return f"entry {name} is not an object with mean, std, better and n"
    mean, std, better, n = entry["mean"], entry["std"], entry["better"], entry["n"]
    if not _number(mean):
        return f"{name} mean {mean!r} is not a finite number"
    if not _number(std) or std < 0:
        return f"{name} std {std!r} is not a finite number >= 0"
    if std > MAX_STD_RATIO * max(abs(mean), 1.0):
        return f"{name} std {std:.3g} is absurd for a mean of {mean:.6g} (more than {MAX_STD_RATIO:g} max(|mean|, 1))"
    if better not in DIRECTIONS:
        return f"{name} better {better!r} is not one of {', '.join(DIRECTIONS)}"
    if better != catalogue.describe(metric)[1]:
        return f"{name} better {better!r} contradicts the score catalogue's {catalogue.describe(metric)[1]!r}"
    if not isinstance(n, int) or isinstance(n, bool) or n < 1 or (seeds is not None and n > len(seeds)):
        most = f" and at most {len(seeds)} (the seeds)" if seeds is not None else ""
        return f"{name} n {n!r} is not an integer >= 1{most}"
    return None


def baseline_problem(baseline: object, require_run: bool = True) -> str | None:
    """The first problem of a baseline's content, one line, or None when every part of it can be trusted.

    ``require_run``: the recorded run (profile, spec, dataset hash, seeds) must be there too, as
    ``make_baseline`` writes it; without, only what is present is checked (the gate's arithmetic on a bare one).
    """
    if (
        not isinstance(baseline, dict)
        or baseline.get("schema") != SCHEMA
        or not isinstance(baseline.get("metrics"), dict)
    ):
        found = baseline.get("schema") if isinstance(baseline, dict) else type(baseline).__name__
        return f"schema {SCHEMA} with 'metrics' expected, found schema {found!r}"
    seeds = baseline.get("seeds")
    if (require_run or "seeds" in baseline) and (problem := _seeds_problem(seeds)):
        return problem
    if require_run:
        if not isinstance(baseline.get("profile"), str) or not baseline["profile"]:
            return f"profile {baseline.get('profile')!r} is not a profile name"
        if not isinstance(baseline.get("dataset_hash"), str) or not baseline["dataset_hash"]:
            return f"dataset_hash {baseline.get('dataset_hash')!r} is not a hash"
        if "spec" not in baseline or not isinstance(baseline["spec"], dict):
            return "no recorded spec (the profile as run)"
        try:
            recipe(baseline["spec"])
        except (UserError, KeyError, TypeError, ValueError, AttributeError) as error:
            return f"recorded spec is not a profile ({_first_line(error)})"
    if "versions" in baseline and (
        not isinstance(baseline["versions"], dict) or not all(isinstance(v, str) for v in baseline["versions"].values())
    ):
        return "versions is not an object of version strings"
    known = list(frameworks())
    for impl, metrics in baseline["metrics"].items():
        if impl not in known:
            return f"implementation {impl!r} is not in the framework catalogue ({', '.join(known)})"
        if not isinstance(metrics, dict) or not metrics:
            return f"implementation {impl} has no metrics object"
        for metric, entry in metrics.items():
            if catalogue.lookup(metric) is None:
                return f"metric {metric!r} of {impl} is not in the score catalogue"
            if problem := _entry_problem(impl, metric, entry, seeds if isinstance(seeds, list) else None):
                return problem
    return None


def load_baseline(path: Path) -> dict:
    """The baseline, validated as strictly as a profile: every value the gate reads is checked here."""
    try:
        baseline = json.loads(path.read_text())
    except FileNotFoundError:
        raise BaselineError(f"{path}: no baseline; create it with `python -m eval quality --update-baseline`") from None
    except (json.JSONDecodeError, UnicodeDecodeError) as error:
        raise BaselineError(f"{path}: malformed baseline ({error}); restore it from git or --update-baseline") from None
    except RecursionError:
        raise BaselineError(f"{path}: malformed baseline (nested too deep); restore it from git") from None
    if problem := baseline_problem(baseline):
        raise BaselineError(f"{path}: malformed baseline: {problem}; restore it from git or --update-baseline")
    return baseline


def recipe(spec: dict) -> dict[str, object]:
    """The keys of a spec (a run's spec.json, a profile's ``to_dict``) that define its numbers, flat and in order.

    Read through the profile's own validation, so defaults are filled and values normalised (tuples as lists).
    """
    profile = json.loads(json.dumps(profile_from_dict(spec).to_dict()))
    flat: dict[str, object] = {}
    for part in RECIPE:
        section, _, key = part.partition(".")
        values = profile[section] if not key else {key: profile[section][key]}
        flat |= {f"{section}.{k}": v for k, v in values.items()}
    return flat


def recipe_problem(spec: dict, dataset_hash: str | None, baseline: dict) -> str | None:
    """How a run's recipe or dataset differs from the baseline's, naming the first differing keys; None if equal."""
    try:
        ran = recipe(spec)
    except (UserError, KeyError, TypeError, ValueError, AttributeError) as error:
        return f"its spec is not a profile ({_first_line(error)})"
    was = recipe(baseline["spec"])
    differing = [
        f"{key} {_shown(ran.get(key))} vs the baseline's {_shown(was.get(key))}"
        for key in was | ran
        if ran.get(key) != was.get(key)
    ]
    if dataset_hash is not None and dataset_hash != baseline["dataset_hash"]:
        differing.append(f"dataset_hash {dataset_hash[:12]} vs the baseline's {baseline['dataset_hash'][:12]}")
    if not differing:
        return None
    more = f" (and {len(differing) - 3} more)" if len(differing) > 3 else ""
    return "; ".join(differing[:3]) + more


def _first_line(error: Exception) -> str:
    return (str(error).splitlines() or [type(error).__name__])[0]


def _shown(value: object) -> str:
    return json.dumps(value) if isinstance(value, str) else str(value)


def check_run(spec: dict, dataset_hash: str | None, baseline: dict, where: str = "the run") -> None:
    """Refuse (BaselineError) a run of another recipe or dataset than the baseline's: its numbers mean nothing here."""
    if problem := recipe_problem(spec, dataset_hash, baseline):
        raise BaselineError(
            f"{where} is not the baseline's recipe: {problem}; gate a run of the baseline's profile "
            f"({baseline.get('profile')}, seeds {baseline.get('seeds')}) or rewrite the baseline on purpose "
            "with --update-baseline"
        )


def dataset_hash(frame: pd.DataFrame) -> str | None:
    """The hash of the data the implementations trained on (the rows' ``dataset_hash``), None when unrecorded."""
    if "dataset_hash" not in frame:
        return None
    hashes = sorted({str(h) for h in frame.dataset_hash.dropna() if str(h) not in ("", "nan")})
    return ",".join(hashes) or None


def make_baseline(
    summary: dict,
    versions: dict[str, str],
    environment: dict,
    profile: str = "quick",
    spec: dict | None = None,
    data_hash: str | None = None,
) -> dict:
    """The baseline of a run as it really was: its profile and spec, its dataset, the seeds that produced values,
    every metric gated."""
    metrics = {
        impl: {
            m: {k: e[k] for k in ("mean", "std", "better", "n")} for m, e in entries.items() if e["mean"] is not None
        }
        for impl, entries in summary.items()
    }
    return {
        "schema": SCHEMA,
        "profile": profile,
        "seeds": sorted({s for entries in summary.values() for e in entries.values() for s in e["seeds"]}),
        "dataset_hash": data_hash,
        "spec": json.loads(json.dumps(spec)) if spec is not None else None,
        "metrics": {impl: entries for impl, entries in metrics.items() if entries},
        "versions": versions,
        "created": datetime.now(UTC).isoformat(timespec="seconds"),
        "environment": {k: environment.get(k) for k in ("python", "cpu", "git_commit", "blas")},
        "tolerance": f"max(3 std, {RELATIVE_FLOOR} |mean|, {ABSOLUTE_FLOOR})",
    }


def _verdict(better: str, change: float, allowed: float) -> str:
    if better == "none":
        return "REGRESSION (changed)" if abs(change) > allowed else "ok"
    worse = -change if better == "higher" else change
    if worse > allowed:
        return "REGRESSION"
    return "improved" if -worse > allowed else "ok"


def gate(
    summary: dict,
    baseline: dict,
    expected: list[str] | None = None,
    spec: dict | None = None,
    data_hash: str | None = None,
) -> pd.DataFrame:
    """One row per (implementation, metric): baseline, current, tolerance, verdict.

    ``expected`` limits the baseline's implementations to those asked for
    (``--impls``); every one of them must be present with every baseline seed.
    ``spec`` (the gated run's spec.json) and ``data_hash`` (its rows' dataset hash): the baseline must then
    record its run and the run must be of its recipe and dataset. A baseline the gate cannot trust, or a run
    of another recipe, raises BaselineError: the gate never passes on either.
    """
    if problem := baseline_problem(baseline, require_run=spec is not None):
        raise BaselineError(f"malformed baseline: {problem}; restore it from git or --update-baseline")
    if spec is not None:
        check_run(spec, data_hash, baseline)
    rows = []
    seeds = sorted(baseline.get("seeds", []))
    for impl, metrics in baseline["metrics"].items():
        if expected is not None and impl not in expected:
            continue  # not asked for on the command line
        if impl not in summary:
            rows.append(_row("baseline", impl, "(all)", None, None, None, "MISSING (no rows: not installed or failed)"))
            continue
        for metric, base in metrics.items():
            current = summary[impl].get(metric, {"mean": None, "problems": ["missing"], "seeds": []})
            allowed = tolerance(base["mean"], base["std"])
            missing = sorted(set(seeds) - set(current.get("seeds", [])))
            if current["mean"] is None or not math.isfinite(current["mean"]):
                verdict, value = f"REGRESSION ({'; '.join(current['problems']) or 'no value'})", None
            elif missing:
                verdict, value = f"MISSING (seeds {missing} have no value)", current["mean"]
            else:
                value = current["mean"]
                verdict = _verdict(base["better"], value - base["mean"], allowed)
            rows.append(_row("baseline", impl, metric, base["mean"], value, allowed, verdict))
    name = reference_framework()
    reference = summary.get(name, {})
    for impl, metrics in summary.items():
        if impl == name or not reference:
            continue
        for metric, entry in metrics.items():
            ref = reference.get(metric, {})
            if entry["mean"] is None or ref.get("mean") is None:
                continue
            allowed = tolerance(ref["mean"], math.hypot(ref["std"], entry["std"]))
            differs = abs(entry["mean"] - ref["mean"]) > allowed
            verdict = "INCONSISTENT" if differs else "ok"
            rows.append(_row(f"vs {name}", impl, metric, ref["mean"], entry["mean"], allowed, verdict))
    table = pd.DataFrame(rows, columns=["check", "impl", "metric", "baseline", "current", "tolerance", "verdict"])
    if not len(table):
        table = pd.DataFrame(
            [_row("baseline", "(none)", "(none)", None, None, None, "MISSING (the gate checked nothing)")]
        )
    return table


def version_notes(baseline: dict, versions: dict[str, str]) -> list[str]:
    """Say so when framework versions differ from the baseline's (scores may move for that reason)."""
    notes = []
    for impl, version in versions.items():
        was = baseline.get("versions", {}).get(impl)
        if was and version and was != version:
            notes.append(f"note: {impl} is {version} here, the baseline was made with {was}")
    return notes


def baseline_changes(old: dict | None, new: dict) -> list[str]:
    """What --update-baseline changed, one line per metric."""
    lines = []
    for impl, metrics in new["metrics"].items():
        for metric, entry in metrics.items():
            before = (old or {}).get("metrics", {}).get(impl, {}).get(metric)
            if before is None:
                lines.append(f"  {impl}/{metric}: new {entry['mean']:.6g} ± {entry['std']:.2g}")
            elif before["mean"] != entry["mean"] or before["std"] != entry["std"]:
                lines.append(
                    f"  {impl}/{metric}: {before['mean']:.6g} ± {before['std']:.2g} -> "
                    f"{entry['mean']:.6g} ± {entry['std']:.2g}"
                )
    return lines or ["  nothing changed"]
