"""A capture's tcpdump from argv to "listening on": the one way the agent starts one.

The agent hands a ``TcpdumpRun`` the spec and the capture's paths; the run builds the argv
(capture/command.py), spawns tcpdump straight into the container's network namespace by an open
fd (capture/netns.py: no ``nsenter`` exec) and waits for its banner. Nothing here calls back
into the agent: between ``spawn`` and ``wait_listening`` the agent writes its record (tcpdump
takes ~15 ms to listen).
"""

from __future__ import annotations

import os
import subprocess
import time
from collections.abc import Callable
from pathlib import Path

from podcap import limits
from podcap.capture import priority
from podcap.capture.command import tcpdump_args
from podcap.capture.filters import compile_filter
from podcap.capture.logwatch import LogWatch
from podcap.capture.netns import NamespaceError, spawn_in
from podcap.capture.signals import terminate
from podcap.capture.tcpdump_log import message
from podcap.errors import CaptureFailed, FailedPrecondition
from podcap.model import CaptureSpec


class TcpdumpRun:
    """One capture's tcpdump while it starts. ``args`` is its argv without the binary, as the
    capture's record shows it; ``popen`` is set by ``spawn``."""

    def __init__(self, spec: CaptureSpec, files_dir: Path, log_path: Path,
                 nice: int = 0) -> None:
        self.spec = spec
        self.nice = nice  # its CPU priority (capture/priority.py), given before it listens
        self.files_dir = files_dir
        self.log_path = log_path
        self.args = tcpdump_args(spec, files_dir)[1:]
        self.popen: subprocess.Popen[bytes] | None = None

    def spawn(self, pid: int, same_process: Callable[[], bool], name: str,
              ) -> subprocess.Popen[bytes]:
        """Start tcpdump in the network namespace of ``pid`` (the container's process, named
        ``name`` in errors). ``same_process`` says whether ``pid`` is still that process: asked
        once the namespace fd is open, so the fd is known to be the container's. Holding the
        fd, not a /proc/<pid> path, means a pid reused between our check and the spawn can
        never send tcpdump into another workload's namespace."""
        try:
            netns_fd = os.open(f"/proc/{pid}/ns/net", os.O_RDONLY | os.O_CLOEXEC)
        except OSError as exc:
            raise FailedPrecondition(
                f"Unable to capture the container traffic: {name} exited") from exc
        try:
            if not same_process():
                raise FailedPrecondition(
                    f"Unable to capture the container traffic: {name} exited")
            argv = tcpdump_args(self.spec, self.files_dir)
            self.popen = start(argv, self.log_path, netns_fd)
            priority.apply(self.popen.pid, self.nice)
        finally:
            os.close(netns_fd)
        return self.popen

    def wait_listening(self, empty_pcap: Path) -> None:
        """Return once tcpdump listens; on a failure (a bad filter: ``InvalidArgument``) the
        caller ``abandon``s the run."""
        assert self.popen is not None, "spawn first"
        wait_listening(self.popen, self.log_path, expression=self.spec.filter,
                       empty_pcap=empty_pcap)

    def abandon(self, grace: float = 0.5) -> None:
        """Never leave a tcpdump behind a failed start (or a capture stopped while it
        started: the agent gives that one the stop's grace). Gone when this returns: a
        tcpdump still booting may outlast the grace (a loaded full run: SIGKILL was sent and
        the start refused while it still ran), so the SIGKILL is waited for, and reaped."""
        popen = self.popen
        if popen is None:
            return
        if popen.poll() is None:
            terminate(popen.pid, grace=grace, alive=lambda: popen.poll() is None)
        try:
            popen.wait(timeout=limits.STOP_GRACE_S)
        except subprocess.TimeoutExpired:  # unkillable for now (a D state): reaped later
            pass


def start(argv: list[str], log_path: Path, netns_fd: int) -> subprocess.Popen[bytes]:
    """Spawn tcpdump in the network namespace of ``netns_fd``, in its own session (so its
    group can be signalled as one) with stderr in ``log_path``: the log outlives the agent, so
    statistics survive an agent restart. The fd is not passed on: tcpdump needs none of ours."""
    with open(log_path, "ab") as log:
        try:
            return spawn_in(netns_fd, argv, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                            stderr=log, start_new_session=True, close_fds=True)
        except NamespaceError as exc:
            raise CaptureFailed(
                f"cannot enter the container's network namespace: {exc.strerror}") from exc
        except OSError as exc:
            raise CaptureFailed(f"cannot run tcpdump: {exc}") from exc


def wait_listening(proc: subprocess.Popen[bytes], log_path: Path,
                   timeout: float = limits.START_TIMEOUT_S, expression: str = "",
                   empty_pcap: Path | None = None) -> None:
    """Return once tcpdump says "listening on"; raise when it exits first or stays silent past
    ``timeout``.

    The capture's own tcpdump is the filter's only compiler on the start path: it compiles the
    filter before it opens any file and exits with the compiler's message when it fails. Only
    then, off the fast path, ``tcpdump -d`` tells a bad filter (``InvalidArgument``, the same
    message ``check_filter`` gives) from any other failure (``CaptureFailed``)."""
    deadline = time.monotonic() + timeout
    # The watch first, then the reads: a write between the two still wakes us.
    with LogWatch(log_path) as changes, open(log_path, "rb") as log:
        text = b""  # one open file: each try is a read of the new bytes
        while True:
            text += log.read()
            if b"listening on" in text:
                return
            if proc.poll() is not None:
                text += log.read()
                said = message(text)
                if expression.strip() and empty_pcap is not None:
                    compile_filter(expression, empty_pcap)  # raises InvalidArgument if bad
                raise CaptureFailed(f"tcpdump failed to start: {said}")
            if time.monotonic() > deadline:
                terminate(proc.pid, grace=0.5)
                proc.poll()
                raise CaptureFailed(f"tcpdump did not start listening within {timeout:.0f} s")
            changes.wait()
