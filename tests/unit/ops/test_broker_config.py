"""The local broker's pure logic: layouts, server.properties, pid files, port checks.

No Java runs here: the "running node" is a Python child whose command line looks like ours.
"""

from __future__ import annotations

import base64
import os
import signal
import socket
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from ops.broker import LocalCluster
from ops.broker_config import ClusterLayout, new_cluster_id, render_server_properties
from ops.broker_fetch import kafka_libs_dir, require_tool
from ops.broker_process import (
    PidState,
    ensure_ports_free,
    is_alive,
    probe_pid_file,
    read_pid,
    signal_node,
    wait_for_exit,
    write_pid,
)
from ops.errors import PortInUseError, ToolMissingError
from schemas.errors import ConfigurationError
from schemas.settings import Settings


def _properties(text: str) -> dict[str, str]:
    pairs = (line.split("=", 1) for line in text.splitlines() if line and line[0] != "#")
    return {key: value for key, value in pairs}


def _settings(home: Path, security: str = "plaintext") -> Settings:
    # Explicit ports: the defaults, whatever ZF801_* variables the shell running the tests has.
    return Settings(
        home=home, broker_port=9092, controller_port=9093, broker_police_port=9094,
        broker_bus_port=9095, quorum_broker_port=9192, quorum_controller_port=9195,
        quorum_police_port=9292, quorum_bus_port=9392, security=security,
    )  # fmt: skip


def _layout(tmp_path: Path, size: int) -> ClusterLayout:
    return ClusterLayout.on_ports(
        tmp_path / "cluster",
        host="127.0.0.1",
        broker_ports=[19092 + i for i in range(size)],
        controller_ports=[19192 + i for i in range(size)],
        heap="256m",
    )


def test_single_node_properties_use_replication_factor_one(tmp_path: Path) -> None:
    layout = ClusterLayout.from_settings(_settings(tmp_path), nodes=1)
    (node,) = layout.nodes
    props = _properties(render_server_properties(layout, node))

    assert props["process.roles"] == "broker,controller"
    assert props["node.id"] == "1"
    assert props["controller.quorum.voters"] == "1@127.0.0.1:9093"
    assert props["listeners"] == "PLAINTEXT://127.0.0.1:9092,CONTROLLER://127.0.0.1:9093"
    assert props["controller.listener.names"] == "CONTROLLER"
    assert props["inter.broker.listener.name"] == "PLAINTEXT"
    assert props["log.dirs"] == str(tmp_path.resolve() / "broker/1-node/node-1/data")
    for key in (
        "offsets.topic.replication.factor",
        "transaction.state.log.replication.factor",
        "transaction.state.log.min.isr",
        "share.coordinator.state.topic.replication.factor",
        "share.coordinator.state.topic.min.isr",
        "default.replication.factor",
        "min.insync.replicas",
    ):
        assert props[key] == "1", key
    assert props["group.initial.rebalance.delay.ms"] == "0"
    assert layout.bootstrap_servers == "127.0.0.1:9092"
    assert layout.heap == "1g"


def test_three_node_properties_form_one_quorum_with_rf3_and_min_isr_2(tmp_path: Path) -> None:
    layout = ClusterLayout.from_settings(_settings(tmp_path), nodes=3)
    rendered = [_properties(render_server_properties(layout, n)) for n in layout.nodes]

    voters = "1@127.0.0.1:9195,2@127.0.0.1:9196,3@127.0.0.1:9197"
    assert [p["node.id"] for p in rendered] == ["1", "2", "3"]
    assert {p["controller.quorum.voters"] for p in rendered} == {voters}
    assert [p["listeners"] for p in rendered] == [
        f"PLAINTEXT://127.0.0.1:{9192 + i},CONTROLLER://127.0.0.1:{9195 + i}" for i in range(3)
    ]
    assert len({p["log.dirs"] for p in rendered}) == 3
    for props in rendered:
        assert props["default.replication.factor"] == "3"
        assert props["offsets.topic.replication.factor"] == "3"
        assert props["transaction.state.log.replication.factor"] == "3"
        assert props["min.insync.replicas"] == "2"
        assert props["transaction.state.log.min.isr"] == "2"
    assert layout.bootstrap_servers == "127.0.0.1:9192,127.0.0.1:9193,127.0.0.1:9194"
    assert layout.heap == "512m"


