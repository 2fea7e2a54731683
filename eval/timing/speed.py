"""Steady-state training throughput per implementation on the default shape, beside the roofline and scikit-learn.

``python -m eval speed`` runs each implementation in its own process (same
thread count), times ``train_epoch`` after a warm-up epoch (compile time is
reported separately), and measures in the same run the five dense products
of one CD-1 step in every framework (the roofline: the fastest of them) and
``BernoulliRBM.partial_fit``. Speeds are compared as ratios within one run
(`eval.timing.roofline`).
"""

from __future__ import annotations

import json
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd

from core.files import atomic_write_text
from core.paths import ROOT
from core.process import run_module
from eval.timing.roofline import Speed, ratios, roofline


def measure(impl: str, n_hidden: int = 50, batch: int = 100, device: str = "cpu", epochs: int = 5,
            batches: int = 0, seed: int = 0, mode: str | None = None) -> dict:  # fmt: skip
    """In this process: compile time, steady windows/s, five-product and draw ms, peak memory.

    ``batches`` per epoch defaults to 50 at small shapes and fewer at large ones (at most 20,000 windows);
    ``mode``: the implementation's execution mode (None: its default, `impls.common.Mode`).
    """
    import resource

    from impls import RBMConfig, framework, init_params, load

    cls = load(impl).in_mode(mode)
    if reason := cls.device_unavailable(device):
        return {"impl": impl, "error": reason}
    config = RBMConfig(n_hidden=n_hidden, batch_size=batch, device=framework(impl).device_for(device))
    batches = batches or max(2, min(50, 20_000 // batch))
    rng = np.random.default_rng(seed)
    data = (rng.random((batches * batch, config.n_visible)) < 0.05).astype(np.uint8)
    order = [list(rng.permutation(len(data)).reshape(batches, batch)) for _ in range(epochs + 1)]
    model = cls(config, init_params(config, seed), seed)
    model.set_data(data)
    seconds = []
    for epoch in order:
        start = time.perf_counter()
        model.train_epoch(epoch)
        seconds.append(time.perf_counter() - start)
    steady = float(np.median(seconds[1:]))
    return {
        "impl": impl,
        "windows_per_s": batches * batch / steady,
        "step_ms": steady / batches * 1e3,
        "compile_s": max(0.0, seconds[0] - steady),
        "five_products_ms": model.five_products_ms(batch),
        "draw_ms": model.draw_ms(batch),
        "peak_device_mb": model.peak_device_mb(),
        "peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
        "device": config.device,
        "mode": model.mode,
        "version": model.framework_version(),
    }


def measure_one(name: str, n_hidden: int = 50, batch: int = 100, device: str = "cpu") -> dict:
    """One row: an implementation, or ``sklearn`` (BernoulliRBM.partial_fit on the same shape)."""
    if name == "sklearn":
        from eval.timing.sklearn_reference import sklearn_step_ms

        return {"impl": "sklearn", "step_ms": sklearn_step_ms(2340, n_hidden, batch)}
    return measure(name, n_hidden, batch, device)


def run_one(name: str, threads: int, device: str = "cpu", n_hidden: int = 50, batch: int = 100,
            timeout_s: float = 900) -> dict:  # fmt: skip
    """One measurement in its own process (``python -m eval.timing.speed``); a failure becomes a row with the reason."""
    try:
        done = run_module("eval.timing.speed", [name, str(n_hidden), str(batch), device], threads, timeout_s)
    except subprocess.TimeoutExpired:
        return {"impl": name, "error": f"timed out after {timeout_s:.0f} s"}
    if done.returncode == 0:
        return json.loads(done.stdout.strip().splitlines()[-1])
    last = (done.stderr.strip().splitlines() or ["no output"])[-1]
    return {"impl": name, "error": last[:300]}


def run_all(impls: list[str], threads: int, device: str = "cpu") -> list[dict]:
    """Each implementation and scikit-learn, one after another, each in its own process."""
    return [run_one(name, threads, device) for name in [*impls, "sklearn"]]


def speed_table(results: list[dict], batch: int = 100) -> tuple[pd.DataFrame, float]:
    """Ratios to the roofline and to scikit-learn, each one's ceiling and the share of it reached."""
    speeds = [
        Speed(r["impl"], r.get("windows_per_s"), r.get("five_products_ms"), r.get("draw_ms"))
        for r in results
        if r["impl"] != "sklearn"
    ]
    _, roof = roofline(speeds, batch)
    sklearn = next((batch / r["step_ms"] * 1e3 for r in results if r["impl"] == "sklearn" and "step_ms" in r), np.nan)
    frame = pd.DataFrame(results).set_index("impl")
    for ratio in ratios(speeds, batch):
        frame.loc[ratio.impl, "ratio_to_roofline"] = ratio.ratio_to_roofline
        frame.loc[ratio.impl, "ceiling"] = ratio.ceiling
        frame.loc[ratio.impl, "ratio_to_ceiling"] = ratio.ratio_to_ceiling
    if "windows_per_s" in frame:
        frame["ratio_to_sklearn"] = frame["windows_per_s"] / sklearn
    if "sklearn" in frame.index and "step_ms" in frame:
        frame.loc["sklearn", "windows_per_s"] = sklearn
        frame.loc["sklearn", "ratio_to_roofline"] = sklearn / roof
    order = ["windows_per_s", "ratio_to_roofline", "ceiling", "ratio_to_ceiling", "ratio_to_sklearn", "compile_s",
             "step_ms", "five_products_ms", "draw_ms", "peak_device_mb", "error"]  # fmt: skip
    return frame[[c for c in order if c in frame]], roof


def save(frame: pd.DataFrame, roof: float, threads: int, kind: str = "speed") -> Path:
    """The table with its environment as ``reports/perf/<kind>-<time>.json`` (``threads`` 0: several)."""
    from eval.environment import describe_environment

    out = ROOT / "reports" / "perf"
    out.mkdir(parents=True, exist_ok=True)
    path = out / f"{kind}-{time.strftime('%Y%m%d-%H%M%S')}.json"
    record = {
        "roofline_windows_per_s": roof,
        "threads": threads,
        "results": json.loads(frame.reset_index().to_json(orient="records")),
        "environment": describe_environment(),
    }
    atomic_write_text(path, json.dumps(record, indent=1))  # complete or absent
    return path


if __name__ == "__main__":  # one measurement in this process: python -m eval.timing.speed IMPL [H BATCH DEVICE]
    name, *shape = sys.argv[1:]
    hidden, batch, device = (int(shape[0]), int(shape[1]), shape[2]) if shape else (50, 100, "cpu")
    print(json.dumps(measure_one(name, hidden, batch, device)))
