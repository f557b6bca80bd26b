"""The two kinds of failure a user meets, and their exit codes.

* :class:`UsageError` (exit 2): the request itself is wrong (an unknown method, a field of the wrong type, an
  option out of range, weights that do not match the named model). Fix the command or the config.
* :class:`DataError` (exit 1): the request is fine but its inputs are not (missing, corrupt, foreign or
  inconsistent files; a store that cannot be written). Fix the files or the machine.

Both subclass ``ValueError`` so that library callers can catch either with one ``except ValueError``. The
command line maps them (and ``FileNotFoundError``/``OSError``/``sqlite3.Error``) to one short line and the
exit code in one place (:mod:`entmin.cli`); a plain ``ValueError`` from validation counts as usage.
"""
from __future__ import annotations

__all__ = ["DataError", "UsageError", "exit_code_of"]


class UsageError(ValueError):
    """A wrong option or configuration value (exit code 2)."""

    exit_code = 2


class DataError(ValueError):
    """Missing, corrupt, foreign or inconsistent data, weights or stores (exit code 1)."""

    exit_code = 1


def exit_code_of(error: BaseException) -> int:
    """2 for usage errors (a plain ``ValueError`` is a validation failure), 1 for everything at run time."""
    code = getattr(error, "exit_code", None)
    if isinstance(code, int):
        return code
    if isinstance(error, ValueError):
        return 2
    return 1
