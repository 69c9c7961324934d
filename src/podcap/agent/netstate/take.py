"""Taking a network-state snapshot: ``ip -j`` and ``ss`` run inside tcpdump's own namespace,
in the background, each with a timeout and an output cap, so it never delays nor fails a start.

The namespace is taken from tcpdump itself, not from the workload: ``/proc/<tcpdump pid>/ns/net``
is opened and only then is the child checked not yet reaped, so the fd is that tcpdump's
namespace even if the pid were reused. The commands are spawned straight into that namespace
(capture/netns.py: argv lists, host binaries, no ``nsenter`` exec in front of each).
"""

from __future__ import annotations

import json
import logging
import os
import subprocess
import threading
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

from podcap import limits
from podcap.agent.netstate.disk import load, save
from podcap.agent.netstate.parse import Doc, interfaces, neighbours, routes, sockets
from podcap.capture.netns import spawn_in
from podcap.errors import FailedPrecondition
from podcap.model import Capture

log = logging.getLogger("podcap.agent")

IP = "/bin/ip"  # where Debian's iproute2 puts them (merged /usr or not)
SS = "/bin/ss"
VERSION = 1


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
        self._workers = ThreadPoolExecutor(limits.NETSTATE_WORKERS,
                                           thread_name_prefix="podcap-netstate")

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
        try:
            self._workers.submit(self._run, cid, fd, done)
        except RuntimeError:  # the agent is closing: no snapshot
            os.close(fd)
            with self._lock:
                self._pending.pop(cid, None)
            done.set()

    def close(self) -> None:
        """Snapshots under way finish on their own (each command has its timeout)."""
        self._workers.shutdown(wait=False, cancel_futures=True)

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
    """``args`` run in the namespace of ``netns_fd``: at most ``NETSTATE_OUTPUT_MAX_BYTES``
    read, killed after ``NETSTATE_COMMAND_TIMEOUT_S``."""
    cap = limits.NETSTATE_OUTPUT_MAX_BYTES
    try:
        proc = spawn_in(netns_fd, args, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                        stderr=subprocess.PIPE, close_fds=True)
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
