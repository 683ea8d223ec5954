"""Where an agency's audit chain stands, kept on disk so the chain continues across runs and
never forks.

Every audit record names its place in a hash chain: ``sequence`` counts up and
``previous_hash`` is the SHA-256 of the previous record's value bytes
(:class:`sign.kafka_sinks.KafkaAuditSink`). A process that started each run at sequence 0
broke its agency's log into as many chains as there were runs, and two processes of one
agency continuing one chain would fork it (two records after the same predecessor).

So each process claims a *slot* of its agency on this host: a file locked for the life of
the process (``flock``), which holds the chain's position. The first process of an agency
takes slot 0, a second one running at the same time slot 1, and so on; a slot's next
process continues its chain where the last one stopped. Chains are therefore one per
(agency, host, slot), each linear: a verifier links them by their hashes
(``ops.cmd_audit.ChainWatch``), and a fork means tampering, never two honest writers.

The position is written *before* the record is sent (write-ahead): a process killed
between the two leaves a gap in the chain (a record the log never received, reported as
such), never a fork.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
from pathlib import Path
from typing import IO

from schemas.settings import Settings
from sign.errors import SignError

__all__ = ["AuditChainError", "ChainSlot", "claim_chain"]

_MAX_SLOTS = 256
_ZERO_HASH = bytes(32)


class AuditChainError(SignError):
    """A chain position that cannot be claimed or read."""


def claim_chain(settings: Settings, agency: str) -> ChainSlot:
    """This process's slot of ``agency``'s audit chain, under ``ZF801_HOME/state``."""
    return ChainSlot.claim(settings.home / "state" / "audit-chains", agency)


class ChainSlot:
    """One claimed slot: the position of this process's audit chain of ``agency``."""

    def __init__(self, agency: str, slot: int, path: Path, lock: IO[str]) -> None:
        self.agency = agency
        self.slot = slot
        self.path = path
        self._lock: IO[str] | None = lock

    @classmethod
    def claim(cls, directory: Path, agency: str) -> ChainSlot:
        """The first slot of ``agency`` no other live process holds."""
        directory.mkdir(parents=True, exist_ok=True)
        for slot in range(_MAX_SLOTS):
            lock = (directory / f"{agency}.{slot}.lock").open("a")
            try:
                fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                lock.close()
                continue
            return cls(agency, slot, directory / f"{agency}.{slot}.json", lock)
        raise AuditChainError(
            f"audit chain of {agency}: all {_MAX_SLOTS} slots in {directory} are held by "
            "running processes"
        )

    def load(self) -> tuple[int, bytes]:
        """(next sequence, hash of the last record); (0, 32 zero bytes) for a new chain."""
        try:
            text = self.path.read_text(encoding="utf-8")
        except FileNotFoundError:
            return 0, _ZERO_HASH
        try:
            state = json.loads(text)
            sequence, previous = int(state["sequence"]), bytes.fromhex(state["previous_hash"])
        except (ValueError, KeyError, TypeError) as exc:
            raise AuditChainError(
                f"audit chain position {self.path} is unreadable ({exc}); move it away to "
                "start a new chain (the log then shows a new chain of this agency)"
            ) from exc
        if sequence < 0 or len(previous) != len(_ZERO_HASH):
            raise AuditChainError(f"audit chain position {self.path} is out of range")
        return sequence, previous

    def save(self, sequence: int, previous_hash: bytes) -> None:
        """Record the position atomically (a crash leaves the old file or the new one)."""
        temporary = self.path.with_suffix(".tmp")
        temporary.write_text(
            json.dumps({"sequence": sequence, "previous_hash": previous_hash.hex()}),
            encoding="utf-8",
        )
        os.replace(temporary, self.path)

    def release(self) -> None:
        """Let another process take the slot (also done by the OS when this one exits)."""
        if self._lock is not None:
            with contextlib.suppress(OSError):
                fcntl.flock(self._lock, fcntl.LOCK_UN)
            self._lock.close()
            self._lock = None
