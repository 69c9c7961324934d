"""What a flight recorder is (issue 21): its settings, checked once, and the rules that say
which container an alert names.

A recorder is a standing rule: the selector of capture groups (controller/group_members.py),
a window (seconds of history a snapshot keeps before its trigger) and a byte cap per
container (the ring), a filter and a snap length; how long after a trigger the snapshot goes
on (``after_s``), the cooldown per container between freezes, how many snapshots it keeps,
optional rate and drop thresholds, and which alert labels name its members.
"""

from __future__ import annotations

import json
import re
from dataclasses import asdict, dataclass, field
from typing import Any

from podcap import limits
from podcap.controller.db import Recorder
from podcap.controller.group_members import Selector
from podcap.errors import InvalidArgument
from podcap.model import CaptureSpec, Workload

_ID = re.compile(r"[0-9a-f]{24}")
_NAME = re.compile(r"[a-z0-9]([-a-z0-9]{0,62}[a-z0-9])?")
# What an alert label may be compared with: a workload's field, or one of its labels.
FIELDS = ("namespace", "pod", "container", "name", "node", "id")
DEFAULT_ALERT_LABELS = {"namespace": "namespace", "pod": "pod"}


def recorder_id(value: str) -> str:
    if not isinstance(value, str) or not _ID.fullmatch(value):
        raise InvalidArgument(f"invalid recorder id {str(value)[:40]!r}: expected 24 "
                              "lowercase hex characters")
    return value


def _whole(name: str, value: object, low: int, high: int, unit: str = "") -> int:
    if isinstance(value, bool) or not isinstance(value, int):
        raise InvalidArgument(f"{name} must be a whole number, got {value!r}")
    if not low <= value <= high:
        raise InvalidArgument(f"{name} must be between {low} and {high}{unit}, got {value}")
    return value


