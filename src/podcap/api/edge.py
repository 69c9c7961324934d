"""The HTTP edge: what every request passes before a router sees it, and what every answer gets.

- **Host**: the Host header must name this server (``--allowed-hosts``), so a DNS name rebound
  to a loopback listener reaches nothing.
- **Head**: request line and headers at most ``HEADER_MAX_BYTES`` (431; uvicorn bounds a head
  that arrives in pieces, this one a head that arrives at once).
- **Body**: read here with a running count and cut at ``BODY_MAX_BYTES`` (413) whatever
  Content-Length claims, and whole within ``BODY_TIMEOUT_S`` (408); it must be UTF-8, JSON
  nested at most ``JSON_MAX_DEPTH`` and free of lone surrogate escapes (400). Past this point a
  body can neither exhaust memory nor make a parser recurse or an encoder fail.
- **Answers**: security headers on every one (CSP, frame-ancestors, nosniff, HSTS on HTTPS) and
  ``Cache-Control: no-store`` on API answers, which carry tokens and packet metadata.
"""

from __future__ import annotations

import asyncio
import json
import re
from collections.abc import Iterable
from typing import Any

from starlette.concurrency import run_in_threadpool
from starlette.datastructures import Headers
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from podcap import errors, limits

CSP = ("default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
       "connect-src 'self'; object-src 'none'; base-uri 'none'; form-action 'self'; "
       "frame-ancestors 'none'")
# Swagger UI (only when --api-docs) sets inline styles; its scripts still come from 'self'.
DOCS_CSP = CSP.replace("style-src 'self'", "style-src 'self' 'unsafe-inline'")
_ALWAYS = [
    (b"x-content-type-options", b"nosniff"),
    (b"x-frame-options", b"DENY"),
    (b"referrer-policy", b"no-referrer"),
    (b"cross-origin-opener-policy", b"same-origin"),
    (b"cross-origin-resource-policy", b"same-origin"),
]
_HSTS = (b"strict-transport-security", b"max-age=31536000")
_NO_STORE_PREFIXES = ("/api/", "/v1/", "/api", "/v1", "/openapi.json", "/healthz",
                      "/readyz")

_STRING = re.compile(r'"[^"\\]*(?:\\.[^"\\]*)*"', re.S)
_SURROGATE_ESCAPE = re.compile(r"\\u[dD][89a-fA-F][0-9a-fA-F]{2}")
_THREAD_ABOVE = 64 * 1024  # bodies larger than this are checked off the event loop


def is_v1(path: str) -> bool:
    """A request of NeuVector's surface, whose error bodies keep NeuVector's shape exactly."""
    return path == "/v1" or path.startswith("/v1/")


def security_headers(path: str, scheme: str) -> list[tuple[bytes, bytes]]:
    """Headers every answer carries (also used by the 500 handler, which answers outside)."""
    csp = DOCS_CSP if path == "/docs" or path.startswith("/docs/") else CSP
    headers = [*_ALWAYS, (b"content-security-policy", csp.encode())]
    if scheme == "https":
        headers.append(_HSTS)
    if path.startswith(_NO_STORE_PREFIXES):
        headers.append((b"cache-control", b"no-store"))
    return headers


def body_problem(body: bytes) -> str | None:
    """Why a request body is refused before any parser sees it, or None."""
    if not body:
        return None
    try:
        text = body.decode("utf-8")
    except UnicodeDecodeError as exc:
        return f"request body is not valid UTF-8 (byte {exc.start})"
    if text.count("[") + text.count("{") > limits.JSON_MAX_DEPTH and \
            _depth(_STRING.sub("", text)) > limits.JSON_MAX_DEPTH:
        return f"request body nests deeper than {limits.JSON_MAX_DEPTH} levels"
    if _SURROGATE_ESCAPE.search(text):
        try:
            value = json.loads(text)
        except ValueError:
            return None  # not JSON: the route says so in its own words
        if _has_lone_surrogate(value):
            return "request body holds a lone UTF-16 surrogate (\\ud800-\\udfff): not text"
    return None


def _depth(text: str) -> int:
    """Deepest bracket nesting (strings already removed); stops once past the limit."""
    depth = 0
    for ch in text:
        if ch in "[{":
            depth += 1
            if depth > limits.JSON_MAX_DEPTH:
                return depth
        elif ch in "]}":
            depth -= 1
    return 0


