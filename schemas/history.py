"""Compare the schemas in a folder with their versions at a git ref (``zf801 schemas check``).

New schema files are fine; a deleted (or moved) file fails, since the other side may still
write it; a changed file must stay fully compatible (see :mod:`schemas.evolution`).
"""

from __future__ import annotations

import json
import subprocess
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from schemas.errors import SchemaHistoryError, SchemaLoadError
from schemas.evolution import Incompatibility, full_compatibility
from schemas.registry import SCHEMA_DIR, load_schema

__all__ = ["CheckReport", "check_against_ref", "schema_files_at"]


@dataclass(frozen=True)
class CheckReport:
    """The outcome of comparing the working tree's schemas with ``ref``."""

    ref: str
    added: list[str] = field(default_factory=list)
    removed: list[str] = field(default_factory=list)
    changed: list[str] = field(default_factory=list)
    unchanged: list[str] = field(default_factory=list)
    issues: list[Incompatibility] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        """True when nothing was removed and every change is fully compatible."""
        return not self.removed and not self.issues


def _git(args: list[str], cwd: Path) -> str:
    try:
        done = subprocess.run(
            ["git", *args], cwd=cwd, capture_output=True, text=True, check=False, timeout=60
        )
    except (OSError, subprocess.TimeoutExpired) as exc:
        raise SchemaHistoryError(f"cannot run git: {exc}") from exc
    if done.returncode != 0:
        raise SchemaHistoryError(f"git {' '.join(args)}: {done.stderr.strip()}")
    return done.stdout


def schema_files_at(ref: str, schema_dir: Path = SCHEMA_DIR) -> dict[str, str]:
    """``{"<family>/<Name>.avsc": text}`` of the schemas in ``schema_dir`` at git ``ref``."""
    folder = schema_dir.resolve()
    top = Path(_git(["rev-parse", "--show-toplevel"], folder).strip())
    relative = folder.relative_to(top).as_posix()
    _git(["rev-parse", "--verify", "--quiet", f"{ref}^{{commit}}"], top)
    listing = _git(["ls-tree", "-r", "--name-only", ref, "--", relative], top)
    files = {}
    for line in listing.splitlines():
        inner = line[len(relative) + 1 :]
        if inner.endswith(".avsc") and inner.count("/") == 1:
            files[inner] = _git(["show", f"{ref}:{line}"], top)
    return files


def _load(text: str, where: str) -> Any:
    try:
        return json.loads(text)
    except json.JSONDecodeError as exc:
        raise SchemaHistoryError(f"{where}: not JSON: {exc}") from exc


def check_against_ref(ref: str = "HEAD", schema_dir: Path = SCHEMA_DIR) -> CheckReport:
    """Compare every ``<family>/<Name>.avsc`` in ``schema_dir`` with its version at ``ref``."""
    before = schema_files_at(ref, schema_dir)
    now = {
        p.relative_to(schema_dir).as_posix(): p.read_text(encoding="utf-8")
        for p in sorted(schema_dir.glob("*/*.avsc"))
    }
    report = CheckReport(ref=ref)
    report.added.extend(sorted(set(now) - set(before)))
    report.removed.extend(sorted(set(before) - set(now)))
    for name in report.added:
        report.issues.extend(_invalid(name, now[name]))
    for name in sorted(set(now) & set(before)):
        old, new = _load(before[name], f"{ref}:{name}"), _load(now[name], name)
        if old == new:
            report.unchanged.append(name)
            continue
        report.changed.append(name)
        report.issues.extend(_invalid(name, now[name]) or full_compatibility(old, new))
    return report


def _invalid(name: str, text: str) -> list[Incompatibility]:
    try:
        load_schema(_load(text, name))
    except (SchemaLoadError, SchemaHistoryError) as exc:
        return [Incompatibility(name, "schema", "", "invalid_schema", str(exc))]
    return []
