"""Fetching the pinned Apache Kafka jars from Maven Central with the pom under ``ops/kafka``.

The jars land in ``<home>/kafka/<version>/libs``; a marker file written after a complete
copy makes the next fetch a no-op, so ``make setup`` and ``zf801 broker start`` can both
call :func:`fetch_kafka` freely.
"""

from __future__ import annotations

import re
import shutil
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path

from ops.errors import FetchError, ToolMissingError
from schemas.errors import ConfigurationError
from schemas.settings import Settings

__all__ = [
    "KAFKA_POM",
    "LOG4J2_CONFIG",
    "FetchReport",
    "fetch_kafka",
    "kafka_libs_dir",
    "require_tool",
]

KAFKA_POM = Path(__file__).parent / "kafka" / "pom.xml"
LOG4J2_CONFIG = Path(__file__).parent / "kafka" / "log4j2.properties"

_MARKER = ".complete"
_VERSION_RULE = re.compile(r"^[0-9]+\.[0-9]+\.[0-9]+$")
_INSTALL_HINTS = {
    "java": "a Java 17+ runtime (Debian/Ubuntu: apt-get install openjdk-17-jdk-headless)",
    "mvn": "Maven (Debian/Ubuntu: apt-get install maven)",
}


@dataclass(frozen=True)
class FetchReport:
    """What :func:`fetch_kafka` did."""

    version: str
    libs_dir: Path
    jar_count: int
    skipped: bool
    seconds: float


def require_tool(name: str) -> str:
    """The path of ``name`` on ``PATH``; :class:`ToolMissingError` says what to install."""
    found = shutil.which(name)
    if found is None:
        hint = _INSTALL_HINTS.get(name, name)
        raise ToolMissingError(f"'{name}' is not on PATH; the local Kafka broker needs {hint}")
    return found


def kafka_libs_dir(settings: Settings) -> Path:
    """Where the jars of ``settings.kafka_version`` live (absolute)."""
    version = settings.kafka_version
    if not _VERSION_RULE.match(version):
        raise ConfigurationError(
            f"kafka_version={version!r} breaks the rule MAJOR.MINOR.PATCH (e.g. 4.1.1)"
        )
    return (settings.kafka_dir / version / "libs").resolve()


def fetch_kafka(settings: Settings, *, force: bool = False) -> FetchReport:
    """Copy ``kafka_2.13:<kafka_version>`` and its runtime class path into the libs folder."""
    began = time.monotonic()
    libs = kafka_libs_dir(settings)
    version = settings.kafka_version
    if not force and (libs / _MARKER).is_file():
        return FetchReport(version, libs, _count_jars(libs), True, time.monotonic() - began)
    require_tool("java")
    mvn = require_tool("mvn")
    # Copy into a sibling folder and rename, so an interrupted fetch never looks complete.
    staging = libs.with_name("libs.partial")
    shutil.rmtree(staging, ignore_errors=True)
    staging.parent.mkdir(parents=True, exist_ok=True)
    command = [
        mvn,
        "-q",
        "-B",
        "-f",
        str(KAFKA_POM),
        f"-Dkafka.version={version}",
        "dependency:copy-dependencies",
        "-DincludeScope=runtime",
        f"-DoutputDirectory={staging}",
    ]
    try:
        done = subprocess.run(command, capture_output=True, text=True, check=False, timeout=900)
    except subprocess.TimeoutExpired as exc:
        raise FetchError(f"mvn did not finish fetching Kafka {version} in 900 s") from exc
    if done.returncode != 0:
        tail = "\n".join((done.stdout + done.stderr).strip().splitlines()[-15:])
        raise FetchError(
            f"mvn could not fetch org.apache.kafka:kafka_2.13:{version} "
            f"(exit {done.returncode}); check the network and kafka_version:\n{tail}"
        )
    if not any(staging.glob("kafka_2.13-*.jar")):
        raise FetchError(f"mvn finished but {staging} holds no kafka_2.13 jar")
    shutil.rmtree(libs, ignore_errors=True)
    staging.rename(libs)
    (libs / _MARKER).write_text(f"org.apache.kafka:kafka_2.13:{version}\n", encoding="utf-8")
    return FetchReport(version, libs, _count_jars(libs), False, time.monotonic() - began)


def _count_jars(libs: Path) -> int:
    return sum(1 for _ in libs.glob("*.jar"))
