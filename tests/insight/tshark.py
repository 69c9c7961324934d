"""tshark as the reference: conversation tables, packet counts, DNS and TLS names."""

from __future__ import annotations

import subprocess
from pathlib import Path

# (proto, (addr, port), (addr, port)) with the two ends sorted -> [frames, bytes] per direction
Conv = dict[tuple[str, tuple[str, int], tuple[str, int]], dict[str, int]]

_UNITS = {"bytes": 1, "kB": 1000, "MB": 1000_000}


def run(*args: str) -> str:
    return subprocess.run(["tshark", *args], capture_output=True, text=True, check=True,
                          timeout=120).stdout


def conversations(pcap: Path, proto: str) -> Conv:
    """``tshark -q -z conv,tcp`` (or udp) as {ends: {frames, bytes, frames_ab, ...}}.
    Rows of one address/port pair (tshark splits a reused port pair) are added together."""
    out = run("-r", str(pcap), "-q", "-z", f"conv,{proto}")
    table: Conv = {}
    for line in out.splitlines():
        if "<->" not in line:
            continue
        left, right = line.split("<->")
        a = _end(left.strip())
        tokens = right.split()
        b = _end(tokens[0])
        nums = tokens[1:]
        ba_frames, ba_bytes = int(nums[0]), _size(nums[1], nums[2])
        ab_frames, ab_bytes = int(nums[3]), _size(nums[4], nums[5])
        if b < a:
            a, b = b, a
            ab_frames, ba_frames, ab_bytes, ba_bytes = ba_frames, ab_frames, ba_bytes, ab_bytes
        row = table.setdefault((proto, a, b), {"frames_ab": 0, "bytes_ab": 0, "frames_ba": 0,
                                               "bytes_ba": 0, "exact": 1})
        row["frames_ab"] += ab_frames
        row["frames_ba"] += ba_frames
        row["bytes_ab"] += ab_bytes
        row["bytes_ba"] += ba_bytes
        row["exact"] &= int(nums[2] == "bytes" and nums[5] == "bytes")
    return table


def _end(text: str) -> tuple[str, int]:
    addr, port = text.rsplit(":", 1)
    return addr, int(port)


def _size(value: str, unit: str) -> int:
    return int(float(value) * _UNITS[unit])


def count(pcap: Path, display_filter: str = "") -> int:
    args = ["-r", str(pcap), "-T", "fields", "-e", "frame.number"]
    if display_filter:
        args += ["-Y", display_filter]
    return len(run(*args).split())


def dns_names(pcap: Path) -> set[str]:
    out = run("-r", str(pcap), "-Y", "dns", "-T", "fields", "-e", "dns.qry.name")
    return {name for line in out.splitlines() for name in line.split(",") if name}


def tls_names(pcap: Path) -> set[str]:
    out = run("-r", str(pcap), "-Y", "tls.handshake.type == 1", "-T", "fields", "-e",
              "tls.handshake.extensions_server_name")
    return {line.strip() for line in out.splitlines() if line.strip()}
