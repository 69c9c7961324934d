"""Alertmanager's webhook notification (payload version "4"), read and checked field by field:
a malformed one is refused with the field named (400), never half applied.

What podcap reads: ``status`` of each alert (only ``firing`` ones trigger), its ``labels``
(which members it names: controller/recorder_model.py), and its ``fingerprint`` with
``startsAt``: Alertmanager retries a delivery that failed, so the pair is the key that makes a
repeated one a duplicate rather than a second trigger.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from podcap import limits
from podcap.errors import InvalidArgument


@dataclass(frozen=True)
class Alert:
    labels: dict[str, str]
    key: str  # fingerprint + startsAt: the same alert delivered again has the same key


def firing(payload: Any) -> list[Alert]:
    """The firing alerts of one notification; ``InvalidArgument`` names the first bad field."""
    if not isinstance(payload, dict):
        raise InvalidArgument("body: an Alertmanager notification is a JSON object")
    version = payload.get("version")
    if version != "4":
        raise InvalidArgument(f"version: {str(version)[:20]!r} is not the webhook payload "
                              "version podcap reads (\"4\")")
    alerts = payload.get("alerts")
    if not isinstance(alerts, list):
        raise InvalidArgument("alerts: must be a list of alerts")
    if len(alerts) > limits.RECORDER_HOOK_ALERTS_MAX:
        raise InvalidArgument(f"alerts: {len(alerts)} alerts; at most "
                              f"{limits.RECORDER_HOOK_ALERTS_MAX} are read")
    found = []
    for i, alert in enumerate(alerts):
        where = f"alerts[{i}]"
        if not isinstance(alert, dict):
            raise InvalidArgument(f"{where}: must be an object")
        status = alert.get("status")
        if status not in ("firing", "resolved"):
            raise InvalidArgument(f"{where}.status: {str(status)[:20]!r} is neither firing "
                                  "nor resolved")
        labels = alert.get("labels")
        if not isinstance(labels, dict) or not all(
                isinstance(k, str) and isinstance(v, str) for k, v in labels.items()):
            raise InvalidArgument(f"{where}.labels: must be an object of string values")
        for name in ("fingerprint", "startsAt"):
            if not isinstance(alert.get(name, ""), str):
                raise InvalidArgument(f"{where}.{name}: must be a string")
        if status == "firing":
            key = f"{alert.get('fingerprint', '')}@{alert.get('startsAt', '')}"
            found.append(Alert({k[:128]: v[:1024] for k, v in labels.items()}, key[:255]))
    return found
