"""Assemble the FastAPI application: routers, error translation, the static UI. Nothing else."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable, Sequence
from contextlib import asynccontextmanager
from pathlib import Path

from fastapi import FastAPI
from fastapi.staticfiles import StaticFiles

from podcap import __version__
from podcap.api import (
    docs,
    errors,
    native_agents,
    native_audit,
    native_captures,
    native_session,
    native_users,
    native_workloads,
    v1_auth,
    v1_sniffer,
    v1_workload,
)
from podcap.api.edge import Edge
from podcap.controller.auth import Auth
from podcap.controller.service import CaptureService
from podcap.controller.tickets import Tickets

STATIC = Path(__file__).resolve().parent.parent / "web" / "static"


def create_app(service: CaptureService, auth: Auth,
               on_shutdown: Callable[[], None] | None = None, *,
               allowed_hosts: Sequence[str] = ("*",), api_docs: bool = False) -> FastAPI:
    @asynccontextmanager
    async def lifespan(_: FastAPI) -> AsyncIterator[None]:
        yield
        if on_shutdown is not None:
            on_shutdown()

    app = FastAPI(title="podcap", version=__version__, lifespan=lifespan, docs_url=None,
                  redoc_url=None,
                  description="Container packet capture. /v1 is NeuVector's REST API; /api is "
                              "podcap's native API.")
    app.state.service = service
    app.state.auth = auth
    app.state.tickets = Tickets(lambda token_hash: auth.token_alive(token_hash))
    errors.install(app)
    app.state.join_tokens = None  # set by the wiring when agents may join (server.py)
    for module in (v1_auth, v1_workload, v1_sniffer, native_session, native_workloads,
                   native_captures, native_agents, native_users, native_audit):
        app.include_router(module.router)

    app.add_middleware(Edge, allowed_hosts=allowed_hosts)
    if api_docs:
        docs.install(app)

    @app.get("/healthz", include_in_schema=False)
    def healthz() -> dict:
        return {"status": "ok"}

    if STATIC.is_dir():
        app.mount("/", StaticFiles(directory=STATIC, html=True), name="ui")
    return app
