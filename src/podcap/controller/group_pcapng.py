"""A capture group's members as ONE pcapng, merged by timestamp while streaming.

- **Download** (``merged``): every member's pcap is read at once; a heap holds one head record
  per member and the smallest timestamp goes out next (a k-way merge). Memory is one record and
  one transport chunk per member, whatever the size of the captures.
- **Follow** (``followed``): the members' live streams (``PcapRequest(follow=True)``) are read
  by one thread each into one bounded queue. A record goes out once every member still
  streaming has a record waiting (then nothing earlier can come from them), or once it has
  waited ``GROUP_REORDER_WINDOW_S`` for a member that is quiet. Members' streams arrive up to
  about a second apart (tcpdump flushed within 250 ms while followed, the kernel ring's 1 s
  block retirement), so within the window the output is in time order; a packet later than
  that is still written, just after newer ones. Members that join while the group runs are
  picked up every ``GROUP_WATCH_INTERVAL_S``; the stream ends when the group has stopped and
  every member's stream has ended.
- **Naming**: one Interface Description Block per container, LINUX_SLL2 and one snap length
  for all (libpcap refuses a file whose IDBs differ), ``if_name`` ``namespace/pod/container``
  and Inspektor Gadget's ``if_description``; members there at the start have their IDB up
  front, later ones right before their first packet. A member's netstate snapshot, when its
  agent keeps one, is a comment on its IDB; gaps a follower was told of become comments on the
  next packet of that member. Addresses get names (NRBs, pcap/names.py) before the first packet
  that carries them, and every packet its direction (``Section.packet``).
"""

from __future__ import annotations

import heapq
import queue
import threading
import time
from collections import deque
from collections.abc import Callable, Generator, Iterator
from dataclasses import dataclass, field

from podcap import __version__, limits
from podcap.errors import PodcapError
from podcap.pcap import format, pcapng
from podcap.pcap.format import LINKTYPE_LINUX_SLL2
from podcap.pcap.gaps import gap_text
from podcap.pcap.names import Namer
from podcap.streams import PcapStream


@dataclass(frozen=True)
class Source:
    """One member as the writer names it."""

    key: str  # the capture id
    if_name: str
    if_description: str
    comments: tuple[str, ...]
    initial: bool  # there when the group started: its IDB goes up front


@dataclass
class Section:
    """What the section header says, and the one snap length of every IDB."""

    comments: list[str]
    snaplen: int
    namer: Namer = field(default_factory=lambda: Namer(None))

    def header(self) -> bytes:
        return pcapng.section_header(self.comments, userappl=f"podcap {__version__}",
                                     os_name="Linux")

    def packet(self, iface: int, record: format.Record, comments: list[str] | None = None
               ) -> bytes:
        """A member's packet (LINUX_SLL2, checked by ``_records``): the names it needs first,
        then its block with the direction the kernel recorded."""
        return self.namer.before(record.ts_ns, record.data) + pcapng.packet(
            iface, record.ts_ns, record.data, record.orig_len,
            flags=pcapng.sll2_flags(record.data), comments=comments or ())


@dataclass
class _Interfaces:
    snaplen: int
    ids: dict[str, int] = field(default_factory=dict)

    def ensure(self, source: Source, out: list[bytes]) -> int:
        if source.key not in self.ids:
            self.ids[source.key] = len(self.ids)
            out.append(pcapng.interface(LINKTYPE_LINUX_SLL2, self.snaplen, source.if_name,
                                        source.if_description, source.comments,
                                        os_name="Linux"))
        return self.ids[source.key]


def _records(source: Source, stream: PcapStream, missing: list[str]
             ) -> Iterator[format.Record]:
    try:
        header, records = format.read_pcap(stream)
    except format.PcapFormatError as exc:
        missing.append(f"{source.if_name}: {exc}")
        return iter(())
    if header.linktype != LINKTYPE_LINUX_SLL2:
        missing.append(f"{source.if_name}: link type {header.linktype}, not LINUX_SLL2")
        return iter(())
    return records


def merged(section: Section, opened: list[tuple[Source, PcapStream]]
           ) -> Generator[bytes, None, None]:
    """The whole download. Each stream's pcap header is read before the section header is
    written, so a member whose stream is not a usable pcap is named in it."""
    readers = [_records(s, stream, section.comments) for s, stream in opened]
    yield section.header()
    ifaces = _Interfaces(section.snaplen)
    out: list[bytes] = []
    for source, _ in opened:
        if source.initial:
            ifaces.ensure(source, out)
    heads: list[tuple[int, int, format.Record]] = []
    for index, records in enumerate(readers):
        first = next(records, None)
        if first is not None:
            heads.append((first.ts_ns, index, first))
    heapq.heapify(heads)
    size = 0
    while heads:
        _, index, record = heads[0]
        iface = ifaces.ensure(opened[index][0], out)  # a later member: its IDB comes first
        block = section.packet(iface, record)
        out.append(block)
        size += len(block)
        following = next(readers[index], None)
        if following is None:
            heapq.heappop(heads)
        else:
            heapq.heapreplace(heads, (following.ts_ns, index, following))
        if size >= limits.DOWNLOAD_CHUNK_BYTES:
            yield b"".join(out)
            out.clear()
            size = 0
    for source, _ in opened:  # members without a single packet are still named
        ifaces.ensure(source, out)
    if out:
        yield b"".join(out)


