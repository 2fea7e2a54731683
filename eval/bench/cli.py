"""The bench command's options and exit codes, shared by ``python -m eval bench`` and ``python -m reports bench``.

Exit codes a CI can trust: 0 every requested task ran (``skipped: not
installed`` is reported, and fails only under ``--strict``); 1 a task failed,
every task was skipped (nothing ran) or diverged (nothing scored), or one was
skipped under ``--strict``; 2 bad input, an incomplete run or an OS error (one
line, no traceback, nothing computed is lost); 130 interrupted (the run folder
stays resumable).
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable
from pathlib import Path

from datasets.sources import source_help
from eval.bench.extend import extended_profile
from eval.bench.harness import BenchResult, run_bench
from eval.bench.runfolder import RunFolder
from eval.config import PROFILES, load_profile
from impls import frameworks


def _ints(text: str) -> list[int]:
    try:
        return [int(x) for x in text.split(",") if x.strip()]
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r}: give comma-separated integers, e.g. 0,1,2") from None


def _names(text: str) -> list[str]:
    return [x.strip() for x in text.split(",") if x.strip()]


def _modes(text: str) -> dict[str, str]:
    pairs = [x.strip().partition("=") for x in text.split(",") if x.strip()]
    if any(not name or not mode for name, _, mode in pairs):
        raise argparse.ArgumentTypeError(f"{text!r}: give framework=mode pairs, e.g. torch=compile,tf=xla")
    return {name.strip(): mode.strip() for name, _, mode in pairs}


def add_bench_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--profile",
        default="default",
        help=f"a profile in eval/profiles ({', '.join(sorted(p.stem for p in PROFILES.glob('*.toml')))}) or a path",
    )
    parser.add_argument("--impls", type=_names, default=None, help=f"comma-separated: {','.join(frameworks())}")
    parser.add_argument("--dataset", default=None, help=source_help())
    parser.add_argument("--epochs", type=int, default=None)
    parser.add_argument("--seeds", type=_ints, default=None)
    parser.add_argument("--threads", type=int, default=None)
    parser.add_argument("--device", default=None, help="cpu | cuda (a CPU-only framework stays on the CPU)")
    parser.add_argument("--executor", default=None, help="serial | local[:N] | dask:local:N | dask:<scheduler address>")
    parser.add_argument(
        "--modes",
        type=_modes,
        default=None,
        help="execution modes by framework: torch=compile,tf=xla (default: "
        "each framework's first mode; python -m eval speed --ablation lists them)",
    )
    parser.add_argument(
        "--ablation",
        action="store_true",
        default=None,
        help="also time every other execution mode of each framework beside its equivalence check ([run] ablation; "
        'the report\'s "Execution modes" table)',
    )
    parser.add_argument("--max-rows-per-piece", type=int, default=None)
    parser.add_argument("--max-ticks", type=int, default=None)
    parser.add_argument("--resume", type=Path, default=None, help="complete an interrupted run folder")
    parser.add_argument(
        "--extend",
        type=Path,
        default=None,
        help="train a finished long run's tasks on from their last checkpoint to --epochs, in a new run folder",
    )
    parser.add_argument("--strict", action="store_true", help="fail (exit 1) when an implementation was skipped")


def overrides(args: argparse.Namespace) -> dict[str, dict]:
    """The profile keys the options set (None: not given)."""
    return {
        "run": {
            "impls": args.impls,
            "seeds": args.seeds,
            "epochs": args.epochs,
            "threads": args.threads,
            "device": args.device,
            "executor": args.executor,
            "modes": args.modes,
            "ablation": args.ablation,
        },
        "data": {
            "source": args.dataset,
            "max_rows_per_piece": args.max_rows_per_piece,
            "max_ticks": args.max_ticks,
        },
    }


def execute(args: argparse.Namespace) -> BenchResult:
    """Validate everything, then run or resume; raises `ConfigError` before any folder exists."""
    if args.resume:
        folder = RunFolder.open(args.resume)
        return run_bench(None, folder, overrides=overrides(args))  # --executor may change; the rest must agree
    if args.extend:
        source = RunFolder.open(args.extend)
        source.check_complete()
        return run_bench(extended_profile(source, overrides(args)), extend=source)
    profile = load_profile(args.profile).override("option", **overrides(args))
    return run_bench(profile)


def report_outcome(result: BenchResult, strict: bool) -> int:
    """Print what did not run as asked; return the exit code."""
    for line in result.skipped:
        print(f"skipped {line}", file=sys.stderr)
    for line in result.diverged[:10]:
        print(f"diverged {line}", file=sys.stderr)
    for line in result.failed:
        print(f"FAILED {line}", file=sys.stderr)
    nothing_ran = result.ran == 0
    diverged_tasks = {line.split(":", 1)[0] for line in result.diverged}
    all_diverged = not nothing_ran and len(diverged_tasks) >= result.ran  # no task produced a score
    if result.failed or (strict and result.skipped) or nothing_ran or all_diverged:
        what = "nothing ran: " if nothing_ran else "every task diverged: " if all_diverged else ""
        print(
            f"error: {what}{len(result.failed)} failed, {len(result.skipped)} skipped; see {result.folder.path}",
            file=sys.stderr,
        )
        return 1
    return 0


def bench_main(
    args: argparse.Namespace,
    after: Callable[[BenchResult], None] | None = None,
    record: Callable[[Path], None] | None = None,
) -> int:
    """Run the bench from parsed options; ``after`` (e.g. the report) runs on the finished run, then ``record``
    (the command line's: `eval.history.keep_in_history`) keeps it; the bench itself knows no history."""
    result = execute(args)
    if after is not None:
        after(result)
    print(f"run folder: {result.folder.path}")
    if record is not None:
        record(result.folder.path)
    return report_outcome(result, args.strict)


def main_guard(body: Callable[[], int]) -> int:
    """Run a command body, turning the project's errors into one line and an exit code."""
    from core.errors import UserError, os_error_line
    from eval.bench.executors import stop_running_processes

    try:
        return body()
    except (UserError, ValueError) as error:  # the project's error type (ConfigError, SourceError, IncompleteRun...)
        print(f"error: {error}", file=sys.stderr)
        return 2
    except OSError as error:
        print(f"error: {os_error_line(error)}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        stop_running_processes()
        print("interrupted: finished tasks are kept; complete the run with --resume <run folder>", file=sys.stderr)
        return 130
