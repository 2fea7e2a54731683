"""Steady-state training throughput per implementation on the default shape, beside the roofline and scikit-learn.

``python -m eval speed`` runs each implementation in its own process (same
thread count), times ``train_epoch`` after a warm-up epoch (compile time is
reported separately), and measures in the same run the five dense products
of one CD-1 step in every framework (the roofline: the fastest of them) and
``BernoulliRBM.partial_fit``. Speeds are compared as ratios within one run.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

from eval.environment import ROOT, thread_environment


def measure(impl: str, epochs: int = 5, batches: int = 50, seed: int = 0) -> dict:
    """In this process: compile time, steady windows/s and five-product ms for one implementation."""
    from impls import RBMConfig, init_params, load

    config = RBMConfig()
    rng = np.random.default_rng(seed)
    data = (rng.random((batches * config.batch_size, config.n_visible)) < 0.05).astype(np.uint8)
    order = [list(rng.permutation(len(data)).reshape(batches, config.batch_size)) for _ in range(epochs + 1)]
    model = load(impl)(config, init_params(config, seed), seed)
    model.set_data(data)
    seconds = []
    for epoch in order:
        start = time.perf_counter()
        model.train_epoch(epoch)
        seconds.append(time.perf_counter() - start)
    steady = float(np.median(seconds[1:]))
    return {
        "impl": impl,
        "windows_per_s": batches * config.batch_size / steady,
        "step_ms": steady / batches * 1e3,
        "compile_s": max(0.0, seconds[0] - steady),
        "five_products_ms": model.five_products_ms(config.batch_size),
        "draw_ms": model.draw_ms(config.batch_size),
        "version": model.framework_version(),
    }


def measure_one(name: str) -> dict:
    """One row: an implementation, or ``sklearn`` (BernoulliRBM.partial_fit on the same shape)."""
    if name == "sklearn":
        from eval.throughput import sklearn_step_ms

        return {"impl": "sklearn", "step_ms": sklearn_step_ms(2340, 50, 100)}
    return measure(name)


def run_all(impls: list[str], threads: int) -> list[dict]:
    """Each implementation and scikit-learn in its own process; a failure becomes a row with the reason."""
    env = {**os.environ, **thread_environment(threads), "PYTHONPATH": str(ROOT)}
    results = []
    for impl in [*impls, "sklearn"]:
        done = subprocess.run(
            [sys.executable, "-m", "eval.speed", impl], cwd=ROOT, env=env, capture_output=True, text=True
        )
        if done.returncode == 0:
            results.append(json.loads(done.stdout.strip().splitlines()[-1]))
        else:
            last = (done.stderr.strip().splitlines() or ["no output"])[-1]
            results.append({"impl": impl, "error": last[:300]})
    return results


def table(results: list[dict]) -> tuple[list[dict], float]:
    """Add ratios to the roofline (fastest five-product time) and to scikit-learn, and each one's ceiling.

    The ceiling is ``roofline time / (own five products + own noise draws)``:
    the highest ratio to the roofline an implementation could reach with its
    framework's matrix products and generator if everything else were free.
    """
    fastest = min((r["five_products_ms"] for r in results if "five_products_ms" in r), default=float("nan"))
    roofline = 100 / fastest * 1e3
    sklearn = next((100 / r["step_ms"] * 1e3 for r in results if r["impl"] == "sklearn" and "step_ms" in r), np.nan)
    for r in results:
        if "windows_per_s" in r:
            r["ratio_to_roofline"] = r["windows_per_s"] / roofline
            r["ratio_to_sklearn"] = r["windows_per_s"] / sklearn
            r["ceiling"] = fastest / (r["five_products_ms"] + r["draw_ms"])
        elif r["impl"] == "sklearn" and "step_ms" in r:
            r["windows_per_s"], r["ratio_to_roofline"] = 100 / r["step_ms"] * 1e3, 100 / r["step_ms"] * 1e3 / roofline
    return results, roofline


def save(results: list[dict], roofline: float, threads: int) -> Path:
    from eval.environment import describe_environment

    out = ROOT / "reports" / "perf"
    out.mkdir(parents=True, exist_ok=True)
    path = out / f"speed-{time.strftime('%Y%m%d-%H%M%S')}.json"
    path.write_text(
        json.dumps(
            {
                "roofline_windows_per_s": roofline,
                "threads": threads,
                "results": results,
                "environment": describe_environment(),
            },
            indent=1,
        )
    )
    return path


if __name__ == "__main__":  # one measurement in this process: python -m eval.speed IMPL
    print(json.dumps(measure_one(sys.argv[1])))