# ---- follow ----------------------------------------------------------------------------------

_END = None  # what a reader puts last


@dataclass
class _Item:
    record: format.Record
    arrived: float
    notes: list[str]


class Followed:
    """The live merge as an iterator of bytes; ``close()`` from any thread ends it (readers
    notice within one chunk of their stream, keepalives included)."""

    def __init__(self, section: Section,
                 poll: Callable[[], tuple[list[tuple[Source, PcapStream]], bool]],
                 window: float = limits.GROUP_REORDER_WINDOW_S,
                 interval: float = limits.GROUP_WATCH_INTERVAL_S,
                 wake: threading.Event | None = None,
                 keepalive: float = limits.FOLLOW_KEEPALIVE_S) -> None:
        """``poll()`` -> (streams of members not seen before, whether the group still runs);
        it runs every ``interval`` and at once when ``wake`` is set (a member joined): a
        joiner's first packets must reach the merge within the reorder window. After
        ``keepalive`` seconds without packets an Interface Statistics Block goes out, so an
        idle follow is not cut by a proxy (readers skip it)."""
        self._section = section
        self._poll = poll
        self._window = window
        self._interval = interval
        self._stop = threading.Event()
        self._wake = wake or threading.Event()
        self._keepalive = keepalive
        self._inbox: queue.Queue[tuple[str, _Item | None]] = queue.Queue(
            limits.GROUP_FOLLOW_QUEUE_RECORDS)
        self._gen = self._run()

    def __iter__(self) -> Followed:
        return self

    def __next__(self) -> bytes:
        return next(self._gen)

    def close(self) -> None:
        self._stop.set()

    def _start(self, source: Source, stream: PcapStream) -> None:
        threading.Thread(target=self._read, args=(source, stream), daemon=True,
                         name="podcap-group-follow").start()

    def _read(self, source: Source, stream: PcapStream) -> None:
        """One member's stream into the shared queue (blocking when the writer is behind:
        that only slows this reader, never the capture)."""
        stopped = self._stop

        def chunks() -> Iterator[bytes]:
            for chunk in stream:
                if stopped.is_set():
                    return
                yield chunk

        notes: list[str] = []
        try:
            for record in _records(source, chunks(), notes):  # type: ignore[arg-type]
                text = gap_text(record.data)
                if text is not None:
                    notes.append(text)
                    continue
                if not self._put(source.key, _Item(record, time.monotonic(), notes)):
                    return
                notes = []
        except PodcapError:
            pass  # the member's stream broke: it ends here, the others go on
        finally:
            self._put(source.key, _END)
            stream.close()

    def _put(self, key: str, item: _Item | None) -> bool:
        while not self._stop.is_set():
            try:
                self._inbox.put((key, item), timeout=0.2)
                return True
            except queue.Full:
                continue
        return False

    def _run(self) -> Generator[bytes, None, None]:
        sources: dict[str, Source] = {}
        order: dict[str, int] = {}
        pending: dict[str, deque[_Item]] = {}
        live: set[str] = set()
        ifaces = _Interfaces(self._section.snaplen)
        out: list[bytes] = []

        def add(new: list[tuple[Source, PcapStream]]) -> None:
            for source, stream in new:
                sources[source.key] = source
                order[source.key] = len(order)
                pending[source.key] = deque()
                live.add(source.key)
                self._start(source, stream)

        first, running = self._poll()
        yield self._section.header()
        for source, _ in first:
            if source.initial:
                ifaces.ensure(source, out)
        add(first)
        next_poll = time.monotonic() + self._interval
        last_out = time.monotonic()
        try:
            while not self._stop.is_set():
                self._drain(pending, live, timeout=0.1)
                now = time.monotonic()
                while True:
                    heads = [(q[0].record.ts_ns, order[k], k) for k, q in pending.items() if q]
                    if not heads:
                        break
                    _, _, key = min(heads)
                    quiet = any(not pending[k] for k in live)
                    if quiet and now - pending[key][0].arrived < self._window:
                        break  # a quiet member may still send something earlier
                    item = pending[key].popleft()
                    iface = ifaces.ensure(sources[key], out)
                    out.append(self._section.packet(iface, item.record, item.notes))
                if not out and ifaces.ids and now - last_out >= self._keepalive:
                    out.append(pcapng.interface_statistics(0, time.time_ns()))
                if out:
                    yield b"".join(out)
                    out.clear()
                    last_out = now
                if now >= next_poll or self._wake.is_set():
                    self._wake.clear()
                    new, running = self._poll()
                    add(new)
                    next_poll = now + self._interval
                if not running and not live and not any(pending.values()):
                    break
            for source in sources.values():  # members without a packet are still named
                ifaces.ensure(source, out)
            if out:
                yield b"".join(out)
        finally:
            self._stop.set()

    def _drain(self, pending: dict[str, deque[_Item]], live: set[str], timeout: float) -> None:
        try:
            key, item = self._inbox.get(timeout=timeout)
        except queue.Empty:
            return
        while True:
            if item is None:
                live.discard(key)
            else:
                pending[key].append(item)
            try:
                key, item = self._inbox.get_nowait()
            except queue.Empty:
                return
