"""The RNN-RBM's interface and shared value types: one config, one parameter set, one noise, one ABC.

The model is the RNN-RBM of Boulanger-Lewandowski, Bengio & Vincent, "Modeling Temporal Dependencies in
High-Dimensional Sequences: Application to Polyphonic Music Generation and Transcription", ICML 2012,
section 3: a binary RBM per frame whose biases follow a deterministic RNN run over the frames,

    b_v(t) = b_v + W_uv u(t-1),   b_h(t) = b_h + W_uh u(t-1)                       (paper, eqs. 9-10)
    u(t) = tanh(b_u + W_uu u(t-1) + W_vu v(t)),  u(0) = u0                          (eq. 11)

Arrays are row vectors multiplied on the right (``x @ W``), so ``W`` is (n_visible, n_hidden), ``W_uv``
(n_recurrent, n_visible), ``W_uh`` (n_recurrent, n_hidden), ``W_uu`` (n_recurrent, n_recurrent) and ``W_vu``
(n_visible, n_recurrent): the paper's matrices transposed. Unlike the paper (and the deeplearning.net
tutorial), ``u0`` is learned here. As for every model (`impls.common`), parameters cross the interface as
NumPy arrays and every Gibbs draw can be given as explicit uniforms, so all four frameworks are checked against the
NumPy reference draw for draw.
"""

from __future__ import annotations

from abc import abstractmethod
from dataclasses import dataclass, field
from typing import Any, ClassVar, Literal, NamedTuple

import numpy as np

from core.typed import at_least, check
from impls.common import Implementation, Model, Params, binary_bytes, uniforms


@dataclass(frozen=True)
class RNNRBMConfig:
    """Hyper-parameters of one RNN-RBM training run (defaults: the deeplearning.net RNN-RBM tutorial).

    Attributes
    ----------
    n_visible, n_hidden, n_recurrent : int
        Units per frame: visible (156 = 78 pitches x {play, articulate}), RBM hidden, RNN hidden.
    cd_steps : int
        Gibbs steps k of each frame's CD-k negative sample v*(t) (and of each generated frame).
    learning_rate : float
        Plain SGD step on the cost ``C = mean over frames of F_t(v(t)) - F_t(v*(t))``: the cost is averaged
        over all batch x chunk_length frames, so the rate does not depend on the chunk size.
    batch_size : int
        Sequence chunks per update (the tutorial trains one 100-frame chunk per update).
    chunk_length : int
        Frames per training chunk, as the harness cuts pieces (the tutorial's 100); each chunk's RNN starts
        from ``u0`` and BPTT runs over the whole chunk.
    clip_norm : float
        Global gradient-norm clipping (0: off, the paper's plain SGD).
    precision : {"float32", "float64"}
        Storage and arithmetic type; float32 products are strict (no TF32) in every framework.
    device : {"cpu", "cuda"}
        Where the framework keeps its tensors (the NumPy reference runs on the CPU only).
    lr_schedule : {"constant", "linear"}
        The rate of each epoch: constant, or decaying linearly to ``lr / epochs`` in the last one.
    pretrain_epochs, pretrain_learning_rate : int, float
        The paper's initialisation: ``W``, ``b_v``, ``b_h`` from an RBM trained on the frames alone
        (`impls.rnn_rbm.numpy.pretrained`); 0 epochs: none.
    pretrain_rnn_epochs, pretrain_rnn_learning_rate : int, float
        The paper's other initialisation: the RNN's ``W_uv, W_uu, W_vu, b_u, u0`` trained to predict each frame
        from the ones before it by cross-entropy (`impls.rnn_rbm.numpy.pretrained_rnn`); 0 epochs: none.

    A profile's ``[model]`` section is this config (``kind = "rnn_rbm"``); ``n_visible`` comes from the data
    and ``device`` from ``[run]`` (``DERIVED``). The recipe is plain SGD on CD-k, as the paper.
    """

    kind: ClassVar[str] = "rnn_rbm"
    DERIVED: ClassVar[tuple[str, ...]] = ("n_visible", "device")

    n_visible: int = field(default=156, metadata=at_least(1))
    n_hidden: int = field(default=150, metadata=at_least(1))
    n_recurrent: int = field(default=100, metadata=at_least(1))
    cd_steps: int = field(default=15, metadata=at_least(1))
    learning_rate: float = 0.001
    batch_size: int = field(default=1, metadata=at_least(1))
    chunk_length: int = field(default=100, metadata=at_least(1))
    clip_norm: float = field(default=0.0, metadata=at_least(0))
    precision: Literal["float32", "float64"] = "float32"
    device: Literal["cpu", "cuda"] = "cpu"
    lr_schedule: Literal["constant", "linear"] = "constant"
    pretrain_epochs: int = field(default=0, metadata=at_least(0))
    pretrain_learning_rate: float = field(default=0.1, metadata=at_least(0, strict=True))
    pretrain_rnn_epochs: int = field(default=0, metadata=at_least(0))
    pretrain_rnn_learning_rate: float = field(default=0.01, metadata=at_least(0, strict=True))

    def __post_init__(self) -> None:
        check(self)

    @property
    def dtype(self) -> str:
        """The storage type (the precision's name: the RNN-RBM offers no TF32 policy)."""
        return self.precision

    def parameter_count(self, n_visible: int) -> int:
        """The nine parameters' entries at ``n_visible`` units (the memory guard's measure)."""
        V, H, R = n_visible, self.n_hidden, self.n_recurrent
        return V * H + V + H + R * V + R * H + R * R + V * R + 2 * R

    def update_bytes(self, n_visible: int, units: int) -> int:
        """About the working memory of one update of ``units`` frames in float64 (its worst): every Gibbs step's
        noise and states (``cd_steps`` x (visible + hidden)), each frame's biases, probabilities and RNN states
        with their gradients (about four of each)."""
        V, H, R = n_visible, self.n_hidden, self.n_recurrent
        return units * 8 * (self.cd_steps * 2 * (V + H) + 4 * (V + H + R))


