"""The national command centre: a live web page of the bus (figures computed from the
topics, per province and per court) behind signed viewer tokens, every view audited."""

from ops.centre.server import CommandCentre, page_address
from ops.centre.tally import Tally
from ops.centre.tokens import TokenRefused, Viewer, issue_token, verify_token

__all__ = [
    "CommandCentre",
    "Tally",
    "TokenRefused",
    "Viewer",
    "issue_token",
    "page_address",
    "verify_token",
]
