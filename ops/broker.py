"""The local Apache Kafka cluster (1 node, or a 3-node KRaft quorum) run with plain ``java``.

:class:`LocalCluster` formats storage once, starts every node detached with a pid file,
and returns from :meth:`LocalCluster.start` only when an admin call sees every node.
It stops only the processes its own pid files name.
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path

from kafka.errors import KafkaError
from pydantic import SecretStr

from ops.broker_config import (
    BrokerSecurity,
    ClusterLayout,
    NodeSpec,
    new_cluster_id,
    render_server_properties,
)
from ops.broker_fetch import LOG4J2_CONFIG, kafka_libs_dir, require_tool
from ops.broker_process import (
    PidState,
    ensure_ports_free,
    is_alive,
    pause_unless_exit,
    port_open,
    probe_pid_file,
    resident_kib,
    signal_node,
    wait_for_exit,
    write_pid,
)
from ops.errors import BrokerError, BrokerStartError
from schemas.settings import Settings
from schemas.tls_layout import SIDES
from topics.clients import kafka_admin

__all__ = ["LocalCluster", "NodeStatus", "StartReport", "StopReport"]

# The JVM flags of Kafka's own kafka-run-class.sh, minus the heap, which comes from settings.
_G1_FLAGS = (
    "-XX:+UseG1GC",
    "-XX:MaxGCPauseMillis=20",
    "-XX:InitiatingHeapOccupancyPercent=35",
    "-XX:+ExplicitGCInvokesConcurrent",
    "-Djava.awt.headless=true",
)
_FORMAT_TIMEOUT_S = 120.0
_PROBE_INTERVAL_S = 0.5
_LOG_TAIL_LINES = 15
_LOG_ERRORS = 3


@dataclass(frozen=True)
class NodeStatus:
    """One row of ``zf801 broker status``."""

    node_id: int
    pid: int | None
    alive: bool
    bootstrap_address: str
    controller_port: int
    data_dir: Path
    rss_kib: int | None
    note: str


@dataclass(frozen=True)
class StartReport:
    """What :meth:`LocalCluster.start` did; ``notes`` hold stale pid files it cleaned."""

    bootstrap_servers: str
    started: tuple[int, ...]
    already_running: tuple[int, ...]
    notes: tuple[str, ...]
    seconds: float


@dataclass(frozen=True)
class StopReport:
    """What :meth:`LocalCluster.stop` did; ``killed`` ignored SIGTERM past the timeout."""

    stopped: tuple[int, ...]
    killed: tuple[int, ...]
    notes: tuple[str, ...]
    seconds: float


class LocalCluster:
    """Start, stop and inspect the nodes of one :class:`ClusterLayout`."""

    def __init__(
        self,
        layout: ClusterLayout,
        libs_dir: Path,
        *,
        start_timeout_s: float = 90.0,
        stop_timeout_s: float = 30.0,
    ) -> None:
        self.layout = layout
        self.libs_dir = libs_dir
        self.start_timeout_s = start_timeout_s
        self.stop_timeout_s = stop_timeout_s
        # Sizes of each node's logs when this object launched it: errors are read from there.
        self._log_marks: dict[int, tuple[int, int]] = {}

    @classmethod
    def from_settings(cls, settings: Settings, nodes: int = 1) -> LocalCluster:
        return cls(
            ClusterLayout.from_settings(settings, nodes),
            kafka_libs_dir(settings),
            start_timeout_s=settings.broker_start_timeout_s,
            stop_timeout_s=settings.broker_stop_timeout_s,
        )

    @property
    def bootstrap_servers(self) -> str:
        return self.layout.bootstrap_servers

    def is_running(self) -> bool:
        """True when every node's pid file names a live node of ours."""
        return all(
            probe_pid_file(n.pid_path, n.config_path).state is PidState.RUNNING
            for n in self.layout.nodes
        )

    def start(self) -> StartReport:
        """Start the nodes that are not running; return once an admin call sees them all."""
        began = time.monotonic()
        deadline = began + self.start_timeout_s
        notes: list[str] = []
        running: list[int] = []
        to_launch: list[NodeSpec] = []
        if self._configuration_changed():
            self.stop()
            notes.append("the nodes ran with another configuration (e.g. security): restarted")
        for node in self.layout.nodes:
            probe = probe_pid_file(node.pid_path, node.config_path)
            if probe.state is PidState.RUNNING:
                running.append(node.node_id)
                continue
            if probe.state is PidState.STALE:
                node.pid_path.unlink(missing_ok=True)
                notes.append(f"node {node.node_id}: removed stale pid file ({probe.reason})")
            to_launch.append(node)
        launched: dict[int, int] = {}
        if to_launch:
            launched = self._launch(to_launch)
        try:
            self._wait_ready(launched, deadline)
        except BrokerStartError:
            self._abort(launched)
            raise
        return StartReport(
            self.bootstrap_servers,
            tuple(launched),
            tuple(running),
            tuple(notes),
            time.monotonic() - began,
        )

    def _configuration_changed(self) -> bool:
        """True when a running node's server.properties is not what it would get now."""
        for node in self.layout.nodes:
            if probe_pid_file(node.pid_path, node.config_path).state is not PidState.RUNNING:
                continue
            try:
                current = node.config_path.read_text(encoding="utf-8")
            except OSError:
                continue
            if current != render_server_properties(self.layout, node):
                return True
        return False

    def stop(self) -> StopReport:
        """SIGTERM every node our pid files name, SIGKILL any still alive after the timeout."""
        began = time.monotonic()
        notes: list[str] = []
        signalled: dict[int, int] = {}
        for node in self.layout.nodes:
            probe = probe_pid_file(node.pid_path, node.config_path)
            if probe.state is PidState.STALE:
                notes.append(f"node {node.node_id}: removed stale pid file ({probe.reason})")
            elif probe.pid is not None and signal_node(probe.pid, node.config_path, signal.SIGTERM):
                signalled[node.node_id] = probe.pid
        deadline = time.monotonic() + self.stop_timeout_s
        killed: list[int] = []
        for node_id, pid in signalled.items():
            if not wait_for_exit(pid, max(0.0, deadline - time.monotonic())):
                signal_node(pid, self.layout.node(node_id).config_path, signal.SIGKILL)
                wait_for_exit(pid, 10.0)
                killed.append(node_id)
        for node in self.layout.nodes:
            node.pid_path.unlink(missing_ok=True)
        return StopReport(tuple(signalled), tuple(killed), tuple(notes), time.monotonic() - began)

    def kill_node(self, node_id: int, signum: signal.Signals = signal.SIGKILL) -> int:
        """Send ``signum`` to one running node and wait for it to die (fault tests)."""
        node = self.layout.node(node_id)
        probe = probe_pid_file(node.pid_path, node.config_path)
        if probe.pid is None or not signal_node(probe.pid, node.config_path, signum):
            raise BrokerError(f"node {node_id} is not running ({probe.reason})")
        if not wait_for_exit(probe.pid, self.stop_timeout_s):
            raise BrokerError(f"node {node_id} (pid {probe.pid}) survived signal {signum.name}")
        return probe.pid

    def status(self) -> list[NodeStatus]:
        """One row per node; changes nothing (stale pid files are reported, not removed)."""
        rows = []
        for node in self.layout.nodes:
            probe = probe_pid_file(node.pid_path, node.config_path)
            alive = probe.state is PidState.RUNNING
            note = {
                PidState.RUNNING: "running",
                PidState.ABSENT: "stopped",
                PidState.STALE: f"dead: stale pid file, {probe.reason}",
            }[probe.state]
            rows.append(
                NodeStatus(
                    node.node_id,
                    probe.pid,
                    alive,
                    node.bootstrap_address,
                    node.controller_port,
                    node.data_dir,
                    resident_kib(probe.pid) if alive and probe.pid else None,
                    note,
                )
            )
        return rows

    def _launch(self, nodes: list[NodeSpec]) -> dict[int, int]:
        java = require_tool("java")
        if not any(self.libs_dir.glob("kafka_2.13-*.jar")):
            raise BrokerError(f"no Kafka jars in {self.libs_dir}; run `zf801 broker fetch` first")
        security = self.layout.security
        ports = {}
        for node in nodes:
            ports[node.broker_port] = f"broker port of node {node.node_id}"
            ports[node.controller_port] = f"controller port of node {node.node_id}"
            if security is not None:
                ports[node.police_port] = f"police listener of node {node.node_id}"
                ports[node.bus_port] = f"bus listener of node {node.node_id}"
                _require_tls_files(security, node)
        ensure_ports_free(self.layout.nodes[0].host, ports)
        for node in nodes:
            node.logs_dir.mkdir(parents=True, exist_ok=True)
            text = render_server_properties(self.layout, node)
            # 0600: with mTLS the file holds the keystore passphrase.
            fd = os.open(node.config_path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
            with os.fdopen(fd, "w", encoding="utf-8") as handle:
                handle.write(text)
        self._format([n for n in nodes if not (n.data_dir / "meta.properties").exists()], java)
        return {node.node_id: self._spawn(java, node) for node in nodes}

    def _cluster_id(self) -> str:
        path = self.layout.cluster_id_path
        if not path.exists():
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text(new_cluster_id() + "\n", encoding="ascii")
        return path.read_text(encoding="ascii").strip()

    def _java_command(self, java: str, node: NodeSpec, heap: str) -> list[str]:
        return [
            java,
            f"-Xmx{heap}",
            f"-Xms{heap}",
            *_G1_FLAGS,
            f"-Dlog4j2.configurationFile={LOG4J2_CONFIG}",
            f"-Dkafka.logs.dir={node.logs_dir}",
            "-cp",
            f"{self.libs_dir}/*",
        ]

    def _format(self, nodes: list[NodeSpec], java: str) -> None:
        """Format the storage of never-formatted nodes, in parallel (one JVM each)."""
        cluster_id = self._cluster_id()
        jobs = []
        for node in nodes:
            command = [
                *self._java_command(java, node, "256m"),
                "kafka.tools.StorageTool",
                "format",
                "--cluster-id",
                cluster_id,
                "--config",
                str(node.config_path),
            ]
            proc = subprocess.Popen(
                command, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True
            )
            jobs.append((node, proc))
        for node, proc in jobs:
            try:
                output, _ = proc.communicate(timeout=_FORMAT_TIMEOUT_S)
            except subprocess.TimeoutExpired as exc:
                proc.kill()
                raise BrokerStartError(f"formatting node {node.node_id} hung") from exc
            if proc.returncode != 0:
                raise BrokerStartError(
                    f"formatting the storage of node {node.node_id} failed "
                    f"(exit {proc.returncode}):\n{output.strip()}"
                )

    def _spawn(self, java: str, node: NodeSpec) -> int:
        self._log_marks[node.node_id] = _log_sizes(node)
        command = [*self._java_command(java, node, self.layout.heap)]
        command += ["kafka.Kafka", str(node.config_path)]
        with node.console_log.open("ab") as console:
            proc = subprocess.Popen(
                command,
                stdin=subprocess.DEVNULL,
                stdout=console,
                stderr=subprocess.STDOUT,
                cwd=node.node_dir,
                # Own session: Ctrl-C in the shell that ran `zf801 broker start` leaves it be.
                start_new_session=True,
            )
        write_pid(node.pid_path, proc.pid)
        return proc.pid

    def _wait_ready(self, launched: dict[int, int], deadline: float) -> None:
        while True:
            for node_id, pid in launched.items():
                if not is_alive(pid):
                    node = self.layout.node(node_id)
                    raise BrokerStartError(
                        f"node {node_id} (pid {pid}) exited during start-up; "
                        f"its log says:\n{self._log_tail(node)}"
                    )
            if self._cluster_answers():
                return
            if time.monotonic() >= deadline:
                node = self.layout.nodes[0]
                raise BrokerStartError(
                    f"no admin call to {self.bootstrap_servers} succeeded within "
                    f"{self.start_timeout_s:.0f} s; last lines of node {node.node_id}'s "
                    f"logs:\n{self._log_tail(node)}"
                )
            pause_unless_exit(list(launched.values()), _PROBE_INTERVAL_S)

    def _cluster_answers(self) -> bool:
        """True when describe_cluster lists every node (a broker registers once unfenced)."""
        nodes = self.layout.nodes
        if not all(port_open(n.host, n.broker_port) for n in nodes):
            return False
        try:
            admin = kafka_admin(
                self._probe_settings(),
                client_id="zf801-broker-ready",
                request_timeout_ms=5000,
                bootstrap_timeout_ms=5000,
            )
        except KafkaError:
            return False
        try:
            brokers = admin.describe_cluster()["brokers"]
        except KafkaError:
            return False
        finally:
            admin.close()
        return len(brokers) >= len(nodes)

    def _probe_settings(self) -> Settings:
        """How the operator reaches this cluster: as the admin on the bus listener under
        mTLS, plainly otherwise."""
        security = self.layout.security
        if security is None:
            return Settings(security="plaintext", bootstrap_servers=self.bootstrap_servers)
        return Settings(
            security="mtls",
            bus_bootstrap_servers=self.layout.side_bootstrap("BUS"),
            tls_path=security.tls.root,
            key_passphrase=SecretStr(security.passphrase),
        )

    def _log_tail(self, node: NodeSpec) -> str:
        return _log_tail(node, self._log_marks.get(node.node_id, (0, 0)))

    def _abort(self, launched: dict[int, int]) -> None:
        """Kill what this start launched, so a failed start leaves nothing half-up."""
        for node_id, pid in launched.items():
            node = self.layout.node(node_id)
            if signal_node(pid, node.config_path, signal.SIGKILL):
                wait_for_exit(pid, 10.0)
            node.pid_path.unlink(missing_ok=True)


def _require_tls_files(security: BrokerSecurity, node: NodeSpec) -> None:
    needed = [security.tls.node_keystore(node.node_id)]
    needed += [security.tls.truststore(side) for side in SIDES]
    missing = [str(path) for path in needed if not path.is_file()]
    if missing:
        raise BrokerError(
            f"node {node.node_id}: mTLS needs {', '.join(missing)}; run `zf801 keys init` "
            "(a new key store) or start the broker once from `make demo`, which issues them; "
            "ZF801_SECURITY=plaintext starts an unsecured node for debugging"
        )


def _log_sizes(node: NodeSpec) -> tuple[int, int]:
    sizes = []
    for path in (node.server_log, node.console_log):
        try:
            sizes.append(path.stat().st_size)
        except OSError:
            sizes.append(0)
    return sizes[0], sizes[1]


def _log_tail(node: NodeSpec, since: tuple[int, int] = (0, 0)) -> str:
    """The node's ERROR lines (each with the exception line after it), then its log tails,
    from the byte offsets ``since`` (the logs' sizes when this start launched the node)."""
    parts = []
    for path, offset in zip((node.server_log, node.console_log), since, strict=True):
        with contextlib.suppress(OSError), path.open("rb") as log:
            log.seek(offset)
            lines = log.read().decode("utf-8", errors="replace").splitlines()
            errors = [
                f"{line}\n{lines[i + 1] if i + 1 < len(lines) else ''}".rstrip()
                for i, line in enumerate(lines)
                if " ERROR " in line or " FATAL " in line
            ]
            if errors:
                parts.append(f"--- errors in {path}\n" + "\n".join(errors[-_LOG_ERRORS:]))
            if lines:
                parts.append(f"--- end of {path}\n" + "\n".join(lines[-_LOG_TAIL_LINES:]))
    return "\n".join(parts) or f"(no log yet in {node.logs_dir})"
