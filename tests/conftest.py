"""Shared fixtures and the test tiers.

Tiers by cost (pyproject.toml declares the markers; README, "Tests"):

- ``unit``: in-process, seconds. An unmarked test is a unit test.
- ``bench``: starts the bench end to end on tiny synthetic data.
- ``recipe``: trains a real recipe, builds Bach or a benchmark, or enumerates 2^20 states (``tox -e recipe``).

The tiers cannot rot silently: a unit test that starts the bench (in process or through the command line) fails,
and so does one that asks for a finished run. The finished runs themselves are made once per session, one per
model (the window RBM, the RNN-RBM, the RNN-NADE), and shared: a test that changes a run works on its own copy
(``copy_run``).
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import pandas as pd
import pytest
from hypothesis import settings

ROOT = Path(__file__).resolve().parents[1]
SHARED = ROOT.parent / "shared" / "data"
POP_MIDI = SHARED / "pop_music_midi"
ORACLE = SHARED / "pop_music_midi_note_states.npz"
JSB = SHARED / "jsb_chorales"

TIERS = ("unit", "bench", "recipe")
# The environment variable the harness reads (eval.bench.harness.run_bench): while it is set, starting the bench
# is refused with its text. Set for every unit test, inherited by the processes the test starts.
NO_BENCH = "RBM_BENCH_NO_BENCH"
# Fixtures that hold a finished bench run: asking for one is starting the bench.
RUN_FIXTURES = {"window_run", "rnn_run", "nade_run"}

# Reproducible fuzzing: the same examples on every machine and in CI, no example database on disk. 200 examples
# per test in the CI tiers; `tox -e recipe` runs the fuzz tests again with 1,000 (--hypothesis-profile recipe).
settings.register_profile("project", derandomize=True, database=None, deadline=None, print_blob=True)
settings.register_profile("ci", parent=settings.get_profile("project"), max_examples=200)
settings.register_profile("recipe", parent=settings.get_profile("project"), max_examples=1000)


def pytest_configure(config: pytest.Config) -> None:
    """The CI profile unless ``--hypothesis-profile`` names another (loaded here, not at import: a test module that
    imports this file must not undo the option)."""
    if not config.getoption("hypothesis_profile", default=None):
        settings.load_profile("ci")


def tier_of(item: pytest.Item) -> str:
    marked = [tier for tier in TIERS if item.get_closest_marker(tier)]
    if len(marked) > 1:
        raise pytest.UsageError(f"{item.nodeid} is marked {' and '.join(marked)}: a test belongs to one tier")
    return marked[0] if marked else "unit"


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Unmarked tests are ``unit``; a unit test that asks for a finished run is refused before anything runs."""
    misplaced = []
    for item in items:
        tier = tier_of(item)
        if tier == "unit":
            item.add_marker(pytest.mark.unit)
            if RUN_FIXTURES & set(getattr(item, "fixturenames", ())):
                misplaced.append(item.nodeid)
    if misplaced:
        raise pytest.UsageError(
            f"{len(misplaced)} unit test(s) use a finished bench run ({', '.join(sorted(RUN_FIXTURES))}): mark them "
            f"bench or recipe: {', '.join(misplaced[:5])}"
        )


