"""The report commands.

``python -m reports bench [options]`` runs the benchmark (`eval.bench`) and writes its report;
``python -m reports render RUN`` re-renders a finished run's report;
``python -m reports rescore RUN --betas N`` scores the seeds of a finished run whose likelihood bracket is too wide to
certify again at N temperatures, from their saved parameters (no training), and re-renders its report;
``python -m reports compare RUN_A RUN_B`` puts two runs side by side;
``python -m reports publish RUN DEST`` copies a report without its bulky inputs (e.g. to reports/example);
``python -m reports history import RUN...`` records finished runs into the history ($RBM_BENCH_HISTORY, default
reports/history) and ``python -m reports history [--profile P] [--out DIR]`` draws it (history.html).

Exit codes: 0 done, 1 a requested implementation failed (``--strict``: or was skipped; ``rescore``: a too-wide
bracket could not be scored again), 2 bad input or an
incomplete run (one line), 130 interrupted (resume with ``--resume``).
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import pandas as pd

from eval.bench.cli import add_bench_arguments, bench_main, main_guard
from eval.history import keep_in_history
from reports.compare import compare, differences, write_html
from reports.render import publish, render


def _bench(args: argparse.Namespace) -> int:
    def report(result) -> None:
        page = render(result.folder.path)
        print(result.folder.report_md.read_text().split("## Caveats")[0])
        print(f"report: {page}")

    return bench_main(args, after=report, record=keep_in_history)


def _compare(args: argparse.Namespace) -> int:
    table = compare(args.run_a, args.run_b, allow_different=args.different)
    for line in differences(args.run_a, args.run_b):
        print(f"different experiments: {line}")
    with pd.option_context("display.width", 180, "display.max_rows", 500, "display.float_format", "{:.4g}".format):
        print(table.to_string())
    print(f"\npage: {write_html(table, args.run_a, args.run_b, args.out or args.run_b / 'compare.html')}")
    return 0


def _rescore(args: argparse.Namespace) -> int:
    from eval.bench.rescore import rescore

    seeds = rescore(args.run, args.betas)
    for seed in seeds:
        print(seed.line(args.betas))
    print(f"report: {render(args.run)}")
    return 1 if any(seed.failed for seed in seeds) else 0  # a too-wide bracket left as it was: not done


def _history(args: argparse.Namespace) -> int:
    from eval.history import store
    from reports.history import render_history

    if args.action == "import":
        skip = (lambda line: print(f"skipped: {line}", file=sys.stderr)) if args.skip_incomplete else None
        for path in store.record_many(args.runs, skip=skip):
            print(f"recorded: {path}")
        return 0
    metrics = [m.strip() for m in args.metrics.split(",") if m.strip()] if args.metrics else None
    filters = {"profile": args.profile, "dataset": args.dataset, "device": args.device, "machine": args.machine}
    print(f"page: {render_history(args.out, metrics=metrics, impl=args.impl, **filters)}")
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m reports", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)  # fmt: skip
    commands = parser.add_subparsers(dest="command", required=True)
    add_bench_arguments(commands.add_parser("bench", help="train, score and time every implementation; write a report"))
    c = commands.add_parser("compare", help="two runs side by side")
    c.add_argument("run_a", type=Path)
    c.add_argument("run_b", type=Path)
    c.add_argument("--out", type=Path, default=None, help="HTML page (default: RUN_B/compare.html)")
    c.add_argument("--different", action="store_true", help="compare runs of different experiments, labelled so")
    r = commands.add_parser("render", help="re-render a finished run folder's report")
    r.add_argument("run", type=Path)
    beside = "finished runs of other models on the same music, in one table (default: the profile's)"
    r.add_argument("--beside", type=Path, nargs="+", default=None, help=beside)
    s = commands.add_parser("rescore", help="score a finished run's too-wide brackets again at more temperatures")
    s.add_argument("run", type=Path)
    s.add_argument("--betas", type=int, required=True, help="AIS and RAISE temperatures (more than the run's own)")
    p = commands.add_parser("publish", help="copy a run's report, results and audio (not its inputs) to a folder")
    p.add_argument("run", type=Path)
    p.add_argument("dest", type=Path)
    h = commands.add_parser("history", help="every recorded run over commits (history.html); import RUN...: record")
    h.add_argument("--out", type=Path, default=None, help="folder for history.html (default: the history folder)")
    for name in ("profile", "dataset", "device", "machine", "impl"):
        h.add_argument(f"--{name}", default=None, help=f"only this {name}" + (" (id or label)" * (name == "machine")))
    h.add_argument("--metrics", default=None, help="comma-separated scores (default: those the verdict and gates read)")
    actions = h.add_subparsers(dest="action")
    i = actions.add_parser("import", help="record finished run folders into the history ($RBM_BENCH_HISTORY)")
    i.add_argument("runs", type=Path, nargs="+")
    i.add_argument("--skip-incomplete", action="store_true", help="skip unfinished runs (a line each); record the rest")
    args = parser.parse_args(argv)
    handlers = {
        "bench": _bench,
        "compare": _compare,
        "render": lambda a: print(render(a.run, a.beside)) or 0,
        "rescore": _rescore,
        "publish": lambda a: print(publish(a.run, a.dest)) or 0,
        "history": _history,
    }
    return main_guard(lambda: handlers[args.command](args))


if __name__ == "__main__":
    sys.exit(main())
