"""The command centre as a process part: the topic source, the web application and the
uvicorn server that serves it, started and stopped together (by ``zf801 command-centre``,
by the demo while it plays, and by tests)."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager, suppress
from dataclasses import dataclass, field

import uvicorn
from kafka.errors import KafkaError

from consumers.runtime import Runtime
from ops.centre.source import TopicSource
from ops.centre.tokens import MAX_LIFETIME_S, issue_token
from ops.centre.web import centre_app
from ops.errors import OpsError
from schemas.errors import BusError
from schemas.settings import Settings
from sign.keystore import KeyStore

__all__ = ["CommandCentre", "page_address", "serving"]

_START_TIMEOUT_S = 30.0


def page_address(base: str, keystore: KeyStore, agency: str, lifetime_s: int,
                 court: str | None = None) -> str:  # fmt: skip
    """The page's address for ``agency``, with a fresh token in the fragment (a browser
    never sends the fragment to a server)."""
    query = f"?court={court}" if court else ""
    return f"{base}/{query}#token={issue_token(keystore, agency, lifetime_s)}"


@dataclass
class CommandCentre:
    """Reads the topics as ``reader`` and serves the page on ``host``:``port`` (0: any
    free port; :attr:`port` is the one bound once started)."""

    settings: Settings
    host: str = "127.0.0.1"
    port: int = 8801
    reader: str = "BUS-AUDIT"
    refresh_s: float = 2.0
    _runtime: Runtime | None = None
    _source: TopicSource | None = None
    _server: uvicorn.Server | None = None
    _thread: threading.Thread | None = field(default=None, repr=False)

    @property
    def address(self) -> str:
        return f"http://{self.host}:{self.port}"

    def _prepare(self) -> uvicorn.Server:
        self._runtime = Runtime.connect(self.reader, self.settings)
        self._source = TopicSource(self.settings, self.reader, refresh_s=self.refresh_s)
        self._source.start()
        app = centre_app(self._source, self._runtime.trust, self._runtime.audit, self.reader)
        config = uvicorn.Config(app, host=self.host, port=self.port, log_level="warning",
                                access_log=False, lifespan="off",
                                timeout_graceful_shutdown=3)  # fmt: skip
        self._server = uvicorn.Server(config)
        return self._server

    def serve(self) -> None:
        """Serve in this thread until interrupted (the console command)."""
        server = self._prepare()
        try:
            server.run()
        finally:
            self._close()

    def start(self) -> str:
        """Serve from a thread of its own; returns the address once it listens."""
        server = self._prepare()
        self._thread = threading.Thread(target=server.run, name="command-centre", daemon=True)
        self._thread.start()
        deadline = time.monotonic() + _START_TIMEOUT_S
        while not server.started:
            if not self._thread.is_alive() or time.monotonic() > deadline:
                self._close()
                raise OpsError(f"the command centre did not start on {self.host}:{self.port}")
            time.sleep(0.05)  # uvicorn says it has started only through this flag
        self.port = int(server.servers[0].sockets[0].getsockname()[1])
        return self.address

    def stop(self) -> None:
        if self._server is not None:
            self._server.should_exit = True
        if self._thread is not None:
            self._thread.join(timeout=15)
            self._thread = None
        self._close()

    def _close(self) -> None:
        if self._source is not None:
            self._source.stop()
            self._source = None
        if self._runtime is not None:
            self._runtime.audit.settle(10.0)
            self._runtime.close()
            self._runtime = None


@contextmanager
def serving(
    settings: Settings, port: int, say: Callable[[str], None], linger_s: float = 0.0
) -> Iterator[CommandCentre | None]:
    """The command centre while the block runs (the demo's), its address said with a token
    of the SPC's command system; kept open ``linger_s`` more seconds at the end (Ctrl-C
    ends that). A centre that cannot start (the port taken) is said, and the block runs."""
    centre = CommandCentre(settings, port=port)
    try:
        address = centre.start()
    except (BusError, KafkaError, OSError) as exc:
        say(f"the command centre did not start: {exc}")
        yield None
        return
    keystore = KeyStore.from_settings(settings)
    say(f"command centre: {page_address(address, keystore, 'SPC-COMMAND', MAX_LIFETIME_S)}")
    try:
        yield centre
    finally:
        if linger_s > 0:
            say(f"the command centre stays open {linger_s:.0f} s more at {address} (Ctrl-C ends)")
            with suppress(KeyboardInterrupt):
                time.sleep(linger_s)  # a person is looking at the page
        centre.stop()
