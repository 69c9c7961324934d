"""What tcpdump is told: the command line (argv) of a capture, built from its spec.

No shell anywhere: tcpdump gets an argv list and the user's filter is one argument after
``--``, so a filter that looks like an option can never become one.
"""

from __future__ import annotations

from pathlib import Path

from podcap.capture.tcpdump import RING_PREFIX, TCPDUMP
from podcap.model import CaptureSpec

# Frames a bridge floods to every port because it does not know their destination MAC yet (an
# unknown unicast: a container that just started, an expired forwarding entry) reach this
# container's interface too, addressed to another MAC: PACKET_OTHERHOST, byte 10 of the
# LINUX_SLL2 header that ``-i any`` captures with. They are other workloads' traffic, of any
# namespace; a capture of this container never holds them. libpcap turns the test into the
# kernel's SKF_AD_PKTTYPE, so they are refused in the kernel, before any copy.
NOT_OTHERHOST = "link[10] != 3"


def capture_filter(user_filter: str) -> str:
    """What tcpdump is given: the user's filter (in parentheses, whatever its ``or``s), and
    never frames addressed to another host."""
    return f"{NOT_OTHERHOST} and ({user_filter})" if user_filter.strip() else NOT_OTHERHOST


def tcpdump_args(spec: CaptureSpec, files_dir: Path) -> list[str]:
    """The whole argv, tcpdump first: it is exec'd as it is, already inside the container's
    network namespace (capture/netns.py), so nothing stands between the agent and tcpdump.

    No ``-U``: a write(2) per packet costs tcpdump CPU exactly when it is short of it
    (BENCHMARKS.md: drops in 6 of 19 saturated runs with it, 1 of 19 without). Files lag by a
    stdio buffer at most; downloads of a running capture cut at whole records anyway, and a
    stop flushes everything. The filter is ``capture_filter``'s: frames flooded to this
    interface for another host are refused in the kernel."""
    argv = [TCPDUMP, "-i", "any", "-n", "-Z", "root",
            "-B", str(spec.buffer_kib),
            "-C", str(spec.file_size_mb), "-W", str(spec.file_number),
            "-w", str(files_dir / RING_PREFIX)]
    if spec.snaplen:
        argv[1:1] = ["-s", str(spec.snaplen)]
    return argv + ["--", capture_filter(spec.filter)]
