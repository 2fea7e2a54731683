"""PyTorch glue: deterministic algorithms, strict float32 products unless ``tf32``, CUDA probe, memory, the operator
trace."""

from __future__ import annotations

import time
from collections.abc import Callable

import torch

from impls.common import OperatorEvent


def version() -> str:
    return torch.__version__


def device_unavailable(device: str) -> str | None:
    if device == "cuda" and not torch.cuda.is_available():
        return "skipped: no GPU (torch.cuda.is_available() is False)"
    return None


def configure(precision: str) -> None:
    """Deterministic kernels; TensorFloat-32 products only under the ``tf32`` policy."""
    torch.use_deterministic_algorithms(True)
    allow_tf32 = precision == "tf32"
    torch.backends.cuda.matmul.allow_tf32 = allow_tf32
    torch.backends.cudnn.allow_tf32 = allow_tf32
    torch.set_float32_matmul_precision("high" if allow_tf32 else "highest")


def settings() -> dict[str, str]:
    return {
        "torch.float32_matmul_precision": torch.get_float32_matmul_precision(),
        "torch.backends.cuda.matmul.allow_tf32": str(torch.backends.cuda.matmul.allow_tf32),
    }


def peak_device_mb(device: str) -> float | None:
    return torch.cuda.max_memory_allocated(torch.device(device)) / 2**20 if device == "cuda" else None


def dtype(name: str) -> torch.dtype:
    """The storage type of a config's ``dtype`` name."""
    return getattr(torch, name)


def trace_operators(run: Callable[[], object]) -> tuple[int, list[OperatorEvent]]:
    """``run()`` under ``torch.profiler`` (CPU activity): wall time (ns) and every operator call on the host
    (``aten::addmm`` inside ``aten::linear``: nested, so `eval.timing.profile` takes self times). On a GPU the
    kernels run asynchronously; their launches are the host's operators here."""
    from torch.profiler import ProfilerActivity, profile

    with profile(activities=[ProfilerActivity.CPU]) as trace:
        started = time.perf_counter_ns()
        run()
        wall_ns = time.perf_counter_ns() - started
    events = [
        OperatorEvent(str(e.thread), e.name, int(e.time_range.start * 1e3), int(e.time_range.end * 1e3))
        for e in trace.events()
        if e.device_type == torch.autograd.DeviceType.CPU
    ]
    return wall_ns, events
