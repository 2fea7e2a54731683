"""The benchmarks time every implementation on the CPU (the device the perf baseline was measured on)."""

from __future__ import annotations

import pytest


@pytest.fixture(scope="session")
def device() -> str:
    return "cpu"
