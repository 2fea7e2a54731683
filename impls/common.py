"""The model contract every model folder follows: parameters as NumPy arrays, one life cycle.

Parameters cross the interface as plain NumPy arrays, so the harness draws the initial weights once and
hands the same bytes to every framework, and the scorer (``eval/``) scores every framework with one copy of
the metric code. A model's folder (``impls/<model>/``) holds its ``interface.py`` (its config, its `Params`,
its abstract class, its catalogue entry ``MODEL``) and one file per framework; the framework's glue (device,
precision policy, version, GPU probe, peak memory) is written once, in ``impls/backends/<framework>.py``.
"""

from __future__ import annotations

import hashlib
import sys
import time
from abc import ABC, abstractmethod
from collections.abc import Callable
from dataclasses import dataclass, fields
from types import ModuleType
from typing import Any, ClassVar, NamedTuple

import numpy as np


class OperatorEvent(NamedTuple):
    """One operator's execution in a framework's trace (`Implementation.trace_operators`): where it ran (a thread
    of the trace), the operator's kind (``MatMul``, ``aten::addmm``, an XLA ``fusion``), and when, in nanoseconds
    on the trace's clock. An operator may contain others (an XLA ``while`` its body): `eval.timing.profile` takes
    self times."""

    thread: str
    name: str
    start_ns: int
    end_ns: int


@dataclass(frozen=True)
class Mode:
    """One way a framework can execute an implementation's arithmetic (eager, compiled, one graph an epoch, ...).

    Modes of one implementation compute the same update from the same noise; they differ in how the framework
    runs it. `eval.timing.ablation` times each one and checks it against the reference. The first mode of an
    implementation's ``MODES`` on a device is the one a run uses unless a profile asks for another (``[run]
    modes``); it belongs first when a quiet ablation measured it the fastest equivalent one.

    Attributes
    ----------
    name : str
        Short name in profiles, rows (the ``mode`` column) and the ablation table.
    description : str
        What the framework does in this mode, as the report writes it.
    devices : tuple of str
        Where the mode exists (CUDA graphs only on a GPU).
    """

    name: str
    description: str
    devices: tuple[str, ...] = ("cpu", "cuda")


@dataclass(frozen=True)
class Model:
    """A model the suite trains: its catalogue entry (``MODEL`` in ``impls/<model>/interface.py``).

    Attributes
    ----------
    name : str
        Stable identifier: the folder's name, ``[model] kind`` in a profile, the ``model`` column of rows.
    display : str
        As the report writes it.
    data : {"windows", "sequences"}
        What it trains on: fixed windows of rows, or whole pieces frame by frame.
    partition : {"one", "per frame", "none"}
        What its likelihood needs: one log Z for the model, one per time step, or none (a normalised model).
    samples : {"windows", "pieces"}
        What its sampler returns: windows of the training shape, or pieces of any length.
    config, params, base : type
        Its config dataclass (its ``[model]`` section's keys), its `Params` and its abstract class.
    init : callable
        ``init(config, seed_sequence) -> Params``: the initial weights every framework starts from.
    """

    name: str
    display: str
    data: str
    partition: str
    samples: str
    config: type
    params: type
    base: type
    init: Callable[..., Any]


@dataclass
class Params:
    """A model's parameters as NumPy arrays, one dataclass field each (subclasses declare the fields)."""

    def arrays(self) -> tuple[np.ndarray, ...]:
        """The arrays in field order."""
        return tuple(getattr(self, f.name) for f in fields(self))

    @classmethod
    def names(cls) -> tuple[str, ...]:
        """The field names: the keys of a model's init and params files."""
        return tuple(f.name for f in fields(cls))

    def astype(self, dtype: str | np.dtype) -> Params:
        """A copy in ``dtype`` (always a copy: never a view of a model's live weights)."""
        return type(self)(*(np.array(a, dtype=dtype) for a in self.arrays()))

    @property
    def hash(self) -> str:
        """sha256 of the float64 bytes: proves that every framework started from the same weights."""
        digest = hashlib.sha256()
        for array in self.arrays():
            digest.update(np.ascontiguousarray(array, dtype=np.float64).tobytes())
        return digest.hexdigest()

    def finite(self) -> bool:
        return all(np.isfinite(a).all() for a in self.arrays())

    def largest(self) -> float:
        """The largest absolute parameter (the divergence monitor's bound); an empty array counts 0 (a model may
        have a part of size zero, e.g. an RNN-NADE without recurrence)."""
        return max(float(np.abs(a).max(initial=0.0)) for a in self.arrays())


