"""Throughput regression check on pytest-benchmark output (``tox -e perf``).

Absolute times differ between machines, so each implementation's training
step is compared as a ratio to the roofline measured in the same session (the
fastest framework's five dense products of one CD-1 step) against the ratio
stored in ``reports/baselines/perf.json``. A ratio that falls by more than
``RELATIVE_TOLERANCE`` of the baseline's is a regression (exit 1).
"""

from __future__ import annotations

import json
import re
from pathlib import Path

import pandas as pd

from core.files import atomic_write_text
from eval.scoring.catalogue import describe
from eval.timing.roofline import Speed
from eval.timing.roofline import ratios as roofline_ratios

RELATIVE_TOLERANCE = 0.3


def ratios(benchmark_json: Path) -> dict[str, dict[str, float]]:
    """Per implementation: roofline time (fastest five products) / its fastest round's time per CD-1 update.

    Best against best, as ``timeit`` advises: the products are timed by their best of 50 repeats, so the step
    is too (interference from other work on a shared machine only ever adds time).
    """
    benchmarks = json.loads(benchmark_json.read_text())["benchmarks"]
    speeds = []
    for bench in benchmarks:
        match = re.match(r"test_train_step\[(\w+)\]", bench["name"])
        if match:
            step_s = bench["stats"]["min"] / bench["extra_info"]["updates"]
            windows_per_s = bench["extra_info"]["batch"] / step_s
            speeds.append(Speed(match.group(1), windows_per_s, bench["extra_info"]["five_products_ms"], None))
    if not speeds:
        raise ValueError(f"{benchmark_json}: no train_step benchmarks; run tox -e perf")
    batch = benchmarks[0]["extra_info"]["batch"]
    return {r.impl: {"train_step_ratio": r.ratio_to_roofline} for r in roofline_ratios(speeds, batch)}


def measurement_frame(benchmark_json: Path) -> pd.DataFrame:
    """The ratios as result rows (impl, metric, value, unit, better), for the history (``perf-check --history``)."""
    unit, better = describe("train_step_ratio")
    rows = [
        {"impl": impl, "metric": metric, "value": value, "unit": unit, "better": better, "status": "ok",
         "profile": "perf", "dataset": "", "phase": "timing", "model": "rbm"}
        for impl, metrics in sorted(ratios(benchmark_json).items())
        for metric, value in metrics.items()
    ]  # fmt: skip
    return pd.DataFrame(rows)


def check(benchmark_json: Path, baseline_path: Path, update: bool = False) -> int:
    if not benchmark_json.exists():
        raise ValueError(f"{benchmark_json}: no such benchmark file; run tox -e perf first")
    current = ratios(benchmark_json)
    if update:
        baseline_path.parent.mkdir(parents=True, exist_ok=True)
        record = {"ratios": current, "relative_tolerance": RELATIVE_TOLERANCE}
        atomic_write_text(baseline_path, json.dumps(record, indent=1))  # complete or absent, never half a baseline
        print(f"perf baseline rewritten: {baseline_path}")
    if not baseline_path.exists():
        raise ValueError(
            f"{baseline_path}: no perf baseline; create it with python -m eval perf-check --update-baseline"
        )
    try:
        baseline = json.loads(baseline_path.read_text())["ratios"]
    except (json.JSONDecodeError, KeyError) as error:
        raise ValueError(f"{baseline_path}: malformed perf baseline ({error}); rerun with --update-baseline") from None
    failed = False
    print(f"{'impl':8} {'metric':18} {'baseline':>9} {'current':>9}  verdict")
    for impl, metrics in sorted(current.items()):
        for metric, value in metrics.items():
            base = baseline.get(impl, {}).get(metric)
            verdict = "new" if base is None else "REGRESSION" if value < base * (1 - RELATIVE_TOLERANCE) else "ok"
            failed |= verdict == "REGRESSION"
            print(f"{impl:8} {metric:18} {base if base is not None else float('nan'):9.3f} {value:9.3f}  {verdict}")
    return 1 if failed else 0
