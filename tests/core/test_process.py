"""The one child launcher: a process started by `core.process.start_module` dies with the process that started it,
and keeps the memory it frees (`core.process.ALLOCATOR`).

A parent (here an intermediate Python process) starts a sleeping grandchild and prints its pid; the test then
kills the parent with SIGKILL, which runs no cleanup of its own, so only the kernel's parent-death signal
(``PR_SET_PDEATHSIG``, set by `core.process.die_with_parent`) can take the grandchild down. The same set-up with a
plain ``subprocess.Popen`` shows that the grandchild would otherwise survive, so the test can fail.
"""

from __future__ import annotations

import os
import platform
import signal
import subprocess
import sys
import time

import pytest

from core.paths import ROOT
from core.process import ALLOCATOR, child_environment, start_module

pytestmark = pytest.mark.skipif(not sys.platform.startswith("linux"), reason="PR_SET_PDEATHSIG exists on Linux only")
psutil = pytest.importorskip("psutil", reason="psutil tells a zombie from a live process")

# `python -m timeit` with a 30 s sleep as the statement: a stdlib module that blocks without using the CPU, and ends
# by itself should a test leave it behind.
SLEEPER = ["-n", "1", "-r", "1", "-s", "import time", "time.sleep(30)"]

PARENTS = {
    "start_module": (
        "import subprocess, time\n"
        "from core.process import start_module\n"
        f"child = start_module('timeit', {SLEEPER!r}, 1, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,"
        " stderr=subprocess.DEVNULL)\n"
        "print(child.pid, flush=True)\n"
        "time.sleep(60)\n"
    ),
    "plain Popen": (
        "import subprocess, sys, time\n"
        f"child = subprocess.Popen([sys.executable, '-m', 'timeit', *{SLEEPER!r}], stdin=subprocess.DEVNULL,"
        " stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)\n"
        "print(child.pid, flush=True)\n"
        "time.sleep(60)\n"
    ),
}


def alive(pid: int) -> bool:
    """Running (a zombie has died: it only waits for its new parent to reap it)."""
    try:
        return psutil.Process(pid).status() != psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return False


def gone_within(pid: int, seconds: float) -> bool:
    """Whether ``pid`` stops running within ``seconds`` (polled)."""
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if not alive(pid):
            return True
        time.sleep(0.05)
    return not alive(pid)


def command_line_within(pid: int, seconds: float) -> list[str]:
    """The command line of ``pid`` once it is the sleeper's (polled until then or ``seconds``; the last one read)."""
    deadline = time.monotonic() + seconds
    while True:
        command = psutil.Process(pid).cmdline()
        if command[1:3] == ["-m", "timeit"] or time.monotonic() > deadline:
            return command
        time.sleep(0.02)


