"""The bus's one typed settings object, read from ``ZF801_*`` environment variables.

It lives in ``schemas`` because that package is the root of the import graph
(``schemas`` <- ``sign`` <- ``topics`` <- ``producers``/``consumers`` <- ``ops``), so every
package can read it without importing upwards.
"""

from __future__ import annotations

from functools import lru_cache
from pathlib import Path
from typing import Annotated, Literal

from pydantic import (
    AliasChoices,
    BaseModel,
    ConfigDict,
    Field,
    SecretStr,
    ValidationError,
    model_validator,
)
from pydantic_settings import BaseSettings, SettingsConfigDict, SettingsError

from schemas.errors import InsecureSettings

__all__ = [
    "MAX_IDLE_S", "MAX_LISTED", "MAX_QUERY_WAIT_S", "QueryQuota", "Settings", "get_settings",
    "settings_problem",
]  # fmt: skip

# Demo-only secrets: fine for a laptop, and documented in the README as values every real
# deployment must override; in production mode the worker and the publishers refuse them.
_DEMO_MATCH_KEY_SECRET = "zf801-demo-match-key-secret-change-me"  # noqa: S105
_DEMO_KEY_PASSPHRASE = "zf801-demo-key-passphrase-change-me"  # noqa: S105
_OrderKindName = Literal["EXIT_RESTRICTION", "VEHICLE_SEARCH", "LOCATE_DEBTOR"]
# The shortest secret production mode accepts.
_MIN_SECRET_CHARS = 16
MAX_QUERY_WAIT_S = 30 * 24 * 3600
"""The longest a query may wait for its answers (its deadline after it is asked)."""
MAX_IDLE_S = 24 * 3600
"""The longest idle wait, timeout or interval a command's option takes (a day): a larger
one, or inf, is refused with the option's name rather than overflowing a timer later."""
MAX_LISTED = 1_000_000
"""The most records a listing option (``-n``, ``--limit``) asks for: a larger count is
refused with the option's name rather than overflowing an index or a seek."""


class QueryQuota(BaseModel):
    """A province's query limits for its own responders (see ``Settings.query_quotas``)."""

    model_config = ConfigDict(frozen=True, extra="forbid", strict=True)

    per_court: int | None = Field(default=None, ge=0)
    per_unit: int | None = Field(default=None, ge=0)


