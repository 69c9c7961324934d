"""Log set-up: ``--log-format text`` (the default, for people) or ``json`` (one object a line,
for log shippers).

Capture events carry the same fields in both formats, passed as ``extra=capture_fields(...)``:
``event``, ``capture_id``, ``workload``, ``node``, ``user`` (null when no user acted: a capture
that ended by itself, as the agent sees it). Text shows only the message, as before; JSON shows
every field, so a shipper can filter on ``capture_id`` without parsing sentences.
"""

from __future__ import annotations

import json
import logging
import sys
import time
from typing import Any

FORMATS = ("text", "json")
TEXT_FORMAT = "%(asctime)s %(levelname)s %(name)s: %(message)s"
# Attributes every LogRecord has; anything else on a record came from ``extra=``.
_STANDARD = frozenset(logging.LogRecord("", 0, "", 0, "", (), None).__dict__) | {
    "message", "asctime", "taskName", "color_message"}  # color_message: uvicorn's ANSI copy


def capture_fields(event: str, capture_id: str, workload: str, node: str,
                   user: str | None = None, **more: Any) -> dict[str, Any]:
    """The ``extra=`` of a capture event: always these five keys, then any ``more``."""
    return {"event": event, "capture_id": capture_id, "workload": workload, "node": node,
            "user": user, **more}


class JsonFormatter(logging.Formatter):
    """One JSON object per record, on one line (newlines in messages and tracebacks are
    escaped by the encoder), with UTC time in RFC 3339 and every ``extra=`` field."""

    def format(self, record: logging.LogRecord) -> str:
        out: dict[str, Any] = {
            "time": _rfc3339(record.created),
            "level": record.levelname.lower(),
            "logger": record.name,
            "message": record.getMessage(),
        }
        for key, value in record.__dict__.items():
            if key not in _STANDARD and not key.startswith("_"):
                out.setdefault(key, value)  # an extra never hides time, level, logger, message
        if record.exc_info:
            out["exception"] = self.formatException(record.exc_info)
        elif record.exc_text:
            out["exception"] = record.exc_text
        if record.stack_info:
            out["stack"] = self.formatStack(record.stack_info)
        return json.dumps(out, ensure_ascii=True, default=str)


def setup(level: str, fmt: str = "text") -> None:
    """Configure the root logger once, for the whole process (uvicorn's loggers included:
    ``uvicorn_log_config`` tells uvicorn to leave them to the root in JSON mode)."""
    if fmt not in FORMATS:
        raise ValueError(f"log format must be one of {', '.join(FORMATS)}, got {fmt!r}")
    if fmt == "text":
        logging.basicConfig(level=level.upper(), format=TEXT_FORMAT)
        return
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(JsonFormatter())
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level.upper())
    for name in ("uvicorn", "uvicorn.error", "uvicorn.access"):
        logger = logging.getLogger(name)
        logger.handlers.clear()
        logger.propagate = True


def uvicorn_log_config(fmt: str) -> dict[str, Any] | None:
    """What to pass as uvicorn's ``log_config``: its own (text) set-up, or none at all in JSON
    mode, so its lines reach the root logger's JSON handler."""
    if fmt == "json":
        return None
    from uvicorn.config import LOGGING_CONFIG

    return LOGGING_CONFIG


def _rfc3339(created: float) -> str:
    whole = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(created))
    return f"{whole}.{int(created % 1 * 1000):03d}Z"