@dataclass(frozen=True)
class RecorderConfig:
    """A recorder's settings; ``of`` checks each and names the one that is wrong."""

    name: str
    selector: Selector
    window_s: int = limits.RECORDER_WINDOW_S_DEFAULT
    bytes_mb: int = limits.RECORDER_BYTES_MB_DEFAULT
    filter: str = ""
    snaplen: int = limits.SNAPLEN_DEFAULT
    after_s: int = limits.RECORDER_AFTER_S_DEFAULT
    cooldown_s: int = limits.RECORDER_COOLDOWN_S_DEFAULT
    max_snapshots: int = limits.RECORDER_SNAPSHOTS_DEFAULT
    rate_pps: int = 0
    drops_per_s: int = 0
    alert_labels: dict[str, str] = field(default_factory=lambda: dict(DEFAULT_ALERT_LABELS))
    alertnames: tuple[str, ...] = ()
    enabled: bool = True

    @classmethod
    def of(cls, data: dict[str, Any]) -> RecorderConfig:
        name = data.get("name")
        if not isinstance(name, str) or not _NAME.fullmatch(name):
            raise InvalidArgument(f"name {str(name)[:70]!r} must be 1-64 lowercase letters, "
                                  "digits and '-', starting and ending with a letter or digit")
        selector = Selector.of(list(data.get("workloads") or []), data.get("namespace") or "",
                               data.get("labels") or "")
        labels = data.get("alert_labels")
        labels = dict(DEFAULT_ALERT_LABELS) if labels is None else labels
        if not isinstance(labels, dict) or not all(
                isinstance(k, str) and isinstance(v, str) for k, v in labels.items()):
            raise InvalidArgument("alert_labels must map alert label names to workload fields "
                                  "(strings)")
        for key, value in labels.items():
            if not re.fullmatch(r"[a-zA-Z_][a-zA-Z0-9_]{0,127}", key):
                raise InvalidArgument(f"alert_labels: {key[:70]!r} is not an alert label name")
            if value not in FIELDS and not (value.startswith("label:") and 6 < len(value) < 300):
                raise InvalidArgument(f"alert_labels: {key} maps to {value[:70]!r}; a workload "
                                      f"field is one of {', '.join(FIELDS)} or label:KEY")
        names = data.get("alertnames") or []
        if not isinstance(names, list) or not all(isinstance(n, str) and 0 < len(n) <= 255
                                                  for n in names) or len(names) > 100:
            raise InvalidArgument("alertnames must be a list of at most 100 alert names")
        enabled = data.get("enabled", True)
        if not isinstance(enabled, bool):
            raise InvalidArgument(f"enabled must be true or false, got {enabled!r}")
        config = cls(
            name=name, selector=selector,
            window_s=_whole("window_s", data.get("window_s", limits.RECORDER_WINDOW_S_DEFAULT),
                            1, limits.RECORDER_WINDOW_S_MAX, " seconds"),
            bytes_mb=_whole("bytes_mb", data.get("bytes_mb", limits.RECORDER_BYTES_MB_DEFAULT),
                            limits.RECORDER_BYTES_MB_MIN, limits.RECORDER_BYTES_MB_MAX,
                            " MB (1 MB = 1,000,000 bytes)"),
            filter=data.get("filter") or "",
            snaplen=_whole("snaplen", data.get("snaplen", limits.SNAPLEN_DEFAULT), 0,
                           limits.SNAPLEN_MAX, " bytes (0 = whole packets)"),
            after_s=_whole("after_s", data.get("after_s", limits.RECORDER_AFTER_S_DEFAULT), 0,
                           limits.RECORDER_AFTER_S_MAX, " seconds"),
            cooldown_s=_whole("cooldown_s",
                              data.get("cooldown_s", limits.RECORDER_COOLDOWN_S_DEFAULT), 0,
                              limits.RECORDER_COOLDOWN_S_MAX, " seconds"),
            max_snapshots=_whole("max_snapshots",
                                 data.get("max_snapshots", limits.RECORDER_SNAPSHOTS_DEFAULT),
                                 1, limits.RECORDER_SNAPSHOTS_MAX),
            rate_pps=_whole("rate_pps", data.get("rate_pps", 0), 0, 10_000_000,
                            " packets/s (0 = no rate trigger)"),
            drops_per_s=_whole("drops_per_s", data.get("drops_per_s", 0), 0, 10_000_000,
                               " drops/s (0 = no drop trigger)"),
            alert_labels=labels, alertnames=tuple(names), enabled=enabled)
        config.spec()  # the filter's length and characters, the ring's shape
        return config

    def spec(self) -> CaptureSpec:
        """The rings' tcpdump: ``bytes_mb`` as up to RECORDER_RING_FILES_MAX files, no end."""
        files = max(2, min(limits.RECORDER_RING_FILES_MAX, self.bytes_mb))
        return CaptureSpec(duration=0, file_number=files,
                           file_size_mb=max(1, self.bytes_mb // files), filter=self.filter,
                           snaplen=self.snaplen)

    def to_row(self, rid: str, owner: str, created: float) -> Recorder:
        row = Recorder(id=rid, owner=owner, created=created)
        self.fill(row)
        return row

    def fill(self, row: Recorder) -> None:
        row.name = self.name
        row.selector = json.dumps(self.selector.to_dict())
        row.spec = json.dumps({**asdict(self.spec()), "bytes_mb": self.bytes_mb})
        row.window_s, row.after_s, row.cooldown_s = self.window_s, self.after_s, self.cooldown_s
        row.max_snapshots, row.enabled = self.max_snapshots, self.enabled
        row.rate_pps, row.drops_per_s = self.rate_pps, self.drops_per_s
        row.alerts = json.dumps({"labels": self.alert_labels, "names": list(self.alertnames)})

    @classmethod
    def from_row(cls, row: Recorder) -> RecorderConfig:
        spec = json.loads(row.spec)
        alerts = json.loads(row.alerts)
        return cls(name=row.name, selector=Selector.from_json(row.selector),
                   window_s=row.window_s, bytes_mb=int(spec.get("bytes_mb", 0)),
                   filter=spec.get("filter", ""), snaplen=int(spec.get("snaplen", 0)),
                   after_s=row.after_s, cooldown_s=row.cooldown_s,
                   max_snapshots=row.max_snapshots, rate_pps=row.rate_pps,
                   drops_per_s=row.drops_per_s, alert_labels=dict(alerts.get("labels", {})),
                   alertnames=tuple(alerts.get("names", [])), enabled=row.enabled)

    def to_dict(self) -> dict[str, Any]:
        return {"name": self.name, "selector": self.selector.to_dict(),
                "selector_text": str(self.selector), "window_s": self.window_s,
                "bytes_mb": self.bytes_mb, "filter": self.filter, "snaplen": self.snaplen,
                "after_s": self.after_s, "cooldown_s": self.cooldown_s,
                "max_snapshots": self.max_snapshots, "rate_pps": self.rate_pps,
                "drops_per_s": self.drops_per_s, "alert_labels": dict(self.alert_labels),
                "alertnames": list(self.alertnames), "enabled": self.enabled}

    def names(self, alert: dict[str, str], w: Workload) -> bool:
        """Does an alert with these labels name workload ``w``? Every mapped label the alert
        carries must equal the workload's field, and it must carry at least one; an alert
        of a name the recorder does not list names nothing."""
        if self.alertnames and alert.get("alertname") not in self.alertnames:
            return False
        present = [(k, v) for k, v in self.alert_labels.items() if k in alert]
        return bool(present) and all(alert[k] == field_of(w, v) for k, v in present)


def field_of(w: Workload, name: str) -> str:
    if name.startswith("label:"):
        return w.labels.get(name[6:], "")
    return {"namespace": w.namespace, "pod": w.pod_name,
            "container": w.container_name or w.name, "name": w.name, "node": w.node,
            "id": w.id}[name]
