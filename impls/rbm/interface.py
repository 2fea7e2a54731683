"""The window RBM: its config (its ``[model]`` section), parameters, CD noise and the interface of its classes.

One file per framework beside this one (``numpy.py`` is the specification in code); the model contract
and the framework glue they share are `impls.common` and `impls.backends`.
"""

from __future__ import annotations

from abc import abstractmethod
from dataclasses import dataclass, field
from typing import ClassVar, Literal, NamedTuple

import numpy as np

from core.typed import at_least, check
from impls.common import Implementation, Model, Params


@dataclass(frozen=True)
class RBMConfig:
    """Hyper-parameters of one training run.

    Attributes
    ----------
    n_visible, n_hidden : int
        Layer sizes (2,340 visible units = 15 rows x 78 pitches x {play, articulate}).
    learning_rate : float
        Step size; the update is ``lr * (positive - negative statistics) / batch``.
    batch_size : int
        Windows per CD update (the persistent chain count under PCD).
    cd_steps : int
        Gibbs steps k of CD-k (k >= 1).
    persistent : bool
        Persistent CD: the negative chain continues across updates.
    statistics : {"samples", "probabilities"}
        ``samples``: binary hidden states in both phases' statistics (the 2016
        original). ``probabilities``: hidden probabilities instead (the common
        variant, lower variance); visible reconstructions are sampled in both.
    momentum : float
        Classical momentum: the step is ``velocity = momentum * velocity +
        rate * gradient`` (Hinton's guide, section 9); 0 is plain CD.
    weight_decay : float
        L2 penalty on ``W``: ``weight_decay * W`` is subtracted from its gradient.
    chain_start : {"shared", "fresh"}
        ``shared``: the negative chain starts from the positive phase's hidden
        sample. ``fresh``: from a hidden sample of its own, as the 2016
        original's ``gibbs_sample`` did (one more uniform draw per update).
    precision : {"float32", "tf32", "float64"}
        The one precision policy of every framework: ``float32`` with strict
        float32 products (TF32 off), ``tf32`` to allow TensorFloat-32 products
        on GPUs that have them, ``float64``.
    device : str
        ``cpu`` (default) or ``cuda``.
    lr_schedule : {"constant", "linear"}
        The rate of each epoch: constant, or decaying linearly to ``lr / epochs`` in the last one.
    init : {"normal", "seed"}
        The initial weights (`init_params`).

    A profile's ``[model]`` section is this config (``kind = "rbm"``); ``n_visible`` comes from the data and
    ``device`` from ``[run]`` (``DERIVED``).
    """

    kind: ClassVar[str] = "rbm"
    DERIVED: ClassVar[tuple[str, ...]] = ("n_visible", "device")

    n_visible: int = field(default=2340, metadata=at_least(1))
    n_hidden: int = field(default=50, metadata=at_least(1))
    learning_rate: float = 0.005  # any rate: the gate's tests inject 0 and negative rates; profiles ask for > 0
    batch_size: int = field(default=100, metadata=at_least(1))
    cd_steps: int = field(default=1, metadata=at_least(1))
    persistent: bool = False
    statistics: Literal["samples", "probabilities"] = "samples"
    momentum: float = field(default=0.0, metadata={"low": 0.0, "high": 0.999})
    weight_decay: float = field(default=0.0, metadata=at_least(0))
    chain_start: Literal["shared", "fresh"] = "shared"
    precision: Literal["float32", "tf32", "float64"] = "float32"
    device: Literal["cpu", "cuda"] = "cpu"
    lr_schedule: Literal["constant", "linear"] = "constant"
    init: Literal["normal", "seed"] = "normal"

    def __post_init__(self) -> None:
        check(self)  # the one check of these declarations, wherever the config comes from (one line)

    @property
    def dtype(self) -> str:
        """The storage type: float64 under the float64 policy, else float32."""
        return "float64" if self.precision == "float64" else "float32"

    def parameter_count(self, n_visible: int) -> int:
        """Weights and biases at ``n_visible`` units (the memory guard's measure, before anything is built)."""
        return n_visible * self.n_hidden + n_visible + self.n_hidden

    def update_bytes(self, n_visible: int, units: int) -> int:
        """About the working memory of one update of ``units`` windows: data, hidden and visible states and
        probabilities of the positive and negative phases, their noise, in float64 at worst."""
        return units * 8 * (n_visible + self.n_hidden) * 6


