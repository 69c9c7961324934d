"""The network-state snapshot: what a capture's namespace looked like when the capture started.

Addresses, routes, neighbours (``ip -j``) and the TCP/UDP socket table (``ss``: Debian 12's
iproute2 6.1 has no JSON output for it, so its text is parsed) are read from *inside* the
namespace tcpdump captures in. The namespace is taken from tcpdump itself, not from the
workload: the agent opens ``/proc/<tcpdump pid>/ns/net`` and only then checks that its child
has not been reaped, so the fd is that tcpdump's namespace even if the pid were reused. The
commands run as ``nsenter --net=/proc/self/fd/N -- ip …`` (argv lists, host binaries, the fd
inherited), in a background thread, each with a timeout and an output cap: a snapshot never
delays nor fails a capture start. The result is ``netstate.json`` beside the capture's record,
deleted with it, and served as the capture's ``netstate`` document (docs/API.md has the shape).
"""

from __future__ import annotations

import json
import logging
import os
import re
import subprocess
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from podcap import limits
from podcap.capture.tcpdump import NSENTER
from podcap.errors import FailedPrecondition, NotFound
from podcap.model import Capture

log = logging.getLogger("podcap.agent")

IP = "/bin/ip"  # where Debian's iproute2 puts them (merged /usr or not)
SS = "/bin/ss"
FILE = "netstate.json"
VERSION = 1

Doc = dict[str, Any]


# ---- taking a snapshot -----------------------------------------------------------------------

class Snapshots:
    """Takes snapshots in the background and serves them as the ``netstate`` document.

    ``store_dir(cid)`` is the capture's directory; ``lock`` is the agent's, held while the file
    is written so a concurrent ``remove`` (which deletes the directory under the same lock)
    never leaves a stray file behind; ``exists(cid)`` says whether the capture is still kept.
    """

    def __init__(self, store_dir: Callable[[str], Path], lock: Any,
                 exists: Callable[[str], bool]) -> None:
        self._dir = store_dir
        self._lock = lock
        self._exists = exists
        self._pending: dict[str, threading.Event] = {}

    def take(self, cid: str, proc: subprocess.Popen[bytes] | None) -> None:
        """Start a snapshot of ``proc``'s network namespace; never raises."""
        if proc is None:
            return
        try:
            fd = os.open(f"/proc/{proc.pid}/ns/net", os.O_RDONLY | os.O_CLOEXEC)
        except OSError as exc:
            log.warning("capture %s: no network-state snapshot (tcpdump gone: %s)", cid, exc)
            return
        if proc.poll() is not None:  # reaped: the pid, and so the fd, may be another's
            os.close(fd)
            log.warning("capture %s: no network-state snapshot (tcpdump exited at once)", cid)
            return
        done = threading.Event()
        with self._lock:
            self._pending[cid] = done
        threading.Thread(target=self._run, args=(cid, fd, done), daemon=True,
                         name=f"podcap-netstate-{cid[:8]}").start()

    def _run(self, cid: str, fd: int, done: threading.Event) -> None:
        try:
            doc = snapshot(fd)
            with self._lock:
                if self._exists(cid):
                    save(self._dir(cid), doc)
        except Exception:  # a snapshot is a courtesy: the capture goes on without it
            log.exception("capture %s: network-state snapshot failed", cid)
        finally:
            os.close(fd)
            with self._lock:
                self._pending.pop(cid, None)
            done.set()

    def document(self, capture: Capture, params: dict[str, str]) -> Doc:
        """The ``netstate`` document; waits a little for a snapshot still being taken."""
        with self._lock:
            pending = self._pending.get(capture.id)
        if pending is not None and not pending.wait(limits.NETSTATE_COMMAND_TIMEOUT_S):
            raise FailedPrecondition(
                f"the network-state snapshot of capture {capture.id} is still being taken; "
                "try again in a few seconds")
        return load(self._dir(capture.id), capture.id)


