"""The errors a command reports as one line (file, what is wrong, what to do) and exit code 2."""

from __future__ import annotations


class UserError(ValueError):
    """Bad input or a state the user can fix: one line, exit 2, no traceback."""


class ConfigError(UserError):
    """A profile, option or typed value that cannot run."""


def os_error_line(error: OSError, what_to_do: str = "free some space or choose a writable folder") -> str:
    """One line for an OS error: the file, what went wrong, what to do."""
    where = error.filename or "(unknown file)"
    return f"{where}: {error.strerror or error}; {what_to_do}"