class Weights(NamedTuple):
    """The nine parameters in one framework's arrays, in this order (a pytree for JAX, a nest for TF)."""

    W: Any
    b_v: Any
    b_h: Any
    W_uv: Any
    W_uh: Any
    W_uu: Any
    W_vu: Any
    b_u: Any
    u0: Any


@dataclass
class RNNRBMParams(Params):
    """RNN-RBM parameters as NumPy arrays, with the shapes of the module docstring (in `Weights` order)."""

    W: np.ndarray
    b_v: np.ndarray
    b_h: np.ndarray
    W_uv: np.ndarray
    W_uh: np.ndarray
    W_uu: np.ndarray
    W_vu: np.ndarray
    b_u: np.ndarray
    u0: np.ndarray


def init_rnn_rbm_params(
    config: RNNRBMConfig, seed: int | np.random.SeedSequence, scale: float = 0.01, recurrent_scale: float = 1e-4
) -> RNNRBMParams:
    """Initial parameters, drawn once in NumPy (float64) and shared by all implementations.

    ``W ~ N(0, scale^2)``, the four RNN matrices ``~ N(0, recurrent_scale^2)`` (the tutorial's 0.01 and
    0.0001), biases and ``u0`` zero.
    """
    rng = np.random.default_rng(seed)
    V, H, R = config.n_visible, config.n_hidden, config.n_recurrent
    W = rng.normal(0.0, scale, (V, H))
    W_uv, W_uh, W_uu, W_vu = (rng.normal(0.0, recurrent_scale, shape) for shape in ((R, V), (R, H), (R, R), (V, R)))
    return RNNRBMParams(W, np.zeros(V), np.zeros(H), W_uv, W_uh, W_uu, W_vu, np.zeros(R), np.zeros(R))


