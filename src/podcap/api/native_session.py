"""Native login, logout, identity and limits (for the UI and CLI)."""

from __future__ import annotations

from fastapi import APIRouter, Response
from pydantic import BaseModel

from podcap import limits
from podcap.api.deps import AuthDep, Caller, Token

router = APIRouter(prefix="/api", tags=["session"])


class Login(BaseModel):
    username: str
    password: str


@router.post("/login")
def login(body: Login, auth: AuthDep) -> dict:
    token, who = auth.login(body.username, body.password)
    return {"token": token, "username": who.username, "role": who.role}


@router.post("/logout", status_code=204)
def logout(auth: AuthDep, token: Token) -> Response:
    auth.authenticate(token)
    auth.logout(token or "")
    return Response(status_code=204)


@router.get("/whoami")
def whoami(who: Caller) -> dict:
    return {"username": who.username, "role": who.role,
            "namespaces": sorted(who.namespaces)}


@router.get("/limits")
def get_limits() -> dict:
    return limits.as_dict()
