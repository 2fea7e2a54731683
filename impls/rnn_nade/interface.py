"""The RNN-NADE's interface and shared value types: one config, one parameter set, one noise, one ABC.

The model is the RNN-NADE of Boulanger-Lewandowski, Bengio & Vincent, "Modeling Temporal Dependencies in
High-Dimensional Sequences: Application to Polyphonic Music Generation and Transcription", ICML 2012, section 5:
the RNN-RBM (`impls.rnn_rbm`) with each frame's RBM replaced by a NADE (Larochelle & Murray, AISTATS 2011), whose
biases follow the same deterministic RNN over the true frames,

    b_v(t) = b_v + u(t-1) W_uv,   b_h(t) = b_h + u(t-1) W_uh
    u(t) = tanh(b_u + u(t-1) W_uu + v(t) W_vu),  u(0) = u0
    h_i(t) = sigmoid(b_h(t) + sum_{j<i} v_j(t) W[j])
    p(v_i(t) = 1 | v_<i(t), v(<t)) = sigmoid(b_v(t)_i + h_i(t) . V[i])

Arrays are row vectors multiplied on the right, as in `impls.rnn_rbm.interface`: ``W`` (the NADE's input weights)
and ``V`` (its output weights) are (n_visible, n_hidden), ``W_uv`` (n_recurrent, n_visible), ``W_uh``
(n_recurrent, n_hidden), ``W_uu`` (n_recurrent, n_recurrent), ``W_vu`` (n_visible, n_recurrent). Every
conditional is a product of sigmoids, so ``log p(v(t) | v(<t))`` is exact (no partition function) and so is its
gradient: training minimises the mean NLL per frame by Adam, with no sampling, and every framework reproduces the
NumPy reference update for update. Sampling is ancestral, unit by unit and frame by frame; its uniforms can be
given explicitly (`RNNNADENoise`), so generated pieces agree draw for draw.
"""

from __future__ import annotations

from abc import abstractmethod
from dataclasses import dataclass, field
from typing import Any, ClassVar, Literal, NamedTuple

import numpy as np

from core.typed import at_least, check
from impls.common import Implementation, Model, Params, binary_bytes, uniforms

# Adam (Kingma & Ba 2015) with its bias corrections, written out in every framework: one recipe, no library optimiser
BETA1, BETA2, EPSILON = 0.9, 0.999, 1e-8


@dataclass(frozen=True)
class RNNNADEConfig:
    """Hyper-parameters of one RNN-NADE training run.

    Attributes
    ----------
    n_visible, n_hidden, n_recurrent : int
        Units per frame (88 piano keys on the polyphonic benchmarks), NADE hidden units, RNN hidden units.
        ``n_recurrent = 0`` is the frame NADE (Larochelle & Murray 2011; the 2012 paper's "NADE" row): the same model
        with the recurrence off (its RNN arrays of size zero), so every frame has the biases ``b_v``, ``b_h``.
    learning_rate : float
        Adam's step size on the cost ``C = mean over frames of -log p(v(t) | v(<t))`` (nats per frame): the
        mean over all batch x chunk_length frames, so the rate does not depend on the chunk size.
    batch_size : int
        Sequence chunks per update.
    chunk_length : int
        Frames per training chunk; each chunk's RNN starts from ``u0`` and BPTT runs over the whole chunk.
    clip_norm : float
        Global norm the cost's gradient is clipped to before Adam (0: off).
    weight_decay : float
        L2 penalty: ``weight_decay * p`` is added to every parameter's (clipped) gradient (0: off).
    precision : {"float32", "float64"}
        Storage and arithmetic type (parameters and Adam's moments); float32 products are strict (no TF32).
    device : {"cpu", "cuda"}
        Where the framework keeps its tensors (the NumPy reference runs on the CPU only).
    lr_schedule : {"constant", "linear"}
        The rate of each epoch: constant, or decaying linearly to ``lr / epochs`` in the last one.

    A profile's ``[model]`` section is this config (``kind = "rnn_nade"``); ``n_visible`` comes from the data and
    ``device`` from ``[run]`` (``DERIVED``). Adam's betas (0.9, 0.999) and epsilon (1e-8) are fixed (`BETA1`...).
    """

    kind: ClassVar[str] = "rnn_nade"
    DERIVED: ClassVar[tuple[str, ...]] = ("n_visible", "device")

    n_visible: int = field(default=88, metadata=at_least(1))
    n_hidden: int = field(default=150, metadata=at_least(1))
    n_recurrent: int = field(default=100, metadata=at_least(0))
    learning_rate: float = 0.001
    batch_size: int = field(default=1, metadata=at_least(1))
    chunk_length: int = field(default=100, metadata=at_least(1))
    clip_norm: float = field(default=0.0, metadata=at_least(0))
    weight_decay: float = field(default=0.0, metadata=at_least(0))
    precision: Literal["float32", "float64"] = "float32"
    device: Literal["cpu", "cuda"] = "cpu"
    lr_schedule: Literal["constant", "linear"] = "constant"

    def __post_init__(self) -> None:
        check(self)

    @property
    def dtype(self) -> str:
        """The storage type (the precision's name: no TF32 policy)."""
        return self.precision

    def parameter_count(self, n_visible: int) -> int:
        """The ten parameters' entries at ``n_visible`` units (the memory guard's measure)."""
        V, H, R = n_visible, self.n_hidden, self.n_recurrent
        return 2 * V * H + V + H + R * V + R * H + R * R + V * R + 2 * R

    def update_bytes(self, n_visible: int, units: int) -> int:
        """About the working memory of one update of ``units`` frames in float64 (its worst): each frame's masked
        product (the ``n_visible x n_visible`` past of every unit), its NADE's hidden layer, pre-activations and their
        gradients (``n_visible x n_hidden``, about four of each), and its biases and RNN states with their gradients."""
        V, H, R = n_visible, self.n_hidden, self.n_recurrent
        return units * 8 * (V * V + 4 * V * H + 4 * (V + H + R))


