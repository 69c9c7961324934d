"""The "summary" document: what a capture's files hold, merged from the per-file cache.

A request looks at the ring, starts the low-priority worker when a file is new or has grown
(one per capture at a time), waits for it at most ``limits.INSIGHT_WAIT_S`` and answers with
what the cache holds then: ``pending`` says how many files were not yet (fully) read, so a
client polls until it is 0. A big capture is therefore never a slow request, and the agent's
own process never runs the packet loop.

Ring wrap: tcpdump -W reuses ``capture.pcap0..N-1``. The summary says ``wrapped`` (and why)
when the oldest file is not ring index 0 (file 0 has been overwritten), or, once the capture
stopped, when tcpdump counted more packets than the files hold. Then the timeline starts at
the oldest packet kept, not at the capture's start.
"""

from __future__ import annotations

import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Protocol

from podcap import limits
from podcap.capture import tcpdump
from podcap.errors import InvalidArgument
from podcap.insight import cache, names
from podcap.insight.partial import Partial, ntop
from podcap.model import Capture, Status
from podcap.pcap import ring
from podcap.pcap.format import GLOBAL_HEADER


class CaptureDirs(Protocol):
    """Where a capture's files lie: the agent's store satisfies it. insight/ is below the
    agent, so it names only what it reads, never the agent's own class."""

    def dir(self, cid: str) -> Path: ...

    def files_dir(self, cid: str) -> Path: ...


class Insight:
    """The summary provider of one agent (``Agent.documents["summary"]``)."""

    def __init__(self, store: CaptureDirs) -> None:
        self.store = store
        self._lock = threading.Lock()
        self._workers: dict[str, subprocess.Popen[bytes]] = {}

    def summary(self, capture: Capture, params: dict[str, str]) -> dict[str, object]:
        top = _int_param(params, "top", limits.INSIGHT_TOP_DEFAULT, 1,
                         limits.INSIGHT_CONVERSATIONS_MAX)
        wait = _float_param(params, "wait", limits.INSIGHT_WAIT_S, 0.0, limits.INSIGHT_WAIT_S)
        files_dir = self.store.files_dir(capture.id)
        cache_dir = cache.cache_dir(self.store.dir(capture.id))
        if self._stale(files_dir, cache_dir):
            self.refresh(capture.id, files_dir, cache_dir, wait)
        return build(capture, files_dir, cache_dir, top)

    def refresh(self, cid: str, files_dir: Path, cache_dir: Path, wait: float) -> None:
        """Start the worker unless one runs for this capture; wait for it at most ``wait``."""
        with self._lock:
            for other, done in list(self._workers.items()):
                if done.poll() is not None:
                    del self._workers[other]  # reaped
            proc = self._workers.get(cid)
            if proc is None:
                proc = subprocess.Popen(
                    [sys.executable, "-m", "podcap.insight.worker", str(files_dir),
                     str(cache_dir)],
                    stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                    stderr=subprocess.DEVNULL, close_fds=True)
                self._workers[cid] = proc
                # reaped as soon as it ends, whether or not anyone asks again
                threading.Thread(target=proc.wait, name="podcap-insight-reap",
                                 daemon=True).start()
        try:
            proc.wait(timeout=wait)
        except subprocess.TimeoutExpired:
            pass  # answered with what is cached; the worker goes on

    def keep_current(self, cid: str) -> None:
        """Called each second for a running capture (``Agent._refresh_live``): once someone has
        asked for its summary (its cache exists), a file tcpdump has finished (a rotation) is
        read at once, in the background, so a later request finds it read. Captures nobody
        looks at cost nothing."""
        files_dir = self.store.files_dir(cid)
        cache_dir = cache.cache_dir(self.store.dir(cid))
        if not cache_dir.is_dir():
            return
        with self._lock:
            busy = self._workers.get(cid)
            if busy is not None and busy.poll() is None:
                return
        finished = ring.ring_files(files_dir, tcpdump.RING_PREFIX)[:-1]
        if any(_pending(path, cache_dir) for path in finished):
            self.refresh(cid, files_dir, cache_dir, wait=0.0)

    def close(self) -> None:
        with self._lock:
            for proc in self._workers.values():
                if proc.poll() is None:
                    proc.kill()
                    proc.wait()
            self._workers.clear()

    @staticmethod
    def _stale(files_dir: Path, cache_dir: Path) -> bool:
        return any(_pending(path, cache_dir)
                   for path in ring.ring_files(files_dir, tcpdump.RING_PREFIX))


def _pending(path: Path, cache_dir: Path) -> bool:
    try:
        stat = path.stat()
    except OSError:
        return False
    if stat.st_size <= GLOBAL_HEADER:
        return False  # nothing to read yet
    entry = cache.load(cache_dir, path)
    return entry is None or not entry.current(stat)


