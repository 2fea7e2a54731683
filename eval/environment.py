"""The environment recorded with every result: versions, CPU, threads, BLAS, numerics switches, git commit."""

from __future__ import annotations

import os
import platform
import subprocess
import sys
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path

from core.paths import ROOT
from core.process import THREAD_VARIABLES
from impls import framework_versions

# Switches that change a framework's arithmetic, not only its speed: TensorFlow's CPU wheels run oneDNN's kernels
# unless TF_ENABLE_ONEDNN_OPTS=0 (tox sets it), and those round differently from Eigen's, so a run's TensorFlow rows
# differ with it (and its speed: the default example's update 3.0 ms with oneDNN, 3.3 ms without, 2026-12-07).
# Recorded as set; "" where unset (the framework's default).
NUMERICS_VARIABLES = ("TF_ENABLE_ONEDNN_OPTS",)


def cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def git_commit() -> str:
    try:
        out = subprocess.run(["git", "rev-parse", "HEAD"], cwd=ROOT, capture_output=True, text=True, timeout=10)
        dirty = subprocess.run(
            ["git", "status", "--porcelain", "--untracked-files=no"],
            cwd=ROOT,
            capture_output=True,
            text=True,
            timeout=10,
        ).stdout.strip()
        return out.stdout.strip() + ("+dirty" if dirty else "") if out.returncode == 0 else "unknown"
    except (OSError, subprocess.SubprocessError):
        return "unknown"


def package_version(name: str) -> str:
    try:
        return version(name)
    except PackageNotFoundError:
        return "not installed"


def blas() -> str:
    from threadpoolctl import threadpool_info

    return (
        "; ".join(
            f"{i.get('internal_api')} {i.get('version')} ({i.get('architecture', '?')})"
            for i in threadpool_info()
            if i.get("user_api") == "blas"
        )
        or "unknown"
    )


def gpus() -> tuple[str, str]:
    """``(GPU models, driver version)`` from nvidia-smi, or ``("none", "")`` on a machine without one."""
    try:
        out = subprocess.run(
            ["nvidia-smi", "--query-gpu=name,driver_version", "--format=csv,noheader"],
            capture_output=True,
            text=True,
            timeout=20,
        )
    except (OSError, subprocess.SubprocessError):
        return "none", ""
    lines = [line.split(",") for line in out.stdout.strip().splitlines() if "," in line]
    if out.returncode != 0 or not lines:
        return "none", ""
    return "; ".join(name.strip() for name, _ in lines), lines[0][1].strip()


def describe_environment(command: list[str] | None = None) -> dict[str, str]:
    """Everything needed to say where a number came from (no absolute path of the machine that ran it)."""
    import re

    from core.paths import relative, runs_dir

    def shown(argument: str) -> str:
        """An argument's path (``/a/b``, ``midi:/a/b``, ``--x=/a/b``) relative to the runs folder or the repository."""
        prefix, path = re.match(r"((?:--[\w-]+=|[a-z]+:)?)(.*)", argument, re.S).groups()
        if not path.startswith(("/", "~")):
            return argument
        return prefix + relative(Path(path).expanduser(), runs_dir(), ROOT)

    program, *arguments = command or sys.argv or [""]
    if Path(program).name == "__main__.py" and Path(program).is_absolute():  # python -m PACKAGE
        program = "python -m " + relative(Path(program).parent).replace("/", ".")
    else:
        program = shown(program)
    return {
        "python": platform.python_version(),
        "platform": platform.platform(),
        "cpu": cpu_model(),
        "cores": str(os.cpu_count()),
        **framework_versions(),  # every framework of the catalogue, by its short name
        "scikit-learn": package_version("scikit-learn"),
        "blas": blas(),
        **dict(zip(("gpu", "gpu_driver"), gpus())),
        "git_commit": git_commit(),
        "command": " ".join([program, *map(shown, arguments)]),
        **{name.lower(): os.environ.get(name, "") for name in (*THREAD_VARIABLES, *NUMERICS_VARIABLES)},
    }