class Weights(NamedTuple):
    """The ten parameters in one framework's arrays, in this order (a pytree for JAX, a nest for TF).

    The RNN's seven share the RNN-RBM's names, so `impls.rnn_rbm`'s ``recurrence`` and ``biases`` apply as they are.
    """

    W: Any
    V: Any
    b_v: Any
    b_h: Any
    W_uv: Any
    W_uh: Any
    W_uu: Any
    W_vu: Any
    b_u: Any
    u0: Any


@dataclass
class RNNNADEParams(Params):
    """RNN-NADE parameters as NumPy arrays, with the shapes of the module docstring (in `Weights` order)."""

    W: np.ndarray
    V: np.ndarray
    b_v: np.ndarray
    b_h: np.ndarray
    W_uv: np.ndarray
    W_uh: np.ndarray
    W_uu: np.ndarray
    W_vu: np.ndarray
    b_u: np.ndarray
    u0: np.ndarray


def init_rnn_nade_params(
    config: RNNNADEConfig, seed: int | np.random.SeedSequence, scale: float = 0.01, recurrent_scale: float = 0.01
) -> RNNNADEParams:
    """Initial parameters, drawn once in NumPy (float64) and shared by all implementations.

    ``W, V ~ N(0, scale^2)`` (a NADE's usual small start: every conditional near 1/2) and the four RNN matrices
    ``~ N(0, recurrent_scale^2)``; biases and ``u0`` zero. The RNN-RBM's 1e-4 for the RNN suits plain SGD; Adam
    rescales each parameter's step, so 0.01 starts nearer the regime it trains in at no risk.
    """
    rng = np.random.default_rng(seed)
    n_v, H, R = config.n_visible, config.n_hidden, config.n_recurrent
    W, V = rng.normal(0.0, scale, (n_v, H)), rng.normal(0.0, scale, (n_v, H))
    W_uv, W_uh, W_uu, W_vu = (rng.normal(0.0, recurrent_scale, s) for s in ((R, n_v), (R, H), (R, R), (n_v, R)))
    return RNNNADEParams(W, V, np.zeros(n_v), np.zeros(H), W_uv, W_uh, W_uu, W_vu, np.zeros(R), np.zeros(R))


class RNNNADENoise(NamedTuple):
    """The uniform of every draw of a generation, so frameworks can be checked draw for draw.

    ``v`` (n_pieces, n_frames, n_visible): unit i of frame t of piece b is on where ``v[b, t, i] < p(v_i = 1 | ...)``.
    """

    v: np.ndarray

    @classmethod
    def draw(cls, rng: np.random.Generator, config: RNNNADEConfig, n_pieces: int, n_frames: int) -> RNNNADENoise:
        return cls(uniforms(rng, (n_pieces, n_frames, config.n_visible), config.dtype))


