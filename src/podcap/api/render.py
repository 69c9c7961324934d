"""Domain objects to JSON, in NeuVector's shapes (/v1) and the native ones (/api)."""

from __future__ import annotations

import json
import shlex
import time
from collections.abc import Callable, Sequence
from typing import Any

from podcap.api import streaming
from podcap.controller.fanout import Listing
from podcap.controller.inventory import OwnedCapture, PlacedWorkload
from podcap.model import AgentInfo, Workload


def stats(owned: OwnedCapture) -> dict[str, int]:
    s = owned.capture.stats
    return {"captured": s.captured, "received": s.received, "dropped": s.dropped,
            "bytes": s.bytes}


def v1_sniffer(owned: OwnedCapture) -> dict[str, Any]:
    c = owned.capture
    return {
        "id": c.id,
        "enforcer_id": c.agent_id,
        "container_id": c.workload.id,
        "file_number": c.files,
        "size": c.stats.bytes,
        "status": str(c.status),
        "args": shlex.join(c.args),
        "start_time": int(c.start_time),
        "stop_time": int(c.stop_time) if c.stop_time else 0,
        # podcap's additions; NeuVector clients ignore unknown fields.
        "reason": c.reason,
        "stats": stats(owned),
        "workload_name": c.workload.name,
        "pod_name": c.workload.pod_name,
        "domain": owned.namespace,
        "duration": c.spec.duration,
        "filter": c.spec.filter,
        "stale": owned.stale,
    }


def v1_workload(placed: PlacedWorkload, brief: bool = False) -> dict[str, Any]:
    w = placed.workload
    data: dict[str, Any] = {
        "id": w.id,
        "name": w.name,
        "display_name": w.container_name or w.name,
        "pod_name": w.pod_name,
        "domain": w.namespace,
        "state": w.state,
        "cap_sniff": w.cap_sniff,
        "cap_sniff_reason": w.cap_sniff_reason,
    }
    if brief:
        return data
    data.update({
        "host_name": w.node,
        "enforcer_id": placed.agent_id,
        "image": w.image,
        "network_mode": w.network_mode,
        "platform_role": "",
        "interfaces": v1_interfaces(w),
        "labels": w.labels,
        "created_at": _iso(w.created),
        "kind": w.kind,
        "runtime": w.runtime,
    })
    return data


def json_list(key: str, items: Sequence[PlacedWorkload], shape: Callable[[PlacedWorkload], Any],
              head: str = "", tail: str = "") -> bytes:
    """``{<head>"<key>":[…]<tail>}`` with each item's JSON made once and kept on it (its
    ``rendered``, by ``shape``'s name): a list of 10,000 workloads is a join, not 10,000
    encodings."""
    name = shape.__name__
    parts = []
    for p in items:
        text = p.rendered.get(name)
        if text is None:
            text = p.rendered[name] = json.dumps(shape(p), separators=(",", ":"),
                                                 ensure_ascii=False)
        parts.append(text)
    return f'{{{head}"{key}":[{",".join(parts)}]{tail}}}'.encode()


def v1_workload_brief(placed: PlacedWorkload) -> dict[str, Any]:
    return v1_workload(placed, brief=True)


def v1_interfaces(w: Workload) -> dict[str, list[dict[str, Any]]]:
    """NeuVector's ``interfaces`` (only for a running workload): each interface's addresses
    with their prefix lengths as the namespace has them (agent/netstate/addresses.py, pushed by
    remote agents too). Before the namespace was read (a container just started): the
    runtime's addresses, on eth0, prefix 0."""
    if not w.running:
        return {}
    found: dict[str, list[dict[str, Any]]] = {}
    for name, ip, prefix in w.interfaces:
        found.setdefault(name, []).append({"ip": ip, "ip_prefix": prefix, "gateway": ""})
    if not found and w.ips:
        found["eth0"] = [{"ip": ip, "ip_prefix": 0, "gateway": ""} for ip in w.ips]
    return found


def v1_enforcer(agent: AgentInfo) -> dict[str, Any]:
    return {"id": agent.id, "name": agent.node, "display_name": agent.node,
            "host_name": agent.node, "host_id": agent.node, "version": agent.version,
            "connection_state": "connected" if agent.connected else "disconnected",
            "joined_at": _iso(agent.joined or agent.started), "runtimes": list(agent.runtimes),
            "last_seen_at": _iso(agent.last_seen)}


def native_agent(agent: AgentInfo) -> dict[str, Any]:
    return {"id": agent.id, "node": agent.node, "version": agent.version,
            "runtimes": list(agent.runtimes), "joined": agent.joined or agent.started,
            "last_seen": agent.last_seen or None, "connected": agent.connected}


def unreachable(listing: Listing[Any]) -> list[dict[str, Any]]:
    """Nodes away: their part of the list is their last view, as of ``synced_at``."""
    return [{"agent_id": u.agent_id, "node": u.node, "reason": u.reason,
             "synced_at": u.synced_at or None} for u in listing.unreachable]


def native_workload(placed: PlacedWorkload) -> dict[str, Any]:
    data = placed.workload.to_dict()
    data.pop("pid_start", None)
    data.pop("netns", None)
    data["agent_id"] = placed.agent_id
    data["stale"] = placed.stale
    return data


def native_capture(owned: OwnedCapture) -> dict[str, Any]:
    c = owned.capture
    spec = c.spec
    return {
        "id": c.id, "agent_id": c.agent_id, "workload_id": c.workload.id,
        "workload_name": c.workload.name, "pod_name": c.workload.pod_name,
        "namespace": owned.namespace, "node": c.workload.node,
        "status": c.shown_status, "reason": c.reason, "stats": stats(owned),
        "recorder": c.recording.recorder if c.recording else None,
        "file_number": c.files, "size": c.stats.bytes,
        "spec": spec.as_dict(),
        "args": shlex.join(c.args), "start_time": c.start_time, "stop_time": c.stop_time,
        "deadline": c.deadline, "owner": owned.owner, "stale": owned.stale,
    }


def download_name(owned: OwnedCapture) -> str:
    """``<workload>-<YYYYmmdd-HHMMSS>.pcap``, safe as a file name anywhere."""
    name = streaming.safe_name(owned.capture.workload.name, 80) or "capture"
    stamp = time.strftime("%Y%m%d-%H%M%S", time.gmtime(owned.capture.start_time))
    return f"{name}-{stamp}.pcap"


def _iso(ts: float) -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(ts)) if ts else ""
