"""``python -m eval COMMAND``: the harness and the gates, without rendering a report.

``bench``       train, score and time every implementation of a profile (results only; ``python -m reports
                bench`` adds the report)
``quality``     the sample-quality regression gate against reports/baselines/quality.json (``--history``: also
                record the run into the history and fail on a regression against this machine's recent commits)
``speed``       training throughput per implementation beside the roofline and scikit-learn, in one run
``scaling``     throughput and peak memory over a grid of hidden units and batch sizes
``perf-check``  pytest-benchmark ratios to the roofline against reports/baselines/perf.json
``margins``     derive the verdict's margins of one (model, dataset) from a calibration run into
                reports/baselines/margins/<model>-<dataset>.json (``--plan PROFILE``: the sweep such a run needs)
"""

from __future__ import annotations

import argparse
import json
import sys
from functools import partial
from pathlib import Path

import pandas as pd

from core.files import atomic_write_text
from eval.bench.cli import add_bench_arguments, bench_main, main_guard
from eval.bench.harness import run_bench
from eval.bench.runfolder import RunFolder
from eval.config import ConfigError, load_profile
from eval.gates import quality
from eval.history import keep_in_history
from impls import frameworks


def _names(text: str) -> list[str]:
    return [x.strip() for x in text.split(",") if x.strip()]


def history_gate(folder: RunFolder, frame: pd.DataFrame) -> bool:
    """Record a finished run into the history and judge its machine's series of the verdict's scores (True: fail)."""
    from eval.history import store
    from eval.scoring.catalogue import verdict_scores

    path = store.record(folder.path)
    return trend_gate(path, frame, [m for m in verdict_scores() if m in set(frame.metric)])


def trend_gate(path: Path, frame: pd.DataFrame, metrics: list[str]) -> bool:
    """Judge the recorded rows' series on their machine against its recent commits (True: fail)."""
    from eval.history import store, trend

    machine = pd.read_parquet(path, columns=["machine"]).machine.iloc[0]
    print(f"recorded in the history: {path}")
    where = {"profile": str(frame.profile.iloc[0]), "dataset": str(frame.dataset.iloc[0]), "machine": machine}
    table = trend.gate({m: store.series(m, **where) for m in metrics})
    if table.empty:
        print("trend gate: no history yet")
        return False
    for row in table[table.status.isin(["regression", "change", "improvement"])].itertuples():
        print(
            f"{'FAIL' if row.failed else 'note'} trend {row.impl} {row.metric}: {row.status} since "
            f"{row.first_commit[:12]} (shift {row.shift:.4g}, margin {row.margin:.4g}, p {row.p_value:.2g})"
        )
    shorter, unjudged = int((table.status == "too short").sum()), int((table.status == "not judged").sum())
    print(
        f"trend gate: {len(table)} series, {int(table.failed.sum())} failing, {shorter} too short to judge"
        + (f", {unjudged} not judged (no margin calibrated for their model and dataset)" if unjudged else "")
    )
    return bool(table.failed.any())


def _quality_run(args: argparse.Namespace, baseline: dict | None) -> tuple[RunFolder, pd.DataFrame]:
    """The run the gate judges: ``--results``, or a quick-profile run trained now at the baseline's seeds."""
    if args.results:
        folder = RunFolder.open(args.results)
        return folder, folder.results()
    wanted = args.impls or (list(baseline["metrics"]) if baseline else None)
    seeds = quality.recipe(baseline["spec"])["run.seeds"] if baseline else list(quality.SEEDS)  # the baseline's
    profile = load_profile("quick").override("quality gate", run={"seeds": seeds, "impls": wanted})
    if baseline:  # fail fast: a quick profile changed since the baseline was made trains for nothing
        quality.check_run(profile.to_dict(), None, baseline, where="the quick profile")
    result = run_bench(profile)
    print(f"run folder: {result.folder.path}")
    return result.folder, result.frame


def _update_baseline(path: Path, folder: RunFolder, frame: pd.DataFrame, spec: dict, summary, versions: dict,
                     data_hash: str) -> int:  # fmt: skip
    """Rewrite the baseline from this run (complete or absent: the old one stays on failure); print what changed."""
    from eval.environment import describe_environment

    old = None
    if path.exists():
        try:
            old = quality.load_baseline(path)
        except quality.BaselineError:
            old = None
    profiles = sorted(str(p) for p in frame.profile.dropna().unique()) if "profile" in frame else []
    try:
        as_run = quality.profile_from_dict(spec).to_dict()  # validated, defaults filled
    except (ConfigError, KeyError, TypeError, ValueError) as error:
        raise quality.BaselineError(f"{folder.spec}: not a profile ({error}); give a complete run folder") from None
    new = quality.make_baseline(
        summary, versions, describe_environment(), ", ".join(profiles) or "unknown", as_run, data_hash
    )
    if problem := quality.baseline_problem(new):  # never write a baseline the gate would refuse to read
        raise quality.BaselineError(f"{folder.path}: cannot make a baseline of this run: {problem}")
    path.parent.mkdir(parents=True, exist_ok=True)
    atomic_write_text(path, json.dumps(new, indent=1) + "\n")
    print(f"baseline rewritten: {path}")
    print("\n".join(quality.baseline_changes(old, new)))
    return 0


