"""The one copy of the throughput arithmetic: roofline, ratio to it, and each implementation's ceiling.

The **roofline** of a shape is the fastest framework's time for the five
dense products of one CD-1 step (``v W``, ``h W^T``, ``v' W``, ``v^T h``,
``v'^T h'``), measured in the same run; an implementation's **ratio** is its
training windows/s over the roofline's; its **ceiling** is
``roofline time / (own five products + own noise draws)``: about the best
ratio it could reach with its framework's products and generator if all else
were free. Speeds are only ever compared as ratios measured in one run.
"""

from __future__ import annotations

import math
from dataclasses import dataclass


@dataclass(frozen=True)
class Speed:
    """One implementation's measurements for one shape."""

    impl: str
    windows_per_s: float | None
    five_products_ms: float | None
    draw_ms: float | None


@dataclass(frozen=True)
class Ratios:
    impl: str
    ratio_to_roofline: float | None
    ceiling: float | None
    ratio_to_ceiling: float | None


def roofline(speeds: list[Speed], batch: int) -> tuple[float, float]:
    """``(fastest five-product ms, roofline windows/s)`` over the implementations that measured it."""
    products = [s.five_products_ms for s in speeds if s.five_products_ms and math.isfinite(s.five_products_ms)]
    if not products:
        return math.nan, math.nan
    fastest = min(products)
    return fastest, batch / fastest * 1e3


def ratios(speeds: list[Speed], batch: int) -> list[Ratios]:
    """Each implementation's ratio to the roofline, its ceiling and how much of the ceiling it reaches."""
    fastest, roof = roofline(speeds, batch)
    out = []
    for s in speeds:
        ratio = s.windows_per_s / roof if s.windows_per_s and math.isfinite(roof) else None
        ceiling = fastest / (s.five_products_ms + s.draw_ms) if s.five_products_ms and s.draw_ms else None
        out.append(Ratios(s.impl, ratio, ceiling, ratio / ceiling if ratio and ceiling else None))
    return out
