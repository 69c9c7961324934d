"""The edge where podcap errors become HTTP answers, by the one table in ``podcap.errors``.

Both surfaces send NeuVector's body ``{"code", "error", "message"}``. The native API (``/api``)
adds ``"kind"``, the error's class in the tree, and answers each kind with its own status
(a failed precondition is 409, not a bad request); ``/v1`` keeps NeuVector's shape and
statuses exactly (a failed precondition is 400, code 6), since NeuVector's clients rely on them.
"""

from __future__ import annotations

import logging
import math
import secrets

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.concurrency import run_in_threadpool
from starlette.exceptions import HTTPException

from podcap import errors
from podcap.api.edge import is_v1, security_headers

log = logging.getLogger("podcap.api")

# NeuVector's codes, named where handlers need one (the values live in podcap.errors).
CODE_NOT_FOUND = errors.CODE_NOT_FOUND
CODE_INVALID_REQUEST = errors.CODE_INVALID_REQUEST


def error_response(status: int, code: int, short: str, message: str,
                   kind: str | None = None) -> JSONResponse:
    """``kind`` None: NeuVector's body exactly (``/v1``)."""
    body: dict[str, object] = {"code": code, "error": short, "message": message}
    if kind is not None:
        body["kind"] = kind
    return JSONResponse(body, status_code=status)


def from_podcap(exc: errors.PodcapError, v1: bool = False) -> JSONResponse:
    e = errors.edge(exc)
    answer = error_response(e.v1_http if v1 else e.http, e.code, e.short, exc.message,
                            None if v1 else e.kind)
    if isinstance(exc, errors.ResourceExhausted) and exc.retry_after is not None:
        answer.headers["Retry-After"] = str(max(1, math.ceil(exc.retry_after)))
    return answer


def _kind_of_status(status: int) -> str:
    """The kind of an answer FastAPI or Starlette made (a route that does not exist, a wrong
    method, a body that does not validate): any other 4xx is the request's mistake."""
    cls = errors.kind_for_status(status)
    if cls is None:
        cls = errors.InvalidArgument if 400 <= status < 500 else errors.PodcapError
    return errors.EDGES[cls].kind


def audit_refusal(request: Request, exc: errors.PodcapError) -> None:
    """The one place a signed-in user's refusal is audited (issue 24: about 60 kinds of
    cross-namespace and missing-right requests left no trace), as the Kubernetes audit log
    records denied requests. Who: the name the error carries (the check that raised it knew),
    else the request's signed-in caller (api/deps.py keeps it); nobody known, no row."""
    if not isinstance(exc, errors.PermissionDenied | errors.Hidden):
        return
    who = getattr(request.state, "principal", None)
    username = exc.username or (who.username if who is not None else "")
    auth = getattr(request.app.state, "auth", None)
    if not username or auth is None:
        return
    source = request.client.host if request.client else ""  # deps.source_address's rule
    auth.audit.refused(username, source, f"{request.method} {request.url.path[:200]}",
                  exc.message)


def install(app: FastAPI) -> None:
    @app.exception_handler(errors.PodcapError)
    async def _podcap(request: Request, exc: errors.PodcapError) -> JSONResponse:
        if isinstance(exc, errors.PermissionDenied | errors.Hidden):
            await run_in_threadpool(audit_refusal, request, exc)  # a database write
        return from_podcap(exc, v1=is_v1(request.url.path))

    @app.exception_handler(RequestValidationError)
    async def _validation(request: Request, exc: RequestValidationError) -> JSONResponse:
        parts = []
        for err in exc.errors():
            where = ".".join(str(x) for x in err.get("loc", ()) if x != "body")
            parts.append(f"{where}: {err.get('msg')}" if where else str(err.get("msg")))
        return error_response(400, CODE_INVALID_REQUEST, "Request error",
                              "; ".join(parts) or "invalid request",
                              None if is_v1(request.url.path) else _kind_of_status(400))

    @app.exception_handler(HTTPException)
    async def _http(request: Request, exc: HTTPException) -> JSONResponse:
        kind = None if is_v1(request.url.path) else _kind_of_status(exc.status_code)
        if exc.status_code == 404:
            return error_response(404, CODE_NOT_FOUND, "URL not found", "no such route", kind)
        if exc.status_code == 405:
            return error_response(405, CODE_NOT_FOUND, "Method not allowed", str(exc.detail),
                                  kind)
        return error_response(exc.status_code, CODE_INVALID_REQUEST, "Request error",
                              str(exc.detail), kind)

    @app.exception_handler(Exception)
    async def _unexpected(request: Request, exc: Exception) -> JSONResponse:
        """Never the exception's text (it may name paths, SQL, hosts): an id to find it in
        the log. Starlette answers this one outside the edge middleware, hence the headers."""
        incident = secrets.token_hex(8)
        log.error("internal error %s on %s %s", incident, request.method, request.url.path,
                  exc_info=exc)
        answer = error_response(500, errors.CODE_AGENT_ERROR, "Internal error",
                                f"internal error {incident}; the server's log has the details",
                                None if is_v1(request.url.path)
                                else errors.EDGES[errors.PodcapError].kind)
        for name, value in security_headers(request.url.path, request.url.scheme):
            answer.headers[name.decode()] = value.decode()
        return answer
