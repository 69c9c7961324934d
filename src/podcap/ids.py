"""Identifier checks (capture, workload and agent ids): ids never reach a path or an argv
unchecked. Named `ids`, not `types`, so it never shadows the standard library's `types`
(running Python from src/podcap did)."""

import re
import secrets
from typing import NewType

from podcap.errors import InvalidArgument

CaptureId = NewType("CaptureId", str)
WorkloadId = NewType("WorkloadId", str)

_CAPTURE_ID = re.compile(r"[0-9a-f]{32}")
# Docker ids are 64 hex; CRI ids too; names may be used where a client passes one.
_WORKLOAD_ID = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.:-]{0,252}")


def new_capture_id() -> CaptureId:
    return CaptureId(secrets.token_hex(16))


def capture_id(value: str) -> CaptureId:
    if not isinstance(value, str) or not _CAPTURE_ID.fullmatch(value):
        raise InvalidArgument(
            f"invalid capture id {_preview(value)!r}: expected 32 lowercase hex characters"
        )
    return CaptureId(value)


def workload_id(value: str) -> WorkloadId:
    if not isinstance(value, str) or not _WORKLOAD_ID.fullmatch(value) or ".." in value:
        raise InvalidArgument(
            f"invalid workload id {_preview(value)!r}: expected letters, digits, '_', '.', "
            "':' or '-', at most 253 characters"
        )
    return WorkloadId(value)


def _preview(value: object) -> str:
    text = str(value)
    return text if len(text) <= 40 else text[:40] + "..."


_AGENT_ID = re.compile(r"[0-9a-f]{16}")


def agent_id(value: str) -> str:
    if not isinstance(value, str) or not _AGENT_ID.fullmatch(value):
        raise InvalidArgument(
            f"invalid agent id {_preview(value)!r}: expected 16 lowercase hex characters"
        )
    return value