def build(capture: Capture, files_dir: Path, cache_dir: Path,
          top: int = limits.INSIGHT_TOP_DEFAULT) -> dict[str, object]:
    """Merge the cached partials (ring order) into the document."""
    paths = ring.ring_files(files_dir, tcpdump.RING_PREFIX)
    total = Partial()
    pending = 0
    for path in paths:
        if _pending(path, cache_dir):
            pending += 1
        entry = cache.load(cache_dir, path)
        if entry is not None:
            total.merge(entry.partial)
    wrapped, why = _wrap(capture, paths, total, pending)
    convs = sorted(total.conversations.items(), key=lambda kv: -(kv[1][1] + kv[1][3]))
    return {
        "capture_id": capture.id,
        "status": str(capture.status),
        "complete": capture.status is not Status.RUNNING and pending == 0,
        "pending": pending,
        "files": len(paths),
        "computed_at": time.time(),
        "capture_start": capture.start_time,
        "packets": total.packets,
        "bytes": total.bytes,
        "first": total.first,
        "last": total.last,
        "wrapped": wrapped,
        "wrapped_reason": why,
        "conversations_total": len(total.conversations),
        "conversations": [_conversation(key, row) for key, row in convs[:top]],
        "untracked": {"packets": total.untracked_packets, "bytes": total.untracked_bytes},
        "protocols": _protocols(total),
        "dns": [{"name": name, "queries": q, "responses": r}
                for name, (q, r) in sorted(total.dns.items(), key=lambda kv: -sum(kv[1]))[:top]],
        "tls": [{"name": name, "hellos": n}
                for name, n in sorted(total.tls.items(), key=lambda kv: -kv[1])[:top]],
        "timeline": {"step": total.step,
                     "points": [[sec, p, b] for sec, (p, b) in sorted(total.timeline.items())]},
        "limits": {"conversations": limits.INSIGHT_CONVERSATIONS_MAX,
                   "names": limits.INSIGHT_NAMES_MAX},
    }


def _wrap(capture: Capture, paths: list[Path], total: Partial,
          pending: int) -> tuple[bool, str]:
    if paths and _index(paths[0]) != 0:
        return True, (f"the ring wrapped: its oldest file is {paths[0].name}, so packets from "
                      "the capture's start were overwritten")
    if (capture.status is not Status.RUNNING and pending == 0
            and capture.stats.captured > total.packets):
        return True, (f"the ring wrapped: tcpdump captured {capture.stats.captured} packets, "
                      f"the files hold {total.packets}")
    return False, ""


def _index(path: Path) -> int:
    digits = path.name[len(tcpdump.RING_PREFIX):]
    return int(digits) if digits.isdecimal() else 0


def _conversation(key: tuple[int, bytes, int, bytes, int], row: list[float]) -> dict[str, object]:
    proto, a, ap, b, bp = key
    ported = proto in (6, 17)
    return {"proto": names.ip_protocol(proto), "a": ntop(a), "a_port": ap if ported else None,
            "b": ntop(b), "b_port": bp if ported else None,
            "packets": int(row[0] + row[2]), "bytes": int(row[1] + row[3]),
            "packets_ab": int(row[0]), "bytes_ab": int(row[1]),
            "packets_ba": int(row[2]), "bytes_ba": int(row[3]),
            "first": row[4], "last": row[5]}


def _protocols(total: Partial) -> dict[str, object]:
    def rows(counts: dict, label: object) -> list[dict[str, object]]:
        return [{**label(k), "packets": v[0], "bytes": v[1]}  # type: ignore[operator]
                for k, v in sorted(counts.items(), key=lambda kv: -kv[1][1])]
    return {
        "link": rows(total.links, lambda k: {"name": names.ethertype(k), "ethertype": k}),
        "ip": rows(total.ip_protocols, lambda k: {"name": names.ip_protocol(k), "number": k}),
        "ports": rows(total.services, lambda k: {"proto": names.ip_protocol(k[0]), "port": k[1],
                                                 "name": names.port(k[1])}),
    }


def _int_param(params: dict[str, str], name: str, default: int, low: int, high: int) -> int:
    text = params.get(name)
    if text is None or text == "":
        return default
    try:
        value = int(text)
    except ValueError:
        value = low - 1
    if not low <= value <= high:
        raise InvalidArgument(f"{name} must be a whole number from {low} to {high}")
    return value


def _float_param(params: dict[str, str], name: str, default: float, low: float,
                 high: float) -> float:
    text = params.get(name)
    if text is None or text == "":
        return default
    try:
        value = float(text)
    except ValueError:
        value = low - 1
    if not low <= value <= high:
        raise InvalidArgument(f"{name} must be a number of seconds from {low:g} to {high:g}")
    return value
