"""The execution-mode ablation: every framework in every mode it offers, each checked against the reference.

``python -m eval speed --ablation`` times the window RBM's training (`eval.timing.speed.measure`, warm-up
outside timing) in every mode of every implementation (`impls.common.Mode`: PyTorch eager / ``torch.compile``
/ CUDA graphs, TensorFlow ``tf.function`` with and without XLA, JAX one compiled epoch or one compiled call per
update, NumPy with and without preallocated buffers) at each thread count, each in its own process. Beside each
speed is its **equivalence check** (the model plug-in's `mode_difference`, through `parameter_difference`):
three updates from the same explicit noise and the same weights, in that mode and in the NumPy reference; the
largest parameter difference must be within the float32 tolerance of the contract tests (`TOLERANCE`). Ratios to
the roofline and to each framework's ceiling follow the one rule of `eval.timing.roofline`, over all rows of one
thread count. An implementation runs in its first mode unless a profile names another (``[run] modes``); the
table says whether that default was the fastest equivalent mode measured here.
"""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Callable

import numpy as np
import pandas as pd

from core.process import run_module
from eval.timing.roofline import Speed, ratios

TOLERANCE = 1e-5  # the contract tests' float32 tolerance (atol and rtol) after a few updates


def parameter_difference(cls: type, reference_cls: type, config, params, data, seed: int = 0,
                         update: Callable[[object, object], object] | None = None) -> float:  # fmt: skip
    """``cls`` and the reference from the same parameters through the same updates (each model's plug-in draws its
    own data: `eval.models.base.ModelPlugin.mode_difference`): the largest relative parameter difference
    ``|a - b| / (1 + |b|)``. ``update(model, item)`` makes one update of each item of ``data``; by default an item is
    ``(batch, noise)`` and the update ``model.cd_update(batch, noise)``."""
    from dataclasses import replace

    update = update or (lambda model, item: model.cd_update(*item))
    ours, reference = cls(config, params, seed), reference_cls(replace(config, device="cpu"), params, seed)
    for item in data:
        update(ours, item)
        update(reference, item)
    got, want = ours.params(), reference.params()
    return max(float(np.max(np.abs(a - b) / (1 + np.abs(b)))) for a, b in zip(got.arrays(), want.arrays()))


def measure_mode(impl: str, mode: str, device: str = "cpu") -> dict:
    """In this process: the speed of ``impl`` in ``mode`` (`eval.timing.speed.measure`)."""
    from eval.timing.speed import measure

    return measure(impl, device=device, mode=mode) | {"mode": mode}


def run_mode(impl: str, mode: str, threads: int, device: str = "cpu", timeout_s: float = 900) -> dict:
    """One (implementation, mode) in its own process at ``threads``; a failure becomes a row with the reason."""
    row = {"impl": impl, "mode": mode, "threads": threads}
    try:
        done = run_module("eval.timing.ablation", [impl, mode, device], threads, timeout_s)
    except subprocess.TimeoutExpired:
        return row | {"error": f"timed out after {timeout_s:.0f} s"}
    if done.returncode == 0:
        return json.loads(done.stdout.strip().splitlines()[-1]) | row
    return row | {"error": (done.stderr.strip().splitlines() or ["no output"])[-1][:300]}


def modes_of(impl: str, device: str = "cpu") -> tuple[str, ...]:
    """The modes ``impl`` offers on ``device`` (its default first); none where it cannot be imported."""
    from impls import Unavailable, load

    try:
        return load(impl).modes_for(device)
    except Unavailable:
        return ()


def run_ablation(impls: list[str], threads: list[int], device: str = "cpu", repeats: int = 3,
                 difference: Callable[[str, str], float] | None = None) -> list[dict]:  # fmt: skip
    """Every mode of every implementation at every thread count, one process each, in ``repeats`` interleaved rounds
    (each round measures every mode once): a shared machine's slow minute then lands on one measurement of many
    modes, not on every measurement of one (`ablation_table` takes each mode's median). ``difference(impl,
    mode)``: the mode's equivalence check (the window RBM plug-in's `mode_difference`), once per mode, in this
    process: a check is not timed."""
    plan = [(n, impl, mode) for n in threads for impl in impls for mode in modes_of(impl, device)]
    rows = [run_mode(impl, mode, n, device) | {"round": r} for r in range(repeats) for n, impl, mode in plan]
    if difference is None:
        return rows
    checked = {key: difference(*key) for key in sorted({(r["impl"], r["mode"]) for r in rows if "error" not in r})}
    return [r | {"max_difference": checked[key]} if (key := (r["impl"], r["mode"])) in checked else r for r in rows]