def snapshot(netns_fd: int) -> Doc:
    """Run ``ip`` and ``ss`` in the namespace held by ``netns_fd``; a failed command is named
    in ``errors`` and leaves its section empty, the others are kept."""
    errors: list[str] = []
    counts: dict[str, int] = {}

    def run(args: list[str], what: str) -> str:
        try:
            return _run_in(netns_fd, args)
        except _CommandFailed as exc:
            errors.append(f"{what}: {exc}")
            return ""

    doc: Doc = {"version": VERSION, "taken_at": time.time(),
                "netns_inode": os.fstat(netns_fd).st_ino}
    doc["interfaces"] = _capped(counts, "interfaces", interfaces(
        _json(run([IP, "-j", "addr", "show"], "ip addr"), "ip addr", errors)))
    doc["routes"] = _capped(counts, "routes", [
        *routes(_json(run([IP, "-j", "-4", "route", "show"], "ip -4 route"), "ip -4 route",
                      errors), "inet"),
        *routes(_json(run([IP, "-j", "-6", "route", "show"], "ip -6 route"), "ip -6 route",
                      errors), "inet6")])
    doc["neighbours"] = _capped(counts, "neighbours", neighbours(
        _json(run([IP, "-j", "neigh", "show"], "ip neigh"), "ip neigh", errors)))
    doc["sockets"] = _capped(counts, "sockets", sockets(
        run([SS, "-t", "-u", "-a", "-n", "-p", "-H"], "ss")))
    doc["truncated"] = counts
    doc["errors"] = errors
    return doc


class _CommandFailed(Exception):
    pass


def _run_in(netns_fd: int, args: list[str]) -> str:
    """``nsenter --net=/proc/self/fd/N -- args``: at most ``NETSTATE_OUTPUT_MAX_BYTES`` read,
    killed after ``NETSTATE_COMMAND_TIMEOUT_S``."""
    argv = [NSENTER, f"--net=/proc/self/fd/{netns_fd}", "--", *args]
    cap = limits.NETSTATE_OUTPUT_MAX_BYTES
    try:
        proc = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                                stderr=subprocess.PIPE, pass_fds=(netns_fd,), close_fds=True)
    except OSError as exc:
        raise _CommandFailed(f"cannot run: {exc}") from exc
    timer = threading.Timer(limits.NETSTATE_COMMAND_TIMEOUT_S, proc.kill)
    timer.start()
    try:
        assert proc.stdout is not None and proc.stderr is not None
        out = proc.stdout.read(cap + 1)
        if len(out) > cap:
            proc.kill()
        err = proc.stderr.read(4096)
        code = proc.wait()
    finally:
        timer.cancel()
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        for stream in (proc.stdout, proc.stderr):
            if stream is not None:
                stream.close()
    if len(out) > cap:
        out = out[:out.rfind(b"\n", 0, cap) + 1]  # whole lines only (ss); ip's JSON fails below
    elif code != 0:
        text = err.decode(errors="replace").strip() or f"exit status {code}"
        raise _CommandFailed("timed out" if code == -9 else text[:300])
    return out.decode(errors="replace")


def _json(text: str, what: str, errors: list[str]) -> list[dict[str, Any]]:
    if not text.strip():
        return []
    try:
        value = json.loads(text)
    except ValueError:
        errors.append(f"{what}: output is not JSON (over "
                      f"{limits.NETSTATE_OUTPUT_MAX_BYTES} bytes?)")
        return []
    return [item for item in value if isinstance(item, dict)] if isinstance(value, list) else []


def _capped(counts: dict[str, int], section: str, rows: list[Doc]) -> list[Doc]:
    """At most NETSTATE_MAX_ROWS rows; ``truncated[section]`` says how many were left out."""
    if len(rows) > limits.NETSTATE_MAX_ROWS:
        counts[section] = len(rows) - limits.NETSTATE_MAX_ROWS
        return rows[:limits.NETSTATE_MAX_ROWS]
    return rows


# ---- parsing: iproute2's JSON into a small shape that does not change with its version --------

def interfaces(raw: list[dict[str, Any]]) -> list[Doc]:
    return [{
        "ifindex": link.get("ifindex"),
        "ifname": str(link.get("ifname", "")),
        "state": str(link.get("operstate", "")),
        "mtu": link.get("mtu"),
        "mac": link.get("address"),
        "flags": [str(f) for f in link.get("flags") or []],
        "addresses": [{"family": str(a.get("family", "")), "address": str(a.get("local", "")),
                       "prefixlen": a.get("prefixlen"), "scope": str(a.get("scope", ""))}
                      for a in link.get("addr_info") or [] if a.get("local")],
    } for link in raw]


def routes(raw: list[dict[str, Any]], family: str) -> list[Doc]:
    return [{"family": family, "dst": str(r.get("dst", "")), "gateway": r.get("gateway"),
             "dev": r.get("dev"), "protocol": r.get("protocol"), "scope": r.get("scope"),
             "prefsrc": r.get("prefsrc"), "metric": r.get("metric")} for r in raw]


