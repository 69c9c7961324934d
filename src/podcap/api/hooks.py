"""Webhooks that trigger recorders: Alertmanager's (``POST /api/hooks/alertmanager``).

Alertmanager authenticates with the bearer token it is configured with
(``http_config.authorization``), podcap's ``--alertmanager-token``; a wrong or missing one is
401, audited (rate-limited, as any try that proves nobody), and freezes nothing.
"""

from __future__ import annotations

import hmac
from typing import Annotated, Any

from fastapi import APIRouter, Body, Header, Request

from podcap.api.deps import source_address
from podcap.api.native_recorders import Recorders
from podcap.api.plain import Route
from podcap.controller import alertmanager
from podcap.errors import NotFound, Unauthenticated

router = APIRouter(prefix="/api/hooks", tags=["recorders"], route_class=Route)


@router.post("/alertmanager")
def alertmanager_hook(request: Request, recorders: Recorders,
                      body: Annotated[Any, Body()] = None,
                      authorization: Annotated[str | None, Header()] = None) -> dict:
    expected = getattr(request.app.state, "alertmanager_token", None)
    if not expected:  # a 404, as for any route that is not there: nothing the caller did wrong
        raise NotFound("the Alertmanager webhook is off: start podcap with "
                          "--alertmanager-token (PODCAP_ALERTMANAGER_TOKEN)")
    given = authorization[7:].strip() if authorization and \
        authorization.lower().startswith("bearer ") else ""
    source = source_address(request)
    if not hmac.compare_digest(given.encode(), expected.encode()):
        recorders.service.audit.unauthenticated_failure(
            "hook.refused", "(alertmanager)", source,
            "Alertmanager webhook: " + ("wrong bearer token" if given else "no bearer token"))
        raise Unauthenticated("the webhook needs Authorization: Bearer <the token podcap was "
                              "started with>")
    alerts = alertmanager.firing(body)
    outcomes = recorders.alert([a.labels for a in alerts], [a.key for a in alerts], source)
    return {"alerts": len(alerts), "outcomes": outcomes}
