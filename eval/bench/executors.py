"""Where tasks run: one after another, in N local processes, or on a Dask cluster.

Every executor runs a task the same way — `run_task_process`: one fresh
worker process with the profile's thread count, inputs checked by sha256,
outputs returned to the caller as bytes — so the numbers cannot depend on
where a task ran. Only the client writes the run folder. A task whose
process is killed (OOM killer, a lost Dask worker) is retried up to
``run.retries`` times with its attempt count in its rows; a Python error or
a timeout is reported as ``failed`` at once (it would fail again).

``serial``             one task at a time here (the default)
``local`` / ``local:N``  N worker processes here (N defaults to cores / threads)
``dask:local:N``       a `distributed.LocalCluster` of N single-threaded workers
``dask:ADDRESS``       an existing scheduler, e.g. ``dask:tcp://10.0.0.5:8786``
"""

from __future__ import annotations

import contextlib
import signal
import subprocess
import tempfile
import threading
from collections.abc import Iterator
from concurrent.futures import FIRST_COMPLETED, Future, ThreadPoolExecutor, wait
from dataclasses import dataclass, replace
from pathlib import Path

from core.files import atomic_write_text
from core.process import start_module
from eval.config.checks import ExecutorSpec, parse_executor  # noqa: F401  (the syntax is part of a profile)
from eval.contract.task import Task

RESULT_FILES = ("result.json", "samples.npy", "params.npz")


@dataclass
class Outcome:
    """What came back from one task: its output files (as bytes) or why it failed."""

    task: Task
    files: dict[str, bytes]
    failure: str = ""
    retry: bool = False  # killed from outside: worth another attempt


def _last_error(stderr: str) -> str:
    """The exception line of a traceback (``SomeError: message``), else the last line."""
    import re

    lines = [line.strip() for line in stderr.splitlines() if line.strip()]
    errors = [line for line in lines if re.match(r"^[\w.]+(Error|Exception|Interrupt|Exit|Mismatch)\b", line)]
    return ((errors or lines or ["no output"])[-1])[:300]


_RUNNING: set[subprocess.Popen] = set()
_LOCK = threading.Lock()


def run_task_process(task: Task, root: Path, pin: bool = True) -> Outcome:
    """Run one task in a fresh ``python -m eval.bench.worker`` process; inputs under ``root``; ``pin``: on cores of
    its own (`core.process.pinned_cores`), where this process starts every task of the machine."""
    with tempfile.TemporaryDirectory(prefix=f"rbm-{task.task_id}-") as scratch:
        scratch = Path(scratch)
        atomic_write_text(scratch / "task.json", task.to_json())
        process = start_module(
            "eval.bench.worker",
            [str(scratch / "task.json"), str(root), str(scratch)],
            task.threads,
            pin=pin,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        with _LOCK:
            _RUNNING.add(process)
        try:
            _, stderr = process.communicate(timeout=task.timeout_s)
        except subprocess.TimeoutExpired:
            process.kill()
            process.communicate()
            return Outcome(task, {}, f"timed out after {task.timeout_s:.0f} s (raise run.timeout_s)")
        finally:
            with _LOCK:
                _RUNNING.discard(process)
        if process.returncode < 0:
            name = signal.Signals(-process.returncode).name
            return Outcome(task, {}, f"worker process killed by {name}", retry=True)
        if process.returncode != 0 or not (scratch / "result.json").exists():
            return Outcome(task, {}, f"exit code {process.returncode}: {_last_error(stderr)}")
        return Outcome(task, {n: (scratch / n).read_bytes() for n in RESULT_FILES if (scratch / n).exists()})


def stop_running_processes() -> None:
    """Kill every worker process this client started (Ctrl-C, or a cancelled run)."""
    with _LOCK:
        for process in list(_RUNNING):
            with contextlib.suppress(OSError):
                process.kill()


def run_local(tasks: list[Task], root: Path, workers: int) -> Iterator[Outcome]:
    """Run tasks in ``workers`` concurrent processes here; yields outcomes as they finish, retries included."""
    with ThreadPoolExecutor(max(1, workers)) as pool:
        pending: dict[Future, Task] = {pool.submit(run_task_process, t, root): t for t in tasks}
        try:
            while pending:
                done, _ = wait(pending, return_when=FIRST_COMPLETED)
                for future in done:
                    task = pending.pop(future)
                    outcome = future.result()
                    if outcome.retry and task.attempt <= task.retries:
                        retried = replace(task, attempt=task.attempt + 1)
                        pending[pool.submit(run_task_process, retried, root)] = retried
                        continue
                    yield outcome
        except BaseException:
            for future in pending:
                future.cancel()
            stop_running_processes()
            raise
