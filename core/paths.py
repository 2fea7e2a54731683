"""Where things live: the repository, the runs folder and the dataset cache, each overridable by a variable.

``RBM_BENCH_RUNS`` moves the runs folder (tests point it at a temporary folder, so they never write into the
checkout); ``RBM_BENCH_CACHE`` moves the dataset cache.
"""

from __future__ import annotations

import os
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
BASELINES = ROOT / "reports" / "baselines"


def runs_dir() -> Path:
    """``$RBM_BENCH_RUNS`` if set, else ``reports/runs`` of the checkout (read at each call, not at import)."""
    return Path(os.environ.get("RBM_BENCH_RUNS") or ROOT / "reports" / "runs")


def cache_dir() -> Path:
    """``$RBM_BENCH_CACHE`` if set, else the user cache folder."""
    from platformdirs import user_cache_dir

    return Path(os.environ.get("RBM_BENCH_CACHE") or user_cache_dir("rbm-music-bench"))


def relative(path: Path | str, *bases: Path) -> str:
    """``path`` relative to the first of ``bases`` (default: the repository) that holds it; else its name.

    Records (``env.json``, manifests) keep no absolute path of the machine that wrote them.
    """
    path = Path(path)
    for base in bases or (ROOT,):
        try:
            return str(path.resolve().relative_to(Path(base).resolve()))
        except ValueError:
            continue
    return path.name
