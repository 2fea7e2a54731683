"""``python -m eval quality`` (the sample-quality gate), ``python -m eval speed`` (throughput table),
``python -m eval perf-check BENCH.json`` (throughput ratios against the baseline)."""

from __future__ import annotations

import argparse
import json
import sys
from datetime import datetime
from pathlib import Path

import pandas as pd

import impls
from datasets.sources import SourceError
from eval import quality
from eval.harness import RUNS, HarnessError, load_profile, run_bench


def run_quality(args: argparse.Namespace) -> int:
    path = args.baseline
    baseline = None if args.update_baseline else quality.load_baseline(path)  # fail fast: before any training
    if args.results:
        if not (args.results / "results.csv").exists():
            raise HarnessError(f"{args.results}: no results.csv; give a finished run folder")
        frame = pd.read_csv(args.results / "results.csv")
    else:
        profile = load_profile("quick")
        profile["run"]["seeds"] = list(quality.SEEDS)
        profile["run"]["impls"] = args.impls or [
            n for n, s in impls.available().items() if isinstance(s, impls.Available)
        ]
        run_dir = RUNS / f"{datetime.now().strftime('%Y%m%d-%H%M%S')}-quality"
        _, frame = run_bench(profile, run_dir)
        print(f"run folder: {run_dir}")
    versions = {
        i: str(v) for i, v in frame.groupby("impl").framework_version.first().items() if str(v) not in ("", "nan")
    }
    summary = quality.summarise(frame)
    if args.update_baseline:
        old = None
        if path.exists():
            try:
                old = quality.load_baseline(path)
            except quality.BaselineError:
                old = None
        from eval.environment import describe_environment

        new = quality.make_baseline(summary, versions, describe_environment())
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(new, indent=1) + "\n")
        print(f"baseline rewritten: {path}")
        print("\n".join(quality.baseline_changes(old, new)))
        return 0
    table = quality.gate(summary, baseline)
    for note in quality.version_notes(baseline, versions):
        print(note)
    with pd.option_context("display.width", 200, "display.max_rows", 500, "display.float_format", "{:.5g}".format):
        print(table.to_string(index=False))
    failed = table[table.verdict.str.startswith(("REGRESSION", "INCONSISTENT"))]
    if len(failed):
        for _, row in failed.iterrows():
            print(f"FAIL {row.impl} {row.metric}: {row.verdict} ({row.check})")
        return 1
    print(f"quality gate passed: {len(table)} checks")
    return 0


def run_speed(args: argparse.Namespace) -> int:
    from eval.speed import run_all, save, table

    names = args.impls or [n for n, s in impls.available().items() if isinstance(s, impls.Available)]
    results, roofline = table(run_all(names, args.threads))
    frame = pd.DataFrame(results).set_index("impl")
    columns = [
        c
        for c in (
            "windows_per_s",
            "ratio_to_roofline",
            "ceiling",
            "ratio_to_sklearn",
            "compile_s",
            "step_ms",
            "five_products_ms",
            "draw_ms",
            "error",
        )
        if c in frame
    ]
    with pd.option_context("display.width", 200, "display.float_format", "{:.4g}".format):
        print(frame[columns].to_string())
    print(
        f"roofline: {roofline:,.0f} windows/s ({args.threads} thread(s)); saved {save(results, roofline, args.threads)}"
    )
    return 0


def run_perf_check(args: argparse.Namespace) -> int:
    from eval.perf import check

    return check(args.benchmark, args.baseline, args.update_baseline)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m eval", description=__doc__)
    commands = parser.add_subparsers(dest="command", required=True)
    q = commands.add_parser("quality", help="sample-quality regression gate against the committed baseline")
    q.add_argument("--baseline", type=Path, default=quality.BASELINE)
    q.add_argument("--update-baseline", action="store_true", help="rewrite the baseline on purpose")
    q.add_argument("--impls", type=lambda s: [x for x in s.split(",") if x], default=None)
    q.add_argument("--results", type=Path, default=None, help="gate an existing run folder instead of training")
    s = commands.add_parser("speed", help="throughput per implementation beside the roofline and scikit-learn")
    s.add_argument("--impls", type=lambda s: [x for x in s.split(",") if x], default=None)
    s.add_argument("--threads", type=int, default=1)
    p = commands.add_parser("perf-check", help="compare pytest-benchmark ratios to the roofline with the baseline")
    p.add_argument("benchmark", type=Path)
    p.add_argument("--baseline", type=Path, default=quality.BASELINE.with_name("perf.json"))
    p.add_argument("--update-baseline", action="store_true")
    args = parser.parse_args(argv)
    handlers = {"quality": run_quality, "speed": run_speed, "perf-check": run_perf_check}
    try:
        return handlers[args.command](args)
    except (quality.BaselineError, HarnessError, SourceError, ValueError) as error:
        print(f"error: {error}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
