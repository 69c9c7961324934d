"""Helpers for the recorder tests: a marker packet sent into a container, found again in a
snapshot; a recorder made and its members awaited."""

from __future__ import annotations

import secrets
import socket
import time
from pathlib import Path

import httpx

from tests.support import Server, read_pcap, wait_for


def marker(ip: str, text: str | None = None) -> bytes:
    """One UDP datagram to port 9 of ``ip`` (from the host: the container's tcpdump sees it
    arrive), carrying a text nothing else carries."""
    payload = (text or "podcap-marker-" + secrets.token_hex(8)).encode()
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        s.sendto(payload, (ip, 9))
    return payload


def holds(pcap: bytes, payload: bytes) -> bool:
    return any(payload in buf for _, buf in read_pcap(pcap)[1])


def create(c: httpx.Client, **body: object) -> dict:
    r = c.post("/api/recorders", json=body)
    assert r.status_code == 201, r.text
    return r.json()["recorder"]


def recorder(c: httpx.Client, rid: str) -> dict:
    r = c.get(f"/api/recorders/{rid}")
    assert r.status_code == 200, r.text
    return r.json()["recorder"]


def members(c: httpx.Client, rid: str, n: int, timeout: float = 20) -> list[dict]:
    """The members once ``n`` are recording with tcpdump listening (a packet counted)."""
    return wait_for(lambda: len(m := recorder(c, rid)["members"]) == n and m,
                    timeout=timeout, interval=0.2, what=f"{n} members recording")


def snapshot(server: Server, c: httpx.Client, cid: str, timeout: float = 15) -> dict:
    """The snapshot capture ``cid`` once stopped, with its pcap."""
    capture = wait_for(lambda: (x := c.get(f"/api/captures/{cid}").json().get("capture"))
                       and x["status"] == "stopped" and x, timeout=timeout, interval=0.1,
                       what=f"snapshot {cid}")
    return {**capture, "pcap": server.pcap(cid)}


def settle(seconds: float) -> None:
    time.sleep(seconds)


def tcpdump_of(capture_id: str) -> int:
    """The pid of the tcpdump writing capture ``capture_id`` (its -w path names it)."""
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            if (entry / "comm").read_text().strip() == "tcpdump" and \
                    capture_id in (entry / "cmdline").read_bytes().decode(errors="replace"):
                return int(entry.name)
        except OSError:
            continue
    raise AssertionError(f"no tcpdump for capture {capture_id}")