def neighbours(raw: list[dict[str, Any]]) -> list[Doc]:
    return [{"address": str(n.get("dst", "")), "dev": n.get("dev"), "lladdr": n.get("lladdr"),
             "state": " ".join(str(s) for s in n.get("state") or [])} for n in raw]


_PROCESS = re.compile(r'\("((?:[^"\\]|\\.)*)",pid=(\d+),fd=(\d+)\)')


def sockets(text: str) -> list[Doc]:
    """``ss -tuanpH`` lines: ``Netid State Recv-Q Send-Q Local Peer [users:((…))]``."""
    found = []
    for line in text.splitlines():
        parts = line.split(None, 6)
        if len(parts) < 6:
            continue
        proto, state, recv_q, send_q, local, peer = parts[:6]
        procs = _PROCESS.findall(parts[6]) if len(parts) > 6 else []
        found.append({
            "proto": proto, "state": state, "local": local, "peer": peer,
            "recv_q": int(recv_q) if recv_q.isdigit() else None,
            "send_q": int(send_q) if send_q.isdigit() else None,
            "processes": [{"name": name, "pid": int(pid), "fd": int(fd)}
                          for name, pid, fd in procs],
        })
    return found


# ---- on disk -----------------------------------------------------------------------------

def save(capture_dir: Path, doc: Doc) -> None:
    """Atomically (temp file + rename), like the capture record."""
    if not capture_dir.is_dir():
        return  # removed meanwhile
    path = capture_dir / FILE
    tmp = path.with_suffix(".tmp")
    with open(tmp, "w") as fh:
        json.dump(doc, fh, separators=(",", ":"))
    os.replace(tmp, path)


def load(capture_dir: Path, cid: str) -> Doc:
    try:
        data = json.loads((capture_dir / FILE).read_text())
    except FileNotFoundError:
        raise NotFound(
            f"capture {cid} has no network-state snapshot: it was started by a podcap "
            "without snapshots, or taking it failed (the agent's log says why)") from None
    except (OSError, ValueError) as exc:
        raise NotFound(f"the network-state snapshot of capture {cid} is unreadable: {exc}"
                       ) from None
    if not isinstance(data, dict):
        raise NotFound(f"the network-state snapshot of capture {cid} is unreadable")
    return data


# ---- as text (CLI, pcapng comments) -------------------------------------------------------

def as_text(doc: Doc, max_rows: int = 50) -> str:
    """A few plain lines per section, for people: the CLI and pcapng comments use it."""
    when = time.strftime("%Y-%m-%d %H:%M:%S UTC", time.gmtime(float(doc.get("taken_at") or 0)))
    lines = [f"Network state at capture start ({when}, netns inode {doc.get('netns_inode')})"]

    def section(title: str, rows: list[str], key: str) -> None:
        more = int((doc.get("truncated") or {}).get(key, 0)) + max(0, len(rows) - max_rows)
        lines.append(f"{title}:" if rows else f"{title}: none")
        lines.extend(f"  {row}" for row in rows[:max_rows])
        if more:
            lines.append(f"  … and {more} more")

    section("Addresses", [address_line(i) for i in doc.get("interfaces") or []], "interfaces")
    section("Routes", [route_line(r) for r in doc.get("routes") or []], "routes")
    section("Neighbours", [neighbour_line(n) for n in doc.get("neighbours") or []],
            "neighbours")
    section("Sockets", [socket_line(s) for s in doc.get("sockets") or []], "sockets")
    for error in doc.get("errors") or []:
        lines.append(f"Error: {error}")
    return "\n".join(lines)


def address_line(i: Doc) -> str:
    addrs = " ".join(f"{a['address']}/{a['prefixlen']}" for a in i.get("addresses") or [])
    return f"{i.get('ifname')} {i.get('state')} {i.get('mac') or ''} {addrs}".replace("  ", " ")


def route_line(r: Doc) -> str:
    words = [str(r.get("dst"))]
    for key, label in (("gateway", "via"), ("dev", "dev"), ("prefsrc", "src"),
                       ("metric", "metric")):
        if r.get(key) is not None:
            words += [label, str(r[key])]
    return " ".join(words)


def neighbour_line(n: Doc) -> str:
    return " ".join(str(x) for x in (n.get("address"), "dev", n.get("dev"),
                                     n.get("lladdr") or "-", n.get("state")) if x)


def socket_line(s: Doc) -> str:
    procs = ",".join(f"{p['name']}[{p['pid']}]" for p in s.get("processes") or [])
    return f"{s.get('proto')} {s.get('state')} {s.get('local')} {s.get('peer')} {procs}".rstrip()
