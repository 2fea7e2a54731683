"""What a user sees during a run and after: a line per finished task in a CI log, records without local paths."""

from __future__ import annotations

import io
import json
import re
import tempfile
from pathlib import Path

import pytest

from eval.bench.progress import Progress

ROOT = Path(__file__).resolve().parents[2]


class Terminal(io.StringIO):
    def isatty(self) -> bool:
        return True


def test_off_a_terminal_each_finished_task_is_one_line_with_its_id_and_the_count_left():
    stream = io.StringIO()  # not a TTY, as stderr in a CI log
    ids = ["numpy-s0", "torch-s0", "numpy-s1"]
    with Progress(len(ids), "training", stream=stream) as progress:
        for index, task_id in enumerate(ids, 1):
            progress.done(task_id)
            lines = stream.getvalue().splitlines()
            assert len(lines) == index, "each task prints its line as it finishes, not at the end"
    for index, (task_id, line) in enumerate(zip(ids, lines), 1):
        assert re.fullmatch(rf"training {task_id} done in \d+ s \({index} of 3; {3 - index} left\)", line), line


def test_concurrent_tasks_give_the_phase_time_not_a_made_up_task_time():
    stream = io.StringIO()
    with Progress(2, "training", stream=stream, concurrent=True) as progress:
        progress.done("numpy-s0")
    assert re.fullmatch(r"training numpy-s0 done, \d+ s into the phase \(1 of 2; 1 left\)\n", stream.getvalue())


def test_log_false_prints_nothing_and_a_terminal_gets_a_bar_not_lines():
    quiet, terminal = io.StringIO(), Terminal()
    with Progress(2, "timing (quiet)", log=False, stream=quiet) as progress:
        progress.done("timing-numpy")
    assert quiet.getvalue() == ""
    with Progress(2, "timing (quiet)", stream=terminal) as progress:
        progress.done("timing-numpy")
    assert "timing-numpy done" not in terminal.getvalue() and "1/2" in terminal.getvalue()


@pytest.mark.bench
def test_a_tiny_bench_logs_each_task_and_records_no_absolute_path(window_run, cache_dir):
    """In a CI log (stderr captured) every task says it finished; env.json and the manifests name no local path."""
    tasks = len(window_run.impls)  # one seed: a training and a timing task per implementation
    for phase, task in (("training", "{impl}-s0"), (r"timing \(quiet\)", "timing-{impl}")):
        counts = []
        for impl in window_run.impls:
            line = rf"^{phase} {task.format(impl=impl)} done in (?:\d+ min )?\d+ s \((\d) of {tasks}; (\d) left\)$"
            found = re.search(line, window_run.stderr, re.M)
            assert found, (line, window_run.stderr)
            counts.append((int(found[1]), int(found[2])))
        assert sorted(counts) == [(i, tasks - i) for i in range(1, tasks + 1)], counts
    run, profile, tmp_path = window_run.path, window_run.profile, window_run.runs.parent
    local = [str(p) for p in (tmp_path, cache_dir, ROOT, Path.home(), Path(tempfile.gettempdir()))]

    def strings(value):
        if isinstance(value, dict):
            yield from (s for v in value.values() for s in strings(v))
        elif isinstance(value, list):
            yield from (s for v in value for s in strings(v))
        elif isinstance(value, str):
            yield value

    for name in ("env.json", "dataset_manifest.json", "inputs/dataset/manifest.json"):
        found = list(strings(json.loads((run / name).read_text())))
        absolute = [s for s in found if s.startswith("/") or any(place in s for place in local)]
        assert not absolute, (name, absolute)
    environment = json.loads((run / "env.json").read_text())
    assert environment["command"] == f"python -m eval bench --profile {profile.name}"
    assert json.loads((run / "dataset_manifest.json").read_text())["artifact_path"] == "inputs/dataset/dataset.npz"
