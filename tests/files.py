"""Paths a user may name that are no regular file to read: each loader refuses them by
name before it reads a byte (``/dev/zero`` once filled memory)."""

from __future__ import annotations

import os
from pathlib import Path

NOT_REGULAR: list[tuple[str, str]] = [
    ("/dev/zero", "not a regular file"),
    ("/dev/null", "not a regular file"),
    ("fifo", "not a regular file"),  # nobody writes to it: an open that waits never ends
    ("folder", "a folder, not a file"),
    ("absent.yaml", "not found"),
]
"""(name, the rule's words): an absolute name as it is, any other made under a folder."""


def named_path(folder: Path, name: str) -> Path:
    """The path ``name`` of :data:`NOT_REGULAR` stands for, made under ``folder``."""
    if name.startswith("/"):
        return Path(name)
    path = folder / name
    if name == "folder":
        path.mkdir()
    elif name == "fifo":
        os.mkfifo(path)
    return path