def test_single_node_and_quorum_share_no_port_or_folder(tmp_path: Path) -> None:
    single = ClusterLayout.from_settings(_settings(tmp_path), nodes=1)
    quorum = ClusterLayout.from_settings(_settings(tmp_path), nodes=3)
    ports = [
        port
        for layout in (single, quorum)
        for node in layout.nodes
        for port in (node.broker_port, node.controller_port)
    ]
    assert len(ports) == len(set(ports)) == 8
    assert single.cluster_dir != quorum.cluster_dir


@pytest.mark.parametrize("size", [0, 2, 4])
def test_a_cluster_has_one_or_three_nodes(tmp_path: Path, size: int) -> None:
    with pytest.raises(ConfigurationError, match=f"nodes={size}"):
        ClusterLayout.from_settings(_settings(tmp_path), nodes=size)


def test_a_port_used_twice_is_refused(tmp_path: Path) -> None:
    with pytest.raises(ConfigurationError, match="every port used once"):
        ClusterLayout.on_ports(
            tmp_path, host="127.0.0.1", broker_ports=[9092], controller_ports=[9092], heap="1g"
        )


def test_cluster_ids_are_22_char_urlsafe_uuids() -> None:
    ids = {new_cluster_id() for _ in range(200)}
    assert len(ids) == 200
    for cluster_id in ids:
        assert len(cluster_id) == 22 and not cluster_id.startswith("-")
        assert len(base64.urlsafe_b64decode(cluster_id + "==")) == 16


@pytest.mark.parametrize("version", ["4.1", "4.1.1;rm", "../4.1.1", ""])
def test_a_malformed_kafka_version_is_refused(tmp_path: Path, version: str) -> None:
    settings = Settings(home=tmp_path, kafka_version=version)
    with pytest.raises(ConfigurationError, match="kafka_version"):
        kafka_libs_dir(settings)


