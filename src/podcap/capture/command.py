"""What tcpdump is told: the command line (argv) of a capture, built from its spec.

No shell anywhere: tcpdump gets an argv list and the user's filter is one argument after
``--``, so a filter that looks like an option can never become one.
"""

from __future__ import annotations

from pathlib import Path

from podcap.capture.tcpdump import RING_PREFIX, TCPDUMP
from podcap.model import CaptureSpec


def tcpdump_args(spec: CaptureSpec, files_dir: Path) -> list[str]:
    """The whole argv, tcpdump first: it is exec'd as it is, already inside the container's
    network namespace (capture/netns.py), so nothing stands between the agent and tcpdump.

    No ``-U``: a write(2) per packet costs tcpdump CPU exactly when it is short of it
    (BENCHMARKS.md: drops in 6 of 19 saturated runs with it, 1 of 19 without). Files lag by a
    stdio buffer at most; downloads of a running capture cut at whole records anyway, and a
    stop flushes everything."""
    argv = [TCPDUMP, "-i", "any", "-n", "-Z", "root",
            "-B", str(spec.buffer_kib),
            "-C", str(spec.file_size_mb), "-W", str(spec.file_number),
            "-w", str(files_dir / RING_PREFIX)]
    if spec.snaplen:
        argv[1:1] = ["-s", str(spec.snaplen)]
    if spec.filter.strip():
        argv += ["--", spec.filter]
    return argv
