"""The one launcher of child processes and the one environment they run in.

Every process the suite starts (a training task, a timing, scikit-learn's reference, a scaling point) runs
``python -m MODULE`` from the repository root with the same environment: the caller's, less the variables that
change how fast it runs (``MALLOC_*``: Dask's nanny sets ``MALLOC_TRIM_THRESHOLD_=65536``, which halves NumPy's
speed), plus the thread variables that pin every framework to the run's thread count and the allocator's
(`ALLOCATOR`). On Linux the child is killed when its parent dies (``PR_SET_PDEATHSIG``), so a lost Dask worker
leaves no training process behind, and it is pinned to as many cores as the run's thread count (`pinned_cores`).
"""

from __future__ import annotations

import contextlib
import functools
import os
import signal
import subprocess
import sys
import threading
from collections.abc import Mapping

from core.paths import ROOT

THREAD_VARIABLES = (
    "OMP_NUM_THREADS",
    "MKL_NUM_THREADS",
    "OPENBLAS_NUM_THREADS",
    "XLA_FLAGS",
    "TF_NUM_INTRAOP_THREADS",
    "TF_NUM_INTEROP_THREADS",
    "OPENBLAS_CORETYPE",
)

# glibc's malloc keeps freed memory for reuse (the C library's variables; other allocators ignore them). By default
# it hands the top of its heap back to the OS once 128 KiB are free there and maps large blocks afresh, so an update
# that allocates arrays of megabytes (the RNN-NADE's (frames, units, hidden) layers, 3.5 MB) takes its pages again,
# page fault by page fault, every time: 35-40 % of a NumPy or PyTorch RNN-NADE epoch on the 2-core machine
# (README, "Where the time goes"). The allocators PyTorch's CPU tuning guide recommends (jemalloc, tcmalloc) keep
# them; these keep them too, for every framework alike (XLA and TensorFlow pool their own).
ALLOCATOR = {
    "MALLOC_MMAP_THRESHOLD_": str(32 << 20),  # blocks below 32 MiB come from the heap, not a fresh mapping
    "MALLOC_TRIM_THRESHOLD_": str(256 << 20),  # hand back the heap's top only when 256 MiB are free there
    "MALLOC_TOP_PAD_": str(64 << 20),  # grow the heap 64 MiB at a time
}


def thread_environment(threads: int) -> dict[str, str]:
    """Variables that pin every framework's thread pools to ``threads`` (set before the import)."""
    n = str(threads)
    return {
        "OMP_NUM_THREADS": n,
        "MKL_NUM_THREADS": n,
        "OPENBLAS_NUM_THREADS": n,
        "TF_NUM_INTRAOP_THREADS": n,
        "TF_NUM_INTEROP_THREADS": "1",
        "XLA_FLAGS": f"--xla_cpu_multi_thread_eigen={'true' if threads > 1 else 'false'}",
        "TF_CPP_MIN_LOG_LEVEL": "2",
    }


def child_environment(threads: int, extra: Mapping[str, str] | None = None) -> dict[str, str]:
    """Every child process's environment: the caller's with `ALLOCATOR` for its ``MALLOC_*``, threads pinned, the
    repo importable."""
    inherited = {k: v for k, v in os.environ.items() if not k.startswith("MALLOC_")}
    return {**inherited, **ALLOCATOR, **thread_environment(threads), "PYTHONPATH": str(ROOT), **(extra or {})}


def die_with_parent(parent: int | None = None) -> None:
    """In the child (Linux): be killed when the process that started it dies. A no-op elsewhere.

    ``parent`` closes the race of a parent that died before the hook was installed: the child then has another
    parent already, and exits at once.
    """
    import ctypes

    with contextlib.suppress(OSError, AttributeError):
        ctypes.CDLL("libc.so.6", use_errno=True).prctl(1, signal.SIGKILL)  # PR_SET_PDEATHSIG
    if parent is not None and os.getppid() != parent:
        os._exit(1)


# The thread variables do not bind XLA's CPU runtime: JAX ran a window RBM epoch on 1.86 cores and its dense products
# on 1.46 with every variable at 1 (no XLA flag changes that; 2-core AMD EPYC, jax 0.10.2, 2026-12-07), so at "1
# thread per task" JAX alone had both cores, and the roofline was its two-core products. Pinning the process to
# ``threads`` cores holds every framework to the same count.
_PINNED: dict[subprocess.Popen, tuple[int, ...]] = {}  # this process's running children and their cores
_PINNING = threading.Lock()


def pinned_cores(threads: int) -> tuple[int, ...] | None:
    """The ``threads`` cores a new child is pinned to: of the cores this process may use, those the fewest of its
    running children hold (None where there is nothing to pin: no affinity on this OS, or ``threads`` covers them).

    Children of other processes are not seen: the executors that start tasks from several processes on one machine
    (Dask) pass ``pin=False`` to `start_module`."""
    if not hasattr(os, "sched_getaffinity"):
        return None
    allowed = sorted(os.sched_getaffinity(0))
    if threads >= len(allowed):
        return None
    for process in [p for p in _PINNED if p.poll() is not None]:
        del _PINNED[process]
    held = {core: sum(core in cores for cores in _PINNED.values()) for core in allowed}
    return tuple(sorted(sorted(allowed, key=lambda core: held[core])[:threads]))


def _in_the_child(parent: int, cores: tuple[int, ...] | None) -> None:
    """Between fork and exec: die with the parent, and keep to ``cores``."""
    die_with_parent(parent)
    if cores:
        os.sched_setaffinity(0, cores)


def start_module(module: str, args: list[str], threads: int, pin: bool = True, **popen) -> subprocess.Popen:
    """Start ``python -m module args...`` in the one environment; it dies with this process and, with ``pin``, runs
    on ``threads`` cores of its own (`pinned_cores`)."""
    linux = sys.platform.startswith("linux")
    with _PINNING:
        cores = pinned_cores(threads) if pin and linux else None
        process = subprocess.Popen(
            [sys.executable, "-m", module, *args],
            cwd=ROOT,
            env=child_environment(threads),
            preexec_fn=functools.partial(_in_the_child, os.getpid(), cores) if linux else None,
            **popen,
        )
        if cores:
            _PINNED[process] = cores
    return process


def cores_in_use() -> str:
    """The cores this process may run on, as a child records them beside its results (``0`` or ``0,1``)."""
    if not hasattr(os, "sched_getaffinity"):
        return "unknown"
    return ",".join(str(core) for core in sorted(os.sched_getaffinity(0)))


def run_module(module: str, args: list[str], threads: int, timeout: float) -> subprocess.CompletedProcess:
    """Run ``python -m module args...`` to the end (killed after ``timeout`` s); output captured as text."""
    process = start_module(module, args, threads, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        stdout, stderr = process.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        process.kill()
        stdout, stderr = process.communicate()
        raise
    return subprocess.CompletedProcess(process.args, process.returncode, stdout, stderr)
