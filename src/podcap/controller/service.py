"""The one service every interface (REST v1, native API, UI, CLI) goes through.

It authorizes, routes each command to the agent that owns the workload or capture, and records
who owns each capture. No interface holds a business rule of its own.

Lists ask every agent in parallel, each with a deadline: one slow or dead agent never fails a
list. The answer holds the others' data and names the nodes that did not answer; captures of
an agent that cannot be reached are shown from their last known state, marked stale.
"""

from __future__ import annotations

import itertools
import logging
import tempfile
import threading
import time
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor, wait
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Generic, TypeVar

from sqlalchemy.orm import sessionmaker

from podcap import limits
from podcap.capture import tcpdump
from podcap.controller.agents import AgentRegistry
from podcap.controller.audit import Audit
from podcap.controller.auth import Principal
from podcap.controller.db import CaptureOwner
from podcap.controller.homes import WorkloadHomes
from podcap.controller.quotas import Held, Quotas, default_node_buffer
from podcap.controller.resolver import resolve
from podcap.errors import (
    CaptureFailed,
    Hidden,
    InvalidArgument,
    NotFound,
    PodcapError,
    Unavailable,
)
from podcap.logs import capture_fields
from podcap.model import AgentInfo, Capture, CaptureSpec, Status, Workload
from podcap.streams import PcapRequest, PcapStream
from podcap.transport import rejects
from podcap.transport.base import AgentTransport
from podcap.types import capture_id, workload_id

T = TypeVar("T")
log = logging.getLogger("podcap.captures")


@dataclass(frozen=True)
class PlacedWorkload:
    workload: Workload
    agent_id: str


@dataclass(frozen=True)
class OwnedCapture:
    capture: Capture
    owner: str
    namespace: str
    stale: bool = False  # last known state: its agent cannot be reached now


@dataclass(frozen=True)
class Unreachable:
    agent_id: str
    node: str
    reason: str


@dataclass(frozen=True)
class Listing(Generic[T]):
    items: list[T]
    unreachable: list[Unreachable] = field(default_factory=list)