@dataclass
class RBMParams(Params):
    """RBM parameters as NumPy arrays: ``W`` (n_visible x n_hidden), ``b_v``, ``b_h``."""

    W: np.ndarray
    b_v: np.ndarray
    b_h: np.ndarray


def init_params(config: RBMConfig, seed: int | np.random.SeedSequence, scheme: str | None = None) -> RBMParams:
    """Initial parameters, drawn once in NumPy (float64) and shared by all implementations.

    ``normal``: ``W ~ N(0, 0.01^2)``, biases 0 (Hinton's guide).
    ``seed``: the 2016 original's ``tf.random_normal([n_visible, n_hidden], 0.01)``,
    which passes 0.01 as the *mean*, so ``W ~ N(0.01, 1)`` — the original's
    mistake, kept so the ``seed`` profile reproduces what it really trained.
    """
    rng, scheme = np.random.default_rng(seed), scheme or config.init
    shape = (config.n_visible, config.n_hidden)
    if scheme == "normal":
        W = rng.normal(0.0, 0.01, shape)
    elif scheme == "seed":
        W = rng.normal(0.01, 1.0, shape)
    else:
        raise ValueError(f"initialisation {scheme!r} is unknown; use normal or seed")
    return RBMParams(W, np.zeros(config.n_visible), np.zeros(config.n_hidden))


class CDNoise(NamedTuple):
    """The uniform draws of one CD-k update, so frameworks can be checked bit for bit.

    ``h_data`` (batch, n_hidden) samples the hidden units of the data;
    ``v`` (k, chains, n_visible) and ``h`` (k, chains, n_hidden) drive the k
    Gibbs steps of the negative chain; ``h_chain`` (batch, n_hidden), only
    under ``chain_start="fresh"``, samples the chain's own first hidden state.
    A unit is on where ``u < p``. A named tuple, so it passes through
    ``tf.function`` and ``jax.jit`` as a pytree.
    """

    h_data: np.ndarray
    v: np.ndarray
    h: np.ndarray
    h_chain: np.ndarray | None = None

    @classmethod
    def draw(cls, rng: np.random.Generator, config: RBMConfig, batch: int, chains: int | None = None) -> CDNoise:
        chains = batch if chains is None else chains
        k, V, H = config.cd_steps, config.n_visible, config.n_hidden
        h_data = rng.random((batch, H))
        h_chain = rng.random((batch, H)) if config.chain_start == "fresh" else None
        return cls(h_data, rng.random((k, chains, V)), rng.random((k, chains, H)), h_chain)


