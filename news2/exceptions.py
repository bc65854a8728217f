"""Errors raised by the NEWS2 engine.

Tree (news2 stays dependency-free, so it does not derive from the project root error)::

    ValueError
    └── InvalidVitalSignError   the input is not a measurement; never scored, never retried
"""

from __future__ import annotations

__all__ = ["InvalidVitalSignError"]


class InvalidVitalSignError(ValueError):
    """An input that is not a measurement (wrong type, NaN, implausible value).

    Attributes:
        parameter: Name of the offending parameter, e.g. ``"temperature"``.
        value: The value as given by the caller.
    """

    def __init__(self, message: str, *, parameter: str, value: object) -> None:
        super().__init__(message)
        self.parameter = parameter
        self.value = value

    def __reduce__(self) -> tuple[object, ...]:
        """Keep the keyword attributes when pickled (e.g. across processes)."""
        return (_rebuild, (str(self), self.parameter, self.value))


def _rebuild(message: str, parameter: str, value: object) -> InvalidVitalSignError:
    """Recreate an error from its pickled parts."""
    return InvalidVitalSignError(message, parameter=parameter, value=value)
