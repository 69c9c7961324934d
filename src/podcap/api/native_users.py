"""Users: add, list, change, remove, unlock (admins); a password change (admins, or the user
with its current password). Any change to a user ends every token it holds."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Response
from pydantic import BaseModel, ConfigDict, Field

from podcap import limits
from podcap.api.deps import AuthDep, Caller
from podcap.api.plain import Route
from podcap.controller.users import UserInfo
from podcap.errors import NotFound, PermissionDenied

router = APIRouter(prefix="/api/users", tags=["users"], route_class=Route)

Name = Field(min_length=1, max_length=64)
Password = Field(min_length=1, max_length=limits.PASSWORD_MAX_CHARS)


class NewUser(BaseModel):
    model_config = ConfigDict(extra="forbid")
    username: str = Name
    password: str = Password
    role: str = "reader"
    namespaces: list[str] = Field(default_factory=list, max_length=100)  # empty: all
    download: bool = False


class UserChange(BaseModel):
    model_config = ConfigDict(extra="forbid")
    role: str | None = None
    namespaces: list[str] | None = Field(default=None, max_length=100)
    download: bool | None = None


class PasswordChange(BaseModel):
    model_config = ConfigDict(extra="forbid")
    password: str = Password
    current_password: str | None = Field(default=None, max_length=limits.PASSWORD_MAX_CHARS)


def render(user: UserInfo) -> dict[str, Any]:
    return {"username": user.username, "role": user.role,
            "namespaces": list(user.namespaces), "download": user.download,
            "created": user.created, "password_changed": user.password_changed,
            "locked": user.locked, "failed_logins": user.failures}


@router.get("")
def list_users(auth: AuthDep, caller: Caller) -> dict:
    who = caller()
    who.require_admin()
    return {"users": [render(u) for u in auth.users()]}


@router.post("", status_code=201)
def add_user(body: NewUser, auth: AuthDep, caller: Caller) -> dict:
    who = caller()
    who.require_admin()
    return {"user": render(auth.add_user(body.username, body.password, body.role,
                                         tuple(body.namespaces), body.download, by=who))}


@router.get("/{name}")
def get_user(name: str, auth: AuthDep, caller: Caller) -> dict:
    who = caller()
    if who.role != "admin" and who.username != name:
        raise NotFound(f"user {name} not found")
    return {"user": render(auth.user(name))}


@router.patch("/{name}")
def change_user(name: str, body: UserChange, auth: AuthDep, caller: Caller) -> dict:
    who = caller()
    who.require_admin()
    spaces = None if body.namespaces is None else tuple(body.namespaces)
    return {"user": render(auth.update_user(name, role=body.role, namespaces=spaces,
                                            download=body.download, by=who))}


@router.delete("/{name}", status_code=204)
def remove_user(name: str, auth: AuthDep, caller: Caller) -> Response:
    who = caller()
    who.require_admin()
    auth.remove_user(name, by=who)
    return Response(status_code=204)


@router.post("/{name}/password", status_code=204)
def change_password(name: str, body: PasswordChange, auth: AuthDep, caller: Caller) -> Response:
    """Your own password needs the current one; an admin sets anyone else's without it."""
    who = caller()
    if who.username == name:
        if body.current_password is None or not auth.check_password(name,
                                                                     body.current_password):
            raise PermissionDenied("current_password is missing or wrong")
    elif who.role != "admin":
        raise NotFound(f"user {name} not found")
    auth.set_password(name, body.password, by=who)
    return Response(status_code=204)


@router.post("/{name}/unlock", status_code=204)
def unlock(name: str, auth: AuthDep, caller: Caller) -> Response:
    who = caller()
    who.require_admin()
    auth.unlock(name, by=who)
    return Response(status_code=204)
