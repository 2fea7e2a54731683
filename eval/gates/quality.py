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
"""

from __future__ import annotations

import json
import math
from datetime import UTC, datetime
from pathlib import Path

import pandas as pd

from core.errors import UserError
from core.paths import BASELINES
from eval.scoring import catalogue
from impls import reference as reference_framework

BASELINE = BASELINES / "quality.json"
SEEDS = (0, 1, 2)
RELATIVE_FLOOR = 0.05
ABSOLUTE_FLOOR = 0.005
SCHEMA = 1


class BaselineError(UserError):
    """Missing or malformed baseline (one line, exit 2)."""


def summarise(frame: pd.DataFrame) -> dict[str, dict[str, dict]]:
    """Per implementation and gated metric: mean, std over seeds, direction, seeds seen, problems."""
    out: dict[str, dict[str, dict]] = {}
    runs = frame[~frame.impl.isin(["sklearn", "roofline"]) & frame.epoch.isna()]  # final scores, not curves
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


def load_baseline(path: Path) -> dict:
    try:
        baseline = json.loads(path.read_text())
    except FileNotFoundError:
        raise BaselineError(f"{path}: no baseline; create it with `python -m eval quality --update-baseline`") from None
    except (json.JSONDecodeError, UnicodeDecodeError) as error:
        raise BaselineError(f"{path}: malformed baseline ({error}); restore it from git or --update-baseline") from None
    if (
        not isinstance(baseline, dict)
        or baseline.get("schema") != SCHEMA
        or not isinstance(baseline.get("metrics"), dict)
    ):
        raise BaselineError(
            f"{path}: malformed baseline (schema {SCHEMA} with 'metrics' expected); "
            "restore it from git or --update-baseline"
        )
    for impl, metrics in baseline["metrics"].items():
        for metric, entry in metrics.items():
            if not isinstance(entry, dict) or not {"mean", "std", "better"} <= set(entry):
                raise BaselineError(
                    f"{path}: malformed entry {impl}/{metric}; restore it from git or --update-baseline"
                )
    return baseline


def make_baseline(summary: dict, versions: dict[str, str], environment: dict, profile: str = "quick") -> dict:
    """The baseline of a run as it really was: its profile, the seeds that produced values, every metric gated."""
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
        "metrics": metrics,
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


def gate(summary: dict, baseline: dict, expected: list[str] | None = None) -> pd.DataFrame:
    """One row per (implementation, metric): baseline, current, tolerance, verdict.

    ``expected`` limits the baseline's implementations to those asked for
    (``--impls``); every one of them must be present with every baseline seed.
    """
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
