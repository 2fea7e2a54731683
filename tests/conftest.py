"""Shared fixtures: the ../shared test data (skipped with a reason when absent)."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

SHARED = Path(__file__).resolve().parents[1].parent / "shared" / "data"
POP_MIDI = SHARED / "pop_music_midi"
ORACLE = SHARED / "pop_music_midi_note_states.npz"
JSB = SHARED / "jsb_chorales"


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


from hypothesis import settings  # noqa: E402

# Reproducible fuzzing: the same examples on every machine and in CI, no example database on disk.
settings.register_profile("project", derandomize=True, database=None, deadline=None, print_blob=True)
settings.load_profile("project")
