"""Complete-or-absent files: write a temporary file, fsync it, rename it over the target.

A reader never sees a half-written file, and a failed write (disk full,
read-only folder, a crash) leaves no partial file behind: the temporary file
is removed and the old target, if any, is untouched.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Callable
from pathlib import Path


def atomic_write(path: Path, write: Callable[[Path], object]) -> None:
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


def atomic_write_text(path: Path, text: str) -> None:
    atomic_write(path, lambda temporary: Path(temporary).write_text(text))


def atomic_write_bytes(path: Path, data: bytes) -> None:
    atomic_write(path, lambda temporary: Path(temporary).write_bytes(data))


def os_error_line(error: OSError, what_to_do: str = "free some space or choose a writable folder") -> str:
    """One line for an OS error: the file, what went wrong, what to do."""
    where = error.filename or "(unknown file)"
    return f"{where}: {error.strerror or error}; {what_to_do}"
