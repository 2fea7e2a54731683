"""The one launcher of child processes and the one environment they run in.

Every process the suite starts (a training task, a timing, scikit-learn's reference, a scaling point) runs
``python -m MODULE`` from the repository root with the same environment: the caller's, less the variables that
change how fast it runs (``MALLOC_*``: Dask's nanny sets ``MALLOC_TRIM_THRESHOLD_=65536``, which halves NumPy's
speed), plus the thread variables that pin every framework to the run's thread count and the allocator's
(`ALLOCATOR`). On Linux the child is killed when its parent dies (``PR_SET_PDEATHSIG``), so a lost Dask worker
leaves no training process behind.
"""

from __future__ import annotations

import contextlib
import functools
import os
import signal
import subprocess
import sys
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


def start_module(module: str, args: list[str], threads: int, **popen) -> subprocess.Popen:
    """Start ``python -m module args...`` in the one environment; it dies with this process."""
    return subprocess.Popen(
        [sys.executable, "-m", module, *args],
        cwd=ROOT,
        env=child_environment(threads),
        preexec_fn=functools.partial(die_with_parent, os.getpid()) if sys.platform.startswith("linux") else None,
        **popen,
    )


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