class RNNRBMNoise(NamedTuple):
    """The uniform draws of every Gibbs step of every frame, so frameworks can be checked bit for bit.

    ``h`` (k, batch, T, n_hidden) and ``v`` (k, batch, T, n_visible): step s of frame t of sequence b samples
    its hidden units with ``h[s, b, t]`` and then its visible units with ``v[s, b, t]``; a unit is on where
    ``u < p``. The same shapes drive training (k = cd_steps) and generation (k Gibbs steps per generated frame).
    """

    h: np.ndarray
    v: np.ndarray

    @classmethod
    def draw(
        cls, rng: np.random.Generator, config: RNNRBMConfig, batch: int, n_frames: int, k: int | None = None
    ) -> RNNRBMNoise:
        k = config.cd_steps if k is None else k
        h = uniforms(rng, (k, batch, n_frames, config.n_hidden), config.dtype)
        return cls(h, uniforms(rng, (k, batch, n_frames, config.n_visible), config.dtype))


class RNNRBM(Implementation):
    """An RNN-RBM trained by CD-k and BPTT; one subclass per framework, with the same constructor and methods.

    Sequences go in as NumPy arrays (batch, T, n_visible) of 0/1 and results come out as NumPy.
    """

    config: RNNRBMConfig

    def __init__(self, config: RNNRBMConfig, params: RNNRBMParams, seed: int) -> None:
        super().__init__(config, params, seed)
        self.backend.configure(config.precision)
        self.table: np.ndarray | None = None

    def set_data(self, data: np.ndarray) -> None:
        """Take the frame table (uint8[frames, n_visible]): every update's chunks are rows of it."""
        self.table = binary_bytes(data)

    def train_epoch(self, batches: list[np.ndarray], learning_rate: float | None = None) -> np.ndarray:
        """One `train_chunks` call per update (an int array (chunks, frames) of rows of the frame table);
        returns each update's cost, its chunks' mean."""
        return np.array([self.train_chunks(self.table[rows], learning_rate=learning_rate).mean() for rows in batches])

    def sample(self, n: int, n_frames: int, k: int | None = None) -> np.ndarray:
        """``n`` pieces of ``n_frames`` frames (`generate` from zeros with the model's own draws)."""
        return self.generate(n, n_frames, k)

    def sequences(self, v: np.ndarray) -> np.ndarray:
        """``v`` checked as (batch, T, n_visible)."""
        v = np.asarray(v)
        if v.ndim != 3 or v.shape[2] != self.config.n_visible or 0 in v.shape:
            raise ValueError(f"sequences have shape {v.shape}; need (batch, T, {self.config.n_visible})")
        return v

    def updates(self, chunks: np.ndarray, noise: list[RNNRBMNoise] | None = None) -> list[np.ndarray]:
        """Consecutive groups of ``batch_size`` chunks, one per update (the last may be smaller).

        ``noise``, if given, must hold one `RNNRBMNoise` per update.
        """
        chunks, size = self.sequences(chunks), self.config.batch_size
        updates = [chunks[start : start + size] for start in range(0, len(chunks), size)]
        if noise is not None and len(noise) != len(updates):
            raise ValueError(f"{len(noise)} noises for {len(updates)} updates; give one per update")
        return updates

    def padded_shape(self, updates: list[np.ndarray]) -> tuple[int, int]:
        """``(chunks, frames)`` every update is padded to where a framework compiles one shape: the config's
        ``(batch_size, chunk_length)``, or the first update's if larger."""
        return max(self.config.batch_size, len(updates[0])), max(self.config.chunk_length, updates[0].shape[1])

    def padded(self, updates: list[np.ndarray], shape: tuple[int, int]) -> tuple[np.ndarray, np.ndarray]:
        """The updates stacked, each padded with silent frames to ``shape``, and masks (1 on every real frame): the
        masked cost of a padded update is the update's own, since the RNN is causal."""
        batches = np.zeros((len(updates), *shape, self.config.n_visible))
        masks = np.zeros((len(updates), *shape))
        for index, v in enumerate(updates):
            batches[index, : len(v), : v.shape[1]], masks[index, : len(v), : v.shape[1]] = v, 1
        return batches, masks

    def checked_noise(self, noise: RNNRBMNoise, batch: int, n_frames: int) -> RNNRBMNoise:
        """``noise`` checked against the batch it drives."""
        h, v = np.shape(noise.h), np.shape(noise.v)
        k = h[0] if h else 0
        want_h, want_v = (k, batch, n_frames, self.config.n_hidden), (k, batch, n_frames, self.config.n_visible)
        if k < 1 or h != want_h or v != want_v:
            raise ValueError(f"noise has shapes {h} and {v}; need {want_h} and {want_v}")
        return noise

    @abstractmethod
    def train_chunks(
        self, chunks: np.ndarray, noise: list[RNNRBMNoise] | None = None, learning_rate: float | None = None
    ) -> np.ndarray:
        """One update per `updates` group of ``chunks`` (N, T, n_visible); returns each update's cost.

        ``noise``: one `RNNRBMNoise` per update, or ``None`` to draw with the framework's own generator.
        """

    @abstractmethod
    def cd_update(self, v: np.ndarray, noise: RNNRBMNoise, learning_rate: float | None = None) -> float:
        """One CD-k + BPTT update on sequences ``v`` from explicit ``noise``; returns the cost before the step.

        The cost is ``mean_{b,t} F_t(v(t)) - F_t(v*(t))`` with the negative samples v* held constant.
        """

    @abstractmethod
    def conditional_biases(self, v: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """``(b_v(t), b_h(t))`` of every frame, (batch, T, n_visible) and (batch, T, n_hidden).

        The RNN runs over the true frames ``v``; frame t's biases depend on frames before t only.
        """

    @abstractmethod
    def frame_free_energies(self, v: np.ndarray) -> np.ndarray:
        """``F_t(v(t)) = -v(t) b_v(t) - sum_j softplus(b_h(t) + v(t) W)_j`` of every frame, (batch, T)."""

    @abstractmethod
    def generate(
        self,
        n_pieces: int,
        n_frames: int,
        k: int | None = None,
        noise: RNNRBMNoise | None = None,
        start: np.ndarray | None = None,
    ) -> np.ndarray:
        """``n_pieces`` binary pieces (uint8, (n_pieces, n_frames, n_visible)), generated frame by frame.

        Each frame runs ``k`` (default ``cd_steps``) Gibbs steps of its conditional RBM from ``start`` (zeros, or
        an array broadcastable to the output's shape), and the RNN is then fed the sampled frame. ``noise``
        (k, n_pieces, n_frames, ...) drives the steps; ``None`` draws with the framework's own generator.
        """

    @abstractmethod
    def draw_ms(self, batch: int, n_frames: int, repeats: int = 20) -> float:
        """Milliseconds to draw one update's noise (``k x batch x n_frames`` uniforms for the hidden units, then for
        the visible ones) with this framework's own generator: work every update does besides its products, so
        ``roofline / (products + draws)`` is about the best ratio to the roofline it can reach, however well the rest
        is written. From a generator of the same kind made for the timing, never the model's."""

    @abstractmethod
    def params(self) -> RNNRBMParams:
        """The current parameters as NumPy arrays (float64 copies)."""

    def generation_start(self, n_pieces: int, n_frames: int, start: np.ndarray | None) -> np.ndarray:
        """The visible start of every frame's chain, (n_pieces, n_frames, n_visible) in float64."""
        shape = (n_pieces, n_frames, self.config.n_visible)
        if start is None:
            return np.zeros(shape)
        return np.ascontiguousarray(np.broadcast_to(np.asarray(start, float), shape))  # a writable copy


# Boulanger-Lewandowski, Bengio & Vincent, ICML 2012: an RBM per frame, its biases from an RNN over the past
MODEL = Model(
    "rnn_rbm", "RNN-RBM", data="sequences", partition="per frame", samples="pieces",
    config=RNNRBMConfig, params=RNNRBMParams, base=RNNRBM, init=init_rnn_rbm_params,
)  # fmt: skip
