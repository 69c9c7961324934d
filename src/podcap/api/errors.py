"""The edge where podcap errors become HTTP answers with NeuVector's codes and body shape
``{"code", "error", "message"}`` — one table, used by both API surfaces."""

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
from podcap.api.edge import security_headers

log = logging.getLogger("podcap.api")

# NeuVector error codes that clients rely on.
CODE_NOT_FOUND = 1
CODE_UNAUTHORIZED = 3
CODE_INVALID_REQUEST = 6
CODE_OBJECT_NOT_FOUND = 7
CODE_NOT_ENOUGH_FILTER = 12
CODE_AGENT_ERROR = 21
CODE_CLUSTER_RPC_ERROR = 24

# Most specific class first: NotEnoughFilter is an InvalidArgument.
TABLE: list[tuple[type[errors.PodcapError], int, int, str]] = [
    (errors.NotEnoughFilter, 400, CODE_NOT_ENOUGH_FILTER, "Not enough filter"),
    (errors.InvalidArgument, 400, CODE_INVALID_REQUEST, "Request error"),
    (errors.AlreadyExists, 409, CODE_INVALID_REQUEST, "Object exists"),
    (errors.FailedPrecondition, 400, CODE_INVALID_REQUEST, "Request error"),
    (errors.NotFound, 404, CODE_OBJECT_NOT_FOUND, "Object not found"),
    (errors.Unauthenticated, 401, CODE_UNAUTHORIZED, "Authentication failed"),
    (errors.PermissionDenied, 403, CODE_UNAUTHORIZED, "Access denied"),
    (errors.ResourceExhausted, 429, CODE_UNAUTHORIZED, "Too many requests"),
    (errors.Unavailable, 503, CODE_CLUSTER_RPC_ERROR, "Cluster RPC error"),
    (errors.CaptureFailed, 500, CODE_AGENT_ERROR, "Agent error"),
]


def error_response(status: int, code: int, short: str, message: str) -> JSONResponse:
    return JSONResponse({"code": code, "error": short, "message": message}, status_code=status)


def from_podcap(exc: errors.PodcapError) -> JSONResponse:
    for cls, status, code, short in TABLE:
        if isinstance(exc, cls):
            answer = error_response(status, code, short, exc.message)
            if isinstance(exc, errors.ResourceExhausted) and exc.retry_after is not None:
                answer.headers["Retry-After"] = str(max(1, math.ceil(exc.retry_after)))
            return answer
    return error_response(500, CODE_AGENT_ERROR, "Internal error", exc.message)


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
        return from_podcap(exc)

    @app.exception_handler(RequestValidationError)
    async def _validation(_: Request, exc: RequestValidationError) -> JSONResponse:
        parts = []
        for err in exc.errors():
            where = ".".join(str(x) for x in err.get("loc", ()) if x != "body")
            parts.append(f"{where}: {err.get('msg')}" if where else str(err.get("msg")))
        return error_response(400, CODE_INVALID_REQUEST, "Request error",
                              "; ".join(parts) or "invalid request")

    @app.exception_handler(HTTPException)
    async def _http(_: Request, exc: HTTPException) -> JSONResponse:
        if exc.status_code == 404:
            return error_response(404, CODE_NOT_FOUND, "URL not found", "no such route")
        if exc.status_code == 405:
            return error_response(405, CODE_NOT_FOUND, "Method not allowed", str(exc.detail))
        return error_response(exc.status_code, CODE_INVALID_REQUEST, "Request error",
                              str(exc.detail))

    @app.exception_handler(Exception)
    async def _unexpected(request: Request, exc: Exception) -> JSONResponse:
        """Never the exception's text (it may name paths, SQL, hosts): an id to find it in
        the log. Starlette answers this one outside the edge middleware, hence the headers."""
        incident = secrets.token_hex(8)
        log.error("internal error %s on %s %s", incident, request.method, request.url.path,
                  exc_info=exc)
        answer = error_response(500, CODE_AGENT_ERROR, "Internal error",
                                f"internal error {incident}; the server's log has the details")
        for name, value in security_headers(request.url.path, request.url.scheme):
            answer.headers[name.decode()] = value.decode()
        return answer
