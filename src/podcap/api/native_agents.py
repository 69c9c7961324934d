"""Agents (nodes) and the join tokens that admit new ones."""

from __future__ import annotations

from fastapi import APIRouter, Request, Response
from pydantic import BaseModel, ConfigDict

from podcap import limits
from podcap.api import render
from podcap.api.deps import Caller, Service
from podcap.api.plain import Route
from podcap.errors import FailedPrecondition
from podcap.ids import agent_id

router = APIRouter(prefix="/api", tags=["agents"], route_class=Route)


@router.get("/agents")
def agents(svc: Service, caller: Caller) -> dict:
    caller()  # any signed-in user
    return {"agents": [render.native_agent(a) for a in svc.agent_infos()]}


@router.delete("/agents/{aid}", status_code=204)
def revoke(aid: str, svc: Service, caller: Caller) -> Response:
    """The agent's certificate stops working at once, on open streams too."""
    who = caller()
    who.require_admin()
    svc.agents.revoke(agent_id(aid))
    svc.audit.record("agent.revoke", username=who.username, source=who.source,
                     detail=f"agent {aid}")
    return Response(status_code=204)


class NewToken(BaseModel):
    model_config = ConfigDict(extra="forbid")
    ttl_s: int = limits.JOIN_TOKEN_TTL_S_DEFAULT
    uses: int = limits.JOIN_TOKEN_USES_DEFAULT


@router.post("/agent-tokens", status_code=201)
def create_token(body: NewToken, request: Request, caller: Caller, svc: Service) -> dict:
    who = caller()
    who.require_admin()
    tokens = request.app.state.join_tokens
    if tokens is None:
        raise FailedPrecondition("this server accepts no agents: start `podcap controller`, "
                                 "or `podcap serve --agent-listen HOST:PORT`")
    issued = tokens.create(who.username, body.ttl_s, body.uses)
    svc.audit.record("agent.token", username=who.username, source=who.source,
                     detail=f"join token for {issued.uses} agent(s), valid {body.ttl_s} s")
    return {"token": issued.token, "expires": issued.expires, "uses": issued.uses}
