"""JAX glue: float64 on request, the faster single-device random stream, matmul precision, GPU probe, memory."""

from __future__ import annotations

import jax

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


def device(name: str) -> jax.Device:
    """The JAX device of a config's device name."""
    return jax.devices("gpu" if name == "cuda" else "cpu")[0]


def peak_device_mb(name: str) -> float | None:
    if name != "cuda":
        return None
    stats = device(name).memory_stats() or {}
    return stats.get("peak_bytes_in_use", 0) / 2**20
