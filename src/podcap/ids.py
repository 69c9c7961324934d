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
# What a user may type for a workload (an id, a short id or a name), which the controller
# resolves (controller/resolver.py).
_WORKLOAD_ID = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.:-]{0,252}")
# What an agent and a runtime adapter take: the full id. Docker's, containerd's and CRI-O's
# container and pod sandbox ids are all 64 lowercase hex characters.
_FULL_WORKLOAD_ID = re.compile(r"[0-9a-f]{64}")


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


def full_workload_id(value: str) -> WorkloadId:
    """A workload id as an agent takes it: the full id, never a name or a short id. The
    controller resolves what users type by one rule (controller/resolver.py) and sends the id
    it found; a runtime asked for anything less would resolve it by a rule of its own (Docker
    accepts names and any unique prefix, containerd any unique prefix)."""
    if not isinstance(value, str) or not _FULL_WORKLOAD_ID.fullmatch(value):
        raise InvalidArgument(
            f"invalid workload id {_preview(value)!r}: an agent takes a full workload id (64 "
            "lowercase hex characters); names and short ids are resolved by the controller"
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