def run_quality(args: argparse.Namespace) -> int:
    """The sample-quality gate: judge a run against the baseline (or rewrite the baseline from it)."""
    path = args.baseline
    baseline = None if args.update_baseline else quality.load_baseline(path)  # fail fast: before any training
    folder, frame = _quality_run(args, baseline)
    spec = folder.read_json(folder.spec)  # the profile as run (one line, exit 2, when missing or corrupt)
    data_hash = quality.dataset_hash(frame)
    versions = {
        i: str(v) for i, v in frame.groupby("impl").framework_version.first().items() if str(v) not in ("", "nan")
    }
    summary = quality.summarise(frame)
    if args.update_baseline:
        return _update_baseline(path, folder, frame, spec, summary, versions, data_hash)
    table = quality.gate(summary, baseline, expected=args.impls, spec=spec, data_hash=data_hash)
    for note in quality.version_notes(baseline, versions):
        print(note)
    with pd.option_context("display.width", 200, "display.max_rows", 500, "display.float_format", "{:.5g}".format):
        print(table.to_string(index=False))
    failed = quality.failures(table)
    if args.history:
        trend_failed = history_gate(folder, frame)  # recorded whatever the baseline says
    else:
        trend_failed = False
        if not args.results:  # every run this gate trains is kept, as every bench run is
            keep_in_history(folder.path)
    if len(failed):
        for _, row in failed.iterrows():
            print(f"FAIL {row.impl} {row.metric}: {row.verdict} ({row.check})")
        return 1
    if trend_failed:
        return 1
    print(f"quality gate passed: {len(table)} checks")
    return 0


def run_speed(args: argparse.Namespace) -> int:
    from eval.timing.roofline import noisy_share_lines
    from eval.timing.speed import run_all, save, speed_table

    names = args.impls or list(frameworks())
    if args.ablation:
        return run_ablation(names, args.device, args.repeats)
    frame, roof = speed_table(run_all(names, args.threads, args.device))
    with pd.option_context("display.width", 200, "display.float_format", "{:.4g}".format):
        print(frame.to_string())
    for line in noisy_share_lines(frame):
        print(line)
    print(f"roofline: {roof:,.0f} windows/s ({args.threads} thread(s)); saved {save(frame, roof, args.threads)}")
    return 0


def run_ablation(names: list[str], device: str, repeats: int) -> int:
    from eval.timing.ablation import ablation_table, run_ablation, verdicts
    from eval.timing.roofline import noisy_share_lines
    from eval.timing.speed import save

    table = ablation_table(run_ablation(names, [1, 2], device, repeats, difference=partial(window_difference, device)))
    with pd.option_context("display.width", 220, "display.float_format", "{:.4g}".format):
        print(table.to_string(index=False))
    print("\n".join(verdicts(table)))
    for line in noisy_share_lines(table):
        print(line)
    print(f"saved {save(table.set_index('impl'), float('nan'), 0, kind='ablation')}")
    return 0


def window_difference(device: str, impl: str, mode: str) -> float:
    """The window RBM's equivalence check of ``impl`` in ``mode`` at the default shape (its plug-in's)."""
    from eval.models import plugin
    from impls import RBMConfig, framework, init_params, load

    config = RBMConfig(device=framework(impl).device_for(device))
    return plugin("rbm").mode_difference(load(impl).in_mode(mode), config, init_params(config, 0))


def run_scaling(args: argparse.Namespace) -> int:
    from eval.timing.scaling import main as scaling_main

    return scaling_main(args)


def run_perf_check(args: argparse.Namespace) -> int:
    from eval.gates.perf import check, measurement_frame

    failed = check(args.benchmark, args.baseline, args.update_baseline)
    if args.history:  # the ratios join the history; the trend gate judges them against this machine's commits
        from eval.environment import describe_environment
        from eval.history import store

        frame = measurement_frame(args.benchmark)
        rows = store.measurement_rows(frame, describe_environment(), f"perf-{args.benchmark.stat().st_mtime_ns}")
        failed |= trend_gate(store.write_rows(rows), frame, sorted(set(frame.metric)))
    return int(failed)


