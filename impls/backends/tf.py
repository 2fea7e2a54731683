"""TensorFlow glue: op determinism, TensorFloat-32 only under ``tf32``, GPU probe and memory."""

from __future__ import annotations

import tensorflow as tf


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