class RBM(Implementation):
    """A binary RBM trained by contrastive divergence; one subclass per framework.

    Every subclass has the same constructor and methods; arrays go in and come
    out as NumPy, while the training set and parameters stay on the device.
    """

    config: RBMConfig

    def __init__(self, config: RBMConfig, params: RBMParams, seed: int) -> None:
        super().__init__(config, params, seed)
        self.backend.configure(config.precision)

    @abstractmethod
    def set_data(self, windows: np.ndarray) -> None:
        """Take the training windows (uint8[N, n_visible]) once; they stay on the device as bytes
        (`impls.common.binary_bytes`)."""

    @abstractmethod
    def train_epoch(self, batches: list[np.ndarray], learning_rate: float | None = None) -> None:
        """One CD update per batch of row indices into the data; returns when the work is done.

        ``learning_rate`` overrides the configured rate for this epoch (a schedule).
        """

    @abstractmethod
    def cd_update(self, v: np.ndarray, noise: CDNoise, learning_rate: float | None = None) -> None:
        """One CD-k (or PCD-k) update of ``v`` driven by the caller's uniform ``noise``."""

    @abstractmethod
    def persistent_chain(self) -> np.ndarray | None:
        """The hidden states of the persistent chains (PCD), or ``None`` before any PCD update."""

    @abstractmethod
    def hidden_probs(self, v: np.ndarray) -> np.ndarray:
        """``p(h = 1 | v) = sigmoid(v W + b_h)`` for a batch."""

    @abstractmethod
    def visible_probs(self, h: np.ndarray) -> np.ndarray:
        """``p(v = 1 | h) = sigmoid(h W^T + b_v)`` for a batch."""

    @abstractmethod
    def free_energy(self, v: np.ndarray) -> np.ndarray:
        """``F(v) = -v b_v - sum_j softplus(v W + b_h)_j`` for a batch."""

    @abstractmethod
    def sample(self, n: int, steps: int, start: str | np.ndarray = "zeros") -> np.ndarray:
        """``n`` binary visible samples after ``steps`` Gibbs steps from ``start``.

        ``start`` is ``"zeros"`` (the original: an all-zero visible layer),
        ``"random"`` (fair coin flips), ``"persistent"`` (a visible sample of
        the persistent chains, reused cyclically if ``n`` exceeds their number)
        or an array of n visible vectors.
        """

    @abstractmethod
    def params(self) -> RBMParams:
        """The current parameters as NumPy arrays (float64 copies)."""

    @abstractmethod
    def five_products_ms(self, batch: int, repeats: int = 50) -> float:
        """Milliseconds for the five dense products of one CD-1 step alone, in this framework.

        ``v W``, ``h W^T``, ``v' W``, ``v^T h``, ``v'^T h'`` for a batch: the
        roofline of this shape on this machine (the fastest framework's time).
        """

    @abstractmethod
    def draw_ms(self, batch: int, repeats: int = 50) -> float:
        """Milliseconds to draw one CD update's uniform noise with this framework's own generator.

        ``batch x n_hidden``, then ``k x batch x n_visible`` and ``k x batch x n_hidden``
        uniforms (234,000 + 10,000 for CD-1 at the default shape): work that every
        sampled CD step does besides the five products, so
        ``roofline / (own products + draws)`` is about the best ratio to the
        roofline the implementation can reach, however well the rest is written
        (a fused step may save a little: it need not store the draws). Draws
        from a generator of the same kind made for the timing, not the model's.
        """

    def timing_batch(self, batch: int) -> tuple[np.ndarray, np.ndarray]:
        """A visible (5 % on) and a hidden batch for the product timings, from their own fixed stream.

        Timings never draw from the model's generator, so the samples a run
        scores do not depend on whether (or how often) it was timed.
        """
        rng = np.random.default_rng(0)
        v = rng.random((batch, self.config.n_visible)) < 0.05
        return v.astype(self.config.dtype), (rng.random((batch, self.config.n_hidden)) < 0.5).astype(self.config.dtype)

    def _start(self, n: int, start: str | np.ndarray, rng: np.random.Generator) -> np.ndarray:
        """The visible start of a Gibbs chain, drawn in NumPy so every framework starts alike."""
        if isinstance(start, str):
            if start == "zeros":
                return np.zeros((n, self.config.n_visible))
            if start == "random":
                return (rng.random((n, self.config.n_visible)) < 0.5).astype(float)
            if start == "persistent":
                chain = self.persistent_chain()
                if chain is None:
                    raise ValueError("start 'persistent' needs a PCD model that has trained (persistent = true)")
                probs = self.visible_probs(np.resize(chain, (n, self.config.n_hidden)))
                return (rng.random((n, self.config.n_visible)) < probs).astype(float)
            raise ValueError(f"start {start!r} is unknown; use zeros, random, persistent or an array")
        start = np.asarray(start, dtype=float)
        if start.shape != (n, self.config.n_visible):
            raise ValueError(f"start has shape {start.shape}; need ({n}, {self.config.n_visible})")
        return start


MODEL = Model(
    "rbm", "window RBM", data="windows", partition="one", samples="windows",
    config=RBMConfig, params=RBMParams, base=RBM, init=init_params,
)  # fmt: skip
