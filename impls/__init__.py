"""Registry of RBM implementations; a framework is imported only when its implementation is loaded.

>>> from impls import available, load
>>> available()["numpy"]
Available(name='numpy', framework='numpy')
"""

from __future__ import annotations

import importlib
import importlib.util
from dataclasses import dataclass

from impls.base import RBM, CDNoise, Params, RBMConfig, init_params

# name -> (module, class, framework's import name)
IMPLEMENTATIONS: dict[str, tuple[str, str, str]] = {
    "numpy": ("impls.numpy_rbm", "NumpyRBM", "numpy"),
    "torch": ("impls.torch_rbm", "TorchRBM", "torch"),
    "tf": ("impls.tf_rbm", "TFRBM", "tensorflow"),
    "jax": ("impls.jax_rbm", "JaxRBM", "jax"),
}


@dataclass(frozen=True)
class Available:
    name: str
    framework: str


@dataclass(frozen=True)
class Skipped:
    name: str
    reason: str


class Unavailable(ImportError):
    """An implementation whose framework is missing or fails to import."""


def available() -> dict[str, Available | Skipped]:
    """Which implementations can run here, without importing any framework."""
    status: dict[str, Available | Skipped] = {}
    for name, (_, _, framework) in IMPLEMENTATIONS.items():
        if importlib.util.find_spec(framework) is None:
            status[name] = Skipped(name, f"skipped: not installed ({framework} is not importable)")
        else:
            status[name] = Available(name, framework)
    return status


def load(name: str) -> type[RBM]:
    """Import one implementation's module (and so its framework) and return its class."""
    if name not in IMPLEMENTATIONS:
        raise KeyError(f"unknown implementation {name!r}; choose from {', '.join(IMPLEMENTATIONS)}")
    module, cls, framework = IMPLEMENTATIONS[name]
    try:
        return getattr(importlib.import_module(module), cls)
    except ImportError as error:
        raise Unavailable(f"skipped: not installed ({framework}: {error})") from error


__all__ = [
    "RBM",
    "Available",
    "CDNoise",
    "Params",
    "RBMConfig",
    "Skipped",
    "Unavailable",
    "available",
    "init_params",
    "load",
]
