"""Native login, logout, identity and limits (for the UI and CLI)."""

from __future__ import annotations

from fastapi import APIRouter, Request, Response
from pydantic import BaseModel, Field

from podcap import limits
from podcap.api.deps import AuthDep, Caller, Service, Token, in_login_pool, source_address
from podcap.api.plain import Route
from podcap.controller.retention import Policy
from podcap.model import spec_limits

router = APIRouter(prefix="/api", tags=["session"], route_class=Route)


class Login(BaseModel):
    username: str = Field(max_length=256)
    password: str = Field(max_length=limits.PASSWORD_MAX_CHARS)


@router.post("/login")
async def login(body: Login, auth: AuthDep, request: Request) -> dict:
    token, who = await in_login_pool(auth.login, body.username, body.password,
                                     source_address(request))
    return {"token": token, "username": who.username, "role": who.role,
            "download": who.may_download, "namespaces": sorted(who.namespaces)}


@router.post("/logout", status_code=204)
def logout(auth: AuthDep, token: Token, request: Request) -> Response:
    who = auth.authenticate(token, source_address(request))
    auth.logout(token or "", who)
    return Response(status_code=204)


@router.get("/whoami")
def whoami(caller: Caller) -> dict:
    who = caller()
    return {"username": who.username, "role": who.role,
            "namespaces": sorted(who.namespaces), "download": who.may_download}


@router.get("/limits")
def get_limits(svc: Service, request: Request) -> dict:
    """Capture limits (each spec field's default and range, and ``spec_fields``), the quotas
    (per user, per namespace, per node; 0: no limit), retention days (0: kept until deleted),
    the reclaim policy (controller/retention.py), and each node's own disk budget and reclaim
    policy (null until its agent has connected)."""
    policy = getattr(request.app.state, "retention", None) or Policy()
    nodes = [{"agent_id": i.id, "node": i.node, "disk_budget": i.disk_budget or None,
              "reclaim": i.reclaim or None} for i in svc.agent_infos()]
    return {**spec_limits(), **limits.as_dict(), **svc.quotas.as_dict(), **policy.as_dict(),
            "nodes": nodes}
