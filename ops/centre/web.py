"""The command centre's web application (Starlette): a static page and the figures behind
it, as JSON and as server-sent events.

Every figure is behind a viewer token (:mod:`ops.centre.tokens`): a request without one
gets a 401 and nothing else. The national view is the SPC's (its command system, the
Supreme People's Court); a court's drill-down is that court's alone. Every view, granted
or refused, is an audit record (operation ``command-centre.view``), like any other read
on the bus. The page itself holds no figures: it is code that asks for them with the
token it was given.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator, Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Protocol

from prometheus_client import CollectorRegistry, Counter, generate_latest
from prometheus_client.exposition import CONTENT_TYPE_LATEST
from starlette.applications import Starlette
from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import FileResponse, JSONResponse, Response, StreamingResponse
from starlette.routing import Mount, Route
from starlette.staticfiles import StaticFiles

from ops.centre.inputs import BadInput, bearer_token, checked_court, checked_query
from ops.centre.tokens import TokenRefused, Viewer, verify_token
from sign.trust import TrustStore
from sign.verify_stage import AuditSink

__all__ = ["STATIC_DIR", "FigureSource", "centre_app"]

STATIC_DIR = Path(__file__).parent / "static"
_OPERATION = "command-centre.view"
_PAGE_PARAMS = ("lang", "court")
_KEEP_ALIVE_S = 15.0
_TICK_S = 0.5
_NO_STORE = {"Cache-Control": "no-store", "X-Content-Type-Options": "nosniff"}
# The page runs its own scripts only, is framed by no one and names no referrer (its
# address may still carry the token for a moment, before the page takes it out).
_PAGE_HEADERS = {
    **_NO_STORE,
    "Content-Security-Policy": "default-src 'self'; img-src 'self' data:; "
    "style-src 'self' 'unsafe-inline'; frame-ancestors 'none'; base-uri 'none'",
    "Referrer-Policy": "no-referrer",
}


class FigureSource(Protocol):
    version: int

    def view(self, court: str | None, now: datetime | None = None) -> dict[str, Any]: ...


class _Views:
    """The routes' shared parts: who is asking, may they see it, and the audit record."""

    def __init__(self, source: FigureSource, trust: TrustStore, audit: AuditSink,
                 centre_agency: str) -> None:  # fmt: skip
        self.source = source
        self.trust = trust
        self.audit = audit
        self.centre_agency = centre_agency
        self.registry = CollectorRegistry()
        self.views = Counter("zf801_centre_views", "Views served, by view and result",
                             ["view", "result"], registry=self.registry)  # fmt: skip

    async def _audit(self, request: Request, viewer: Viewer | None, target: str,
                     result: str, detail: str | None) -> None:  # fmt: skip
        client = request.client.host if request.client else "unknown"
        self.views.labels("national" if target == "national" else "court", result).inc()
        await run_in_threadpool(
            self.audit.record,
            user=viewer.code if viewer else "anonymous",
            role=str(viewer.agency.role) if viewer else "none",
            agency_code=viewer.code if viewer else self.centre_agency,
            operation=_OPERATION, target=target, result=result,
            detail=f"client {client}" + (f": {detail}" if detail else ""),
        )  # fmt: skip

    async def viewer(self, request: Request, target: str) -> Viewer:
        """The verified viewer of ``request``, or :class:`BadInput` (audited as DENIED)."""
        try:
            token = bearer_token(request.headers)
            return verify_token(token, self.trust, datetime.now(UTC))
        except TokenRefused as exc:
            await self._audit(request, None, target, "DENIED", str(exc))
            raise BadInput("authorization", "token", str(exc), 401) from exc
        except BadInput as exc:
            await self._audit(request, None, target, "DENIED", str(exc))
            raise

    async def granted(self, request: Request, court: str | None) -> Viewer:
        target = "national" if court is None else f"court/{court}"
        viewer = await self.viewer(request, target)
        allowed = viewer.sees_national if court is None else viewer.code == court
        if not allowed:
            rule = "national-view" if court is None else "own-court"
            why = (
                f"agency {viewer.code} may not see the national view (the SPC's)"
                if court is None
                else f"agency {viewer.code} may not see court {court}'s drill-down: "
                "a court sees only its own"
            )
            await self._audit(request, viewer, target, "DENIED", why)
            raise BadInput("authorization", rule, why, 403)
        await self._audit(request, viewer, target, "SUCCESS", None)
        return viewer


