"""Assemble the FastAPI application: routers, error translation, request metrics, the static
UI. Nothing else."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable, Sequence
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

from fastapi import FastAPI
from fastapi.responses import JSONResponse
from fastapi.staticfiles import StaticFiles
from sqlalchemy import text

from podcap import __version__
from podcap.api import (
    docs,
    errors,
    hooks,
    native_agents,
    native_audit,
    native_captures,
    native_groups,
    native_insight,
    native_metrics,
    native_netstate,
    native_recorders,
    native_session,
    native_users,
    native_workloads,
    v1_auth,
    v1_sniffer,
    v1_workload,
)
from podcap.api.edge import Edge
from podcap.api.metrics.access import MetricsAccess
from podcap.api.metrics.registry import Metrics
from podcap.api.metrics.requests import RequestMetrics
from podcap.controller.auth import Auth
from podcap.controller.service import CaptureService
from podcap.controller.start_keys import StartKeys
from podcap.controller.tickets import Tickets

STATIC = Path(__file__).resolve().parent.parent / "web" / "static"


def create_app(service: CaptureService, auth: Auth,
               on_shutdown: Callable[[], None] | None = None, *,
               on_startup: Callable[[], None] | None = None,
               allowed_hosts: Sequence[str] = ("*",), api_docs: bool = False,
               metrics_token: str | None = None) -> FastAPI:
    @asynccontextmanager
    async def lifespan(_: FastAPI) -> AsyncIterator[None]:
        if on_startup is not None:  # on the server's event loop (the data port listens there)
            on_startup()
        yield
        if on_shutdown is not None:
            on_shutdown()

    app = FastAPI(title="podcap", version=__version__, lifespan=lifespan, docs_url=None,
                  redoc_url=None,
                  description="Container packet capture. /v1 is NeuVector's REST API; /api is "
                              "podcap's native API.")
    app.state.service = service
    app.state.auth = auth
    sessions: Any = getattr(auth, "sessions", None)  # None: a test's stand-in, no database
    app.state.tickets = Tickets(sessions, getattr(auth, "session_principal", lambda *_: None))
    app.state.start_keys = StartKeys(sessions)
    errors.install(app)
    app.state.metrics = Metrics(service)
    app.state.metrics_access = MetricsAccess(metrics_token)
    app.state.join_tokens = None  # set by the wiring when agents may join (server.py)
    app.state.groups = None  # the capture groups' service, set by the wiring (server.py)
    app.state.recorders = None  # the flight recorders' service, set by the wiring
    app.state.alertmanager_token = None  # the webhook's bearer token (--alertmanager-token)
    for module in (v1_auth, v1_workload, v1_sniffer, native_session, native_workloads,
                   native_captures, native_netstate, native_agents, native_users, native_audit,
                   native_groups, native_metrics, native_insight, native_recorders, hooks):
        app.include_router(module.router)

    app.add_middleware(Edge, allowed_hosts=allowed_hosts)
    # Outermost (added last): it counts the edge's refusals too.
    app.add_middleware(RequestMetrics, metrics=app.state.metrics)
    if api_docs:
        docs.install(app)

    @app.get("/healthz", include_in_schema=False)
    def healthz() -> dict:
        return {"status": "ok"}

    @app.get("/readyz", include_in_schema=False)
    def readyz() -> JSONResponse:
        """Ready to serve: the database answers (a replica that cannot reach it is taken out
        of the load balancer's rotation and of the Service's endpoints, not restarted)."""
        try:
            with auth.sessions() as db:
                db.execute(text("SELECT 1"))
        except Exception as exc:  # noqa: BLE001 - any failure means not ready
            return JSONResponse({"status": "database unavailable",
                                 "error": type(exc).__name__}, status_code=503)
        return JSONResponse({"status": "ok"})

    if STATIC.is_dir():
        app.mount("/", StaticFiles(directory=STATIC, html=True), name="ui")
    return app
