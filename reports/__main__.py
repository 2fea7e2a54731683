"""The report commands.

``python -m reports bench [options]`` runs the benchmark and writes its report;
``python -m reports compare RUN_A RUN_B`` puts two runs side by side;
``python -m reports render RUN`` re-renders a run's report;
``python -m reports publish RUN DEST`` copies a report without its bulky inputs (e.g. to reports/example).
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import pandas as pd

from datasets.sources import SourceError
from eval.harness import HarnessError, load_profile, run_bench
from reports.compare import compare, write_html
from reports.render import headline_table, publish, render


def _ints(text: str) -> list[int]:
    try:
        return [int(x) for x in text.split(",") if x.strip()]
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r}: give comma-separated integers, e.g. 0,1,2") from None


def bench(args: argparse.Namespace) -> int:
    if args.resume:
        if not (args.resume / "spec.json").exists():
            raise HarnessError(f"{args.resume}: not a run folder (no spec.json); give reports/runs/<run>")
        profile = None
    else:
        profile = load_profile(args.profile)
        for key, section, value in (
            ("impls", "run", args.impls),
            ("seeds", "run", args.seeds),
            ("epochs", "run", args.epochs),
            ("threads", "run", args.threads),
            ("source", "data", args.dataset),
        ):
            if value is not None:
                profile[section][key] = value
        if profile["run"]["epochs"] < 1:
            raise HarnessError(f"--epochs is {profile['run']['epochs']}; it must be at least 1")
    run_dir, frame = run_bench(profile or {}, args.resume)
    report = render(run_dir)
    with pd.option_context("display.width", 160, "display.float_format", "{:.4g}".format):
        print(headline_table(frame).to_string())
    print(f"\nreport: {report}")
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m reports", description=__doc__)
    commands = parser.add_subparsers(dest="command", required=True)
    b = commands.add_parser("bench", help="train, score and time every installed implementation; write a report")
    b.add_argument("--profile", default="default", help="default | seed | quick | full | path/to/profile.toml")
    b.add_argument("--impls", type=lambda s: [x for x in s.split(",") if x], default=None)
    b.add_argument("--dataset", default=None, help="bach | midi:<folder> | polyphonic:<file> | synthetic")
    b.add_argument("--epochs", type=int, default=None)
    b.add_argument("--seeds", type=_ints, default=None)
    b.add_argument("--threads", type=int, default=None)
    b.add_argument("--resume", type=Path, default=None, help="complete an interrupted run folder")
    c = commands.add_parser("compare", help="two runs side by side")
    c.add_argument("run_a", type=Path)
    c.add_argument("run_b", type=Path)
    c.add_argument("--out", type=Path, default=None, help="HTML page (default: RUN_B/compare.html)")
    r = commands.add_parser("render", help="re-render a run folder's report")
    r.add_argument("run", type=Path)
    p = commands.add_parser("publish", help="copy a run's report, results and audio (not its inputs) to a folder")
    p.add_argument("run", type=Path)
    p.add_argument("dest", type=Path)
    args = parser.parse_args(argv)
    try:
        if args.command == "bench":
            return bench(args)
        if args.command == "render":
            print(render(args.run))
            return 0
        if args.command == "publish":
            if not (args.run / "report.html").exists():
                raise HarnessError(f"{args.run}: no report.html; give a finished run folder under reports/runs/")
            print(publish(args.run, args.dest))
            return 0
        for run in (args.run_a, args.run_b):
            if not (run / "results.csv").exists():
                raise HarnessError(f"{run}: no results.csv; give a finished run folder under reports/runs/")
        table = compare(args.run_a, args.run_b)
        with pd.option_context("display.width", 160, "display.max_rows", 500, "display.float_format", "{:.4g}".format):
            print(table.to_string())
        print(f"\npage: {write_html(table, args.run_a, args.run_b, args.out or args.run_b / 'compare.html')}")
        return 0
    except (HarnessError, SourceError, ValueError) as error:
        print(f"error: {error}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
