"""The files a user names on the command line or in the Python API, read and written so
that no name can make the bus read forever, exhaust memory or write somewhere else.

- :func:`read_limited`: the bytes of a regular file of at most ``limit`` bytes. A device
  (``/dev/zero``), a FIFO or a folder is refused before anything is read, and so is a
  file larger than the limit (checked again while reading: a file can grow).
- :func:`write_replacing`: ``data`` written to a new file beside ``path`` (created with
  ``mode``, never through an existing name) and renamed over ``path``. A symbolic link at
  ``path`` is replaced, not followed, so a link planted in a shared folder cannot send the
  write to another file; a folder or a device at ``path`` is refused.
- :func:`check_writable_file`: the same refusals before a store (SQLite) opens ``path``.
- :func:`check_replaceable`: what :func:`write_replacing` refuses, checked before any
  work is done (a replay checks where its report and seal go before reading a topic).
- :func:`regular_size`: the size of a regular file about to be read in chunks.
"""

from __future__ import annotations

import contextlib
import os
import stat
from pathlib import Path

__all__ = [
    "FileProblemError",
    "check_replaceable",
    "check_writable_file",
    "read_limited",
    "regular_size",
    "write_replacing",
]

_CHUNK = 1 << 20


class FileProblemError(ValueError):
    """A file that cannot be used as asked; the message names it and the rule."""


def read_limited(
    path: Path, what: str, limit: int, error: type[Exception] = FileProblemError
) -> bytes:
    """The bytes of the regular file ``path``, at most ``limit`` of them; otherwise
    ``error`` naming ``what`` (the option or role of the file) and the rule."""
    try:
        # without waiting: opening a FIFO for reading blocks until someone writes to it
        fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK)
        with os.fdopen(fd, "rb") as handle:
            found = os.fstat(fd)
            if not stat.S_ISREG(found.st_mode):
                raise error(f"{what} {path}: not a regular file")
            if found.st_size > limit:
                raise error(f"{what} {path}: {found.st_size:,} bytes, more than {limit:,}")
            data = handle.read(limit + 1)
    except FileNotFoundError:
        raise error(f"{what} {path}: not found") from None
    except IsADirectoryError:
        raise error(f"{what} {path}: a folder, not a file") from None
    except OSError as exc:
        raise error(f"{what} {path}: cannot be read: {exc.strerror or exc}") from None
    if len(data) > limit:
        raise error(f"{what} {path}: more than {limit:,} bytes")
    return data


def check_writable_file(path: Path, what: str, error: type[Exception] = FileProblemError) -> None:
    """Refuse ``path`` unless it is absent or a regular file (a symbolic link to one is
    accepted only by :func:`read_limited`'s readers, not here: it is refused), in an
    existing folder."""
    try:
        found = path.lstat()
    except FileNotFoundError:
        if not path.parent.is_dir():
            raise error(f"{what} {path}: its folder {path.parent} does not exist") from None
        return
    except OSError as exc:
        raise error(f"{what} {path}: {exc.strerror or exc}") from None
    if stat.S_ISLNK(found.st_mode):
        raise error(f"{what} {path}: a symbolic link; name the file itself")
    if stat.S_ISDIR(found.st_mode):
        raise error(f"{what} {path}: a folder, not a file")
    if not stat.S_ISREG(found.st_mode):
        raise error(f"{what} {path}: not a regular file")


def regular_size(path: Path, what: str, error: type[Exception] = FileProblemError) -> int:
    """The size of ``path`` if it is a regular file (a link to one is followed): a device
    (``/dev/zero``), a FIFO or a folder would be read forever, block, or fail half way."""
    try:
        found = path.stat()
    except FileNotFoundError:
        raise error(f"{what} {path}: not found") from None
    except OSError as exc:
        raise error(f"{what} {path}: {exc.strerror or exc}") from None
    if stat.S_ISDIR(found.st_mode):
        raise error(f"{what} {path}: a folder, not a file")
    if not stat.S_ISREG(found.st_mode):
        raise error(f"{what} {path}: not a regular file")
    return found.st_size


def check_replaceable(
    path: Path, what: str, error: type[Exception] = FileProblemError, *, rule: str = ""
) -> os.stat_result | None:
    """What is at ``path`` where :func:`write_replacing` is to write (its ``lstat``; None:
    nothing), refusing what it cannot replace: a folder, a device, a FIFO or a socket, or
    a folder that does not exist. A symbolic link is allowed: it is replaced, never
    followed. ``rule`` (``; ...``) ends a refusal of what is there."""
    try:
        found = path.lstat()
    except FileNotFoundError:
        if not path.parent.is_dir():
            raise error(f"{what} {path}: its folder {path.parent} does not exist") from None
        return None
    except OSError as exc:
        raise error(f"{what} {path}: {exc.strerror or exc}") from None
    if stat.S_ISDIR(found.st_mode):
        raise error(f"{what} {path}: a folder, not a file{rule}")
    if not (stat.S_ISREG(found.st_mode) or stat.S_ISLNK(found.st_mode)):
        raise error(f"{what} {path}: not a regular file{rule}")
    return found


def write_replacing(
    path: Path,
    data: bytes,
    what: str,
    *,
    mode: int = 0o644,
    error: type[Exception] = FileProblemError,
) -> None:
    """Write ``data`` as the new content of ``path`` (see the module docstring)."""
    check_replaceable(path, what, error)
    temporary = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    try:
        fd = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW, mode)
        with os.fdopen(fd, "wb") as handle:
            for start in range(0, len(data), _CHUNK):
                handle.write(data[start : start + _CHUNK])
        os.replace(temporary, path)
    except OSError as exc:
        with contextlib.suppress(OSError):
            temporary.unlink()
        raise error(f"{what} {path}: cannot be written: {exc.strerror or exc}") from None