def test_a_missing_tool_says_what_to_install(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PATH", "/nonexistent")
    with pytest.raises(ToolMissingError, match="apt-get install openjdk-17-jdk-headless"):
        require_tool("java")
    with pytest.raises(ToolMissingError, match="apt-get install maven"):
        require_tool("mvn")


def test_pid_file_round_trip_and_garbage(tmp_path: Path) -> None:
    path = tmp_path / "node" / "kafka.pid"
    assert read_pid(path) is None
    write_pid(path, 4242)
    assert read_pid(path) == 4242
    path.write_text("not a pid\n")
    assert read_pid(path) is None
    path.write_text("0\n")
    assert read_pid(path) is None


def _exited_pid() -> int:
    child = subprocess.Popen([sys.executable, "-c", "pass"])
    child.wait()
    return child.pid


@pytest.fixture
def fake_node(tmp_path: Path) -> Iterator[tuple[subprocess.Popen[bytes], ClusterLayout]]:
    """A child whose command line reads like node 1's ``java ... kafka.Kafka <config>``."""
    layout = _layout(tmp_path, 1)
    node = layout.nodes[0]
    node.node_dir.mkdir(parents=True)
    # It blocks reading stdin until the test ends or signals it.
    body = "import sys; sys.stdin.read()"
    child = subprocess.Popen(
        [sys.executable, "-c", body, "kafka.Kafka", str(node.config_path)],
        stdin=subprocess.PIPE,
    )
    write_pid(node.pid_path, child.pid)
    try:
        yield child, layout
    finally:
        if child.poll() is None:
            child.kill()
        child.wait()


def test_probe_sees_our_running_node(
    fake_node: tuple[subprocess.Popen[bytes], ClusterLayout],
) -> None:
    child, layout = fake_node
    node = layout.nodes[0]
    probe = probe_pid_file(node.pid_path, node.config_path)
    assert (probe.state, probe.pid) == (PidState.RUNNING, child.pid)
    assert LocalCluster(layout, Path("/nonexistent")).is_running()


def test_probe_calls_a_pid_file_of_a_dead_process_stale(tmp_path: Path) -> None:
    pid = _exited_pid()
    write_pid(tmp_path / "kafka.pid", pid)
    probe = probe_pid_file(tmp_path / "kafka.pid", tmp_path / "server.properties")
    assert probe.state is PidState.STALE
    assert probe.reason == f"process {pid} is gone"


def test_probe_calls_a_recycled_pid_stale_and_never_signals_it(tmp_path: Path) -> None:
    # This very test process: alive, but not a kafka.Kafka with our config.
    write_pid(tmp_path / "kafka.pid", os.getpid())
    probe = probe_pid_file(tmp_path / "kafka.pid", tmp_path / "server.properties")
    assert probe.state is PidState.STALE
    assert "belongs to another program" in probe.reason
    assert not signal_node(os.getpid(), tmp_path / "server.properties", signal.SIGTERM)


def test_status_reports_a_stale_pid_file_without_removing_it(tmp_path: Path) -> None:
    layout = _layout(tmp_path, 1)
    node = layout.nodes[0]
    write_pid(node.pid_path, _exited_pid())
    (row,) = LocalCluster(layout, tmp_path / "libs").status()
    assert not row.alive and row.rss_kib is None
    assert row.note.startswith("dead: stale pid file")
    assert node.pid_path.exists()


def test_stop_cleans_a_stale_pid_file_with_a_note(tmp_path: Path) -> None:
    layout = _layout(tmp_path, 3)
    write_pid(layout.nodes[1].pid_path, _exited_pid())
    report = LocalCluster(layout, tmp_path / "libs").stop()
    assert report.stopped == ()
    assert len(report.notes) == 1 and report.notes[0].startswith("node 2: removed stale pid file")
    assert not layout.nodes[1].pid_path.exists()


def test_stop_terminates_our_node_and_removes_its_pid_file(
    fake_node: tuple[subprocess.Popen[bytes], ClusterLayout],
) -> None:
    child, layout = fake_node
    report = LocalCluster(layout, Path("/nonexistent"), stop_timeout_s=10).stop()
    # Stopped by SIGTERM within the timeout (not killed), and reaped by stop() itself.
    assert report.stopped == (1,) and report.killed == ()
    assert not is_alive(child.pid)
    assert not layout.nodes[0].pid_path.exists()


def test_wait_for_exit_times_out_on_a_live_process_then_sees_it_exit(
    fake_node: tuple[subprocess.Popen[bytes], ClusterLayout],
) -> None:
    child, _ = fake_node
    assert not wait_for_exit(child.pid, 0.05)
    assert is_alive(child.pid)
    child.kill()
    assert wait_for_exit(child.pid, 10)
    assert not is_alive(child.pid)


def test_a_taken_port_is_named_with_its_holder(tmp_path: Path) -> None:
    with socket.socket() as holder:
        holder.bind(("127.0.0.1", 0))
        holder.listen()
        port = holder.getsockname()[1]
        with pytest.raises(PortInUseError) as caught:
            ensure_ports_free("127.0.0.1", {port: "broker port of node 1"})
    message = str(caught.value)
    assert f"127.0.0.1:{port} (broker port of node 1)" in message
    assert f"pid {os.getpid()}" in message
    assert "KAFKA_BOOTSTRAP_SERVERS" in message


def test_start_refuses_a_taken_port_before_launching_java(tmp_path: Path) -> None:
    libs = tmp_path / "libs"
    libs.mkdir()
    (libs / "kafka_2.13-0.0.0.jar").touch()
    with socket.socket() as holder:
        holder.bind(("127.0.0.1", 0))
        holder.listen()
        port = holder.getsockname()[1]
        layout = ClusterLayout.on_ports(
            tmp_path / "c", host="127.0.0.1", broker_ports=[port], controller_ports=[1], heap="1g"
        )
        with pytest.raises(PortInUseError, match=f"127.0.0.1:{port}"):
            LocalCluster(layout, libs).start()
    assert not layout.nodes[0].pid_path.exists()
    assert not layout.nodes[0].config_path.exists()


def test_mtls_node_has_one_tls13_listener_per_side_and_denies_without_acl(tmp_path: Path) -> None:
    layout = ClusterLayout.from_settings(_settings(tmp_path, "mtls"), nodes=1)
    (node,) = layout.nodes
    props = _properties(render_server_properties(layout, node))
    tls = tmp_path.resolve() / "keys" / "tls"

    assert props["listeners"] == (
        "COURT://127.0.0.1:9092,POLICE://127.0.0.1:9094,BUS://127.0.0.1:9095,"
        "CONTROLLER://127.0.0.1:9093"
    )
    assert props["listener.security.protocol.map"] == (
        "COURT:SSL,POLICE:SSL,BUS:SSL,CONTROLLER:SSL"
    )
    assert props["inter.broker.listener.name"] == "BUS"
    assert props["ssl.enabled.protocols"] == "TLSv1.3"
    assert props["ssl.client.auth"] == "required"
    assert props["ssl.keystore.type"] == "PKCS12"
    assert props["ssl.keystore.location"] == str(tls / "nodes" / "node-1.p12")
    assert props["authorizer.class.name"].endswith("StandardAuthorizer")
    assert props["allow.everyone.if.no.acl.found"] == "false"
    assert props["super.users"] == "User:node-1;User:ZF801-ADMIN"
    # Side binding: each listener trusts only its side's CA and maps only its roles.
    for listener, side, roles in (
        ("court", "court", "court|command-system|list-subscriber"),
        ("police", "police", "border-control|traffic-management|public-security"),
        ("bus", "bus", "bus|broker|admin"),
        ("controller", "bus", "broker"),
    ):
        prefix = f"listener.name.{listener}."
        assert props[prefix + "ssl.truststore.location"] == str(tls / "trust" / f"{side}.pem")
        assert props[prefix + "ssl.client.auth"] == "required"
        assert props[prefix + "ssl.principal.mapping.rules"] == (
            f"RULE:^CN=([^,]+),OU=({roles}),O=ZF801,C=CN$/$1/,RULE:^.*$/UNMAPPED/"
        )
    assert "PLAINTEXT" not in render_server_properties(layout, node)


def test_mtls_quorum_names_every_node_a_super_user(tmp_path: Path) -> None:
    layout = ClusterLayout.from_settings(_settings(tmp_path, "mtls"), nodes=3)
    props = _properties(render_server_properties(layout, layout.nodes[1]))
    assert props["super.users"] == "User:node-1;User:node-2;User:node-3;User:ZF801-ADMIN"
    assert props["listeners"].startswith("COURT://127.0.0.1:9193,POLICE://127.0.0.1:9293,")
    assert layout.side_bootstrap("BUS") == "127.0.0.1:9392,127.0.0.1:9393,127.0.0.1:9394"


def test_an_mtls_layout_without_side_ports_is_refused(tmp_path: Path) -> None:
    settings = _settings(tmp_path, "mtls")
    with pytest.raises(ConfigurationError, match="police and bus ports"):
        ClusterLayout.on_ports(
            tmp_path, host="127.0.0.1", broker_ports=[1], controller_ports=[2], heap="1g",
            security=ClusterLayout.from_settings(settings).security,
        )  # fmt: skip
