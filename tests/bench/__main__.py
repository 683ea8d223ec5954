"""Run the benchmarks: ``python -m tests.bench [NAME ...]`` (``make bench``).

Every ``tests/bench/bench_<name>.py`` exposes ``run() -> list[dict[str, object]]``: one dict
per result row, the same keys in every row of a module (they become the table's columns, in
order). Figures are meant to be read as ratios against the raw library loop measured in the
same run, on the machine printed first. NAME filters the modules (``codec`` runs
``bench_codec``).
"""

from __future__ import annotations

import importlib
import os
import platform
import sys
import time
import traceback
from collections.abc import Callable, Mapping, Sequence
from importlib import metadata
from pathlib import Path

from rich.console import Console
from rich.table import Table

_console = Console()

# The benchmarks build publishers and workers with the demo secrets: test mode accepts them.
os.environ.setdefault("ZF801_MODE", "test")


def _cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def _version(package: str) -> str:
    try:
        return metadata.version(package)
    except metadata.PackageNotFoundError:
        return "-"


def machine() -> str:
    """One line describing where the figures were measured."""
    return (
        f"{os.cpu_count()} cores, {_cpu_model()}, Python {platform.python_version()}"
        f" ({platform.python_implementation()}), {platform.system()} {platform.release()};"
        f" fastavro {_version('fastavro')}, cryptography {_version('cryptography')},"
        f" aiokafka {_version('aiokafka')}, kafka-python {_version('kafka-python')}"
    )


def _modules(selected: Sequence[str]) -> list[str]:
    names = sorted(p.stem for p in Path(__file__).parent.glob("bench_*.py"))
    if selected:
        wanted = {s if s.startswith("bench_") else f"bench_{s}" for s in selected}
        names = [n for n in names if n in wanted]
    return names


def _table(title: str, rows: Sequence[Mapping[str, object]]) -> Table:
    table = Table(title=title, title_justify="left")
    columns: list[str] = []
    for row in rows:
        columns.extend(key for key in row if key not in columns)
    for column in columns:
        table.add_column(column, overflow="fold")
    for row in rows:
        table.add_row(*(str(row.get(column, "")) for column in columns))
    return table


def main(argv: Sequence[str]) -> int:
    names = _modules(argv)
    if not names:
        _console.print(f"no benchmark matches {list(argv)}")
        return 2
    _console.print(f"[bold]machine:[/] {machine()}", highlight=False)
    failed = 0
    for name in names:
        module = importlib.import_module(f"tests.bench.{name}")
        run: Callable[[], list[dict[str, object]]] = module.run
        doc = (module.__doc__ or name).strip().splitlines()[0]
        started = time.perf_counter()
        try:
            rows = run()
        except Exception:  # one broken benchmark must not hide the others' figures
            failed += 1
            _console.print(f"[red]{name} failed[/]\n{traceback.format_exc()}", highlight=False)
            continue
        elapsed = time.perf_counter() - started
        _console.print(_table(f"{name}: {doc} ({elapsed:.1f} s)", rows))
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
