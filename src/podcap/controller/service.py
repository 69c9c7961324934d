"""The one service every interface (REST v1, native API, UI, CLI) goes through.

It authorizes, sends each command to the agent that owns the workload or capture, and records
who owns each capture and what each did (the audit). No interface holds a business rule of its
own. The jobs it calls on each live in a file of their own:

- ``fanout.py``: every agent asked at once, with a deadline; who did not answer.
- ``inventory.py``: every node's workloads and captures, with their owners (stale when away).
- ``resolver.py``: which workload a user's text names; ``routing.py``: which agent holds a
  capture; ``owners.py``: the owner rows; ``admission.py``: quotas at start;
  ``download_audit.py``: a download counted as it leaves; ``retention.py``: old captures go.
"""

from __future__ import annotations

import contextlib
import functools
import logging
import tempfile
from collections.abc import Callable
from pathlib import Path

from sqlalchemy.orm import Session, sessionmaker

from podcap.capture import filters, tcpdump
from podcap.controller import download_audit, owners, resolver
from podcap.controller.admission import Admission
from podcap.controller.agents import AgentRegistry
from podcap.controller.audit import Audit
from podcap.controller.fanout import FanOut, Listing
from podcap.controller.inventory import Inventory, OwnedCapture, PlacedWorkload
from podcap.controller.owners import Owners
from podcap.controller.principal import Principal
from podcap.controller.quotas import Quotas, default_node_buffer
from podcap.controller.routing import Route, Router
from podcap.errors import (
    CaptureFailed,
    FailedPrecondition,
    Hidden,
    NotFound,
    PodcapError,
    Unavailable,
)
from podcap.logs import capture_fields
from podcap.model import AgentInfo, Capture, CaptureSpec, Recording, Status
from podcap.streams import PcapRequest, PcapStream
from podcap.transport.base import AgentTransport

log = logging.getLogger("podcap.captures")


