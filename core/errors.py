"""The errors a command reports as one line (file, what is wrong, what to do) and exit code 2."""

from __future__ import annotations

import errno


class UserError(ValueError):
    """Bad input or a state the user can fix: one line, exit 2, no traceback."""


class ConfigError(UserError):
    """A profile, option or typed value that cannot run."""


# errno -> what went wrong in words, and what to do about it
_WHAT_TO_DO = {
    errno.ENOSPC: "free some space or point the output elsewhere ($RBM_BENCH_RUNS, $RBM_BENCH_CACHE)",
    errno.EFBIG: "the file would exceed the size limit (ulimit -f); raise it or point the output elsewhere",
    errno.EDQUOT: "the disk quota is used up; free some space or point the output elsewhere",
    errno.EACCES: "not permitted; choose a folder you can write or fix its permissions",
    errno.EPERM: "not permitted; choose a folder you can write or fix its permissions",
    errno.EROFS: "the file system is read-only; choose a writable folder",
    errno.ENOENT: "check the path (a folder on the way may be missing)",
    errno.ENOTDIR: "a part of the path is a file, not a folder; check the path",
    errno.EISDIR: "the path is a folder, not a file; give a file",
    errno.ECONNREFUSED: "nothing listens there; start the server (e.g. the Dask scheduler) or check the address",
    errno.ETIMEDOUT: "no answer in time; check the address and the network",
    errno.EHOSTUNREACH: "the host cannot be reached; check the address and the network",
    errno.ENETUNREACH: "the network cannot be reached; check the address and the network",
}


def os_error_line(error: OSError) -> str:
    """One line for an OS error: what failed and where (the file, or the connection), and what to do for its cause."""
    where = error.filename or ("connection" if isinstance(error, ConnectionError) else type(error).__name__)
    what_to_do = _WHAT_TO_DO.get(error.errno or -1, "check the path and try again")
    return f"{where}: {error.strerror or error}; {what_to_do}"
