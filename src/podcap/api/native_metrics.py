"""``GET /metrics``: Prometheus text format, for the metrics token or an admin (see
api/metrics/ for what is in it and docs/OPERATIONS.md for who may read it)."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Header, Request, Response

from podcap.api.deps import Token, source_address
from podcap.api.metrics.registry import CONTENT_TYPE
from podcap.api.plain import Route

router = APIRouter(tags=["metrics"], route_class=Route)


@router.get("/metrics", include_in_schema=False)
def metrics(request: Request, token: Token,
            authorization: Annotated[str | None, Header()] = None) -> Response:
    """A matching metrics token, else a session token of an admin (401 / 403 otherwise)."""
    state = request.app.state
    if not state.metrics_access.token_matches(authorization):
        state.auth.authenticate(token, source_address(request)).require_admin()
    return Response(state.metrics.exposition(), media_type=CONTENT_TYPE)