def medians(frame: pd.DataFrame) -> pd.DataFrame:
    """One row per (threads, implementation, mode): the median of its rounds' measurements, ``spread`` (max - min over
    the median of its speeds: how far one measurement can be trusted) and the first error of a round that failed."""
    keys = ["threads", "impl", "mode"]
    numbers = [c for c in ("windows_per_s", "five_products_ms", "draw_ms", "compile_s", "max_difference") if c in frame]
    grouped = frame.groupby(keys, sort=False)
    table = grouped[numbers].median()
    speeds = grouped.windows_per_s
    table["rounds"] = speeds.count()
    table["spread"] = ((speeds.max() - speeds.min()) / speeds.median()).where(table.rounds >= 2)  # one: unknown
    table["error"] = grouped.error.first()
    return table.reset_index()


def fastest_equivalent(table: pd.DataFrame, speed: str, difference: str = "max_difference", by: str = "impl"):
    """Per row of ``table``, whether it is its implementation's fastest *equivalent* mode: within `TOLERANCE` of
    the reference and the highest ``speed``. The one rule the ablation's verdicts and the bench report's table share
    (a mode that is fast but computes something else never wins)."""
    ok = table[(table[difference] <= TOLERANCE) & table[speed].notna()]
    best = ok.groupby(by)[speed].idxmax() if len(ok) else pd.Series(dtype=object)
    return table.index.isin(list(best))


def ablation_table(results: list[dict], batch: int = 100) -> pd.DataFrame:
    """One row per (threads, implementation, mode): speed (the median of its rounds, `medians`), ratios,
    equivalence, and which mode won.

    ``equivalent``: within `TOLERANCE` of the reference. ``fastest``: the fastest equivalent mode of its
    implementation at that thread count. ``default``: the mode a run uses without ``[run] modes``.
    """
    frame = pd.DataFrame(results)
    for column in ("windows_per_s", "five_products_ms", "draw_ms", "max_difference", "error"):
        if column not in frame:
            frame[column] = np.nan
    frame = medians(frame)
    parts = []
    for _, part in frame.groupby("threads", sort=True):
        part = part.copy()
        rows = part.itertuples()
        speeds = [Speed(f"{r.impl}/{r.mode}", r.windows_per_s, r.five_products_ms, r.draw_ms) for r in rows]
        found = {r.impl: r for r in ratios(speeds, batch)}
        for column in ("ratio_to_roofline", "ceiling", "ratio_to_ceiling"):
            part[column] = [getattr(found.get(f"{i}/{m}"), column, np.nan) for i, m in zip(part.impl, part["mode"])]
        part["equivalent"] = part.max_difference <= TOLERANCE
        part["default"] = ~part.duplicated("impl")  # `modes_of` lists the default first
        part["fastest"] = fastest_equivalent(part, "windows_per_s")
        speed_of_default = part[part.default].set_index("impl").windows_per_s
        part["speedup_over_default"] = part.windows_per_s / part.impl.map(speed_of_default)
        parts.append(part)
    order = ["threads", "impl", "mode", "windows_per_s", "spread", "rounds", "speedup_over_default",
             "ratio_to_roofline", "ceiling", "ratio_to_ceiling", "compile_s", "max_difference", "equivalent", "default",
             "fastest", "error"]  # fmt: skip
    table = pd.concat(parts, ignore_index=True) if parts else frame
    return table[[c for c in order if c in table]]


def verdicts(table: pd.DataFrame) -> list[str]:
    """One line per (threads, implementation): the winning mode, by how much, and whether it is the default."""
    lines = []
    for (threads, impl), part in table.groupby(["threads", "impl"], sort=False):
        fastest, default = part[part.fastest], part[part.default]
        if fastest.empty:
            lines.append(f"{impl} at {threads} thread(s): no equivalent mode measured")
            continue
        win = fastest.iloc[0]
        note = "the default" if bool(win.default) else f"not the default ({default.iloc[0]['mode']})"
        noise = max(float(win.get("spread", 0) or 0), float(default.iloc[0].get("spread", 0) or 0))
        if not bool(win.default) and win.speedup_over_default - 1 <= noise:  # NaN spread (one round): no claim
            note += f"; within the rounds' spread of {noise:.0%}: no reason to change it"
        others = ", ".join(
            f"{r['mode']} {r.speedup_over_default:.2f}x" for _, r in part.iterrows() if r["mode"] != win["mode"]
        )
        lines.append(
            f"{impl} at {threads} thread(s): {win['mode']} wins ({win.windows_per_s:,.0f} windows/s, "
            f"{win.speedup_over_default:.2f}x the default; {note}){'; ' + others if others else ''}"
        )
    return lines


if __name__ == "__main__":  # one measurement in this process: python -m eval.timing.ablation IMPL MODE [DEVICE]
    impl, mode, *rest = sys.argv[1:]
    print(json.dumps(measure_mode(impl, mode, rest[0] if rest else "cpu")))
