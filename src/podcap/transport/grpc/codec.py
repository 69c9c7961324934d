"""Protobuf messages to and from the domain dataclasses. Nothing outside ``transport/grpc/``
sees a protobuf message. What comes from an agent is checked field by field on the way in
(``transport/grpc/checks.py``): a malformed answer is an ``InvalidArgument``, never a
``ValueError`` deep in a list."""

from __future__ import annotations

import dataclasses
import json

from podcap import limits
from podcap.errors import InvalidArgument
from podcap.ids import agent_id, capture_id, workload_id
from podcap.model import AgentInfo, Capture, CaptureSpec, Recording, Stats, Status, Workload
from podcap.streams import PcapRequest
from podcap.transport.base import AgentHello
from podcap.transport.grpc import checks
from podcap.transport.grpc.agent_proto import agent_pb2 as pb
from podcap.views import Counters, InventoryUpdate

_SPEC_FIELDS = [f.name for f in dataclasses.fields(CaptureSpec)]
_STATS_FIELDS = [f.name for f in dataclasses.fields(Stats)]
_STATUSES = tuple(str(s) for s in Status)
RUNTIMES = ("docker", "cri")
KINDS = ("container", "pod")
PID_MAX = 2**22  # the kernel's pid_max ceiling (PID_MAX_LIMIT)


def workload_to_pb(w: Workload) -> pb.Workload:
    return pb.Workload(
        id=w.id, name=w.name, runtime=w.runtime, node=w.node, kind=w.kind, image=w.image,
        state=w.state, pid=w.pid or 0, pid_start=w.pid_start or 0, netns=w.netns or 0,
        network_mode=w.network_mode, host_network=w.host_network, ips=list(w.ips),
        labels=w.labels, pod_name=w.pod_name, pod_id=w.pod_id, namespace=w.namespace,
        container_name=w.container_name, created=w.created, cap_sniff=w.cap_sniff,
        cap_sniff_reason=w.cap_sniff_reason,
        interfaces=[pb.Interface(name=n, address=a, prefix=p) for n, a, p in w.interfaces])


def workload_from_pb(m: pb.Workload) -> Workload:
    """Every field checked (``transport/checks.py``): an agent may lie. ``InvalidArgument``
    names the first field that breaks a rule."""
    return Workload(
        id=workload_id(m.id), name=checks.text("name", m.name),
        runtime=checks.one_of("runtime", m.runtime, RUNTIMES), node=checks.node_name(m.node),
        kind=checks.one_of("kind", m.kind, KINDS), image=checks.text("image", m.image),
        state=checks.text("state", m.state, 64), pid=checks.count("pid", m.pid, PID_MAX) or None,
        pid_start=checks.count("pid_start", m.pid_start) or None, netns=m.netns or None,
        network_mode=checks.text("network_mode", m.network_mode),
        host_network=m.host_network, ips=checks.ips(list(m.ips)),
        labels=checks.labels(dict(m.labels)), pod_name=checks.text("pod_name", m.pod_name),
        pod_id=checks.text("pod_id", m.pod_id), namespace=checks.text("namespace", m.namespace),
        container_name=checks.text("container_name", m.container_name),
        created=checks.finite("created", m.created), cap_sniff=m.cap_sniff,
        cap_sniff_reason=checks.text("cap_sniff_reason", m.cap_sniff_reason),
        interfaces=checks.interfaces([(i.name, i.address, i.prefix) for i in m.interfaces]))


def spec_to_pb(s: CaptureSpec) -> pb.CaptureSpec:
    return pb.CaptureSpec(**{name: getattr(s, name) for name in _SPEC_FIELDS})


def spec_from_pb(m: pb.CaptureSpec) -> CaptureSpec:
    """Validates again: the controller checked it, but an agent trusts no message."""
    return CaptureSpec(**{name: getattr(m, name) for name in _SPEC_FIELDS})


def capture_to_pb(c: Capture) -> pb.Capture:
    m = pb.Capture(
        id=c.id, agent_id=c.agent_id, workload=workload_to_pb(c.workload),
        spec=spec_to_pb(c.spec), status=str(c.status), reason=c.reason,
        stats=_stats_to_pb(c.stats),
        files=c.files, args=c.args, start_time=c.start_time, reclaimed=c.reclaimed,
        owner=c.owner)
    if c.stop_time is not None:
        m.stop_time = c.stop_time
    if c.recording is not None:
        m.recording.CopyFrom(recording_to_pb(c.recording))
    return m


