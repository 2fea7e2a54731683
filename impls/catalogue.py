"""The catalogues of this layer: every framework and every model, each found here and nowhere else.

Everything that names a framework or a model — profile validation, the tasks, ``env.json``, the report's
tables and figures, the verdict, the speed and scaling commands, the help texts — reads these two tuples.
Both follow the folder: a **model** is a folder ``impls/<model>/`` whose ``interface.py`` holds its catalogue
entry ``MODEL`` (`impls.common.Model`); a **framework** is one `Framework` entry below plus its glue
``impls/backends/<framework>.py``, and it implements a model when ``impls/<model>/<framework>.py`` exists.
Nothing here imports a framework: `available` probes with ``importlib.util.find_spec`` and `load` imports
one implementation's module when it is used.
"""

from __future__ import annotations

import importlib
import importlib.util
from dataclasses import dataclass
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path

from impls.common import Model

HERE = Path(__file__).parent


@dataclass(frozen=True)
class Framework:
    """One framework: how to find, describe and install it.

    Attributes
    ----------
    name : str
        Short name in profiles, rows and options (``numpy``, ``torch``, ...): the file name of its glue
        (``impls/backends/<name>.py``) and of its implementation of each model (``impls/<model>/<name>.py``).
    display : str
        As the report writes it.
    import_name : str
        The framework's module, probed without importing it.
    distributions : tuple of str
        pip distributions whose version is recorded (the first one installed).
    devices : tuple of str
        Where it runs; a run on another device uses the first (the NumPy reference stays on the CPU).
    extra : str or None
        The ``pyproject.toml`` extra that installs it (None: a base dependency).
    reference : bool
        The specification the others are checked against (the verdict's reference).
    """

    name: str
    display: str
    import_name: str
    distributions: tuple[str, ...]
    devices: tuple[str, ...] = ("cpu", "cuda")
    extra: str | None = None
    reference: bool = False

    def device_for(self, requested: str) -> str:
        """The device this framework runs a ``requested`` run on (its first device if it lacks that one)."""
        return requested if requested in self.devices else self.devices[0]

    def version(self) -> str:
        """The installed version, read from the package metadata (no import), or ``not installed``."""
        for distribution in self.distributions:
            try:
                return version(distribution)
            except PackageNotFoundError:
                continue
        return "not installed"

    @property
    def models(self) -> tuple[str, ...]:
        """The catalogued models this framework implements (those with an ``impls/<model>/<name>.py``)."""
        return tuple(m.name for m in MODELS if (HERE / m.name / f"{self.name}.py").is_file())


def discover_models() -> tuple[Model, ...]:
    """Every folder of ``impls/`` with an ``interface.py``, by name: its ``MODEL``."""
    found = []
    for interface in sorted(HERE.glob("*/interface.py")):
        module = importlib.import_module(f"impls.{interface.parent.name}.interface")
        model = module.MODEL
        if model.name != interface.parent.name:
            raise ImportError(f"{interface}: MODEL is named {model.name!r}; name it after its folder")
        found.append(model)
    return tuple(found)


def implementation(framework: str, model: Model) -> type:
    """Import ``impls/<model>/<framework>.py`` and return its class (the subclass of the model's ``base``)."""
    module = importlib.import_module(f"impls.{model.name}.{framework}")
    classes = [
        value
        for value in vars(module).values()
        if isinstance(value, type) and issubclass(value, model.base) and value.__module__ == module.__name__
    ]
    if len(classes) != 1:
        raise ImportError(f"{module.__file__}: defines {len(classes)} subclasses of {model.base.__name__}; need one")
    return classes[0]


MODELS: tuple[Model, ...] = discover_models()

FRAMEWORKS: tuple[Framework, ...] = (
    Framework("numpy", "NumPy (reference)", "numpy", ("numpy",), devices=("cpu",), reference=True),
    Framework("torch", "PyTorch", "torch", ("torch",), extra="torch"),
    Framework("tf", "TensorFlow", "tensorflow", ("tensorflow", "tensorflow-cpu"), extra="tf"),
    Framework("jax", "JAX", "jax", ("jax",), extra="jax"),
)