class Settings(BaseSettings):
    """Frozen settings; secrets are ``SecretStr`` so they never print."""

    model_config = SettingsConfigDict(
        env_prefix="ZF801_", frozen=True, extra="ignore", populate_by_name=True
    )

    # Where to reach Kafka. KAFKA_BOOTSTRAP_SERVERS is honoured so an existing cluster
    # (CI, a shared test cluster) can be used without starting the local one.
    bootstrap_servers: str = Field(
        default="127.0.0.1:9092",
        validation_alias=AliasChoices("ZF801_BOOTSTRAP_SERVERS", "KAFKA_BOOTSTRAP_SERVERS"),
    )
    # "mtls": every client authenticates with its agency's TLS certificate on the listener
    # of its side, and the broker authorises by ACLs; "plaintext": no security (debugging).
    security: Literal["mtls", "plaintext"] = "mtls"
    # With mtls, the court side uses bootstrap_servers; the police side and the bus
    # processors (and the admin) connect to listeners of their own.
    police_bootstrap_servers: str = "127.0.0.1:9094"
    bus_bootstrap_servers: str = "127.0.0.1:9095"
    # Local state: Kafka jars, broker data and logs, pid files, demo keys.
    home: Path = Path(".zf801")

    # The local broker managed by ``zf801 broker``.
    kafka_version: str = "4.1.1"
    broker_host: str = "127.0.0.1"
    broker_port: int = Field(default=9092, ge=1, le=65535)
    controller_port: int = Field(default=9093, ge=1, le=65535)
    # With security "mtls" the local node has one client listener per side (the court
    # side on broker_port, the police side, the bus processors and the admin), each
    # trusting only its own issuing CA: a certificate of one side can never act as another.
    broker_police_port: int = Field(default=9094, ge=1, le=65535)
    broker_bus_port: int = Field(default=9095, ge=1, le=65535)
    broker_heap: str = Field(default="1g", pattern=r"^[0-9]+[mMgG]$")
    broker_start_timeout_s: float = Field(default=90.0, gt=0)
    # SIGTERM, then SIGKILL after this long: a broker's controlled shutdown can stall
    # once its quorum is gone.
    broker_stop_timeout_s: float = Field(default=30.0, gt=0)
    # ``zf801 broker start --nodes 3``: three consecutive broker ports and three consecutive
    # controller ports starting here (9192-9194, 9195-9197), so the quorum can run beside
    # the single node; 512m heap per node keeps three JVMs modest.
    quorum_broker_port: int = Field(default=9192, ge=1, le=65533)
    quorum_controller_port: int = Field(default=9195, ge=1, le=65533)
    quorum_police_port: int = Field(default=9292, ge=1, le=65533)
    quorum_bus_port: int = Field(default=9392, ge=1, le=65533)
    quorum_broker_heap: str = Field(default="512m", pattern=r"^[0-9]+[mMgG]$")

    # Prefix for every topic name and processor id; isolates test runs on a shared cluster.
    # How long a client waits for a broker before it gives up (bootstrap, metadata for a
    # send): an operator's command against a broker that is down fails within this.
    connect_timeout_s: float = Field(default=8.0, gt=0, le=300)
    topic_prefix: str = Field(default="", pattern=r"^[a-zA-Z0-9._-]*$")
    # "production" refuses demo, empty and short secrets where the worker or a publisher
    # starts (require_real_secrets); ``zf801 demo`` runs in "demo", the test suite in "test".
    mode: Literal["production", "demo", "test"] = "production"

    # The worker: how long a police agency has to acknowledge an order before the issuing
    # court is alerted, and how often expiry and acknowledgement deadlines are checked.
    ack_timeout_s: float = Field(default=300.0, gt=0)
    timer_interval_s: float = Field(default=1.0, gt=0)
    # The Prometheus endpoint of a long-running processor (``--metrics-port``); None: none.
    metrics_port: int | None = Field(default=None, ge=0, le=65535)
    metrics_host: str = Field(default="127.0.0.1", pattern=r"^[0-9A-Fa-f.:]{2,45}$")
    # Order lifecycle (consumers.deadlines): the issuing court is warned this long before a
    # control period ends, per order kind (EXIT_RESTRICTION, VEHICLE_SEARCH, LOCATE_DEBTOR;
    # a kind not named takes ``expiry_warning_s``), e.g.
    # ZF801_EXPIRY_WARNING_BY_KIND='{"LOCATE_DEBTOR": 259200}'. An expired order stays on
    # the watchlist ``late_window_s`` longer, matched only by late sightings (observed in
    # the period, processed after it): the court hears of them, flagged late.
    expiry_warning_s: float = Field(default=7 * 24 * 3600.0, ge=0)
    expiry_warning_by_kind: dict[_OrderKindName, Annotated[float, Field(ge=0)]] = Field(
        default_factory=dict
    )
    late_window_s: float = Field(default=72 * 3600.0, ge=0)
    # A new or corrected order is matched against the sightings of this long before it
    # (consumers.lookback; 0: no look-back), its hits flagged retroactive.
    lookback_s: float = Field(default=72 * 3600.0, ge=0)
    # Hit confirmation clocks (consumers.hit_clocks): seconds each side has to confirm a
    # hit, per KIND or PROVINCE/KIND over the defaults (600 s for EXIT_RESTRICTION and
    # LOCATE_DEBTOR, 3600 s for VEHICLE_SEARCH), e.g.
    # ZF801_HIT_CONFIRM_S='{"44/LOCATE_DEBTOR": 300}'.
    hit_confirm_s: dict[str, Annotated[float, Field(gt=0)]] = Field(default_factory=dict)
    # Names this worker's transactional producer; unique per worker process of one deployment.
    worker_id: str = Field(default="0", pattern=r"^[a-zA-Z0-9_-]{1,32}$")
    # Where the worker keeps its tables: "memory" (a restart replays each table's whole
    # changelog) or "rocksdb", one database per partition on local disk under
    # <home>/worker/<application>-<worker id> (a restart reads only the changelog's tail).
    worker_store: Literal["memory", "rocksdb"] = "memory"
    # Workers that keep a warm copy of each table partition they do not own (faust's
    # standby replicas; "rocksdb" only): a failover then reads only the tail.
    standby_replicas: int = Field(default=0, ge=0, le=3)

    # HMAC secret for subject match keys (identical on every side of the bus).
    match_key_secret: SecretStr = SecretStr(_DEMO_MATCH_KEY_SECRET)
    # Passphrase that encrypts agency private keys at rest.
    key_passphrase: SecretStr = SecretStr(_DEMO_KEY_PASSPHRASE)
    # Signing (sign/): the key store folder (None: <home>/keys) and agency cert lifetime.
    keys_path: Path | None = None
    # The TLS identities the Kafka clients and the local broker use (None: <keys>/tls). A
    # deployment whose signing keys live elsewhere still connects with these.
    tls_path: Path | None = None
    agency_cert_days: int = Field(default=730, ge=1)
    # Acceptance window around the processor's own (trusted) clock, per event family
    # (sign/REPLAY.md): an event that causes an effect is refused when its ce_time lies
    # more than ``accept_future_s`` ahead, or further back than its family's past window.
    # The past windows are wide enough for a police system that stores and forwards
    # after an outage. Events that remove an effect (releases, expiry) have no window.
    accept_future_s: float = Field(default=300.0, gt=0)
    accept_past_orders_s: float = Field(default=30 * 24 * 3600.0, gt=0)
    accept_past_acknowledgements_s: float = Field(default=30 * 24 * 3600.0, gt=0)
    accept_past_sightings_s: float = Field(default=72 * 3600.0, gt=0)
    # Replay guard: the memory bound on event ids held (ids live as long as the window).
    replay_max_ids: int = Field(default=2_000_000, ge=1000)
    # Largest allowed gap between ce_time and the Kafka record timestamp (0: not checked).
    verify_max_skew_s: float = Field(default=0.0, ge=0)
    # The matcher verifies one watchlist miss in this many (0: none), to trace junk/forgeries.
    verify_misses_every: int = Field(default=1000, ge=0)
    # The bus agency whose key signs trust records (certificates, revocations) on the trust
    # topic; the demo agency list has no dedicated key-administration processor.
    trust_publisher_agency: str = "BUS-AUDIT"
    # Queries (P1-P5). Quotas guard against bulk harvesting of personal data: within any
    # ``query_quota_window_s``, one responder answers at most ``query_quota_per_court``
    # queries of one court and ``query_quota_per_unit`` in all (0: no limit); a province
    # sets its own units' limits in ``query_quotas``, e.g.
    # ZF801_QUERY_QUOTAS='{"11": {"per_court": 200, "per_unit": 5000}}'. Beyond a quota a
    # query gets a signed refusal, never silence.
    query_quota_per_court: int = Field(default=1000, ge=0)
    query_quota_per_unit: int = Field(default=50_000, ge=0)
    query_quota_window_s: float = Field(default=3600.0, gt=0)
    query_quotas: dict[str, QueryQuota] = Field(default_factory=dict)
    # How long a court's query client waits by default (the query's deadline).
    query_wait_s: float = Field(default=30.0, gt=0, le=MAX_QUERY_WAIT_S)

    @model_validator(mode="after")
    def _clients_follow_the_local_broker(self) -> Settings:
        """A client's address not given, while the local broker's host or ports are, is
        that broker's listener of its side: the commands of a run whose broker was moved
        (``ZF801_BROKER_PORT``, as tests and a second checkout do) reach that broker, not
        whatever answers on the default port."""
        given = self.model_fields_set
        follows = {
            "bootstrap_servers": ("broker_port", self.broker_port),
            "police_bootstrap_servers": ("broker_police_port", self.broker_police_port),
            "bus_bootstrap_servers": ("broker_bus_port", self.broker_bus_port),
        }
        for address, (port_field, port) in follows.items():
            if address not in given and ({port_field, "broker_host"} & given):
                object.__setattr__(self, address, f"{self.broker_host}:{port}")  # frozen
        return self

    @property
    def kafka_dir(self) -> Path:
        return self.home / "kafka"

    @property
    def keys_dir(self) -> Path:
        return self.keys_path if self.keys_path is not None else self.home / "keys"

    @property
    def tls_dir(self) -> Path:
        """The TLS material (``schemas.tls_layout``): ``<keys>/tls`` unless set apart."""
        return self.tls_path if self.tls_path is not None else self.keys_dir / "tls"

    def insecure_secrets(self) -> list[str]:
        """The ``ZF801_*`` variables whose secret still holds its public demo value."""
        return [variable for variable, secret, demo in self._secrets() if secret == demo]

    def require_real_secrets(self, component: str) -> None:
        """Raise :class:`InsecureSettings` when, in production mode, a secret holds its demo
        value or is empty or shorter than 16 characters; ``component`` names what refuses
        to start. Demo and test mode accept any secret."""
        if self.mode != "production":
            return
        problems = tuple(
            (variable, problem)
            for variable, secret, demo in self._secrets()
            if (problem := _weakness(secret, demo)) is not None
        )
        if problems:
            raise InsecureSettings(component, problems)

    def _secrets(self) -> list[tuple[str, str, str]]:
        """(variable, value, demo value) of each secret setting."""
        match_key_secret = self.match_key_secret.get_secret_value()
        key_passphrase = self.key_passphrase.get_secret_value()
        return [
            ("ZF801_MATCH_KEY_SECRET", match_key_secret, _DEMO_MATCH_KEY_SECRET),
            ("ZF801_KEY_PASSPHRASE", key_passphrase, _DEMO_KEY_PASSPHRASE),
        ]