class RNNNADE(Implementation):
    """An RNN-NADE trained by the exact gradient through time and Adam; one subclass per framework.

    Sequences go in as NumPy arrays (batch, T, n_visible) of 0/1 and results come out as NumPy. Each subclass
    keeps the parameters and Adam's state (both moments and the step count) on its device between calls.
    """

    config: RNNNADEConfig

    def __init__(self, config: RNNNADEConfig, params: RNNNADEParams, seed: int) -> None:
        super().__init__(config, params, seed)
        self.backend.configure(config.precision)
        self.table: np.ndarray | None = None

    def set_data(self, data: np.ndarray) -> None:
        """Take the frame table (uint8[frames, n_visible]): every update's chunks are rows of it."""
        self.table = binary_bytes(data)

    def train_epoch(self, batches: list[np.ndarray], learning_rate: float | None = None) -> np.ndarray:
        """One `train_chunks` call per update (an int array (chunks, frames) of rows of the frame table);
        returns each update's cost (the mean NLL per frame before the step; its chunks' mean)."""
        return np.array([self.train_chunks(self.table[rows], learning_rate=learning_rate).mean() for rows in batches])

    def sample(self, n: int, n_frames: int) -> np.ndarray:
        """``n`` pieces of ``n_frames`` frames (`generate` with the model's own draws)."""
        return self.generate(n, n_frames)

    def log_likelihood(self, v: np.ndarray) -> float:
        """Mean ``log p(v(t) | v(<t))`` over every frame of sequences ``v`` (batch, T, n_visible), in nats."""
        return float(np.mean(self.frame_log_probs(v)))

    def sequences(self, v: np.ndarray) -> np.ndarray:
        """``v`` checked as (batch, T, n_visible)."""
        v = np.asarray(v)
        if v.ndim != 3 or v.shape[2] != self.config.n_visible or 0 in v.shape:
            raise ValueError(f"sequences have shape {v.shape}; need (batch, T, {self.config.n_visible})")
        return v

    def updates(self, chunks: np.ndarray) -> list[np.ndarray]:
        """Consecutive groups of ``batch_size`` chunks, one per update (the last may be smaller)."""
        chunks, size = self.sequences(chunks), self.config.batch_size
        return [chunks[start : start + size] for start in range(0, len(chunks), size)]

    def checked_noise(self, noise: RNNNADENoise, n_pieces: int, n_frames: int) -> RNNNADENoise:
        """``noise`` checked against the pieces it generates."""
        want = (n_pieces, n_frames, self.config.n_visible)
        if np.shape(noise.v) != want:
            raise ValueError(f"noise has shape {np.shape(noise.v)}; need {want}")
        return noise

    @abstractmethod
    def train_chunks(self, chunks: np.ndarray, learning_rate: float | None = None) -> np.ndarray:
        """One `update` per `updates` group of ``chunks`` (N, T, n_visible); returns each update's cost."""

    @abstractmethod
    def update(self, v: np.ndarray, learning_rate: float | None = None) -> float:
        """One Adam step on the exact gradient of the mean NLL per frame of sequences ``v`` (batch, T, n_visible);
        returns that cost before the step."""

    @abstractmethod
    def conditional_biases(self, v: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """``(b_v(t), b_h(t))`` of every frame, (batch, T, n_visible) and (batch, T, n_hidden), from the true past."""

    @abstractmethod
    def frame_log_probs(self, v: np.ndarray) -> np.ndarray:
        """``log p(v(t) | v(<t))`` of every frame of ``v`` (batch, T, n_visible), exact, (batch, T) in nats."""

    @abstractmethod
    def generate(self, n_pieces: int, n_frames: int, noise: RNNNADENoise | None = None) -> np.ndarray:
        """``n_pieces`` binary pieces (uint8, (n_pieces, n_frames, n_visible)) by ancestral sampling.

        Unit by unit within a frame (unit i given the units before it), frame by frame (the RNN fed the sampled
        frame). ``noise`` holds every uniform; ``None`` draws them with the framework's own generator.
        """

    @abstractmethod
    def params(self) -> RNNNADEParams:
        """The current parameters as NumPy arrays (float64 copies)."""


# Boulanger-Lewandowski, Bengio & Vincent, ICML 2012, sec. 5: a NADE per frame, its biases from an RNN over the past
MODEL = Model(
    "rnn_nade", "RNN-NADE", data="sequences", partition="none", samples="pieces",
    config=RNNNADEConfig, params=RNNNADEParams, base=RNNNADE, init=init_rnn_nade_params,
)  # fmt: skip
