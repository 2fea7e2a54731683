"""TensorFlow glue: op determinism, TensorFloat-32 only under ``tf32``, GPU probe, memory, graphs per shape, the
operator trace."""

from __future__ import annotations

import re
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import tensorflow as tf

from impls.common import OperatorEvent


def version() -> str:
    return tf.__version__


def device_unavailable(device: str) -> str | None:
    if device == "cuda" and not tf.config.list_physical_devices("GPU"):
        return "skipped: no GPU (tf.config.list_physical_devices('GPU') is empty)"
    return None


def configure(precision: str) -> None:
    """Deterministic ops; TensorFlow allows TF32 by default on GPUs that have it: only ``tf32`` turns it on."""
    tf.config.experimental.enable_op_determinism()
    tf.config.experimental.enable_tensor_float_32_execution(precision == "tf32")


def settings() -> dict[str, str]:
    return {"tf.tensor_float_32_execution": str(tf.config.experimental.tensor_float_32_execution_enabled())}


def peak_device_mb(device: str) -> float | None:
    return tf.config.experimental.get_memory_info("GPU:0")["peak"] / 2**20 if device == "cuda" else None


def device_name(device: str) -> str:
    """TensorFlow's name of a config's device."""
    return "/GPU:0" if device == "cuda" else "/CPU:0"


def in_graph(graphs: dict, function: Callable, *args) -> object:
    """``function(*args)`` in the graph traced for these argument shapes on their first use (kept in ``graphs``),
    called as a concrete function: never retraced, never warned about (a sequence dataset's epoch has ~18 update
    shapes; a graph may unroll its time loops over a shape's frames)."""
    key = (function.__name__, *(tuple(a.shape) for a in tf.nest.flatten(args)))
    if key not in graphs:
        graphs[key] = tf.function(function).get_concrete_function(*args)
    return graphs[key](*args)


def trace_operators(run: Callable[[], object]) -> tuple[int, list[OperatorEvent]]:
    """``run()`` under TensorFlow's profiler: wall time (ns) and every kernel the executor ran (trace events named
    ``scope/node:OpType``, one per kernel) and every operation XLA ran for a ``jit_compile`` function inside a graph
    (its thunks, named by their HLO instruction: ``multiply_bitcast_fusion.1`` -> ``multiply_bitcast_fusion``); the
    executor's and the eager layer's own events (``ExecutorState::Process``, ``BlockUntilReady``) are left out."""
    from tensorflow.tsl.profiler.protobuf import xplane_pb2

    options = tf.profiler.experimental.ProfilerOptions(host_tracer_level=2, python_tracer_level=0)
    with tempfile.TemporaryDirectory() as logdir:
        tf.profiler.experimental.start(logdir, options=options)
        started = time.perf_counter_ns()
        run()
        wall_ns = time.perf_counter_ns() - started
        tf.profiler.experimental.stop()
        space = xplane_pb2.XSpace.FromString(next(Path(logdir).rglob("*.xplane.pb")).read_bytes())
    events = []
    for plane in space.planes:
        for line in plane.lines:
            for event in line.events:
                name = plane.event_metadata[event.metadata_id].name
                kernel = _KERNEL.match(name) or (line.name.startswith("tf_Compute") and _XLA_OPERATION.match(name))
                if kernel:
                    start = line.timestamp_ns + event.offset_ps // 1000
                    thread = f"{plane.name}/{line.id}"
                    events.append(OperatorEvent(thread, kernel[1], start, start + event.duration_ps // 1000))
    return wall_ns, events


_KERNEL = re.compile(r"^[\w/.\-]+:(\w+)$")  # "while/body/_1/while/MatMul_3:MatMul" -> MatMul
_XLA_OPERATION = re.compile(r"^([a-z][\w\-]*?)(?:\.\d+)?$")  # "multiply_bitcast_fusion.1": lower case, as HLO names
