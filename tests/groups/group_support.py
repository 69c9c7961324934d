"""Helpers for the capture-group tests: labelled "pods" on Docker, and read-back of a pcapng
through tshark, tcpdump and a block walker written apart from podcap's writer."""

from __future__ import annotations

import contextlib
import secrets
import struct
import subprocess
from dataclasses import dataclass, field
from pathlib import Path

import docker

from tests.support import container_ip, docker_client, run_container, unique

POD_NAME = "io.kubernetes.pod.name"
POD_NAMESPACE = "io.kubernetes.pod.namespace"
CONTAINER_NAME = "io.kubernetes.container.name"


def tag() -> str:
    """A label value unique to one test: other suites share the Docker engine."""
    return "g" + secrets.token_hex(4)


def pod(prefix: str, labels: dict[str, str], namespace: str = "", command: list[str] | None = None,
        **kwargs: object):
    """A busybox container posing as one container of a pod: Docker labels carry the pod's
    labels, and (the server trusting them) its namespace and pod name."""
    name = unique(prefix)
    labels = dict(labels)
    if namespace:
        labels.update({POD_NAMESPACE: namespace, POD_NAME: name + "-pod",
                       CONTAINER_NAME: prefix})
    return run_named(name, command or ["httpd", "-f", "-p", "80", "-h", "/www"],
                     labels=labels, **kwargs)


def run_named(name: str, command: list[str], **kwargs: object):
    """``run_container``, removing the container by its name when it was created but did not
    start (the engine refused to start it): nothing is left behind."""
    try:
        return run_container(name, command, **kwargs)
    except docker.errors.APIError:
        with contextlib.suppress(docker.errors.NotFound):
            docker_client().containers.get(name).remove(force=True)
        raise


def client_of(prefix: str, ips: list[str], labels: dict[str, str] | None = None):
    """A container fetching from each address five times a second."""
    loop = "; ".join(f"wget -q -O /dev/null http://{ip}/" for ip in ips)
    return run_named(unique(prefix), ["sh", "-c", f"while true; do {loop}; sleep 0.2; done"],
                     labels=labels or {})


def ip_of(container) -> str:
    return container_ip(container)


def tshark_fields(path: Path, *fields: str, display_filter: str = "") -> list[list[str]]:
    argv = ["tshark", "-r", str(path), "-T", "fields", "-E", "separator=\t"]
    for f in fields:
        argv += ["-e", f]
    if display_filter:
        argv += ["-Y", display_filter]
    done = subprocess.run(argv, capture_output=True, text=True, timeout=120, check=True)
    return [line.split("\t") for line in done.stdout.splitlines()]


def tcpdump_count(path: Path) -> int:
    done = subprocess.run(["tcpdump", "-n", "-r", str(path)], capture_output=True, text=True,
                          timeout=120)
    assert done.returncode == 0, done.stderr
    return len(done.stdout.splitlines())


@dataclass
class Blocks:
    """What a pcapng holds, in file order: ("shb"|"idb"|"epb", details)."""

    order: list[tuple[str, dict]] = field(default_factory=list)

    @property
    def shb_comments(self) -> list[str]:
        return self.order[0][1]["comments"]

    @property
    def interfaces(self) -> list[dict]:
        return [d for kind, d in self.order if kind == "idb"]


def walk(path: Path) -> Blocks:
    """Every block with its options, checking lengths and 32-bit padding on the way."""
    data = path.read_bytes()
    found = Blocks()
    pos = 0
    while pos < len(data):
        kind, length = struct.unpack_from("<II", data, pos)
        assert length % 4 == 0 and length >= 12, f"bad block length {length} at {pos}"
        assert struct.unpack_from("<I", data, pos + length - 4)[0] == length
        body = data[pos + 8:pos + length - 4]
        if kind == 0x0A0D0D0A:
            assert struct.unpack_from("<I", body)[0] == 0x1A2B3C4D
            found.order.append(("shb", {"comments": _comments(body[16:])}))
        elif kind == 1:
            linktype, _, snaplen = struct.unpack_from("<HHI", body)
            opts = _options(body[8:])
            found.order.append(("idb", {
                "linktype": linktype, "snaplen": snaplen,
                "name": opts.get(2, [b""])[0].decode(),
                "description": opts.get(3, [b""])[0].decode(),
                "tsresol": opts.get(9, [b"\x06"])[0][0],
                "comments": [c.decode() for c in opts.get(1, [])]}))
        elif kind == 5:
            found.order.append(("isb", {"iface": struct.unpack_from("<I", body)[0]}))
        elif kind == 6:
            iface, hi, lo, caplen, _ = struct.unpack_from("<IIIII", body)
            opts = _options(body[20 + caplen + (-caplen % 4):])
            flags = opts.get(2)
            found.order.append(("epb", {"iface": iface, "ts": (hi << 32) | lo,
                                        "caplen": caplen, "data": body[20:20 + caplen],
                                        "flags": struct.unpack("<I", flags[0])[0]
                                        if flags else None}))
        elif kind == 4:
            found.order.append(("nrb", {"names": _nrb_records(body)}))
        pos += length
    return found


def _options(raw: bytes) -> dict[int, list[bytes]]:
    opts: dict[int, list[bytes]] = {}
    pos = 0
    while pos + 4 <= len(raw):
        code, length = struct.unpack_from("<HH", raw, pos)
        if code == 0:
            break
        opts.setdefault(code, []).append(raw[pos + 4:pos + 4 + length])
        pos += 4 + length + (-length % 4)
    return opts


def _nrb_records(body: bytes) -> list[tuple[str, str]]:
    """(address, name) of each IPv4/IPv6 record, read apart from podcap's writer."""
    import ipaddress
    found = []
    pos = 0
    while pos + 4 <= len(body):
        kind, length = struct.unpack_from("<HH", body, pos)
        if kind == 0:
            break
        value = body[pos + 4:pos + 4 + length]
        size = 4 if kind == 1 else 16
        found.append((str(ipaddress.ip_address(value[:size])),
                      value[size:].split(b"\x00")[0].decode()))
        pos += 4 + length + (-length % 4)
    return found


def _comments(raw: bytes) -> list[str]:
    return [c.decode() for c in _options(raw).get(1, [])]
