"""NumPy: the reference runs on the CPU in the config's storage type; there is nothing to switch."""

from __future__ import annotations

import numpy as np


def version() -> str:
    return np.__version__


def device_unavailable(device: str) -> str | None:
    return None if device == "cpu" else f"skipped: the NumPy reference runs on the cpu only ({device})"


def configure(precision: str) -> None:
    """Nothing to switch: NumPy computes in the arrays' own type."""


def settings() -> dict[str, str]:
    return {}


def peak_device_mb(device: str) -> float | None:
    return None
