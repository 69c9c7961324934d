"""A group's download: every member's stream opened and named, merged by time into one pcapng
(group_pcapng.py writes it), plain or followed live.

Every member's stream is opened before the first byte goes out, so the section header can name
what is missing; a follower is woken when a member joins, so that member's first packets
arrive inside the merge's reorder window.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterator
from typing import TYPE_CHECKING

from podcap import __version__
from podcap.controller import names
from podcap.controller.group_members import Group, Member
from podcap.controller.group_pcapng import Followed, Section, Source, merged
from podcap.controller.netstate_note import netstate_note
from podcap.controller.principal import Principal
from podcap.errors import InvalidArgument, NotFound, PodcapError
from podcap.model import Status
from podcap.pcap.format import DEFAULT_SNAPLEN
from podcap.pcap.names import Namer
from podcap.streams import PcapRequest, PcapStream

if TYPE_CHECKING:
    from podcap.controller.groups import GroupService


class Followers:
    """Who follows which group live: a join wakes them."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._by_group: dict[str, set[threading.Event]] = {}  # group id -> woken on a join

    def add(self, gid: str) -> threading.Event:
        wake = threading.Event()
        with self._lock:
            self._by_group.setdefault(gid, set()).add(wake)
        return wake

    def discard(self, gid: str, wake: threading.Event) -> None:
        with self._lock:
            woken = self._by_group.get(gid, set())
            woken.discard(wake)
            if not woken:
                self._by_group.pop(gid, None)

    def wake(self, gid: str) -> None:
        with self._lock:
            for wake in self._by_group.get(gid, ()):
                wake.set()


def pcapng(groups: GroupService, who: Principal, gid: str, follow: bool = False,
           from_now: bool = False) -> tuple[Group, Iterator[bytes], Callable[[], None]]:
    """The merged download: (group, bytes, close)."""
    group = groups.get(who, gid)
    who.require_download()
    if from_now and not follow:
        raise InvalidArgument("from=now applies to follow=true only")
    section = Section(_section_comments(group), group.spec.snaplen or DEFAULT_SNAPLEN,
                      Namer(names.lookup(groups.service, who)))
    seen: set[str] = set()

    def open_new(current: Group, request: PcapRequest) -> list[tuple[Source, PcapStream]]:
        opened: list[tuple[Source, PcapStream]] = []
        try:
            for m in current.members:
                if m.row.capture_id in seen:
                    continue
                seen.add(m.row.capture_id)
                if m.capture is None:
                    section.comments.append(f"missing: {m.if_name}: capture "
                                            f"{m.row.capture_id} is gone")
                    continue
                try:
                    _, stream = groups.service.stream_pcap(who, m.row.capture_id, request)
                except PodcapError as exc:
                    section.comments.append(f"missing: {m.if_name}: {exc.message}")
                    continue
                opened.append((_source(groups, who, group, m), stream))
        except BaseException:
            for _, stream in opened:
                stream.close()
            raise
        return opened

    if not follow:
        opened = open_new(group, PcapRequest())
        chunks = merged(section, opened)

        def close() -> None:
            chunks.close()
            for _, stream in opened:
                stream.close()

        return group, chunks, close

    first = [open_new(group, PcapRequest(follow=True, from_now=from_now))]

    def poll() -> tuple[list[tuple[Source, PcapStream]], bool]:
        if first:
            return first.pop(), group.status == str(Status.RUNNING)
        try:
            current = groups.get(who, gid)
        except NotFound:  # deleted while followed: what is open drains, then the end
            return [], False
        # A member that joins later began after the follow did: all of it is "from now".
        return open_new(current, PcapRequest(follow=True)), \
            current.status == str(Status.RUNNING)

    wake = groups.followers.add(group.id)
    live = Followed(section, poll, wake=wake)

    def stop_following() -> None:
        live.close()
        groups.followers.discard(group.id, wake)

    return group, live, stop_following


def _source(groups: GroupService, who: Principal, group: Group, m: Member) -> Source:
    comments = [f"capture {m.row.capture_id} on {m.row.node}"]
    note = netstate_note(groups.service, who, m.row.capture_id)
    if note:
        comments.append(note)
    return Source(m.row.capture_id, m.if_name, m.if_description, tuple(comments),
                  initial=m.row.joined <= group.row.created)  # one clock reading at start


def _section_comments(group: Group) -> list[str]:
    stop = group.row.stopped
    lines = [f"podcap capture group {group.id}",
             f"selector: {group.selector}",
             f"start: {_iso(group.row.created)}",
             f"stop: {_iso(stop) if stop else 'still running'}",
             f"podcap version: {__version__}",
             f"members: {len(group.members)}"
             + (f"; skipped: {len(group.skipped)}" if group.skipped else "")]
    lines += [f"skipped: {s.name} ({s.reason})" for s in group.skipped]
    return lines


def _iso(ts: float) -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(ts)) + f".{int(ts % 1 * 1000):03d}Z"