def kill_parent_of_a_sleeper(launcher: str) -> tuple[int, int]:
    """Start a parent that launches a sleeping grandchild, SIGKILL the parent; (parent pid, grandchild pid)."""
    parent = subprocess.Popen(
        [sys.executable, "-c", PARENTS[launcher]],
        cwd=ROOT,
        env={**os.environ, "PYTHONPATH": str(ROOT)},
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        line = parent.stdout.readline()  # the pid, or "" when the parent failed (its error is in stderr)
        assert line.strip().isdigit(), f"the parent printed no pid: {line!r}"
        grandchild = int(line)
        assert alive(grandchild) and psutil.Process(grandchild).ppid() == parent.pid
        # Popen returns when the child's close-on-exec pipe closes, early in exec, before the new program's arguments
        # are in place: /proc then shows an empty command line (CI saw [] under load). Wait for the sleeper's.
        assert command_line_within(grandchild, 30)[1:3] == ["-m", "timeit"]
    except BaseException:
        parent.kill()
        sys.stderr.write(parent.communicate()[1])
        raise
    parent.send_signal(signal.SIGKILL)
    parent.communicate(timeout=10)  # reaped: the kernel has reparented the grandchild (and signalled it, if asked)
    assert parent.returncode == -signal.SIGKILL
    return parent.pid, grandchild


def test_a_started_module_dies_with_its_parent():
    _, grandchild = kill_parent_of_a_sleeper("start_module")
    try:
        assert gone_within(grandchild, 10), "the grandchild outlived its SIGKILLed parent"
    finally:
        if alive(grandchild):
            os.kill(grandchild, signal.SIGKILL)


def pending_signals(pid: int) -> int:
    """The signals sent to ``pid`` and not yet handled (its own and its thread group's), as a bit mask."""
    with open(f"/proc/{pid}/status") as status:
        fields = dict(line.split(":", 1) for line in status if ":" in line)
    return int(fields["SigPnd"], 16) | int(fields["ShdPnd"], 16)


def test_without_the_hook_the_grandchild_would_survive():
    """The control: the same parent with a plain Popen leaves its child running (so the test above can fail).

    The kernel sends the parent-death signal while the parent exits, before it can be reaped; once the parent is
    reaped, a grandchild that is still running with no SIGKILL pending was not sent one and will not die of it.
    """
    parent, grandchild = kill_parent_of_a_sleeper("plain Popen")
    try:
        assert alive(grandchild), "the grandchild died without the hook: the test above proves nothing"
        assert not pending_signals(grandchild) & (1 << (signal.SIGKILL - 1)), "a SIGKILL is on its way"
        assert psutil.Process(grandchild).ppid() != parent, "reparented, still running"
    finally:
        if alive(grandchild):
            os.kill(grandchild, signal.SIGKILL)


# An update's worth of arrays (six of 4 MB alive at once, then freed), twenty times: the page faults it takes after
# the first (each fault a page the OS hands over, again, for memory the process had already had).
UPDATES = (
    "import resource, numpy as np\n"
    "def update():\n"
    "    arrays = [np.ones(1 << 20, np.float32) for _ in range(6)]\n"
    "    return sum(float(a[0]) for a in arrays)\n"
    "update()\n"
    "before = resource.getrusage(resource.RUSAGE_SELF).ru_minflt\n"
    "for _ in range(20):\n"
    "    update()\n"
    "print(resource.getrusage(resource.RUSAGE_SELF).ru_minflt - before)\n"
)


def page_faults(environment: dict[str, str]) -> int:
    done = subprocess.run([sys.executable, "-c", UPDATES], env=environment, capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    return int(done.stdout)


@pytest.mark.skipif(platform.libc_ver()[0] != "glibc", reason="the MALLOC_* variables are glibc's")
def test_a_child_keeps_the_memory_it_frees_for_the_next_update():
    """Under the child environment the updates take no page again (glibc keeps what they free), even where the
    caller's environment has Dask's ``MALLOC_TRIM_THRESHOLD_=65536``; under the caller's, each update takes its
    pages again (the control: the test can fail). 20 updates of 24 MB are 120,000 pages of 4 KiB."""
    caller = {**os.environ, "MALLOC_TRIM_THRESHOLD_": "65536", "PYTHONPATH": str(ROOT)}
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(os, "environ", caller)
        child = child_environment(1)
    assert {name: child[name] for name in ALLOCATOR} == ALLOCATOR
    assert page_faults(child) < 600, "the child took its freed pages again: 1 % of them or more"
    assert page_faults(caller) > 20_000, "the caller's environment kept them too: the check above proves nothing"


def test_the_recorded_environment_says_whether_tensorflow_ran_onednn(monkeypatch):
    """TensorFlow's oneDNN kernels round differently from Eigen's: a result says which ran (tox turns them off)."""
    from eval.environment import describe_environment

    monkeypatch.setenv("TF_ENABLE_ONEDNN_OPTS", "1")
    assert describe_environment()["tf_enable_onednn_opts"] == "1"
    monkeypatch.delenv("TF_ENABLE_ONEDNN_OPTS")
    assert describe_environment()["tf_enable_onednn_opts"] == ""  # unset: the framework's default


@pytest.mark.skipif(len(os.sched_getaffinity(0)) < 2, reason="needs two cores to pin two children apart")
def test_each_child_runs_on_as_many_cores_as_its_threads_and_children_apart():
    """A child is pinned to ``threads`` cores the running children do not hold: the thread variables do not bind
    XLA's CPU runtime (JAX ran a window RBM epoch on 1.86 cores with every one at 1), the pinning does. A child
    given every core, or started with ``pin=False`` (a Dask worker's), is not pinned."""
    allowed = sorted(os.sched_getaffinity(0))
    started: list[subprocess.Popen] = []

    def start(threads: int, pin: bool = True) -> set[int]:
        started.append(start_module("timeit", SLEEPER, threads, pin=pin))
        return os.sched_getaffinity(started[-1].pid)  # set before exec: Popen returns after it

    try:
        first, second = start(1), start(1)
        assert len(first) == len(second) == 1 and first != second
        assert sorted(start(len(allowed))) == allowed == sorted(start(1, pin=False))
        started[0].kill()
        started[0].wait()
        assert start(1) == first  # the core the finished child held
    finally:
        for process in started:
            process.kill()
            process.wait()
