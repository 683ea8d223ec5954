"""A local deployment of the bus, as the demo, the e2e tests and the benchmarks run it: the
local broker (or the configured cluster), the catalog's topics under the run's prefix, the
demo trust set, and a ``zf801 worker`` subprocess, with the waits that replace sleeping
("has the worker consumed every record up to the end of these topics?")."""

from __future__ import annotations

import contextlib
import datetime as dt
import logging
import os
import re
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Final

import pydantic_core
from kafka import KafkaAdminClient, TopicPartition
from kafka.errors import KafkaError
from pydantic import SecretStr

from ops.broker import LocalCluster
from ops.broker_fetch import fetch_kafka
from ops.errors import OpsError
from producers.routes import ORDER_TOPICS
from schemas.agencies import load_agencies
from schemas.settings import Settings
from schemas.tls_layout import ADMIN_NAME
from sign.keystore import KeyStore
from topics.acl_admin import apply_acls, read_acls
from topics.acls import AclPlan, acl_scope, desired_acls, plan_acls
from topics.admin import admin_client, apply, plan, read_cluster_state
from topics.catalog import Catalog, bus_catalog
from topics.clients import kafka_admin, kafka_consumer, require_topics

__all__ = [
    "DEMO_PREFIX",
    "LEDGER_TOPIC_IDS",
    "ORDER_TOPIC_IDS",
    "ROUTED_TOPIC_IDS",
    "SIGHTING_TOPIC_IDS",
    "STACKS_SIGNAL",
    "WATCHLIST_TOPIC_IDS",
    "Deployment",
    "DeploymentError",
    "spawn",
    "stop_group",
    "zf801_command",
]

DEMO_PREFIX = re.compile(r"^demo[0-9]{14}-")
"""Topic prefix of a demo run (``demo<UTC timestamp>-``)."""
ORDER_TOPIC_IDS = tuple(ORDER_TOPICS.values())
SIGHTING_TOPIC_IDS = ("sightings-person", "sightings-vehicle")
ROUTED_TOPIC_IDS = ("sightings-routed",)
"""Where the matcher moves sightings to the worker holding their keys: consumed after the
sightings themselves, since moving one is part of consuming it."""
LEDGER_TOPIC_IDS = ("order-ledger",)
"""Orders and acknowledgements, verified, at the partition of their order id: applied
after the order topics are consumed."""
WATCHLIST_TOPIC_IDS = ("watchlist-updates",)
"""The ledger's watchlist changes: applied after the ledger."""
_POLL_S = 0.2
_LOG_TAIL_BYTES = 4000
_STOP_TIMEOUT_S = 20.0
STACKS_SIGNAL: Final = signal.SIGUSR2
"""Every ``zf801`` process writes every thread's stack to its stderr (its log) on this
signal (``ops.cli.main``): what a process that did not stop when told was doing."""
_STACKS_WAIT_S = 2.0
log = logging.getLogger(__name__)


class DeploymentError(OpsError):
    """The deployment failed (broker, topics, keys or worker)."""


def is_earlier_run(name: str, user_prefix: str, own_prefix: str) -> bool:
    """Whether a topic or group name belongs to an earlier demo run under ``user_prefix``
    (``<user_prefix>demo<14 digits>-...``), and not to the run with ``own_prefix``."""
    if not name.startswith(user_prefix) or name.startswith(own_prefix):
        return False
    return DEMO_PREFIX.match(name.removeprefix(user_prefix)) is not None