def _weakness(secret: str, demo: str) -> str | None:
    """What makes a secret unfit for production, or None."""
    if secret == demo:
        return "holds the public demo value"
    if not secret.strip():
        return "is empty"
    if len(secret) < _MIN_SECRET_CHARS:
        return f"is shorter than {_MIN_SECRET_CHARS} characters"
    return None


@lru_cache(maxsize=1)
def get_settings() -> Settings:
    """The process-wide settings, read once."""
    return Settings()


def settings_problem(exc: Exception) -> str | None:
    """One line naming the ``ZF801_*`` variable and the rule a settings error broke
    (None: ``exc`` is no error of the settings), for a command to show instead of
    pydantic's report."""
    if isinstance(exc, SettingsError):  # a value the environment source could not parse
        text = str(exc)
        start = text.find('field "') + len('field "')
        name = text[start : text.find('"', start)] if start > len('field "') - 1 else ""
        variable = f"ZF801_{name.upper()}" if name else "a ZF801_* variable"
        return f"settings: {variable}: not valid JSON for its type [rule json]"
    if not isinstance(exc, ValidationError) or exc.title not in ("Settings", "QueryQuota"):
        return None
    problems = []
    for error in exc.errors()[:5]:
        where = [str(part) for part in error.get("loc", ())]
        variable = f"ZF801_{where[0].upper()}" if where else "ZF801_*"
        inside = f" {'.'.join(where[1:])}" if len(where) > 1 else ""
        problems.append(f"{variable}{inside}: {error.get('msg')} [rule {error.get('type')}]")
    return "settings: " + "; ".join(problems)
