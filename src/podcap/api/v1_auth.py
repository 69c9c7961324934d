"""NeuVector's login and logout."""

from __future__ import annotations

from fastapi import APIRouter, Request, Response

from podcap.api.deps import AuthDep, Token, in_login_pool, source_address
from podcap.api.plain import Route
from podcap.api.v1_body import json_object
from podcap.controller.auth import Auth
from podcap.errors import InvalidArgument

router = APIRouter(prefix="/v1/auth", tags=["v1 (NeuVector)"], route_class=Route)


@router.post("")
async def login(request: Request, auth: AuthDep) -> dict:
    body = await json_object(request)
    creds = body.get("password")
    if not isinstance(creds, dict) or not isinstance(creds.get("username"), str) \
            or not isinstance(creds.get("password"), str):
        raise InvalidArgument('body must be {"password": {"username": ..., "password": ...}}')
    # The password hash is deliberately slow: never on the event loop.
    return await in_login_pool(_login, auth, creds["username"], creds["password"],
                               source_address(request))


def _login(auth: Auth, username: str, password: str, source: str) -> dict:
    token, who = auth.login(username, password, source)
    # Passwords do not expire in podcap: -1 is NeuVector's "never". default_password is true
    # while the password the server generated on first start is still in use.
    return {"token": {"token": token, "username": who.username, "role": who.role,
                      "fullname": who.username,
                      "default_password": auth.password_is_default(username),
                      "timeout": auth.idle_timeout},
            "password_days_until_expire": -1, "password_hours_until_expire": -1}


@router.delete("")
def logout(auth: AuthDep, token: Token, request: Request) -> Response:
    who = auth.authenticate(token, source_address(request))
    auth.logout(token or "", who)
    return Response(status_code=200)
