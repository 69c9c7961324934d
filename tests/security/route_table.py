"""The app's own route table, flattened: every (method, path, endpoint) a request can reach.

Tests built on it (the async audit, the role matrix) cover a new route the day it is added.
FastAPI keeps included routers as their own route objects; both shapes are read here.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from fastapi import FastAPI
from fastapi.routing import APIRoute


@dataclass(frozen=True)
class Route:
    method: str
    path: str
    endpoint: Callable[..., Any]

    @property
    def name(self) -> str:
        return f"{self.endpoint.__module__}.{self.endpoint.__name__}"


def api_routes(app: FastAPI) -> list[Route]:
    found: list[Route] = []
    for route in app.routes:
        contexts = route.effective_route_contexts() if hasattr(  # type: ignore[attr-defined]
            route, "effective_route_contexts") else [route]
        for ctx in contexts:
            if isinstance(ctx, APIRoute) or hasattr(ctx, "endpoint") and hasattr(ctx, "methods"):
                for method in sorted(ctx.methods or ()):
                    if method != "HEAD":
                        found.append(Route(method, ctx.path, ctx.endpoint))
    return sorted(found, key=lambda r: (r.path, r.method))