class CaptureService:
    def __init__(self, sessions: sessionmaker, agents: AgentRegistry,
                 audit: Audit | None = None, quotas: Quotas | None = None,
                 trust_namespace_labels: bool = False, empty_pcap: Path | None = None) -> None:
        self._sessions = sessions
        self.agents = agents
        self._homes = WorkloadHomes()
        self._empty_pcap = empty_pcap
        self.audit = audit or Audit(sessions)
        self.quotas = quotas or Quotas(node_buffer_bytes=default_node_buffer())
        self._quota_lock = threading.Lock()
        self._starting: dict[int, Held] = {}  # starts past the quota check, not yet listed
        self._tickets = itertools.count()
        self._trust_labels = trust_namespace_labels
        self._pool = ThreadPoolExecutor(32, thread_name_prefix="podcap-fanout")
        self.start_failures = 0  # tcpdump did not start (podcap_tcpdump_start_failures_total)

    # ---- agents and workloads -----------------------------------------------------------

    def agent_infos(self) -> list[AgentInfo]:
        return self.agents.infos()

    def workloads(self, who: Principal, query: str = "") -> Listing[PlacedWorkload]:
        every = self._every_workload()
        placed = [p for p in every.items if who.can_see(p.workload.namespace)]
        if query:
            q = query.lower()
            placed = [p for p in placed if q in _haystack(p.workload)]
        placed.sort(key=lambda p: (p.workload.namespace, p.workload.pod_name, p.workload.name))
        return Listing(placed, every.unreachable)

    def _every_workload(self) -> Listing[PlacedWorkload]:
        """Every node's workloads, whoever asks: callers filter by namespace."""
        answers, unreachable = self._fan_out(lambda t: t.list_workloads())
        answers, twice = self._homes.sift(answers, {a.id: a for a in self.agents.infos()})
        for aid, w in twice:
            self.agents.rejects.drop(aid, w.node, rejects.DUPLICATE_WORKLOAD,
                                     f"workload {w.id[:64]} is another node's")
        return Listing([PlacedWorkload(w, aid) for aid, found in answers.items()
                        for w in map(self._namespaced, found)], unreachable)

    def workload(self, who: Principal, wid: str, agent_id: str | None = None) -> PlacedWorkload:
        """The workload ``wid`` names by the rule of controller/resolver.py, among those
        ``who`` may see (on ``agent_id``'s node when given)."""
        wid = workload_id(wid)
        if agent_id is not None:  # the node was named: ask it alone first
            own = [PlacedWorkload(w, agent_id) for w in map(
                self._namespaced, self.agents.get(agent_id).list_workloads())
                if who.can_see(w.namespace)]  # NotFound above: no such enforcer
            hits = _resolve(wid, own)
            if hits:
                return _one(wid, hits)
        every = self._every_workload()
        listing = Listing([p for p in every.items if who.can_see(p.workload.namespace)],
                          every.unreachable)
        hits = _resolve(wid, listing.items)
        if agent_id is not None and hits:
            raise InvalidArgument(f"enforcer {agent_id} is not the node of workload {wid}")
        if hits:
            return _one(wid, hits)
        if listing.unreachable:
            nodes = ", ".join(u.node for u in listing.unreachable)
            raise Unavailable(f"workload {wid} not found on the nodes that answered; "
                              f"not answering: {nodes}")
        if _resolve(wid, every.items):  # there, but not for this caller: the same answer
            raise Hidden(f"workload {wid} not found", who.username)
        raise NotFound(f"workload {wid} not found")

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
            tcpdump.compile_filter(expression, self._empty_pcap)
        except OSError as exc:  # no tcpdump on the controller's machine
            raise Unavailable(f"cannot compile filters here: {exc}") from exc

    # ---- captures -----------------------------------------------------------------------

    def start(self, who: Principal, wid: str, spec: CaptureSpec,
              agent_id: str | None = None) -> OwnedCapture:
        placed = self.workload(who, wid, agent_id)
        who.require_write()
        namespace = placed.workload.namespace
        with self._quota_lock:  # no two starts are checked against the same room
            self.quotas.check(who.username, namespace, placed.agent_id, spec,
                              [*self._held(), *self._starting.values()])
            ticket = next(self._tickets)
            self._starting[ticket] = Held(who.username, namespace, placed.agent_id, spec,
                                          Status.RUNNING, 0)
        try:
            capture = self.agents.get(placed.agent_id).start(placed.workload.id, spec,
                                                             who.username)
            with self._sessions() as db, db.begin():
                db.add(CaptureOwner(capture_id=capture.id, agent_id=placed.agent_id,
                                    owner=who.username, namespace=namespace,
                                    created=time.time()))
        except CaptureFailed:
            self.start_failures += 1
            raise
        finally:
            with self._quota_lock:
                del self._starting[ticket]
        owned = OwnedCapture(capture, who.username, placed.workload.namespace)
        self._record("capture.start", who, owned, detail=capture.spec.filter)
        for old in capture.reclaimed:  # deleted by the agent to make room (--reclaim oldest)
            row = self._forget(old)
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
        every, unreachable = self._every_capture(only=agent_id)
        found = [owned for _, owned in every if who.can_see(owned.namespace)
                 and wid in (None, owned.capture.workload.id)]
        found.sort(key=lambda o: o.capture.start_time)
        return Listing(found, unreachable)

    def capture(self, who: Principal, cid: str) -> OwnedCapture:
        transport, row = self._route(cid)
        try:
            owned = self._owned(transport.get_capture(cid), row)
        except Unavailable:
            known = {c.id: c for c in transport.known_captures()}
            if cid not in known:
                raise
            owned = self._owned(known[cid], row, stale=True)
        if not who.can_see(owned.namespace):
            raise Hidden(f"capture {cid} not found", who.username)
        return owned

    def stop(self, who: Principal, cid: str) -> OwnedCapture:
        owned = self.capture(who, cid)
        who.require_write()
        transport, row = self._route(cid)
        stopped = self._owned(transport.stop(owned.capture.id), row)
        self._record("capture.stop", who, stopped)
        return stopped

    def remove(self, who: Principal, cid: str) -> None:
        owned = self.capture(who, cid)
        who.require_write()
        transport, _ = self._route(cid)
        transport.remove(cid)
        with self._sessions() as db, db.begin():
            row = db.get(CaptureOwner, cid)
            if row is not None:
                db.delete(row)
        self._record("capture.delete", who, owned)

    def expire(self, cutoff: float, why: str) -> tuple[list[OwnedCapture], list[Unreachable]]:
        """Delete every stopped capture that stopped before ``cutoff`` (retention), audited as
        ``capture.expired``. Captures of agents that do not answer are left for the next call:
        their last known state is not enough to delete on."""
        every, unreachable = self._every_capture()
        expired: list[OwnedCapture] = []
        for aid, owned in every:
            c = owned.capture
            if owned.stale or c.status is Status.RUNNING or (c.stop_time or cutoff) >= cutoff:
                continue
            try:
                self.agents.get(aid).remove(c.id)
            except NotFound:
                pass  # gone already: forget it all the same
            except PodcapError as exc:
                log.warning("retention: capture %s not deleted now (%s); next sweep", c.id,
                            exc.message)
                continue
            self._forget(c.id)
            self.audit.record("capture.expired", source="retention", capture_id=c.id,
                              workload=c.workload.name, namespace=owned.namespace,
                              nbytes=c.stats.bytes, detail=why)
            expired.append(owned)
        return expired, unreachable

    def document(self, who: Principal, cid: str, name: str,
                 params: dict[str, str] | None = None) -> dict[str, object]:
        """A JSON document the capture's agent keeps beside its files (summary, netstate…):
        readable by whoever may see the capture."""
        self.capture(who, cid)
        transport, _ = self._route(cid)
        return transport.document(cid, name, params)

    def stream_pcap(self, who: Principal, cid: str, request: PcapRequest = PcapRequest(),
                    length: int | None = None) -> tuple[OwnedCapture, PcapStream]:
        """The pcap, audited when the stream closes as a ``download`` of the bytes the reader
        was sent, ``ok`` when that is all it was meant to get.

        ``length`` ends the stream after that many bytes (an HTTP range's last byte; the agent
        always sends to the end). The cut is made here, where the bytes are counted, so a range
        is audited with what it sent rather than what was pulled from the agent. The stream's
        ``size`` stays the agent's figure, from ``request.offset`` to the end, which a range's
        Content-Range names."""
        owned = self.capture(who, cid)
        who.require_download()
        transport, _ = self._route(cid)
        stream = transport.stream_pcap(cid, request)
        meant = stream.size if length is None or stream.size is None else min(length,
                                                                               stream.size)
        sent = 0

        def counted() -> Iterator[bytes]:
            nonlocal sent
            for chunk in stream:
                if length is not None:
                    chunk = chunk[:length - sent]
                yield chunk
                # Counted once the reader asks for more: the chunk has left. A reader that
                # went away while it was on its way never got it.
                sent += len(chunk)
                if length is not None and sent >= length:
                    return

        def done() -> None:
            stream.close()
            self._record("download", who, owned, nbytes=sent, ok=meant is None or sent == meant)

        return owned, PcapStream(counted(), stream.size, done)

    def close(self) -> None:
        self._pool.shutdown(wait=False, cancel_futures=True)
        self.agents.close()

    # ---- internals ------------------------------------------------------------------------

    def _record(self, event: str, who: Principal, owned: OwnedCapture, *, nbytes: int = 0,
                ok: bool = True, detail: str = "") -> None:
        self.audit.record(event, username=who.username, source=who.source, ok=ok,
                          capture_id=owned.capture.id, workload=owned.capture.workload.name,
                          namespace=owned.namespace, nbytes=nbytes, detail=detail)
        c = owned.capture
        log.info("%s of capture %s (%s) by %s", event, c.id, c.workload.name, who.username,
                 extra=capture_fields(event, c.id, c.workload.name, c.workload.node,
                                      who.username, namespace=owned.namespace, ok=ok,
                                      **({"bytes": nbytes} if event == "download" else {})))

    # ---- internals (routing) ------------------------------------------------------------------

    def _fan_out(self, ask: Callable[[AgentTransport], T], only: str | None = None
                 ) -> tuple[dict[str, T], list[Unreachable]]:
        """``ask`` every agent at once; those that fail or miss the deadline are named."""
        transports = {aid: t for aid, t in self.agents.transports().items()
                      if only in (None, aid)}
        futures = {aid: self._pool.submit(ask, t) for aid, t in transports.items()}
        wait(futures.values(), timeout=limits.FANOUT_DEADLINE_S + 0.2)
        answers: dict[str, T] = {}
        unreachable: list[Unreachable] = []
        for aid, future in futures.items():
            node = transports[aid].info().node
            if not future.done():
                future.cancel()
                unreachable.append(Unreachable(aid, node, "no answer in time"))
                continue
            error = future.exception()
            if error is None:
                answers[aid] = future.result()
            elif isinstance(error, Unavailable):
                unreachable.append(Unreachable(aid, node, error.message))
            elif isinstance(error, PodcapError):
                unreachable.append(Unreachable(aid, node, f"error: {error.message}"))
            else:  # a bug or a lying agent: this node fails this request, nobody else's
                log.error("node %s: %s failed", node, type(error).__name__, exc_info=error)
                unreachable.append(Unreachable(aid, node,
                                               f"error: internal ({type(error).__name__})"))
        return answers, sorted(unreachable, key=lambda u: u.node)

    def _held(self) -> list[Held]:
        """Every capture of every agent (last known state for those away), as quotas see it."""
        every, _ = self._every_capture()
        return [Held(o.owner, o.namespace, aid, o.capture.spec, str(o.capture.status),
                     o.capture.stats.bytes, placed=bool(o.owner)) for aid, o in every]

    def _every_capture(self, only: str | None = None
                       ) -> tuple[list[tuple[str, OwnedCapture]], list[Unreachable]]:
        """(agent id, capture with its owner) of every agent, or of ``only``; an agent that
        does not answer contributes its last known state, marked stale. A capture id belongs
        to the agent the controller placed it on: another agent reporting it is ignored
        (never a second copy in its owner's list, never counted in a quota)."""
        owners = self._owners()
        answers, unreachable = self._fan_out(lambda t: t.list_captures(), only=only)
        stale = {u.agent_id for u in unreachable}
        for aid in stale:
            answers[aid] = self.agents.get(aid).known_captures()
        every: list[tuple[str, OwnedCapture]] = []
        for aid, captures in answers.items():
            foreign = {c.id for c in captures if c.id in owners
                       and owners[c.id].agent_id != aid}
            if foreign:
                node = next((c.workload.node for c in captures), "")
                self.agents.rejects.drop(aid, node, rejects.NOT_ITS_CAPTURE,
                                         f"capture {min(foreign)} was placed on another node",
                                         len(foreign))
            every += [(aid, self._owned(c, owners.get(c.id), aid in stale))
                      for c in captures if c.id not in foreign]
        return every, unreachable

    def _route(self, cid: str) -> tuple[AgentTransport, CaptureOwner | None]:
        cid = capture_id(cid)
        with self._sessions() as db:
            row = db.get(CaptureOwner, cid)
        transports = self.agents.transports()
        if row is not None:  # placed by this controller: its agent alone may answer for it
            if row.agent_id in transports:
                return transports[row.agent_id], row
            raise NotFound(f"capture {cid} not found: its agent {row.agent_id} is gone")
        answers, unreachable = self._fan_out(lambda t: _has_capture(t, cid))
        for aid, has in answers.items():  # started before this controller knew it
            if has:
                return transports[aid], row
        for away in unreachable:  # or on an agent away now: its last known state has it
            if any(c.id == cid for c in transports[away.agent_id].known_captures()):
                return transports[away.agent_id], row
        raise NotFound(f"capture {cid} not found")

    def _forget(self, cid: str) -> tuple[str, str] | None:
        """Drop a deleted capture's owner row: its (owner, namespace) when there was one."""
        with self._sessions() as db, db.begin():
            row = db.get(CaptureOwner, cid)
            if row is None:
                return None
            db.delete(row)
            return row.owner, row.namespace

    def _owners(self) -> dict[str, CaptureOwner]:
        with self._sessions() as db:
            return {row.capture_id: row for row in db.query(CaptureOwner)}

    def _namespaced(self, w: Workload) -> Workload:
        """On Docker the namespace is a label anyone who may `docker run` sets: kept only
        with --trust-namespace-labels. CRI's comes from the pod sandbox, set by the kubelet."""
        if w.runtime == "docker" and w.namespace and not self._trust_labels:
            return replace(w, namespace="")
        return w

    def _owned(self, capture: Capture, row: CaptureOwner | None,
               stale: bool = False) -> OwnedCapture:
        if row is None:
            return OwnedCapture(capture, "", self._namespaced(capture.workload).namespace, stale)
        return OwnedCapture(capture, row.owner, row.namespace, stale)


def _resolve(wid: str, placed: list[PlacedWorkload]) -> list[PlacedWorkload]:
    return [p for _, p in resolve(wid, [(p.workload, p) for p in placed])]


def _one(wid: str, hits: list[PlacedWorkload]) -> PlacedWorkload:
    if len(hits) > 1:
        nodes = ", ".join(sorted(p.workload.node for p in hits))
        raise InvalidArgument(f"{wid} names workloads on several nodes ({nodes}); use the "
                              "workload id, or name the node (f_enforcer on /v1, "
                              "agent_id on /api)")
    return hits[0]


def _has_capture(transport: AgentTransport, cid: str) -> bool:
    try:
        transport.get_capture(cid)
        return True
    except NotFound:
        return False


def _haystack(w: Workload) -> str:
    return " ".join([w.name, w.image, w.namespace, w.pod_name, w.id, *w.ips]).lower()
