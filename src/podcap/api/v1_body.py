"""Reading NeuVector request bodies by hand: a non-JSON body must be a 400 with code 6, not
FastAPI's 422."""

from __future__ import annotations

import json
from typing import Any

from fastapi import Request

from podcap.errors import InvalidArgument


async def json_object(request: Request) -> dict[str, Any]:
    return parse_object(await request.body())


def parse_object(raw: bytes) -> dict[str, Any]:
    """``json_object`` of a body already read (the edge buffered it: api/edge.py)."""
    try:
        body = json.loads(raw)
    except ValueError as exc:
        raise InvalidArgument(f"request body is not valid JSON: {exc}") from exc
    if not isinstance(body, dict):
        raise InvalidArgument("request body must be a JSON object")
    return body
