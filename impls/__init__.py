"""Implementations by framework and model, found through the catalogues; a framework is imported only when loaded.

>>> from impls import available, load
>>> available()["numpy"]
Available(name='numpy', framework='numpy')
"""

from __future__ import annotations

import importlib
import importlib.util
from dataclasses import dataclass

from impls import catalogue
from impls.base import RBM, CDNoise, Params, RBMConfig, init_params
from impls.catalogue import Framework, Model
from impls.rnn_rbm_base import RNNRBM, RNNRBMConfig, RNNRBMNoise, RNNRBMParams, init_rnn_rbm_params


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


def frameworks() -> dict[str, Framework]:
    """The framework catalogue by name, in catalogue order (read at each call: tests may extend it)."""
    return {f.name: f for f in catalogue.FRAMEWORKS}


def models() -> dict[str, Model]:
    """The model catalogue by name."""
    return {m.name: m for m in catalogue.MODELS}


def framework(name: str) -> Framework:
    known = frameworks()
    if name not in known:
        raise KeyError(f"unknown implementation {name!r}; choose from {', '.join(known)}")
    return known[name]


def reference() -> str:
    """The framework every other one is checked against (the NumPy reference)."""
    return next(f.name for f in catalogue.FRAMEWORKS if f.reference)


def framework_versions() -> dict[str, str]:
    """Every catalogued framework's installed version (``env.json``), without importing any."""
    return {f.name: f.version() for f in catalogue.FRAMEWORKS}


def available() -> dict[str, Available | Skipped]:
    """Which implementations can run here, without importing any framework."""
    status: dict[str, Available | Skipped] = {}
    for item in catalogue.FRAMEWORKS:
        if importlib.util.find_spec(item.import_name) is None:
            status[item.name] = Skipped(item.name, f"skipped: not installed ({item.import_name} is not importable)")
        else:
            status[item.name] = Available(item.name, item.import_name)
    return status


def load(name: str, model: str = "rbm") -> type[RBM] | type[RNNRBM]:
    """Import one implementation's module (and so its framework) and return its class."""
    item = framework(name)
    if model not in item.models:
        raise KeyError(f"{name} has no {model!r} implementation; it implements {', '.join(item.models)}")
    module, _, cls = item.models[model].partition(":")
    try:
        return getattr(importlib.import_module(module), cls)
    except ImportError as error:
        raise Unavailable(f"skipped: not installed ({item.import_name}: {error})") from error


IMPLEMENTATIONS = frameworks()  # name -> Framework, for iteration; the catalogue is the source

__all__ = [
    "IMPLEMENTATIONS",
    "RBM",
    "RNNRBM",
    "Available",
    "CDNoise",
    "Framework",
    "Model",
    "Params",
    "RBMConfig",
    "RNNRBMConfig",
    "RNNRBMNoise",
    "RNNRBMParams",
    "Skipped",
    "Unavailable",
    "available",
    "framework",
    "framework_versions",
    "frameworks",
    "init_params",
    "init_rnn_rbm_params",
    "load",
    "models",
    "reference",
]
