"""Implementations by framework and model, found through the catalogues; a framework is imported only when loaded.

>>> from impls import available, load
>>> available()["numpy"]
Available(name='numpy', framework='numpy')
"""

from __future__ import annotations

import importlib.util
from dataclasses import dataclass

from impls import catalogue
from impls.catalogue import Framework
from impls.common import Implementation, Model, Params
from impls.rbm.interface import RBM, CDNoise, RBMConfig, RBMParams, init_params
from impls.rnn_nade.interface import RNNNADE, RNNNADEConfig, RNNNADENoise, RNNNADEParams, init_rnn_nade_params
from impls.rnn_rbm.interface import RNNRBM, RNNRBMConfig, RNNRBMNoise, RNNRBMParams, init_rnn_rbm_params


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


def model(name: str) -> Model:
    """One model's catalogue entry (a `KeyError` naming the known ones otherwise)."""
    known = models()
    if name not in known:
        raise KeyError(f"unknown model {name!r}; choose from {', '.join(known)}")
    return known[name]


def load(name: str, model_name: str = "rbm") -> type[Implementation]:
    """Import one implementation's module (``impls/<model>/<framework>.py``, and so its framework); its class."""
    item = framework(name)
    if model_name not in item.models:
        raise KeyError(f"{name} has no {model_name!r} implementation; it implements {', '.join(item.models)}")
    try:
        return catalogue.implementation(name, model(model_name))
    except ImportError as error:
        raise Unavailable(f"skipped: not installed ({item.import_name}: {error})") from error


IMPLEMENTATIONS = frameworks()  # name -> Framework, for iteration; the catalogue is the source

__all__ = [
    "IMPLEMENTATIONS",
    "RBM",
    "RNNNADE",
    "RNNRBM",
    "Available",
    "CDNoise",
    "Framework",
    "Implementation",
    "Model",
    "Params",
    "RBMConfig",
    "RBMParams",
    "RNNNADEConfig",
    "RNNNADENoise",
    "RNNNADEParams",
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
    "init_rnn_nade_params",
    "init_rnn_rbm_params",
    "load",
    "model",
    "models",
    "reference",
]
