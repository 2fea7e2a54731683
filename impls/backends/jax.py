"""JAX glue: float64 on request, the faster single-device random stream, matmul precision, GPU probe, memory, the
operator trace."""

from __future__ import annotations

import contextlib
import functools
import re
import tempfile
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import jax

from impls.common import OperatorEvent

jax.config.update("jax_enable_x64", True)  # float64 on request; every array names its dtype
# One device, no sharding: the unpartitionable threefry stream draws about twice as fast on the CPU (measured).
jax.config.update("jax_threefry_partitionable", False)


def version() -> str:
    return jax.__version__


def device_unavailable(device: str) -> str | None:
    if device == "cuda":
        try:
            jax.devices("gpu")
        except RuntimeError as error:
            return f"skipped: no GPU (jax.devices('gpu'): {str(error)[:120]})"
    return None


def configure(precision: str) -> None:
    """float32 products at full precision (no TF32 on GPUs) unless ``tf32`` is asked for."""
    jax.config.update("jax_default_matmul_precision", "tensorfloat32" if precision == "tf32" else "highest")


def settings() -> dict[str, str]:
    return {"jax_default_matmul_precision": str(jax.config.jax_default_matmul_precision)}


@functools.cache
def _threefry_lowerings() -> tuple[dict, object, object] | None:
    """``(JAX's CPU lowering table, the threefry primitive, its unrolled entry)``, looked up once; None where JAX's
    private registry moved."""
    try:
        from jax._src.interpreters import mlir
        from jax._src.random import threefry2x32 as threefry

        table, primitive = mlir._platform_specific_lowerings["cpu"], threefry.threefry2x32_p
        table[primitive]  # JAX's own CPU rule is there to swap
        return table, primitive, mlir.LoweringRuleEntry(threefry._threefry2x32_lowering_rule, True)
    except (ImportError, AttributeError, KeyError):
        return None


@contextlib.contextmanager
def unrolled_threefry() -> Iterator[bool]:
    """What compiles inside the block lowers threefry unrolled on the CPU, as JAX does on every other platform;
    yields whether it could (JAX's lowering registry is private: where it moved, the block changes nothing).

    On the CPU JAX lowers each threefry call as a loop of five rounds, to compile faster. Unrolled, the same numbers
    come out (the same arithmetic; tested) faster where the noise is large beside the rest: the RNN-RBM's update noise
    0.63 ms instead of 1.39, its JSB epoch 0.864x (2-core AMD EPYC, 1 thread, 2026-12-07). The window RBM's compiled
    epoch was 1.64x slower with it, so a model opts in around its own calls; a function compiled once keeps its
    lowering, and a call that compiles nothing pays only the swap of one dictionary entry.
    """
    found = _threefry_lowerings()
    if found is None:
        yield False
        return
    table, primitive, unrolled = found
    rolled, table[primitive] = table[primitive], unrolled
    try:
        yield True
    finally:
        table[primitive] = rolled


def device(name: str) -> jax.Device:
    """The JAX device of a config's device name."""
    return jax.devices("gpu" if name == "cuda" else "cpu")[0]


def peak_device_mb(name: str) -> float | None:
    if name != "cuda":
        return None
    stats = device(name).memory_stats() or {}
    return stats.get("peak_bytes_in_use", 0) / 2**20


def trace_operators(run: Callable[[], object]) -> tuple[int, list[OperatorEvent]]:
    """``run()`` under JAX's profiler (no Python tracer): wall time (ns) and every compiled XLA operation it ran
    (``fusion.3`` -> ``fusion``; a ``while`` contains its body's: `eval.timing.profile` takes self times). On the
    CPU they are the thunks of the ``tf_XLA*`` threads; on a GPU the device's kernels."""
    options = jax.profiler.ProfileOptions()
    options.python_tracer_level = 0
    with tempfile.TemporaryDirectory() as logdir:
        jax.profiler.start_trace(logdir, profiler_options=options)
        started = time.perf_counter_ns()
        run()
        wall_ns = time.perf_counter_ns() - started
        jax.profiler.stop_trace()
        space = jax.profiler.ProfileData.from_file(str(next(Path(logdir).rglob("*.xplane.pb"))))
    events = []
    for plane in space.planes:
        for line in plane.lines:
            if not (line.name.startswith("tf_XLA") or (plane.name.startswith("/device:") and "Ops" in line.name)):
                continue
            for event in line.events:
                if "::" not in event.name and not event.name.startswith("end: "):  # the executor's own events
                    name = re.sub(r"\.\d+$", "", event.name)
                    events.append(OperatorEvent(f"{plane.name}/{line.name}", name, event.start_ns, event.end_ns))
    return wall_ns, events
