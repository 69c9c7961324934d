"""A capture's tcpdump from argv to "listening on": spawned in its own session, its banner
awaited, a failed start told apart (bad filter or anything else)."""

from __future__ import annotations

import subprocess
import time
from pathlib import Path

from podcap import limits
from podcap.capture.filters import compile_filter
from podcap.capture.signals import terminate
from podcap.capture.tcpdump_log import message
from podcap.errors import CaptureFailed


def start(argv: list[str], log_path: Path, netns_fd: int) -> subprocess.Popen[bytes]:
    """Spawn tcpdump in its own session (so its group can be signalled as one) with stderr in
    ``log_path``: the log outlives the agent, so statistics survive an agent restart."""
    with open(log_path, "ab") as log:
        try:
            return subprocess.Popen(
                argv, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=log,
                start_new_session=True, pass_fds=(netns_fd,), close_fds=True,
            )
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
    with open(log_path, "rb") as log:  # one open file: each try is a read of the new bytes
        text = b""
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
            time.sleep(limits.START_POLL_S)
