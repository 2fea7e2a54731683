"""Complete-or-absent files and the one sha256 of a file.

Every write goes to a temporary file beside the target, is fsynced and renamed over it: a reader never sees a
half-written file, and a failed write (disk full, read-only folder, a kill) leaves no partial file behind — the
temporary file is removed (or, after a kill, left under a dot-name no reader opens) and the old target is untouched.
"""

from __future__ import annotations

import contextlib
import hashlib
import io
import json
import os
from collections.abc import Callable
from pathlib import Path
from typing import Any


def atomic_write(path: Path | str, write: Callable[[Path], object]) -> None:
    """Write through ``write(temporary_path)``, fsync, then rename to ``path``."""
    path = Path(path)
    temporary = path.with_name(f".{path.name}.tmp{os.getpid()}")
    try:
        write(temporary)
        with open(temporary, "rb+") as handle:
            os.fsync(handle.fileno())
        os.replace(temporary, path)
    except BaseException as error:
        with contextlib.suppress(OSError):
            temporary.unlink()
        if isinstance(error, OSError) and error.filename is None:
            error.filename = str(path)  # a failed write() names no file; the error line must
        raise
    with contextlib.suppress(OSError):  # make the rename itself durable (not possible on every filesystem)
        directory = os.open(path.parent, os.O_RDONLY)
        try:
            os.fsync(directory)
        finally:
            os.close(directory)


def atomic_write_bytes(path: Path | str, data: bytes) -> None:
    atomic_write(path, lambda temporary: Path(temporary).write_bytes(data))


def atomic_write_text(path: Path | str, text: str) -> None:
    atomic_write_bytes(path, text.encode())


def atomic_write_json(path: Path | str, value: Any, indent: int | None = 1) -> None:
    atomic_write_text(path, json.dumps(value, indent=indent) + "\n")


def atomic_save_npz(path: Path | str, compressed: bool = True, **arrays: Any) -> None:
    """``np.savez[_compressed]`` to ``path``, complete or absent."""
    import numpy as np

    buffer = io.BytesIO()
    (np.savez_compressed if compressed else np.savez)(buffer, **arrays)
    atomic_write_bytes(path, buffer.getvalue())


def sha256_bytes(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def sha256_file(path: Path | str) -> str:
    """The sha256 of a file's bytes, read in blocks (the one copy of this in the project)."""
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()
