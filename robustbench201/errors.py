"""Exception types raised by rb201 for bad input or bad files.

All of them are ``ValueError`` subclasses so generic callers can catch them, and every message names the bad value
and what is allowed.
"""

from __future__ import annotations

from collections.abc import Iterable


class Rb201Error(ValueError):
    """Base class of rb201's user-facing errors."""


class InvalidArchError(Rb201Error):
    """An architecture string, op tuple or index that is not in the NB201 space."""


class InvalidChoiceError(Rb201Error):
    """A value outside a closed vocabulary (dataset name, attack, corruption, ...)."""


class CheckpointError(Rb201Error):
    """A weights file that cannot be used for the requested network."""


class DataIntegrityError(Rb201Error):
    """A corrupt, truncated, mismatched or partial file."""


def choice_error(what: str, value: object, allowed: Iterable[object]) -> InvalidChoiceError:
    """Build the standard "unknown X 'v'; allowed: a, b, c" error."""
    allowed_s = ", ".join(repr(a) if isinstance(a, str) else str(a) for a in allowed)
    return InvalidChoiceError(f"unknown {what} {value!r}; allowed: {allowed_s}")


def check_choice(what: str, value: str, allowed: Iterable[str]) -> str:
    """Return ``value`` if it is in ``allowed``, else raise :class:`InvalidChoiceError` listing them."""
    allowed = list(allowed)
    if value not in allowed:
        raise choice_error(what, value, allowed)
    return value