@dataclass
class Deployment:
    """One isolated deployment: ``settings`` carry the run's topic prefix and ack timeout."""

    settings: Settings
    catalog: Catalog
    keystore: KeyStore
    log_path: Path
    process: subprocess.Popen[bytes] | None = None

    @classmethod
    def create(cls, settings: Settings) -> Deployment:
        home = settings.home.resolve()
        settings = settings.model_copy(update={"home": home})
        return cls(
            settings=settings,
            catalog=bus_catalog(settings),
            keystore=KeyStore.from_settings(settings),
            log_path=home / "logs" / "worker.log",
        )

    @property
    def app_id(self) -> str:
        """The worker's faust application id, also its consumer group of the ledger."""
        spec = self.catalog.get("watchlist-changelog").changelog_of
        assert spec is not None  # the catalog's changelog entries name their application
        return spec.application

    @property
    def sightings_group(self) -> str:
        return f"{self.app_id}-sightings"

    @property
    def intake_group(self) -> str:
        """The worker's consumer group of the order topics and acknowledgements."""
        return f"{self.app_id}-intake"

    # --- broker, topics, keys -------------------------------------------------------------
    def start_broker(self) -> str:
        """Start (or reuse) the local single node, unless a cluster is configured."""
        if any(os.environ.get(v) for v in ("KAFKA_BOOTSTRAP_SERVERS", "ZF801_BOOTSTRAP_SERVERS")):
            return f"configured cluster {self.settings.bootstrap_servers}"
        fetch_kafka(self.settings)
        cluster = LocalCluster.from_settings(self.settings, nodes=1)
        report = cluster.start()
        self.settings = self.settings.model_copy(update=cluster_addresses(cluster))
        verb = "reused" if report.already_running and not report.started else "started"
        return f"local Kafka {verb} at {report.bootstrap_servers}"

    def apply_topics(self) -> int:
        """Create the catalog's topics under the run's prefix, and under mTLS the ACLs the
        catalog gives every agency on them; the number of topics created."""
        agencies = load_agencies()
        courts = [court.code for court in agencies.courts()]
        with admin_client(settings=self.settings) as admin:
            state = read_cluster_state(admin, self.catalog.in_namespace)
            units = [unit.code for unit in agencies.police_units()]
            result = apply(plan(self.catalog, state, courts, agencies.provinces(), units), admin)
            if result.failures:
                failed = "; ".join(f"{topic}: {reason}" for topic, reason in result.failures)
                raise DeploymentError(f"topics apply failed: {failed}")
            if self.settings.security == "mtls":
                want = desired_acls(self.catalog, agencies, courts)
                acl_plan = plan_acls(want, read_acls(admin), acl_scope(self.catalog, agencies))
                applied = apply_acls(admin, acl_plan, prune=False)
                if applied.failures:
                    raise DeploymentError(f"ACLs apply failed: {applied.failures[0]}")
        return len(result.created)

    def remove_earlier_runs(self, user_prefix: str) -> int:
        """Delete the topics and consumer groups of earlier demo runs under ``user_prefix``
        (the prefix the operator set, if any), never this run's."""
        own = self.settings.topic_prefix
        return self._remove(lambda name: is_earlier_run(name, user_prefix, own))

    def remove_run(self) -> int:
        """Delete this run's own topics, consumer groups and, under mTLS, ACLs (everything
        under its prefix)."""
        prefix = self.settings.topic_prefix
        if not prefix:
            raise DeploymentError("refusing to remove the topics of an unprefixed deployment")
        return self._remove(lambda name: name.startswith(prefix))

    def _remove(self, doomed: Callable[[str], bool]) -> int:
        admin = self._admin()
        try:
            topics = [name for name in admin.list_topics() if doomed(name)]
            groups = [g["group_id"] for g in admin.list_groups() if doomed(g["group_id"])]
            if topics:
                admin.delete_topics(topics)
            if groups:
                admin.delete_groups(groups)
            if self.settings.security == "mtls":
                # The run's grants go with its topics, groups and transactional ids.
                acls = tuple(acl for acl in read_acls(admin) if doomed(acl.resource_name))
                if acls:
                    apply_acls(admin, AclPlan(add=(), extra=acls), prune=True)
        except KafkaError as exc:
            raise DeploymentError(f"cannot remove topics and groups: {exc}") from exc
        finally:
            admin.close()
        return len(topics)

    def ensure_keys(self, now: dt.datetime) -> int:
        """The demo trust set: create it, or issue keys for agencies that have none and the
        TLS identities a store made before mutual TLS lacks. Returns how many agencies got a
        signing key."""
        agencies = list(load_agencies().agencies.values())
        if not self.keystore.exists():
            self.keystore.init(agencies, now)
            return len(agencies)
        have = {entry.agency_code for entry in self.keystore.entries()}
        missing = [a for a in agencies if a.code not in have]
        for agency in missing:
            self.keystore.issue(agency.code, agency.name, str(agency.role), now)
        self.keystore.ensure_tls(now)
        return len(missing)

    # --- the worker -----------------------------------------------------------------------
    def worker_env(self) -> dict[str, str]:
        """The worker's environment: this deployment's settings, including every one set
        explicitly (e.g. a test's acceptance window), as ``ZF801_*`` variables."""
        settings = self.settings
        explicit = {
            f"ZF801_{name.upper()}": _env_value(getattr(settings, name))
            for name in sorted(settings.model_fields_set)
            if getattr(settings, name) is not None
        }
        return {
            **os.environ,
            **explicit,
            "ZF801_HOME": str(settings.home),
            "ZF801_MODE": settings.mode,
            "ZF801_SECURITY": settings.security,
            "ZF801_KEYS_PATH": str(settings.keys_dir.resolve()),
            "ZF801_TOPIC_PREFIX": settings.topic_prefix,
            "ZF801_BOOTSTRAP_SERVERS": settings.bootstrap_servers,
            "ZF801_ACK_TIMEOUT_S": str(settings.ack_timeout_s),
            "ZF801_TIMER_INTERVAL_S": str(settings.timer_interval_s),
        }

    def start_worker(self) -> None:
        self.process = spawn(
            zf801_command("worker", "--loglevel", "info"), self.worker_env(), self.log_path
        )

    def checkpoint_once(self, timeout_s: float = 300.0) -> str:
        """One round of ``zf801 checkpointer --once`` (signed log checkpoints of every
        checkpointed partition that moved); returns its last line."""
        done = subprocess.run(
            zf801_command("checkpointer", "--once"), env=self.worker_env(),
            capture_output=True, text=True, timeout=timeout_s, check=False,
        )  # fmt: skip
        lines = (done.stdout.strip() or done.stderr.strip() or "no output").splitlines()
        if done.returncode != 0:
            raise DeploymentError(f"zf801 checkpointer --once failed: {lines[-1]}")
        return lines[-1]

    def wait_worker_ready(self, timeout_s: float) -> None:
        """Until the worker's consumer group is stable with a member."""

        def ready(admin: KafkaAdminClient) -> bool:
            group = admin.describe_groups([self.app_id]).get(self.app_id, {})
            return group.get("group_state") == "Stable" and bool(group.get("members"))

        self._wait(ready, timeout_s, "the worker did not join its consumer group")

    def stop_worker(self, signum: int = signal.SIGTERM) -> int | None:
        """``signum`` (SIGTERM; SIGKILL for crash tests) to the worker's process group,
        SIGKILL after a grace period."""
        process, self.process = self.process, None
        if process is None:
            return None
        stop_group(process, signum)
        return process.returncode

    def worker_log(self) -> str:
        """Everything the worker has logged in this deployment."""
        try:
            return self.log_path.read_bytes().decode("utf-8", "replace")
        except OSError:
            return ""

    def worker_log_tail(self) -> str:
        return self.worker_log()[-_LOG_TAIL_BYTES:]

    # --- waiting --------------------------------------------------------------------------
    def wait_consumed(
        self,
        group: str,
        topic_ids: Iterable[str],
        timeout_s: float,
        progress: Callable[[int, int], None] | None = None,
    ) -> None:
        """Until ``group`` has committed every partition of the topics up to its end."""
        topics = [self.catalog.topic_name(topic_id) for topic_id in topic_ids]
        found = require_topics(self.settings, ADMIN_NAME, topics, "describe")
        partitions = [TopicPartition(t, p) for t in topics for p in found[t]]
        consumer = kafka_consumer(self.settings, ADMIN_NAME, client_id="zf801-demo")
        behind: list[str] = []
        try:

            def caught_up(admin: KafkaAdminClient) -> bool:
                ends = consumer.end_offsets(partitions)
                committed = admin.list_group_offsets({group: None}).get(group, {})
                done = {tp: committed[tp].offset if tp in committed else 0 for tp in partitions}
                if progress is not None:
                    progress(sum(min(done[tp], ends[tp]) for tp in partitions), sum(ends.values()))
                behind[:] = [
                    f"{tp.topic}[{tp.partition}] at {done[tp]} of {ends[tp]}"
                    for tp in partitions
                    if done[tp] < ends[tp]
                ]
                return not behind

            self._wait(
                caught_up,
                timeout_s,
                f"group {group} did not consume {', '.join(topics)}",
                lambda: f" (behind: {'; '.join(behind)})",
            )
        finally:
            consumer.close()

    def wait_orders_applied(
        self, timeout_s: float, progress: Callable[[int, int], None] | None = None
    ) -> None:
        """Until the worker has consumed every order record and acknowledgement, applied
        them from the ledger, and applied the watchlist changes they made (in that order:
        each stage's records exist once the one before has been read)."""
        inputs = (*ORDER_TOPIC_IDS, "order-acknowledgements")
        self.wait_consumed(self.intake_group, inputs, timeout_s, progress)
        self.wait_consumed(self.app_id, LEDGER_TOPIC_IDS, timeout_s)
        self.wait_consumed(self.app_id, WATCHLIST_TOPIC_IDS, timeout_s)

    def wait_sightings_matched(
        self, timeout_s: float, progress: Callable[[int, int], None] | None = None
    ) -> None:
        """Until the matcher has consumed every sighting, then every sighting it moved."""
        self.wait_consumed(self.sightings_group, SIGHTING_TOPIC_IDS, timeout_s, progress)
        self.wait_consumed(self.sightings_group, ROUTED_TOPIC_IDS, timeout_s)

    def _admin(self) -> KafkaAdminClient:
        return kafka_admin(self.settings, client_id="zf801-demo")

    def _wait(
        self,
        condition: Callable[[KafkaAdminClient], bool],
        timeout_s: float,
        what: str,
        detail: Callable[[], str] = str,
    ) -> None:
        admin = self._admin()
        deadline = time.monotonic() + timeout_s
        try:
            while time.monotonic() < deadline:
                if self.process is not None and self.process.poll() is not None:
                    raise DeploymentError(
                        f"the worker exited with code {self.process.returncode}; log tail:\n"
                        + self.worker_log_tail()
                    )
                with contextlib.suppress(KafkaError):
                    if condition(admin):
                        return
                time.sleep(_POLL_S)  # polling the broker's state, not waiting on a guess
        finally:
            admin.close()
        raise DeploymentError(
            f"{what} within {timeout_s:.0f} s{detail()}; worker log tail:\n"
            f"{self.worker_log_tail()}" + self.worker_state_dump()
        )

    def worker_state_dump(self) -> str:
        """The running worker's own account of where it waits (``consumers.diagnostics``),
        asked for with SIGUSR1; empty when no worker runs."""
        if self.process is None or self.process.poll() is not None:
            return ""
        self.process.send_signal(signal.SIGUSR1)
        time.sleep(1.0)
        log = self.worker_log()
        start = log.rfind("state dump (SIGUSR1)")
        return "" if start < 0 else "\nworker state:\n" + log[start:]