def binary_bytes(data: np.ndarray) -> np.ndarray:
    """A model's training data (windows, or a frame table) as bytes (uint8): what every framework keeps.

    A quarter of float32's memory, and of the traffic of each batch's gather (the default run's 5,000 windows: 12 MB
    against 47 MB, inside this machine's 32 MB cache); a batch becomes the model's dtype after its gather, 0 and 1
    exactly, so the arithmetic is unchanged. The data are binary: any other value is an error, not a truncation.
    """
    data = np.asarray(data)
    if data.dtype != np.uint8 and not ((data == 0) | (data == 1)).all():
        raise ValueError("training data must be binary (0 or 1); got other values")
    return data.astype(np.uint8)  # a copy: the model never shares the caller's array


def uniforms(rng: np.random.Generator, shape: tuple[int, ...], dtype: Any, out: np.ndarray | None = None) -> np.ndarray:
    """``rng.random(shape, dtype)``, the same numbers, drawn faster where float32 allows (into ``out``, a contiguous
    array of that shape and dtype, if given: no new array of that size).

    NumPy makes a float32 uniform from 32 bits, ``(bits >> 8) * 2**-24``, and PCG64 hands out each 64-bit output as
    two such halves (low first), one call per half: 1.28 ms for the RNN-RBM's 714,000 uniforms of an update. Taking
    the 64-bit outputs in one call (``random_raw``) and converting them in three vectorised passes gives the same
    floats in 0.98 ms (2-core AMD EPYC, 1 thread, 2026-12-07). Where a half is left over (an odd count, or a half
    kept from an earlier call) or the generator is another, NumPy draws them itself: the stream never changes.
    """
    dtype, size = np.dtype(dtype), int(np.prod(shape))
    generator = rng.bit_generator
    fast = dtype == np.float32 and size % 2 == 0 and sys.byteorder == "little"
    if not fast or not isinstance(generator, np.random.PCG64) or generator.state["has_uint32"]:
        return rng.random(shape, dtype, out=out)
    bits = generator.random_raw(size // 2).view(np.uint32)  # little-endian: each output's low half first, as NumPy
    np.right_shift(bits, 8, out=bits)
    floats = np.empty(size, np.float32) if out is None else out.reshape(-1)
    np.copyto(floats, bits.view(np.int32), casting="unsafe")  # exact: below 2**24; signed converts in SIMD (0.65x)
    floats *= np.float32(2**-24)
    return floats.reshape(shape)


def bucketed_shape(updates: list[np.ndarray], batch_size: int, chunk_length: int, bucket: int) -> tuple[int, int]:
    """``(chunks, frames)`` to pad ``updates`` (each (chunks, frames, n)) to, where a framework compiles one shape per
    ``bucket`` of lengths: ``batch_size`` chunks (or more), the longest update's frames rounded up to a multiple of
    ``bucket``, at most ``chunk_length`` unless longer. Pieces end at any frame, so most chunks are short (JSB: ~55
    of 100 frames on average): padding each to ``chunk_length`` would do about twice the work for them."""
    chunks, frames = max(batch_size, len(updates[0])), max(v.shape[1] for v in updates)
    return chunks, max(frames, min(-(-frames // bucket) * bucket, chunk_length))


class Implementation(ABC):
    """One model in one framework: ``Implementation(config, params, seed)``, then the life cycle
    `set_data` -> `train_epoch` (per epoch) -> `params` / `sample`.

    ``backend`` is the framework's glue module (``impls.backends.<framework>``); the version, the GPU probe,
    the precision switches and the peak memory are read from it, so no model file repeats them.
    """

    name: str = "?"
    backend: ModuleType
    MODES: ClassVar[tuple[Mode, ...]] = (Mode("default", "the framework's one way"),)
    requested_mode: ClassVar[str | None] = None  # set by `in_mode`; None: the first mode for the device

    def __init__(self, config: Any, params: Params, seed: int) -> None:
        self.config = config
        self.mode = self.mode_for(config.device)

    @classmethod
    def modes_for(cls, device: str) -> tuple[str, ...]:
        """The names of the modes that exist on ``device``, the default first."""
        return tuple(m.name for m in cls.MODES if device in m.devices)

    @classmethod
    def mode_for(cls, device: str) -> str:
        """The mode an instance on ``device`` runs in: the requested one, else the device's first."""
        names = cls.modes_for(device)
        if cls.requested_mode is None:
            return names[0]
        if cls.requested_mode not in names:
            known = ", ".join(names)
            raise ValueError(f"{cls.name} has no mode {cls.requested_mode!r} on {device}; its modes: {known}")
        return cls.requested_mode

    @classmethod
    def in_mode(cls, mode: str | None) -> type:
        """This class running in ``mode`` (None or ``default``: itself): a subclass that only names the mode."""
        if mode in (None, "default"):
            return cls
        if mode not in {m.name for m in cls.MODES}:
            known = ", ".join(m.name for m in cls.MODES)
            raise ValueError(f"{cls.name} has no mode {mode!r}; its modes: {known}")
        return type(cls.__name__, (cls,), {"requested_mode": mode, "__module__": cls.__module__})

    def rate(self, learning_rate: float | None) -> float:
        """This update's rate: the schedule's if given, else the configured one."""
        return self.config.learning_rate if learning_rate is None else learning_rate

    @classmethod
    def framework_version(cls) -> str:
        """Version string of the framework, recorded with every result."""
        return cls.backend.version()

    @classmethod
    def device_unavailable(cls, device: str) -> str | None:
        """Why this framework cannot run on ``device`` here (``None`` if it can): becomes a skipped row."""
        return cls.backend.device_unavailable(device)

    def precision_settings(self) -> dict[str, str]:
        """The framework switches that enforce the config's precision, recorded with the results."""
        return self.backend.settings()

    def peak_device_mb(self) -> float | None:
        """Peak accelerator memory of this process in MB (``None`` on the CPU, where peak RSS says it)."""
        return self.backend.peak_device_mb(self.config.device)

    @abstractmethod
    def set_data(self, data: np.ndarray) -> None:
        """Take the training data once (uint8 rows: windows, or a piece's frames); it stays on the device."""

    @abstractmethod
    def train_epoch(self, batches: list[np.ndarray], learning_rate: float | None = None) -> np.ndarray | None:
        """One update per batch of row indices into the data; returns when the work is done.

        ``learning_rate`` overrides the configured rate for this epoch (a schedule). A model with a training
        cost returns each update's cost; one without returns ``None``.
        """

    def reseed(self, seed: int) -> None:
        """Restart the implementation's random stream from ``seed``: a long run seeds each epoch apart, so a task
        resumed from a checkpoint draws what it would have drawn (`eval.models.checkpoints`). A model whose
        implementations lack it cannot run long (its plug-in does not declare ``checkpoints``)."""
        raise NotImplementedError(f"{type(self).__name__} cannot restart its random stream")

    @abstractmethod
    def params(self) -> Params:
        """The current parameters as NumPy arrays (float64 copies)."""

    @abstractmethod
    def sample(self, n: int, *args: Any, **kwargs: Any) -> np.ndarray:
        """``n`` binary samples (uint8), in the model's own shape (its interface says which)."""

    @classmethod
    def trace_operators(cls, run: Callable[[], object]) -> tuple[int, list[OperatorEvent]] | None:
        """``run()`` under the framework's own profiler: its wall time (ns) and every operator it executed
        (`OperatorEvent`); None for a framework without one (NumPy calls its kernels from Python, with no dispatch
        layer between). Read by `eval.timing.profile`, the report's "where the time goes"."""
        trace = getattr(cls.backend, "trace_operators", None)
        return None if trace is None else trace(run)

    @staticmethod
    def best_ms(run: Callable[[], object], repeats: int) -> float:
        """Fastest of ``repeats`` timed calls of ``run`` (after one untimed warm-up call), in milliseconds."""
        run()
        best = float("inf")
        for _ in range(repeats):
            start = time.perf_counter()
            run()
            best = min(best, time.perf_counter() - start)
        return best * 1e3
