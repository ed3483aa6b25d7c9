"""Exception types raised by rb201 for bad input or bad files.

All of them are ``ValueError`` subclasses so generic callers can catch them, and every message names the bad value
and what is allowed.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping

__all__ = ["Rb201Error", "InvalidArchError", "InvalidChoiceError", "CheckpointError", "DataIntegrityError",
           "NoValuesError", "RequestError", "render_fields", "choice_error", "check_choice"]  # fmt: skip

_FIELD = re.compile(r"\{([a-z_][a-z0-9_]*)\}")


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


class NoValuesError(Rb201Error):
    """A question the source holds no value for (a cell it does not cover, two sources with nothing in common): the
    message names what was asked and what the source covers."""


class RequestError(Rb201Error):
    """A bad value of a request (:mod:`robustbench201.runner.request`) or of a library call's arguments. The
    message names each field it is about as ``{field}``: ``str()`` shows the field's name, a front end its own name
    for it (:meth:`render`; the command line: the option's flag)."""

    def __init__(self, template: str) -> None:
        super().__init__(template)
        self.template = template

    @property
    def fields(self) -> tuple[str, ...]:
        """The fields the message names, in order."""
        return tuple(_FIELD.findall(self.template))

    def render(self, names: Mapping[str, str] | None = None) -> str:
        """The message with each ``{field}`` replaced by ``names[field]`` (the field's own name when absent)."""
        return render_fields(self.template, names)

    def __str__(self) -> str:
        return self.render()


def render_fields(template: str, names: Mapping[str, str] | None = None) -> str:
    """``template`` with each ``{field}`` replaced by ``names[field]`` (the field's own name when absent)."""
    names = names or {}
    return _FIELD.sub(lambda m: names.get(m[1], m[1]), template)


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
