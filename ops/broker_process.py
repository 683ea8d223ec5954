"""Pid files, ``/proc`` checks, port checks and signals for the local Kafka nodes.

``ops`` only ever signals a process whose pid it wrote and whose command line is still
``java ... kafka.Kafka <our server.properties>``: a recycled pid is never touched.
"""

from __future__ import annotations

import contextlib
import errno
import os
import select
import signal
import socket
import time
from dataclasses import dataclass
from enum import Enum
from pathlib import Path

from ops.errors import PortInUseError

__all__ = [
    "PidProbe",
    "PidState",
    "ensure_ports_free",
    "is_alive",
    "pause_unless_exit",
    "port_holder",
    "port_open",
    "probe_pid_file",
    "read_pid",
    "resident_kib",
    "signal_node",
    "wait_for_exit",
    "write_pid",
]

_LISTEN = "0A"  # TCP state LISTEN in /proc/net/tcp


class PidState(Enum):
    """What a node's pid file says about it."""

    ABSENT = "absent"  # no pid file: never started, or stopped cleanly
    RUNNING = "running"  # the pid is alive and is our kafka.Kafka with our config
    STALE = "stale"  # the pid file is left over: process gone, or the pid now belongs to another


@dataclass(frozen=True)
class PidProbe:
    """The outcome of reading a pid file: the state, the pid if any, and why."""

    state: PidState
    pid: int | None
    reason: str


def write_pid(path: Path, pid: int) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(f"{pid}\n", encoding="ascii")


def read_pid(path: Path) -> int | None:
    """The pid in ``path``; None when there is no file or it holds no positive integer."""
    try:
        text = path.read_text(encoding="ascii").strip()
    except (FileNotFoundError, UnicodeDecodeError):
        return None
    return int(text) if text.isdigit() and int(text) > 0 else None


def is_alive(pid: int) -> bool:
    """True when ``pid`` runs; a zombie (exited, not yet reaped) counts as gone."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text(encoding="ascii", errors="replace")
    except (FileNotFoundError, ProcessLookupError):
        return False
    # The state letter follows the command name, which is in parentheses and may hold spaces.
    state = stat.rpartition(")")[2].split()[0]
    return state not in ("Z", "X")


def _cmdline(pid: int) -> list[str]:
    try:
        raw = Path(f"/proc/{pid}/cmdline").read_bytes()
    except (FileNotFoundError, ProcessLookupError, PermissionError):
        return []
    return [part.decode(errors="replace") for part in raw.split(b"\0") if part]


def _is_our_node(pid: int, config_path: Path) -> bool:
    args = _cmdline(pid)
    return "kafka.Kafka" in args and str(config_path) in args


def probe_pid_file(pid_path: Path, config_path: Path) -> PidProbe:
    """Classify a node by its pid file without changing anything."""
    if not pid_path.exists():
        return PidProbe(PidState.ABSENT, None, "no pid file")
    pid = read_pid(pid_path)
    if pid is None:
        return PidProbe(PidState.STALE, None, f"{pid_path} holds no pid")
    if not is_alive(pid):
        return PidProbe(PidState.STALE, pid, f"process {pid} is gone")
    if not _is_our_node(pid, config_path):
        return PidProbe(PidState.STALE, pid, f"pid {pid} now belongs to another program")
    return PidProbe(PidState.RUNNING, pid, "running")


def signal_node(pid: int, config_path: Path, signum: signal.Signals) -> bool:
    """Send ``signum`` to ``pid`` if it is still our node; False if it was not (or is gone)."""
    if not (is_alive(pid) and _is_our_node(pid, config_path)):
        return False
    try:
        os.kill(pid, signum)
    except ProcessLookupError:
        return False
    return True


def wait_for_exit(pid: int, timeout_s: float) -> bool:
    """Block until ``pid`` exits (True) or ``timeout_s`` passes (False); reaps our children."""
    deadline = time.monotonic() + timeout_s
    try:
        # A pidfd becomes readable when the process exits: no polling loop needed.
        pidfd = os.pidfd_open(pid)
    except ProcessLookupError:
        _reap(pid)
        return True
    try:
        while is_alive(pid):
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                return False
            select.select([pidfd], [], [], remaining)
            _reap(pid)
    finally:
        os.close(pidfd)
    _reap(pid)
    return True


def _reap(pid: int) -> None:
    """Collect the exit status if ``pid`` is our child, so it does not linger as a zombie."""
    with contextlib.suppress(ChildProcessError, OSError):
        os.waitpid(pid, os.WNOHANG)


def resident_kib(pid: int) -> int | None:
    """The process's resident memory (VmRSS) in KiB, or None if it is gone."""
    try:
        status = Path(f"/proc/{pid}/status").read_text(encoding="ascii", errors="replace")
    except (FileNotFoundError, ProcessLookupError):
        return None
    for line in status.splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    return None


def port_holder(port: int) -> str | None:
    """Best effort: 'pid N (command)' of the process listening on ``port``, from /proc."""
    inodes: set[str] = set()
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        with contextlib.suppress(OSError):
            for row in Path(table).read_text(encoding="ascii").splitlines()[1:]:
                cols = row.split()
                if cols[3] == _LISTEN and int(cols[1].rsplit(":", 1)[1], 16) == port:
                    inodes.add(cols[9])
    if not inodes:
        return None
    for proc in Path("/proc").iterdir():
        if not proc.name.isdigit():
            continue
        with contextlib.suppress(OSError):
            for fd in (proc / "fd").iterdir():
                link = os.readlink(fd)
                if link.startswith("socket:[") and link[8:-1] in inodes:
                    name = (proc / "comm").read_text(encoding="ascii").strip()
                    return f"pid {proc.name} ({name})"
    return "a process this user cannot see"


def ensure_ports_free(host: str, ports: dict[int, str]) -> None:
    """Raise :class:`PortInUseError` for the first of ``ports`` (port -> role) already bound."""
    for port, role in ports.items():
        with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
            # SO_REUSEADDR as Kafka sets it: a TIME_WAIT left by our last run is not "taken".
            probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            try:
                probe.bind((host, port))
            except OSError as exc:
                if exc.errno != errno.EADDRINUSE:
                    raise
                holder = port_holder(port) or "another process"
                raise PortInUseError(
                    f"port {host}:{port} ({role}) is already taken by {holder}; stop that "
                    f"program, or move the local broker with ZF801_BROKER_PORT/"
                    f"ZF801_CONTROLLER_PORT (ZF801_QUORUM_BROKER_PORT/"
                    f"ZF801_QUORUM_CONTROLLER_PORT for --nodes 3), or use that cluster "
                    f"with KAFKA_BOOTSTRAP_SERVERS"
                ) from exc


def port_open(host: str, port: int) -> bool:
    """True when something accepts TCP connections on ``host:port`` (1 s limit)."""
    with contextlib.suppress(OSError), socket.create_connection((host, port), timeout=1.0):
        return True
    return False


def pause_unless_exit(pids: list[int], seconds: float) -> None:
    """Wait ``seconds``, returning early if one of ``pids`` exits (pidfds become readable)."""
    fds = []
    for pid in pids:
        with contextlib.suppress(ProcessLookupError):
            fds.append(os.pidfd_open(pid))
    try:
        if fds:
            select.select(fds, [], [], seconds)
        else:
            time.sleep(seconds)
    finally:
        for fd in fds:
            os.close(fd)