def _has_lone_surrogate(value: Any) -> bool:
    if isinstance(value, str):
        try:
            value.encode("utf-8")
        except UnicodeEncodeError:
            return True
        return False
    if isinstance(value, dict):
        return any(_has_lone_surrogate(k) or _has_lone_surrogate(v) for k, v in value.items())
    if isinstance(value, list):
        return any(_has_lone_surrogate(v) for v in value)
    return False


def host_allowed(host_header: str, allowed: Iterable[str]) -> bool:
    """``host[:port]`` or ``[v6]:port`` against the allowed names (``*`` allows any)."""
    host = host_header.strip().lower()
    if host.startswith("["):
        host = host[1:host.find("]")] if "]" in host else ""
    elif host.count(":") == 1:
        host = host.split(":", 1)[0]
    if not host:
        return False
    return any(name == "*" or name == host for name in allowed)


class Edge:
    """Pure ASGI middleware, so nothing here buffers an answer or runs per-route code."""

    def __init__(self, app: ASGIApp, allowed_hosts: Iterable[str]) -> None:
        self.app = app
        self.allowed = [h.strip().lower().strip("[]") for h in allowed_hosts if h.strip()]

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        path, scheme = scope["path"], scope.get("scheme", "http")
        extra = security_headers(path, scheme)

        async def send_with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                names = {k.lower() for k, _ in message.get("headers", [])}
                message["headers"] = [*message.get("headers", []),
                                      *(h for h in extra if h[0] not in names)]
            await send(message)

        head = len(scope.get("raw_path") or b"") + len(scope.get("query_string", b"")) + \
            sum(len(k) + len(v) + 4 for k, v in scope["headers"])
        if head > limits.HEADER_MAX_BYTES:
            await _refuse(send_with_headers, path, 431, f"request head larger than "
                          f"{limits.HEADER_MAX_BYTES} bytes")
            return
        headers = Headers(scope=scope)
        if not host_allowed(headers.get("host", ""), self.allowed):
            await _refuse(send_with_headers, path, 400, "Host header names no allowed host of "
                          "this server (see --allowed-hosts)")
            return
        declared = headers.get("content-length", "")
        if declared.isdecimal() and int(declared) > limits.BODY_MAX_BYTES:
            await _refuse(send_with_headers, path, 413, _too_large())
            return
        chunks: list[bytes] = []
        size = 0
        deadline = asyncio.get_running_loop().time() + limits.BODY_TIMEOUT_S
        while True:
            try:  # timeout_at, not wait_for: no task made per receive
                async with asyncio.timeout_at(deadline):
                    message = await receive()
            except TimeoutError:
                await _refuse(send_with_headers, path, 408, "request body not received "
                              f"within {limits.BODY_TIMEOUT_S:g} s")
                return
            if message["type"] == "http.disconnect":
                return
            chunk = message.get("body", b"")
            size += len(chunk)
            if size > limits.BODY_MAX_BYTES:
                await _refuse(send_with_headers, path, 413, _too_large())
                return
            chunks.append(chunk)
            if not message.get("more_body", False):
                break
        body = b"".join(chunks)
        problem = await run_in_threadpool(body_problem, body) if size > _THREAD_ABOVE else \
            body_problem(body)
        if problem:
            await _refuse(send_with_headers, path, 400, problem)
            return
        replayed = False

        async def replay() -> Message:
            nonlocal replayed
            if not replayed:
                replayed = True
                return {"type": "http.request", "body": body, "more_body": False}
            return await receive()  # later: the client's disconnect, for streaming answers

        await self.app(scope, replay, send_with_headers)


def _too_large() -> str:
    return f"request body larger than {limits.BODY_MAX_BYTES} bytes"


async def _refuse(send: Send, path: str, status: int, message: str) -> None:
    """Every refusal here is the request's mistake: an InvalidArgument, NeuVector's code 6."""
    refusal: dict[str, object] = {"code": errors.CODE_INVALID_REQUEST, "error": "Request error",
                                  "message": message}
    if not is_v1(path):
        refusal["kind"] = errors.EDGES[errors.InvalidArgument].kind
    body = json.dumps(refusal).encode()
    await send({"type": "http.response.start", "status": status,
                "headers": [(b"content-type", b"application/json"),
                            (b"content-length", str(len(body)).encode()),
                            (b"connection", b"close")]})
    await send({"type": "http.response.body", "body": body})