@pytest.fixture(autouse=True)
def _unit_tests_start_no_bench(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> None:
    """A unit test that starts the bench fails, with the reason (the harness refuses while ``NO_BENCH`` is set)."""
    if tier_of(request.node) == "unit":
        monkeypatch.setenv(
            NO_BENCH, f"{request.node.nodeid} is a unit test: mark it bench or recipe to start the bench"
        )
    else:
        monkeypatch.delenv(NO_BENCH, raising=False)


@pytest.fixture(scope="session")
def shared_data() -> Path:
    """The ../shared/data folder; tests using it skip when a clone has no ../shared."""
    if not ORACLE.exists():
        pytest.skip(f"needs the shared test data at {SHARED} (absent in a user's clone; CI has it)")
    return SHARED


def pytest_addoption(parser) -> None:
    parser.addoption(
        "--device",
        default="cpu",
        choices=["cpu", "cuda"],
        help="run the implementation tests on this device (the NumPy reference stays on the CPU)",
    )


@pytest.fixture(scope="session")
def device(request) -> str:
    return request.config.getoption("--device")


@pytest.fixture(scope="session", autouse=True)
def private_runs_folder(tmp_path_factory) -> Path:
    """Run folders go to a temporary folder (``$RBM_BENCH_RUNS``), never into the checkout's reports/runs."""
    path = tmp_path_factory.mktemp("runs")
    os.environ["RBM_BENCH_RUNS"] = str(path)  # read by core.paths.runs_dir at each call, and by child processes
    return path


@pytest.fixture(scope="session")
def cache_dir(tmp_path_factory) -> Path:
    """A dataset cache private to this test session."""
    return tmp_path_factory.mktemp("dataset-cache")


# ------------------------------------------------------------------ the shared finished runs


def installed_frameworks() -> list[str]:
    """Every implementation whose framework imports here, NumPy (the reference) first."""
    import impls

    return [name for name, status in impls.available().items() if isinstance(status, impls.Available)]


def other_framework() -> str | None:
    """The first installed framework besides NumPy, or None."""
    return next((name for name in installed_frameworks() if name != "numpy"), None)


@dataclass(frozen=True)
class FinishedRun:
    """A finished run made by ``python -m eval bench`` (never changed by a test: copy it with ``copy_run``)."""

    path: Path
    frame: pd.DataFrame
    impls: list[str]
    profile: Path  # the profile file it ran
    stdout: str
    stderr: str
    runs: Path  # its $RBM_BENCH_RUNS (the history is kept beside it)


# The window RBM's run: the quick profile on synthetic data, tiny scorer, the reference and one more framework.
WINDOW_PROFILE = {
    "extends": "quick",
    "data": {"source": "synthetic"},
    "run": {"epochs": 3, "executor": "serial", "seeds": [0], "timing_epochs": 2},
    "eval": {"ais_betas": 200, "ais_runs": 32, "gibbs_steps": 10, "raise_betas": 100, "ll_windows": 30},
}
# The RNN-RBM's: 10 hidden units, few enough to enumerate (the exact per-frame log Z is the oracle), every framework,
# one seed (each framework's task is 12-28 s here: the run is the bench tier's largest single cost).
RNN_PROFILE = {
    "extends": "quick",
    "data": {"source": "synthetic"},
    "model": {"kind": "rnn_rbm", "n_hidden": 10, "n_recurrent": 8, "cd_steps": 3, "batch_size": 4,
              "chunk_length": 32, "learning_rate": 0.05, "lr_schedule": "constant"},
    "run": {"epochs": 4, "executor": "serial", "seeds": [0], "timing_epochs": 2},
    "eval": {"ais_betas": 300, "ais_runs": 32, "raise_betas": 300, "raise_windows": 0, "ll_windows": 12,
             "n_samples": 4, "piece_rows": 64, "sample_start": "zeros"},
}  # fmt: skip


# The RNN-NADE's: the RNN-RBM's data and sizes, every framework, one seed; exact scoring of every test frame is cheap.
NADE_PROFILE = {
    "extends": "quick",
    "data": {"source": "synthetic"},
    "model": {"kind": "rnn_nade", "n_hidden": 10, "n_recurrent": 8, "batch_size": 4, "chunk_length": 32,
              "learning_rate": 0.01, "lr_schedule": "constant"},
    "run": {"epochs": 3, "executor": "serial", "seeds": [0], "timing_epochs": 2},
    "eval": {"curve_every": 1, "ll_windows": 100000, "n_samples": 4, "piece_rows": 64},
}  # fmt: skip


def toml_value(value: object) -> str:
    """A scalar, list or (inline) table as TOML."""
    if isinstance(value, dict):
        return "{" + ", ".join(f"{key} = {toml_value(item)}" for key, item in value.items()) + "}"
    return json.dumps(value)


def profile_toml(profile: dict) -> str:
    """A profile as TOML (tables of scalars and lists: what the profiles above hold)."""
    lines = [f"extends = {json.dumps(profile['extends'])}"]
    for table, values in profile.items():
        if isinstance(values, dict):
            lines += [f"[{table}]", *(f"{key} = {toml_value(value)}" for key, value in values.items())]
    return "\n".join(lines) + "\n"


def finish_run(
    folder: Path, name: str, profile: dict, cache: Path, exit_codes: tuple[int, ...] = (0,), **variables: str
) -> FinishedRun:
    """Run ``python -m eval bench`` on ``profile`` with its runs and history under ``folder`` (and ``variables``
    in its environment, e.g. ``RBM_BENCH_FAULT``); it must exit with one of ``exit_codes`` and finish its run."""
    from eval.bench.runfolder import RunFolder

    folder.mkdir(parents=True, exist_ok=True)
    path = folder / f"{name}.toml"
    path.write_text(profile_toml(profile))
    runs = folder / "runs"
    environment = {k: v for k, v in os.environ.items() if k not in ("RBM_BENCH_HISTORY", "RBM_BENCH_FAULT", NO_BENCH)}
    environment |= {"RBM_BENCH_RUNS": str(runs), "RBM_BENCH_CACHE": str(cache), **variables}
    command = [sys.executable, "-m", "eval", "bench", "--profile", str(path)]
    done = subprocess.run(command, cwd=ROOT, env=environment, capture_output=True, text=True, timeout=900)
    assert done.returncode in exit_codes, f"the {name} run exited {done.returncode}: {done.stderr[-3000:]}"
    (run,) = runs.iterdir()
    return FinishedRun(run, RunFolder(run).results(), list(profile["run"]["impls"]), path, done.stdout,
                       done.stderr, runs)  # fmt: skip


@pytest.fixture(scope="session")
def window_run(tmp_path_factory, cache_dir) -> FinishedRun:
    """The window RBM's finished run (NumPy and one more framework, one seed, 3 epochs)."""
    impls = ["numpy", *([other_framework()] if other_framework() else [])]
    profile = {**WINDOW_PROFILE, "run": {**WINDOW_PROFILE["run"], "impls": impls}}
    return finish_run(tmp_path_factory.mktemp("window-run"), "tiny", profile, cache_dir)


@pytest.fixture(scope="session")
def rnn_run(tmp_path_factory, cache_dir) -> FinishedRun:
    """The RNN-RBM's finished run (every installed framework, one seed, 4 epochs)."""
    profile = {**RNN_PROFILE, "run": {**RNN_PROFILE["run"], "impls": installed_frameworks()}}
    return finish_run(tmp_path_factory.mktemp("rnn-run"), "rnn", profile, cache_dir)


@pytest.fixture(scope="session")
def nade_run(tmp_path_factory, cache_dir) -> FinishedRun:
    """The RNN-NADE's finished run (every installed framework, one seed, 3 epochs)."""
    profile = {**NADE_PROFILE, "run": {**NADE_PROFILE["run"], "impls": installed_frameworks()}}
    return finish_run(tmp_path_factory.mktemp("nade-run"), "nade", profile, cache_dir)


@pytest.fixture
def copy_run(tmp_path):
    """``copy_run(run)``: a private copy of a finished run's folder, for a test that changes it."""

    def copy(run: FinishedRun, name: str = "copy") -> Path:
        return Path(shutil.copytree(run.path, tmp_path / name))

    return copy