def run_margins(args: argparse.Namespace) -> int:
    """Derive and write one calibration, or (``--plan``) print the sweep a calibration run of a profile needs."""
    from eval.config import profile_from_dict
    from eval.gates import margins
    from eval.scoring import calibrations

    calibrations.calibrations(args.out)  # fail fast: a broken calibration beside the new one is one line
    if args.plan:
        recipe = margins.plan(load_profile(args.plan))
        print(f"# calibration of {args.plan}: {recipe.change_description}; fault: {recipe.fault_description}")
        print("[sweep]\n" + "\n".join(f'"{k}" = {json.dumps(v)}' for k, v in recipe.sweep().items()))
        return 0
    if args.calibration is None:
        raise ConfigError("python -m eval margins: give a finished calibration run (or --plan PROFILE)")
    calibration, noise = RunFolder.open(args.calibration), RunFolder.open(args.noise)
    rows = calibration.results()
    spec = calibration.read_json(calibration.spec)
    profile = profile_from_dict(spec)
    recipe = margins.plan(profile)
    margins.check_calibration_run(profile, recipe, str(calibration.path))  # before the noise run: say what is wrong
    key, noise_rows = margins.key_of(rows, str(calibration.path)), noise.results()
    if margins.key_of(noise_rows, str(noise.path)) != key:
        raise ConfigError(f"{noise.path}: the noise run is not of {key[0]} on {key[1]}, as the calibration run is; "
                          "give --noise a run of every framework with the same model and data")  # fmt: skip
    scores = margins.derive(rows, noise_rows, recipe, str(calibration.path))
    with pd.option_context("display.width", 250, "display.max_columns", 20):
        print(margins.table(scores).to_string())
    manifest = json.loads(calibration.dataset_manifest.read_text())
    row_units = int(manifest["n_visible"]) // max(int(spec["data"].get("num_timesteps", 1)), 1)
    about = {"profile": profile.name, "row_units": row_units, "basis": args.basis or profile.description}
    path = margins.write(calibration.path, noise.path, scores, recipe, key, folder=args.out, **about)
    print(f"margins of {key[0]} on {key[1]} written: {path}")
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m eval", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    commands = parser.add_subparsers(dest="command", required=True)
    b = commands.add_parser("bench", help="train, score and time every implementation; write results (no report)")
    add_bench_arguments(b)
    q = commands.add_parser("quality", help="sample-quality regression gate against the committed baseline")
    q.add_argument("--baseline", type=Path, default=quality.BASELINE)
    q.add_argument("--update-baseline", action="store_true", help="rewrite the baseline on purpose")
    q.add_argument("--impls", type=_names, default=None, help="gate only these (default: every baseline one)")
    q.add_argument("--results", type=Path, default=None, help="gate an existing run folder instead of training")
    q.add_argument("--history", action="store_true", help="record the run in the history; fail on a trend regression")
    s = commands.add_parser("speed", help="throughput per implementation beside the roofline and scikit-learn")
    s.add_argument("--impls", type=_names, default=None)
    s.add_argument("--threads", type=int, default=1)
    s.add_argument("--device", default="cpu", choices=["cpu", "cuda"])
    s.add_argument("--ablation", action="store_true", help="every execution mode at 1 and 2 threads, each checked")
    s.add_argument("--repeats", type=int, default=3, help="--ablation: interleaved rounds, each mode's median kept")
    c = commands.add_parser("scaling", help="throughput and peak memory over hidden units x batch sizes")
    c.add_argument("--impls", type=_names, default=None)
    c.add_argument("--device", default="cpu", choices=["cpu", "cuda"])
    c.add_argument("--profile", default="scaling", help="the grid: a profile with [scaling] sizes")
    c.add_argument("--out", type=Path, default=None, help="folder for scaling.csv and scaling.png")
    p = commands.add_parser("perf-check", help="compare pytest-benchmark ratios to the roofline with the baseline")
    p.add_argument("benchmark", type=Path)
    p.add_argument("--baseline", type=Path, default=quality.BASELINE.with_name("perf.json"))
    p.add_argument("--update-baseline", action="store_true")
    p.add_argument(
        "--history", action="store_true", help="record the ratios in the history; fail on a trend regression"
    )
    m = commands.add_parser("margins", help="derive one (model, dataset)'s margins from a calibration run")
    m.add_argument("calibration", type=Path, nargs="?", help="a finished calibration run (e.g. --profile margins)")
    m.add_argument(
        "--noise",
        type=Path,
        default=quality.BASELINE.parents[1] / "example",
        help="a run of every framework on the same model and data (default: the example report)",
    )
    m.add_argument("--out", type=Path, default=quality.BASELINE.with_name("margins"), help="the calibrations' folder")
    m.add_argument("--plan", default=None, help="print the [sweep] a calibration run of this profile needs")
    m.add_argument("--basis", default=None, help="the recipe in words, recorded (default: the profile's description)")
    args = parser.parse_args(argv)
    handlers = {
        "bench": lambda a: bench_main(a, record=keep_in_history),
        "quality": run_quality,
        "speed": run_speed,
        "scaling": run_scaling,
        "perf-check": run_perf_check,
        "margins": run_margins,
    }

    def body() -> int:
        try:
            return handlers[args.command](args)
        except quality.BaselineError as error:
            raise ConfigError(str(error)) from None

    return main_guard(body)


if __name__ == "__main__":
    sys.exit(main())
