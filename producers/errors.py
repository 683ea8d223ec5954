"""Errors of the publishers."""

from __future__ import annotations

from schemas.errors import BusError

__all__ = ["NotAllowed", "PublishError", "PublishFailed"]


class PublishError(BusError):
    """An event could not be published."""


class NotAllowed(PublishError, PermissionError):  # noqa: N818 - reads as a verdict
    """The agency's role may not write the topic, or the topic does not carry the type."""


class PublishFailed(PublishError):  # noqa: N818 - reads as a verdict
    """The broker did not acknowledge the event."""
