"""The memory guard knows every model: what cannot fit is one line before it is built, and what fits is timed at the
shape it trains (an RNN-RBM's chunks end with their music, so a huge batch or chunk length is bounded by the data).

Before: ``n_recurrent = 1000000`` was a 7 TiB traceback after the run folder existed, and ``batch_size = 1000000`` or
``chunk_length = 10**9`` had the timing process killed (it timed products at the configured, unreachable shape).
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
from conftest import RNN_PROFILE, profile_toml

from eval.bench.runfolder import RunFolder

ROOT = Path(__file__).resolve().parents[2]
pytestmark = pytest.mark.bench


def bench(tmp_path: Path, model: dict, run: dict | None = None) -> tuple[subprocess.CompletedProcess, Path]:
    """``python -m eval bench`` on the tiny RNN-RBM profile with ``model`` keys changed; the result and runs folder."""
    profile = {**RNN_PROFILE, "model": RNN_PROFILE["model"] | model}
    profile["run"] = RNN_PROFILE["run"] | {"impls": ["numpy"], "epochs": 2} | (run or {})
    path, runs = tmp_path / "mine.toml", tmp_path / "runs"
    path.write_text(profile_toml(profile))
    environment = {k: v for k, v in os.environ.items() if k not in ("RBM_BENCH_FAULT", "RBM_BENCH_NO_BENCH")}
    environment |= {"RBM_BENCH_RUNS": str(runs), "RBM_BENCH_HISTORY": str(tmp_path / "history")}
    command = [sys.executable, "-m", "eval", "bench", "--profile", str(path)]
    done = subprocess.run(command, cwd=ROOT, env=environment, capture_output=True, text=True, timeout=600)
    return done, runs


@pytest.mark.parametrize(
    ("model", "expected"),
    [
        ({"n_recurrent": 1_000_000}, "n_hidden 10, n_recurrent 1,000,000 needs about"),
        ({"n_hidden": 100_000_000}, "n_hidden 100,000,000, n_recurrent 8 needs about"),
        ({"cd_steps": 10**9}, "one update of 128 frames needs about"),
    ],
)
def test_what_cannot_fit_is_refused_in_one_line(tmp_path, model, expected):
    done, runs = bench(tmp_path, model)
    assert done.returncode == 2 and "Traceback" not in done.stderr, done.stderr[-2000:]
    assert len(done.stderr.strip().splitlines()) == 1 and expected in done.stderr, done.stderr
    if "parameters" in done.stderr:
        assert not runs.exists() or not any(runs.iterdir())  # refused before any folder exists


def test_a_batch_and_chunk_beyond_the_music_train_and_time_at_the_musics_shape(tmp_path):
    done, runs = bench(tmp_path, {"batch_size": 1_000_000, "chunk_length": 10**9}, {"epochs": 1})
    assert done.returncode == 0, done.stderr[-2000:]
    frame = RunFolder(next(runs.iterdir())).results()
    timing = frame[(frame.phase == "timing") & (frame.status == "ok")].set_index(["impl", "metric"]).value
    frames = timing["numpy", "step_frames"]
    assert 0 < frames < 10**6  # the largest update the music allows, not batch_size x chunk_length
    assert timing["numpy", "train_frames_per_s"] > 0 and timing["numpy", "ratio_to_roofline"] > 0
