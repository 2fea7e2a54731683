"""The catalogues of this layer: every framework and every model, each listed here and nowhere else.

Everything that names a framework or a model — profile validation, the tasks, ``env.json``, the report's
tables and figures, the verdict, the speed and scaling commands, the help texts — reads these two tuples.
Adding a framework is one file in ``impls/`` plus one `Framework` entry; adding a model is one `Model` entry
plus its class in each framework's ``models``. Nothing here imports a framework: `available` probes with
``importlib.util.find_spec`` and `load` imports one implementation's module when it is used.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from importlib.metadata import PackageNotFoundError, version


@dataclass(frozen=True)
class Model:
    """A model the suite trains, and what the layers above need to know about its shape.

    Attributes
    ----------
    name : str
        Stable identifier (``[model] kind`` in a profile, the ``model`` column of rows).
    display : str
        As the report writes it.
    data : {"windows", "sequences"}
        What it trains on: fixed windows of rows, or whole pieces frame by frame.
    partition : {"one", "per frame"}
        What its likelihood needs: one log Z for the model, or one per time step.
    samples : {"windows", "pieces"}
        What its sampler returns: windows of the training shape, or pieces of any length.
    """

    name: str
    display: str
    data: str = "windows"
    partition: str = "one"
    samples: str = "windows"


@dataclass(frozen=True)
class Framework:
    """One framework's implementations and how to find, describe and install it.

    Attributes
    ----------
    name : str
        Short name in profiles, rows and options (``numpy``, ``torch``, ...).
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
    models : dict
        Model name -> ``"module:Class"`` of its implementation.
    reference : bool
        The specification the others are checked against (the verdict's reference).
    """

    name: str
    display: str
    import_name: str
    distributions: tuple[str, ...]
    devices: tuple[str, ...] = ("cpu", "cuda")
    extra: str | None = None
    models: dict[str, str] = field(default_factory=dict)
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


MODELS: tuple[Model, ...] = (
    Model("rbm", "window RBM", data="windows", partition="one", samples="windows"),
    # Boulanger-Lewandowski, Bengio & Vincent, ICML 2012: an RBM per frame, its biases from an RNN over the past
    Model("rnn_rbm", "RNN-RBM", data="sequences", partition="per frame", samples="pieces"),
)

FRAMEWORKS: tuple[Framework, ...] = (
    Framework(
        "numpy", "NumPy (reference)", "numpy", ("numpy",), devices=("cpu",),
        models={"rbm": "impls.numpy_rbm:NumpyRBM", "rnn_rbm": "impls.numpy_rnn_rbm:NumpyRNNRBM"}, reference=True,
    ),
    Framework(
        "torch", "PyTorch", "torch", ("torch",), extra="torch",
        models={"rbm": "impls.torch_rbm:TorchRBM", "rnn_rbm": "impls.torch_rnn_rbm:TorchRNNRBM"},
    ),
    Framework(
        "tf", "TensorFlow", "tensorflow", ("tensorflow", "tensorflow-cpu"), extra="tf",
        models={"rbm": "impls.tf_rbm:TFRBM", "rnn_rbm": "impls.tf_rnn_rbm:TFRNNRBM"},
    ),
    Framework(
        "jax", "JAX", "jax", ("jax",), extra="jax",
        models={"rbm": "impls.jax_rbm:JaxRBM", "rnn_rbm": "impls.jax_rnn_rbm:JaxRNNRBM"},
    ),
)  # fmt: skip
