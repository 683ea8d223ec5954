"""Errors of the publishers."""

from __future__ import annotations

from schemas.errors import BusError

__all__ = ["NotAllowed", "PublishError", "PublishFailed", "WrongArgument", "require_type"]


class PublishError(BusError):
    """An event could not be published."""


class NotAllowed(PublishError, PermissionError):  # noqa: N818 - reads as a verdict
    """The agency's role may not write the topic, or the topic does not carry the type."""


class PublishFailed(PublishError):  # noqa: N818 - reads as a verdict
    """The broker did not acknowledge the event."""


class WrongArgument(PublishError, TypeError):  # noqa: N818 - reads as a verdict
    """An argument of the publishing API is not of the kind it must be."""


def require_type(value: object, kind: type, name: str, hint: str) -> None:
    """Raise :class:`WrongArgument` naming ``name`` unless ``value`` is a ``kind``."""
    if not isinstance(value, kind):
        raise WrongArgument(f"{name}: {hint} is needed, got {type(value).__name__} [rule type]")
