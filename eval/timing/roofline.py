"""The one copy of the throughput arithmetic, for every model: roofline, ratio to it, and each implementation's ceiling.

The **roofline** of a shape is ``units of one update / the fastest time measured in the run for the dense products
of one update`` (the window RBM: the five products of one CD-1 step, ``v W``, ``h W^T``, ``v' W``, ``v^T h``,
``v'^T h'``, in each framework; the RNN-RBM: the products of one CD-k + BPTT update, `eval.timing.rnn_roofline`);
an implementation's **ratio** is its training units/s (windows, frames) over the roofline's; its **ceiling**,
where it measured its own noise draws, is ``roofline time / (own products + own draws)``: about the best ratio it
could reach with its framework's products and generator if all else were free. Speeds are only ever compared as
ratios measured in one run.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import pandas as pd


@dataclass(frozen=True)
class Speed:
    """One implementation's measurements for one shape."""

    impl: str
    per_s: float | None  # training units (windows, frames) per second
    products_ms: float | None  # the dense products of one update, alone
    draw_ms: float | None  # the noise draws of one update (None: not measured)


@dataclass(frozen=True)
class Ratios:
    impl: str
    ratio_to_roofline: float | None
    ceiling: float | None
    ratio_to_ceiling: float | None


def roofline(speeds: list[Speed], units: int) -> tuple[float, float]:
    """``(fastest products ms, roofline units/s)`` over the implementations that measured it (``units``: of one
    update, e.g. a batch of windows)."""
    products = [s.products_ms for s in speeds if s.products_ms and math.isfinite(s.products_ms)]
    if not products:
        return math.nan, math.nan
    fastest = min(products)
    return fastest, units / fastest * 1e3


def ratios(speeds: list[Speed], units: int) -> list[Ratios]:
    """Each implementation's ratio to the roofline, its ceiling and how much of the ceiling it reaches."""
    fastest, roof = roofline(speeds, units)
    out = []
    for s in speeds:
        ratio = s.per_s / roof if s.per_s and math.isfinite(roof) else None
        ceiling = fastest / (s.products_ms + s.draw_ms) if s.products_ms and s.draw_ms else None
        out.append(Ratios(s.impl, ratio, ceiling, ratio / ceiling if ratio and ceiling else None))
    return out


NOISE_LABEL = "timing noise"  # what a share of a ceiling above 1 is called, in the reports and the commands


def noisy_share(share: float | None) -> bool:
    """Whether a share of a ceiling is above 1, which cannot be (an update does its products and its draws, and more):
    the ceiling's parts were timed in a slower moment than the epochs (a shared machine's)."""
    return share is not None and math.isfinite(share) and share > 1


def noisy_share_lines(table: pd.DataFrame) -> list[str]:
    """One line per row of a speed or ablation table (``ratio_to_ceiling``) whose share of its ceiling is noise."""
    rows = table if "impl" in table else table.rename_axis("impl").reset_index()
    lines = []
    for row in rows.to_dict("records"):
        if noisy_share(row.get("ratio_to_ceiling")):
            where = ", ".join(f"{key} {row[key]}" for key in ("mode", "threads") if key in row)
            name = f"{row['impl']} ({where})" if where else row["impl"]
            share = f"share of ceiling {row['ratio_to_ceiling']:.2f}"
            lines.append(
                f"{name}: {share} is {NOISE_LABEL} (above 1 cannot be); its speed stands, re-run for its ceiling"
            )
    return lines
