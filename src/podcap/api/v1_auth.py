"""NeuVector's login and logout."""

from __future__ import annotations

from fastapi import APIRouter, Request, Response

from podcap.api.deps import AuthDep, Token
from podcap.api.v1_body import json_object
from podcap.errors import InvalidArgument

router = APIRouter(prefix="/v1/auth", tags=["v1 (NeuVector)"])


@router.post("")
async def login(request: Request, auth: AuthDep) -> dict:
    body = await json_object(request)
    creds = body.get("password")
    if not isinstance(creds, dict) or not isinstance(creds.get("username"), str) \
            or not isinstance(creds.get("password"), str):
        raise InvalidArgument('body must be {"password": {"username": ..., "password": ...}}')
    token, who = auth.login(creds["username"], creds["password"])
    return {"token": {"token": token, "username": who.username, "role": who.role,
                      "fullname": who.username, "default_password": False,
                      "timeout": auth.idle_timeout},
            "password_days_until_expire": -1}


@router.delete("")
def logout(auth: AuthDep, token: Token) -> Response:
    auth.authenticate(token)
    auth.logout(token or "")
    return Response(status_code=200)