class CaptureService:
    def __init__(self, sessions: sessionmaker, agents: AgentRegistry,
                 audit: Audit | None = None, quotas: Quotas | None = None,
                 trust_namespace_labels: bool = False, empty_pcap: Path | None = None) -> None:
        self.agents = agents
        self._empty_pcap = empty_pcap
        self.audit = audit or Audit(sessions)
        self.quotas = quotas or Quotas(node_buffer_bytes=default_node_buffer())
        self.admission = Admission(self.quotas)
        self.owners = Owners(sessions)
        self._fanout = FanOut(agents)  # only to ask agents to look now (a start's miss)
        self.inventory = Inventory(agents, self.owners, trust_namespace_labels, self._fanout)
        self._router = Router(agents, self.inventory, self.owners)
        self.start_failures = 0  # tcpdump did not start (podcap_tcpdump_start_failures_total)

    # ---- agents and workloads -----------------------------------------------------------

    def agent_infos(self) -> list[AgentInfo]:
        return self.agents.infos()

    def workloads(self, who: Principal, query: str = "") -> Listing[PlacedWorkload]:
        """Those ``who`` may see (sorted by namespace, pod, name), each of ``query``'s words
        in its name, image, namespace, pod, node, id or an IP."""
        every = self.inventory.workloads()
        placed = every.items
        if not who.sees_every_namespace:  # an admin's list is not copied
            placed = [p for p in placed if who.can_see(p.workload.namespace)]
        # A pass a word, no call a row: at 10,000 rows ``all(...)`` cost 4.4 ms, this 0.6
        for word in query.lower().split():
            placed = [p for p in placed if word in p.text]
        return Listing(placed, every.unreachable)

    def workloads_token(self) -> str:
        """Changes whenever any workload list could (inventory.py): a client that holds it
        needs no new list."""
        return self.inventory.token()

    def workload(self, who: Principal, wid: str, agent_id: str | None = None) -> PlacedWorkload:
        """The workload ``wid`` names by the rule of controller/resolver.py, among those
        ``who`` may see (on ``agent_id``'s node when given)."""
        return resolver.find(self.inventory, who, wid, agent_id)

    def check_filter(self, expression: str) -> None:
        """Compiled here, by the controller's own tcpdump (``tcpdump -d`` on an empty file of
        the capture link type needs no namespace and no privilege): a user's filter text
        never goes to a node that will not run it, and no node can stall the check. The
        capture's own tcpdump compiles it again where it runs."""
        CaptureSpec(filter=expression)  # length and character rules first
        if self._empty_pcap is None:
            self._empty_pcap = tcpdump.write_empty_pcap(
                Path(tempfile.mkdtemp(prefix="podcap-filter-")) / "empty-sll2.pcap")
        try:
            filters.compile_filter(expression, self._empty_pcap)
        except OSError as exc:  # no tcpdump on the controller's machine
            raise Unavailable(f"cannot compile filters here: {exc}") from exc

    # ---- captures -----------------------------------------------------------------------

    def start(self, who: Principal, wid: str, spec: CaptureSpec,
              agent_id: str | None = None, recording: Recording | None = None) -> OwnedCapture:
        """``recording``: a recorder's ring (controller/recorders.py) rather than a capture."""
        placed = self.workload(who, wid, agent_id)
        who.require_write()
        namespace = placed.workload.namespace
        agent: AgentTransport | None = None  # asked: a refusal before it asks no agent
        try:
            with self.admission.admit(who.username, namespace, placed.agent_id, spec,
                                      self.inventory.held):
                agent = self.agents.get(placed.agent_id)
                capture = _last_word(agent, placed, spec, who.username, recording)
                owned = OwnedCapture(capture, who.username, namespace)
                self._record("capture.start", who, owned,
                             detail=capture.spec.filter if recording is None else
                             f"ring of recorder {recording.recorder}; {capture.spec.filter}",
                             along=functools.partial(owners.put, cid=capture.id,
                                                     agent_id=placed.agent_id,
                                                     owner=who.username, namespace=namespace))
                agent.view().observe(capture)  # listed at once; its deltas confirm it
        except PodcapError as exc:
            if isinstance(exc, CaptureFailed):
                self.start_failures += 1
            # The agent's record as the failure left it, in the view before the answer: a
            # failed one listed, a refused one (a filter tcpdump rejects) gone. A record is
            # written while tcpdump boots, and the feed may have pushed it meanwhile: without
            # this look a list right after the 400 showed it running (tests/live/test_live_cli).
            if agent is not None:
                with contextlib.suppress(PodcapError):
                    agent.sync()
            raise
        for old in capture.reclaimed:  # deleted by the agent to make room (--reclaim oldest)
            self.agents.get(placed.agent_id).view().forget(old)
            row = self.owners.forget(old)
            self.audit.record("capture.reclaimed", username=who.username, source=who.source,
                              capture_id=old, namespace=row[1] if row else "",
                              detail=f"deleted on node {placed.workload.node} to make room for "
                              f"capture {capture.id} (--reclaim oldest)")
            log.warning("capture %s deleted on node %s to make room for capture %s "
                        "(--reclaim oldest)", old, placed.workload.node, capture.id,
                        extra=capture_fields("capture.reclaimed", old, "",
                                             placed.workload.node, who.username,
                                             namespace=row[1] if row else "",
                                             for_capture=capture.id))
        return owned

    def captures(self, who: Principal, wid: str | None = None,
                 agent_id: str | None = None) -> Listing[OwnedCapture]:
        if agent_id is not None:
            self.agents.get(agent_id)
        every, unreachable = self.inventory.captures(only=agent_id)
        found = [owned for _, owned in every if who.can_see(owned.namespace)
                 and wid in (None, owned.capture.workload.id)]
        found.sort(key=lambda o: o.capture.start_time)
        return Listing(found, unreachable)

    def capture(self, who: Principal, cid: str) -> OwnedCapture:
        return self._find(who, cid)[0]

    def stop(self, who: Principal, cid: str) -> OwnedCapture:
        owned, route = self._find(who, cid)
        who.require_write()
        capture = route.transport.stop(owned.capture.id)
        route.transport.view().observe(capture)
        stopped = self.inventory.owned(capture, route.row)
        self._record("capture.stop", who, stopped,
                     along=functools.partial(owners.mark_stopped, cid=capture.id))
        return stopped

    def remove(self, who: Principal, cid: str) -> None:
        owned, route = self._find(who, cid)
        who.require_write()
        route.transport.remove(cid)
        route.transport.view().forget(cid)
        self.owners.forget(cid)
        self._record("capture.delete", who, owned)

    def document(self, who: Principal, cid: str, name: str,
                 params: dict[str, str] | None = None) -> dict[str, object]:
        """A JSON document the capture's agent keeps beside its files (summary, netstate…):
        readable by whoever may see the capture."""
        _, route = self._find(who, cid)
        return route.transport.document(cid, name, params)

    def download(self, who: Principal, cid: str, fresh: bool = False
                 ) -> download_audit.Download:
        """The capture found once (404 before 403, then the download right), for a download
        whose request depends on the record (an HTTP range's plan): the stream it opens is
        audited when it closes as a ``download`` of the bytes the reader was sent, ``ok``
        when that is all it was meant to get; a ``length`` cuts it there
        (download_audit.py). ``fresh``: the record from its agent, not the view (a view may
        lag a change another replica made a moment ago)."""
        owned, route = self._find(who, cid, fresh)
        who.require_download()

        def audit(sent: int, ok: bool) -> None:
            self._record("download", who, owned, nbytes=sent, ok=ok)

        def opener(request: PcapRequest, length: int | None) -> PcapStream:
            return download_audit.counted(route.transport.stream_pcap(cid, request), length, audit)

        return download_audit.Download(owned, opener)

    def stream_pcap(self, who: Principal, cid: str, request: PcapRequest = PcapRequest(),
                    length: int | None = None) -> tuple[OwnedCapture, PcapStream]:
        """``download`` and its stream at once, for a request that needs no record first."""
        found = self.download(who, cid)
        return found.owned, found.open(request, length)

    def _find(self, who: Principal, cid: str, fresh: bool = False
              ) -> tuple[OwnedCapture, Route]:
        """The capture and the agent that holds it, from its view (one question to that
        agent only when the view does not hold it yet); its last known state when the agent
        is away. Hidden from a caller who may not see its namespace."""
        route = self._router.route(cid)
        t = route.transport
        held = route.capture or t.view().capture(cid)
        fresh = fresh or (held is not None and held.status is Status.RUNNING and
                          route.row is not None and route.row.stopped is not None)
        try:
            if held is not None and t.info().connected and t.view().state().synced \
                    and not fresh:
                owned = self.inventory.owned(held, route.row)
            else:  # not in its view yet, or the view is behind: its agent is asked, once
                owned = self.inventory.owned(t.get_capture(cid), route.row)
        except Unavailable:  # away: the view's last state, else the last answer seen
            known = {c.id: c for c in t.known_captures()}
            last = held or known.get(cid)
            if last is None:
                raise
            owned = self.inventory.owned(last, route.row, stale=True)
        if not who.can_see(owned.namespace):
            raise Hidden(f"capture {cid} not found", who.username)
        return owned, route

    def close(self) -> None:
        self._fanout.close()
        self.agents.close()

    def _record(self, event: str, who: Principal, owned: OwnedCapture, *, nbytes: int = 0,
                ok: bool = True, detail: str = "",
                along: Callable[[Session], None] | None = None) -> None:
        self.audit.record(event, username=who.username, source=who.source, ok=ok,
                          capture_id=owned.capture.id, workload=owned.capture.workload.name,
                          namespace=owned.namespace, nbytes=nbytes, detail=detail, along=along)
        c = owned.capture
        log.info("%s of capture %s (%s) by %s", event, c.id, c.workload.name, who.username,
                 extra=capture_fields(event, c.id, c.workload.name, c.workload.node,
                                      who.username, namespace=owned.namespace, ok=ok,
                                      **({"bytes": nbytes} if event == "download" else {})))


def _last_word(agent: AgentTransport, placed: PlacedWorkload, spec: CaptureSpec,
               owner: str, recording: Recording | None = None) -> Capture:
    """The start, by the full id the view resolved: the agent looks the container up afresh
    and has the last word. One gone since the view was made is a refusal (409 on /api,
    NeuVector's 400 on /v1), never a capture of anything else."""
    try:
        if recording is not None:
            return agent.record(placed.workload.id, spec, owner, recording)
        return agent.start(placed.workload.id, spec, owner)
    except NotFound as exc:
        raise FailedPrecondition(
            f"workload {placed.workload.name or placed.workload.id[:12]} is no longer on node "
            f"{placed.workload.node}: it went after it was listed; nothing was started "
            f"({exc.message})") from None
