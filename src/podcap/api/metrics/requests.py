"""Request series (``podcap_http_*``): counted as answers pass, by route template."""

from __future__ import annotations

import time

from starlette.routing import Mount
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from podcap.api.metrics.registry import Metrics

UNMATCHED = "(unmatched)"  # refused at the edge, or no such route



def route_template(scope: Scope) -> str:
    """The template of the route that answered (``/api/captures/{cid}``); the UI's static
    files count as one, and a request no route took as ``(unmatched)``."""
    route = scope.get("route")
    path = getattr(route, "path", None)
    if isinstance(route, Mount):
        return f"{path}/{{path}}"
    if isinstance(path, str):
        return path or "/"
    if scope.get("endpoint") is not None:  # a Mount (the UI's files): FastAPI sets no route
        return f"{scope.get('root_path', '')}/{{path}}"
    return UNMATCHED


class RequestMetrics:
    """Pure ASGI, outermost: sees every answer, the edge's refusals included, and never buffers
    one. The router sets ``scope["route"]`` on the scope it was handed, which is this one."""

    def __init__(self, app: ASGIApp, metrics: Metrics) -> None:
        self.app = app
        self.metrics = metrics

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        began = time.perf_counter()
        status, took = 500, None

        async def timed(message: Message) -> None:
            nonlocal status, took
            if message["type"] == "http.response.start":
                status, took = message["status"], time.perf_counter() - began
            await send(message)

        try:
            await self.app(scope, receive, timed)
        finally:
            self.metrics.observe(scope.get("method", ""), route_template(scope), status,
                                 took if took is not None else time.perf_counter() - began)

