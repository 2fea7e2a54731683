"""``python -m eval scaling``: how each framework's cost grows with the model, on each device.

For every shape (hidden units x batch size) of the profile's grid, each
implementation is timed in its own process (`eval.timing.speed.run_one`:
steady-state windows/s after a warm-up epoch, five-product and draw times,
peak memory); the shape's roofline is the fastest five-product time measured
in the same run. With ``--device cuda`` every framework also runs on the CPU,
so the CPU–GPU crossover (the smallest work at which a GPU wins) is measured,
not assumed. Writes ``scaling.csv`` and a log-log ``scaling.png``.
"""

from __future__ import annotations

import argparse
import io
import time
from pathlib import Path

import numpy as np
import pandas as pd

from core.files import atomic_write_bytes, atomic_write_text
from core.paths import ROOT
from eval.config import load_profile
from eval.timing.roofline import Speed, ratios, roofline
from eval.timing.speed import run_one
from impls import framework, frameworks


def grid(profile, device: str) -> list[tuple[int, int]]:
    scaling = profile.scaling
    hidden, batches = (scaling.gpu_hidden, scaling.gpu_batch_sizes) if device == "cuda" else (
        scaling.hidden, scaling.batch_sizes)  # fmt: skip
    return [(h, b) for h in hidden for b in batches]


def measure_grid(
    impls: list[str], device: str, shapes: list[tuple[int, int]], timeout_s: float, threads: int = 1
) -> pd.DataFrame:
    """One row per (shape, implementation, device): windows/s, ratios, peak memory; failures keep their reason."""
    rows = []
    devices = ["cpu", "cuda"] if device == "cuda" else ["cpu"]
    for hidden, batch in shapes:
        measured = []
        for name in impls:
            for where in devices:
                if where not in framework(name).devices:
                    continue  # a CPU-only framework (the NumPy reference) stays a CPU row
                result = run_one(name, threads, where, hidden, batch, timeout_s)
                measured.append(result | {"impl": name, "device": where, "n_hidden": hidden, "batch": batch})
        for where in devices:
            here = [r for r in measured if r["device"] == where and "windows_per_s" in r]
            speeds = [Speed(r["impl"], r["windows_per_s"], r["five_products_ms"], r["draw_ms"]) for r in here]
            _, roof = roofline(speeds, batch)
            for ratio, r in zip(ratios(speeds, batch), here):
                r.update(ratio_to_roofline=ratio.ratio_to_roofline, ceiling=ratio.ceiling, roofline_windows_per_s=roof)
        rows += measured
    frame = pd.DataFrame(rows)
    if "windows_per_s" in frame:
        frame["work_mflop_per_window"] = 5 * 2 * 2340 * frame.n_hidden / 1e6  # the five products' multiply-adds
    return frame


def crossover(frame: pd.DataFrame) -> str:
    """The smallest shape at which the fastest GPU framework beats the fastest CPU one (or why there is none)."""
    if "device" not in frame or not (frame.device == "cuda").any():
        return "no GPU measured: the CPU-GPU crossover is unknown here"
    ok = frame.dropna(subset=["windows_per_s"])
    best = ok.groupby(["n_hidden", "batch", "device"]).windows_per_s.max().unstack("device")
    wins = best[best.get("cuda", np.nan) > best.get("cpu", np.nan)]
    if wins.empty:
        return "the CPU was faster at every shape measured"
    hidden, batch = min(wins.index, key=lambda shape: shape[0] * shape[1])
    return f"a GPU wins from {hidden} hidden units x batch {batch} ({wins.loc[(hidden, batch), 'cuda']:,.0f} windows/s)"


def plot(frame: pd.DataFrame, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    batches = sorted(frame.batch.unique())
    figure, axes = plt.subplots(1, len(batches), figsize=(5 * len(batches), 3.6), squeeze=False)
    ok = frame.dropna(subset=["windows_per_s"])
    for axis, batch in zip(axes[0], batches):
        for (impl, device), rows in ok[ok.batch == batch].groupby(["impl", "device"]):
            rows = rows.sort_values("n_hidden")
            axis.loglog(rows.n_hidden, rows.windows_per_s, marker="o", label=f"{impl} ({device})")
        roof = ok[ok.batch == batch].groupby(["n_hidden", "device"]).roofline_windows_per_s.first().unstack("device")
        for device in roof.columns:
            axis.loglog(roof.index, roof[device], linestyle="--", color="grey", label=f"roofline ({device})")
        axis.set(xlabel="hidden units", ylabel="training windows/s", title=f"batch {batch}")
    axes[0, 0].legend(fontsize=7)
    image = io.BytesIO()
    figure.savefig(image, format="png", dpi=90, bbox_inches="tight")
    plt.close(figure)
    atomic_write_bytes(path, image.getvalue())  # complete or absent


def main(args: argparse.Namespace) -> int:
    profile = load_profile(args.profile)
    impls = args.impls or list(frameworks())
    started = time.perf_counter()
    shapes = grid(profile, args.device)
    frame = measure_grid(impls, args.device, shapes, profile.scaling.timeout_s, profile.run.threads)
    out = args.out or ROOT / "reports" / "perf" / f"scaling-{time.strftime('%Y%m%d-%H%M%S')}-{args.device}"
    out.mkdir(parents=True, exist_ok=True)
    table = io.StringIO()
    frame.to_csv(table, index=False)
    atomic_write_text(out / "scaling.csv", table.getvalue())  # complete or absent
    if "windows_per_s" in frame and frame.windows_per_s.notna().any():
        plot(frame, out / "scaling.png")
    columns = [c for c in ("n_hidden", "batch", "impl", "device", "windows_per_s", "ratio_to_roofline", "ceiling",
                           "peak_device_mb", "peak_rss_mb", "error") if c in frame]  # fmt: skip
    with pd.option_context("display.width", 200, "display.max_rows", 500, "display.float_format", "{:,.3g}".format):
        print(frame[columns].to_string(index=False))
    print(f"\n{crossover(frame)}; {time.perf_counter() - started:.0f} s; saved {out}")
    return 0