def recording_to_pb(r: Recording) -> pb.Recording:
    m = pb.Recording(recorder=r.recorder, window=r.window, trigger=r.trigger)
    if r.triggered is not None:
        m.triggered = r.triggered
    if r.until is not None:
        m.until = r.until
    return m


def recording_from_pb(m: pb.Recording) -> Recording:
    return Recording(
        recorder=checks.text("recorder", m.recorder, 32),
        window=checks.count("window", m.window, limits.RECORDER_WINDOW_S_MAX),
        triggered=checks.moment("triggered", m.triggered) if m.HasField("triggered") else None,
        until=checks.moment("until", m.until) if m.HasField("until") else None,
        trigger=checks.text("trigger", m.trigger))


def capture_from_pb(m: pb.Capture) -> Capture:
    """Every field checked, as ``workload_from_pb``: status an enum, ids of their shape,
    counters whole and bounded."""
    if m.status not in _STATUSES:
        raise InvalidArgument(f"status {m.status[:40]!r} is not one of {', '.join(_STATUSES)}")
    checks.items("args", m.args, limits.AGENT_ARGS_MAX)
    checks.items("reclaimed", m.reclaimed, limits.AGENT_CAPTURES_MAX)
    stop_time = checks.moment("stop_time", m.stop_time) if m.HasField("stop_time") else None
    return Capture(
        id=capture_id(m.id), agent_id=agent_id(m.agent_id), workload=workload_from_pb(m.workload),
        spec=spec_from_pb(m.spec), status=Status(m.status),
        reason=checks.text("reason", m.reason),
        stats=_stats_from_pb(m.stats),
        files=checks.count("files", m.files, limits.FILE_NUMBER_MAX),
        args=[checks.text("args", a, limits.FILTER_MAX_CHARS) for a in m.args],
        start_time=checks.moment("start_time", m.start_time), stop_time=stop_time,
        reclaimed=[capture_id(c) for c in m.reclaimed], owner=checks.text("owner", m.owner, 64),
        recording=recording_from_pb(m.recording) if m.HasField("recording") else None)


def _stats_to_pb(s: Stats) -> pb.Stats:
    return pb.Stats(**{name: getattr(s, name) for name in _STATS_FIELDS})


def _stats_from_pb(m: pb.Stats) -> Stats:
    """Counters whole and bounded."""
    return Stats(**{name: checks.count(name, getattr(m, name)) for name in _STATS_FIELDS})


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


def hello_to_pb(info: AgentInfo) -> pb.Hello:
    return pb.Hello(node=info.node, version=info.version, runtimes=list(info.runtimes),
                    started=info.started, disk_budget=info.disk_budget, reclaim=info.reclaim)


def hello_from_pb(m: pb.Hello) -> AgentHello:
    """A Hello whose every field passed its check (the node name by the join's rule)."""
    node = checks.node_name(m.node)
    version = checks.text("version", m.version, 64)
    checks.items("runtimes", m.runtimes, len(RUNTIMES))
    runtimes = tuple(checks.one_of("runtime", r, RUNTIMES) for r in m.runtimes)
    started = checks.moment("started", m.started)
    disk_budget = checks.count("disk_budget", m.disk_budget)
    if m.reclaim:
        checks.one_of("reclaim", m.reclaim, limits.RECLAIM_POLICIES)
    return AgentHello(node=node, version=version, runtimes=runtimes, started=started,
                      disk_budget=disk_budget, reclaim=m.reclaim)


def inventory_to_pb(u: InventoryUpdate) -> pb.Inventory:
    return pb.Inventory(seq=u.seq, snapshot=u.snapshot,
                        workloads=[workload_to_pb(w) for w in u.workloads],
                        workloads_gone=list(u.workloads_gone),
                        captures=[capture_to_pb(c) for c in u.captures],
                        captures_gone=list(u.captures_gone),
                        counters=[pb.Counters(capture_id=k.capture_id, stats=_stats_to_pb(k.stats),
                                              files=k.files) for k in u.counters])


def counters_from_pb(m: pb.Counters) -> Counters:
    """Checked as a whole capture's counters are."""
    return Counters(capture_id(m.capture_id), _stats_from_pb(m.stats),
                    checks.count("files", m.files, limits.FILE_NUMBER_MAX))