def _error(exc: BadInput) -> JSONResponse:
    return JSONResponse(exc.document(), status_code=exc.status, headers=_NO_STORE)


def _court_param(request: Request) -> str | None:
    raw = request.path_params.get("court")
    return None if raw is None else checked_court(str(raw))


def centre_app(source: FigureSource, trust: TrustStore, audit: AuditSink,
               centre_agency: str) -> Starlette:  # fmt: skip
    """The application; ``centre_agency`` is the centre's own agency (it signs the audit
    records, and stands for an unauthenticated caller in them)."""
    views = _Views(source, trust, audit, centre_agency)

    async def page(request: Request) -> Response:
        try:
            checked_query(request.query_params, _PAGE_PARAMS)
        except BadInput as exc:
            return _error(exc)
        return FileResponse(STATIC_DIR / "index.html", headers=_PAGE_HEADERS)

    async def whoami(request: Request) -> Response:
        try:
            checked_query(request.query_params, ())
            viewer = await views.viewer(request, "whoami")
        except BadInput as exc:
            return _error(exc)
        return JSONResponse({
            "agency": viewer.code, "name": viewer.agency.name, "name_en": viewer.agency.name_en,
            "role": str(viewer.agency.role), "national": viewer.sees_national,
            "court": viewer.code if str(viewer.agency.role) == "court" else None,
            "expires": viewer.expires.isoformat(),
        }, headers=_NO_STORE)  # fmt: skip

    async def figures(request: Request) -> Response:
        try:
            checked_query(request.query_params, ())
            court = _court_param(request)
            await views.granted(request, court)
        except BadInput as exc:
            return _error(exc)
        return JSONResponse(source.view(court), headers=_NO_STORE)

    async def stream(request: Request) -> Response:
        try:
            checked_query(request.query_params, ())
            court = _court_param(request)
            viewer = await views.granted(request, court)
        except BadInput as exc:
            return _error(exc)
        return StreamingResponse(
            _events(request, lambda: source.view(court), lambda: source.version, viewer),
            media_type="text/event-stream",
            headers={**_NO_STORE, "X-Accel-Buffering": "no"},
        )

    async def metrics(request: Request) -> Response:
        return Response(generate_latest(views.registry), media_type=CONTENT_TYPE_LATEST)

    return Starlette(routes=[
        Route("/", page),
        Route("/api/whoami", whoami),
        Route("/api/national", figures),
        Route("/api/national/stream", stream),
        Route("/api/courts/{court}", figures),
        Route("/api/courts/{court}/stream", stream),
        Route("/metrics", metrics),
        Mount("/static", StaticFiles(directory=STATIC_DIR), name="static"),
    ])  # fmt: skip


async def _events(
    request: Request,
    body: Callable[[], dict[str, Any]],
    version: Callable[[], int],
    viewer: Viewer,
) -> AsyncIterator[str]:
    """The figures each time they change (and at once), a comment now and then to keep
    the connection open; the stream ends when the viewer's token expires."""
    shown, quiet = -1, 0.0
    while not await request.is_disconnected():
        if datetime.now(UTC) >= viewer.expires:
            yield 'event: expired\ndata: {"error": "authorization: token expired"}\n\n'
            return
        if version() != shown:
            shown = version()
            yield f"event: figures\ndata: {json.dumps(body(), ensure_ascii=False)}\n\n"
            quiet = 0.0
        elif quiet >= _KEEP_ALIVE_S:
            yield ": keep-alive\n\n"
            quiet = 0.0
        await asyncio.sleep(_TICK_S)
        quiet += _TICK_S
