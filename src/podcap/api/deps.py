"""Dependencies shared by the routers: the service, auth, and the caller."""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends, Header, Request

from podcap.controller.auth import Auth, Principal
from podcap.controller.service import CaptureService
from podcap.controller.tickets import Tickets


def service(request: Request) -> CaptureService:
    return request.app.state.service


def auth(request: Request) -> Auth:
    return request.app.state.auth


def tickets(request: Request) -> Tickets:
    return request.app.state.tickets


def token(x_auth_token: Annotated[str | None, Header()] = None,
          authorization: Annotated[str | None, Header()] = None) -> str | None:
    if x_auth_token:
        return x_auth_token
    if authorization and authorization.lower().startswith("bearer "):
        return authorization[7:].strip()
    return None


def principal(request: Request, tok: Annotated[str | None, Depends(token)]) -> Principal:
    return request.app.state.auth.authenticate(tok)


Service = Annotated[CaptureService, Depends(service)]
AuthDep = Annotated[Auth, Depends(auth)]
Token = Annotated[str | None, Depends(token)]
Caller = Annotated[Principal, Depends(principal)]
TicketsDep = Annotated[Tickets, Depends(tickets)]