def zf801_command(*arguments: str) -> list[str]:
    """The command line of ``zf801 ARGUMENTS`` in this environment: the console script next
    to the interpreter, else the CLI module run by the interpreter."""
    script = Path(sys.executable).with_name("zf801")
    base = (
        [str(script)]
        if script.exists()
        else [sys.executable, "-c", "from ops.cli import main; main()"]
    )
    return [*base, *arguments]


def spawn(command: list[str], env: dict[str, str], log_path: Path) -> subprocess.Popen[bytes]:
    """Start a processor in a process group of its own (stopped as a whole by
    :func:`stop_group`), its output appended to ``log_path``."""
    log_path.parent.mkdir(parents=True, exist_ok=True)
    with log_path.open("ab") as log:  # the child keeps its own descriptor
        return subprocess.Popen(
            command, env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True
        )


def stop_group(
    process: subprocess.Popen[bytes],
    signum: int = signal.SIGTERM,
    timeout_s: float = _STOP_TIMEOUT_S,
) -> int | None:
    """``signum`` to the process group of ``process`` (SIGKILL for crash tests), SIGKILL
    after ``timeout_s``; its exit code. A process still running then is first asked for
    its threads' stacks (:data:`STACKS_SIGNAL`), so its log says where it hung."""
    if process.poll() is None:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(process.pid, signum)
        try:
            process.wait(timeout=timeout_s)
        except subprocess.TimeoutExpired:
            log.warning("pid %d did not stop within %.0f s; its stacks go to its log, then "
                        "SIGKILL", process.pid, timeout_s)  # fmt: skip
            with contextlib.suppress(ProcessLookupError, subprocess.TimeoutExpired):
                os.killpg(process.pid, STACKS_SIGNAL)
                process.wait(timeout=_STACKS_WAIT_S)
            with contextlib.suppress(ProcessLookupError):
                os.killpg(process.pid, signal.SIGKILL)
            process.wait(timeout=timeout_s)
    return process.returncode


def cluster_addresses(cluster: LocalCluster) -> dict[str, str]:
    """The bootstrap settings of a local cluster: one per side under mTLS."""
    layout = cluster.layout
    if layout.security is None:
        return {"bootstrap_servers": layout.bootstrap_servers}
    return {
        "bootstrap_servers": layout.side_bootstrap("COURT"),
        "police_bootstrap_servers": layout.side_bootstrap("POLICE"),
        "bus_bootstrap_servers": layout.side_bootstrap("BUS"),
    }


def _env_value(value: object) -> str:
    if isinstance(value, SecretStr):
        return value.get_secret_value()
    if isinstance(value, dict | list):  # as pydantic-settings reads a complex value: JSON
        return pydantic_core.to_json(value).decode()
    return str(value)
