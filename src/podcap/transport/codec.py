"""Protobuf messages to and from the domain dataclasses. Nothing outside ``transport/`` and
the gateway sees a protobuf message."""

from __future__ import annotations

import dataclasses
import json

from podcap.errors import InvalidArgument
from podcap.model import Capture, CaptureSpec, Stats, Status, Workload
from podcap.streams import PcapRequest
from podcap.transport.agent_proto import agent_pb2 as pb

_SPEC_FIELDS = [f.name for f in dataclasses.fields(CaptureSpec)]
_STATS_FIELDS = [f.name for f in dataclasses.fields(Stats)]


def workload_to_pb(w: Workload) -> pb.Workload:
    return pb.Workload(
        id=w.id, name=w.name, runtime=w.runtime, node=w.node, kind=w.kind, image=w.image,
        state=w.state, pid=w.pid or 0, pid_start=w.pid_start or 0, netns=w.netns or 0,
        network_mode=w.network_mode, host_network=w.host_network, ips=list(w.ips),
        labels=w.labels, pod_name=w.pod_name, pod_id=w.pod_id, namespace=w.namespace,
        container_name=w.container_name, created=w.created, cap_sniff=w.cap_sniff,
        cap_sniff_reason=w.cap_sniff_reason)


def workload_from_pb(m: pb.Workload) -> Workload:
    return Workload(
        id=m.id, name=m.name, runtime=m.runtime, node=m.node, kind=m.kind, image=m.image,
        state=m.state, pid=m.pid or None, pid_start=m.pid_start or None, netns=m.netns or None,
        network_mode=m.network_mode, host_network=m.host_network, ips=tuple(m.ips),
        labels=dict(m.labels), pod_name=m.pod_name, pod_id=m.pod_id, namespace=m.namespace,
        container_name=m.container_name, created=m.created, cap_sniff=m.cap_sniff,
        cap_sniff_reason=m.cap_sniff_reason)


def spec_to_pb(s: CaptureSpec) -> pb.CaptureSpec:
    return pb.CaptureSpec(**{name: getattr(s, name) for name in _SPEC_FIELDS})


def spec_from_pb(m: pb.CaptureSpec) -> CaptureSpec:
    """Validates again: the controller checked it, but an agent trusts no message."""
    return CaptureSpec(**{name: getattr(m, name) for name in _SPEC_FIELDS})


def capture_to_pb(c: Capture) -> pb.Capture:
    m = pb.Capture(
        id=c.id, agent_id=c.agent_id, workload=workload_to_pb(c.workload),
        spec=spec_to_pb(c.spec), status=str(c.status), reason=c.reason,
        stats=pb.Stats(**{name: getattr(c.stats, name) for name in _STATS_FIELDS}),
        files=c.files, args=c.args, start_time=c.start_time, reclaimed=c.reclaimed,
        owner=c.owner)
    if c.stop_time is not None:
        m.stop_time = c.stop_time
    return m


def capture_from_pb(m: pb.Capture) -> Capture:
    return Capture(
        id=m.id, agent_id=m.agent_id, workload=workload_from_pb(m.workload),
        spec=spec_from_pb(m.spec), status=Status(m.status), reason=m.reason,
        stats=Stats(**{name: getattr(m.stats, name) for name in _STATS_FIELDS}),
        files=m.files, args=list(m.args), start_time=m.start_time,
        stop_time=m.stop_time if m.HasField("stop_time") else None,
        reclaimed=list(m.reclaimed), owner=m.owner)


def download_to_pb(capture_id: str, r: PcapRequest, download_id: str) -> pb.Download:
    return pb.Download(capture_id=capture_id, limit=r.limit or 0, download_id=download_id,
                       offset=r.offset, follow=r.follow, from_now=r.from_now, filter=r.filter)


def download_from_pb(m: pb.Download) -> PcapRequest:
    return PcapRequest(limit=m.limit or None, offset=m.offset, follow=m.follow,
                       from_now=m.from_now, filter=m.filter)


def document_to_wire(body: dict[str, object]) -> bytes:
    return json.dumps(body, separators=(",", ":")).encode()


def document_from_wire(data: bytes) -> dict[str, object]:
    try:
        body = json.loads(data)
    except ValueError as exc:
        raise InvalidArgument(f"an agent sent a document that is not JSON: {exc}") from None
    if not isinstance(body, dict):
        raise InvalidArgument("an agent sent a document that is not a JSON object")
    return body
