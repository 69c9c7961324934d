"""Dependencies shared by the routers: the service, auth, and the caller."""

from __future__ import annotations

import asyncio
import os
import threading
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from functools import partial
from typing import Annotated, TypeVar

from fastapi import Depends, Header, Request

from podcap import limits
from podcap.controller.auth import Auth
from podcap.controller.principal import Principal
from podcap.controller.service import CaptureService
from podcap.controller.start_keys import StartKeys
from podcap.controller.tickets import Tickets

# The dependencies that only read what the app holds (or a header) are ``async``: FastAPI runs a
# plain ``def`` dependency in a worker thread, a round trip through the event loop per
# dependency per request (two on a start, the service and the token: ~0.1-0.3 ms each here).
# One that reads the database (``principal``) stays a ``def``: never on the event loop.


async def service(request: Request) -> CaptureService:
    return request.app.state.service


async def auth(request: Request) -> Auth:
    return request.app.state.auth


async def tickets(request: Request) -> Tickets:
    return request.app.state.tickets


async def start_keys(request: Request) -> StartKeys:
    return request.app.state.start_keys


async def token(x_auth_token: Annotated[str | None, Header()] = None,
                authorization: Annotated[str | None, Header()] = None) -> str | None:
    if x_auth_token:
        return x_auth_token
    if authorization and authorization.lower().startswith("bearer "):
        return authorization[7:].strip()
    return None


T = TypeVar("T")
# Logins run here, never on the event loop nor in the shared threadpool: a flood of them (each
# a deliberately slow hash, or a throttled refusal that still writes) then holds at most
# LOGIN_WORKERS threads, and every other request keeps its share of the interpreter.
# Their thread also runs at a lower CPU priority (nice), so a hash in progress yields the core
# to the event loop and to other requests' threads at once.


def _lower_priority() -> None:
    try:
        os.setpriority(os.PRIO_PROCESS, threading.get_native_id(), limits.LOGIN_NICE)
    except OSError:
        pass


_LOGINS = ThreadPoolExecutor(limits.LOGIN_WORKERS, thread_name_prefix="podcap-login",
                             initializer=_lower_priority)


async def in_login_pool(fn: Callable[..., T], *args: object) -> T:
    return await asyncio.get_running_loop().run_in_executor(_LOGINS, partial(fn, *args))


def source_address(request: Request) -> str:
    """The client's address: the TCP peer, or, when the peer is one of ``--trusted-proxies``,
    the client that proxy names in X-Forwarded-For (uvicorn rewrites ``request.client`` then).
    Nobody else's forwarded-for header is believed: anyone can send one."""
    return request.client.host if request.client else ""


def principal(request: Request, tok: Annotated[str | None, Depends(token)]) -> Principal:
    """The signed-in caller, also kept on the request: a refusal raised later is audited in
    its name (api/errors.py)."""
    who = request.app.state.auth.authenticate(tok, source_address(request))
    request.state.principal = who
    return who


async def caller(request: Request, tok: Annotated[str | None, Depends(token)]
                 ) -> Callable[[], Principal]:
    """The caller, authenticated when the route calls this (first thing), in the route's own
    worker thread by ``principal``'s rule. A ``principal`` dependency sent every ``def`` route
    to a worker thread twice, its own and the dependency's, each a round trip through the
    event loop, which under load waits behind everything the loop has queued: one less made
    every API read 20-35 % faster in bench figure 10 (~0.2-0.4 ms of a start when idle)."""
    return partial(principal, request, tok)


Service = Annotated[CaptureService, Depends(service)]
Caller = Annotated[Callable[[], Principal], Depends(caller)]  # who = caller(), in the route
AuthDep = Annotated[Auth, Depends(auth)]
Token = Annotated[str | None, Depends(token)]
TicketsDep = Annotated[Tickets, Depends(tickets)]
StartKeysDep = Annotated[StartKeys, Depends(start_keys)]
