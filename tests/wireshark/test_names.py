"""Wireshark knows the pods (issue 22), with the real tshark 4.0 and its Lua, tcpdump, Docker.

One scenario for the module: "pods" a (httpd) and b (fetching from a five times a second) in one
namespace, captured as a group; a is labelled as the backend of Service "websvc" whose cluster
IP (a TEST-NET-1 address nobody answers) b also tries. While a's own capture is followed as
pcapng, b is replaced by a pod of the same name with a new address (b2, started before b goes).
Then the group stops and its merged pcapng, a's pcapng download and a's plain pcap are fetched
and read back.
"""

from __future__ import annotations

import secrets
import subprocess
import threading
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest

from podcap.pcap.names import addresses
from tests.groups.group_support import (
    CONTAINER_NAME,
    POD_NAME,
    POD_NAMESPACE,
    Blocks,
    ip_of,
    pod,
    run_named,
    tag,
    tcpdump_count,
    tshark_fields,
    walk,
)
from tests.support import (
    PODCAP,
    ROOT,
    Server,
    netns_addresses,
    remove_container,
    unique,
    wait_for,
)

LUA = ROOT / "src" / "podcap" / "wireshark" / "podcap.lua"


@dataclass
class Scene:
    ns: str
    ips: dict[str, str]  # a, b, b2, svc -> address
    names: dict[str, str]  # a, b -> the name podcap gives (b2 is b's pod: b's name)
    pods: dict[str, str]  # a, b -> pod name
    captures: dict[str, str]  # a, b -> member capture id
    group: Path
    followed: Path
    group_followed: Path
    single: Path
    plain: tuple[bytes, bytes]  # a's pcap from /api and from NeuVector's /v1 multipart
    ring: bytes  # a's ring file as tcpdump wrote it


def _loop(ip: str, service: str = "") -> list[str]:
    tries = (f"(while true; do nc -w 1 {service} 80 </dev/null; done) & "
             if service else "")
    return ["sh", "-c", tries + f"while true; do wget -q -O /dev/null http://{ip}/; "
            "sleep 0.2; done"]


def _save(c: httpx.Client, url: str, path: Path, **params: str) -> None:
    with c.stream("GET", url, params=params) as r:
        assert r.status_code == 200, r.read()
        with path.open("wb") as f:
            for chunk in r.iter_bytes():
                f.write(chunk)


def _follow(server: Server, url: str, path: Path, **params: str) -> threading.Thread:
    """A follower saving ``url`` into ``path``; returns once the stream has begun."""
    client = httpx.Client(base_url=server.url, timeout=httpx.Timeout(30, read=60),
                          headers={"X-Auth-Token": server.token})
    follower = threading.Thread(target=_save, args=(client, url, path),
                                kwargs={"follow": "true", **params}, daemon=True)
    follower.start()
    wait_for(lambda: path.exists() and path.stat().st_size > 0, timeout=10,
             what="the follow to begin")
    return follower


def _packets_of(c: httpx.Client, cid: str) -> int:
    return c.get(f"/api/captures/{cid}").json()["capture"]["stats"]["captured"]


@pytest.fixture(scope="module")
def scene(wserver: Server, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Scene]:
    t = tag()
    ns, label = f"ws-{t}", f"ws-{t}"
    folder = tmp_path_factory.mktemp("names")
    made = []
    try:
        svc = f"192.0.2.{secrets.randbelow(250) + 2}"
        a = pod("wsa", {"app": label, "service.podcap.io/websvc": svc}, ns)
        made.append(a)
        ips = {"a": ip_of(a), "svc": svc}
        b = pod("wsb", {"app": label}, ns, _loop(ips["a"], svc))
        made.append(b)
        ips["b"] = ip_of(b)
        pods = {"a": a.name + "-pod", "b": b.name + "-pod"}
        names = {k: f"{v}.{ns}" for k, v in pods.items()}
        with wserver.client() as c:
            r = c.post("/api/capture-groups", json={"labels": f"app={label}"})
            assert r.status_code == 201, r.text
            gid = r.json()["group"]["id"]
            members = r.json()["group"]["members"]
            captures = {("a" if m["workload_name"] == a.name else "b"): m["capture_id"]
                        for m in members}
            assert len(captures) == 2, members
            wait_for(lambda: min(_packets_of(c, cid) for cid in captures.values()) >= 10,
                     timeout=20, interval=0.3, what="packets on both members")
            followed = folder / "followed.pcapng"  # a's capture, and the group, followed
            group_followed = folder / "group-followed.pcapng"
            followers = [_follow(wserver, f"/api/captures/{captures['a']}/pcap", followed,
                                 format="pcapng"),
                         _follow(wserver, f"/api/capture-groups/{gid}/pcapng", group_followed)]
            # b's pod replaced: same pod, a new address (b2 starts before b goes)
            b2 = run_named(unique("wsb2"), _loop(ips["a"]), labels={
                POD_NAMESPACE: ns, POD_NAME: pods["b"], CONTAINER_NAME: "wsb"})
            made.append(b2)
            ips["b2"] = ip_of(b2)
            remove_container(b)
            before = _packets_of(c, captures["a"])
            wait_for(lambda: _packets_of(c, captures["a"]) >= before + 20, timeout=20,
                     interval=0.3, what="b2's packets at a")
            r = c.post(f"/api/capture-groups/{gid}/stop")
            assert r.status_code == 200, r.text
            for follower in followers:
                follower.join(30)
                assert not follower.is_alive()
            group = folder / "group.pcapng"
            _save(c, f"/api/capture-groups/{gid}/pcapng", group)
            single = folder / "a.pcapng"
            _save(c, f"/api/captures/{captures['a']}/pcap", single, format="pcapng")
            plain = wserver.pcap(captures["a"]), wserver.v1_pcap(captures["a"])
        files = sorted((wserver.data_dir / "captures" / captures["a"] / "files").iterdir())
        assert len(files) == 1, files  # one ring file: the plain download is its bytes
        yield Scene(ns, ips, names, pods, captures, group, followed, group_followed, single,
                    plain, files[0].read_bytes())
    finally:
        for m in made:
            remove_container(m)


def _hosts(path: Path) -> dict[str, str]:
    out = subprocess.run(["tshark", "-r", str(path), "-q", "-z", "hosts"], capture_output=True,
                         text=True, timeout=60, check=True).stdout
    return dict(line.split("\t")[:2] for line in out.splitlines()
                if line and not line.startswith("#"))


def _resolved(path: Path, *extra: str) -> list[list[str]]:
    argv = ["tshark", "-r", str(path), "-N", "n", *extra]
    out = subprocess.run(argv, capture_output=True, text=True, timeout=60, check=True).stdout
    return [line.split("\t") for line in out.splitlines()]


def test_names_for_both_directions_and_exactly_the_workloads(scene: Scene) -> None:
    a, b = scene.names["a"], scene.names["b"]
    pairs = _resolved(scene.group, "-T", "fields", "-E", "separator=\t", "-e", "ip.src_host",
                      "-e", "ip.dst_host", "-Y", f"tcp.port == 80 && !icmp && "
                      f"!(ip.addr == {scene.ips['svc']})")
    assert {tuple(p) for p in pairs} == {(a, b), (b, a)}, set(map(tuple, pairs))
    want = {scene.ips["a"]: a, scene.ips["b"]: b, scene.ips["b2"]: b}
    service = {scene.ips["svc"]: f"websvc.{scene.ns}.svc"}  # only b tried it
    assert _hosts(scene.group) == want | service
    assert _hosts(scene.single) == want
    for path in (scene.group, scene.single, scene.followed, scene.group_followed):
        _named_before_use(path)


def _named_before_use(path: Path) -> None:
    """Every packet that carries an address the file names comes after that name's NRB (tshark
    reads in one pass: an address seen before its NRB prints bare)."""
    import ipaddress
    named: set[bytes] = set()
    named_anywhere = {ipaddress.ip_address(ip).packed for ip in _hosts(path)}
    for kind, d in walk(path).order:
        if kind == "nrb":
            named |= {ipaddress.ip_address(ip).packed for ip, _ in d["names"]}
        elif kind == "epb":
            early = (set(addresses(d["data"])) & named_anywhere) - named
            assert not early, (path.name, [str(ipaddress.ip_address(a)) for a in early])


def test_a_new_address_is_named_before_its_first_packet(scene: Scene) -> None:
    import ipaddress
    b2 = ipaddress.ip_address(scene.ips["b2"]).packed
    for path in (scene.followed, scene.group_followed):
        blocks = walk(path).order
        first = next(i for i, (kind, d) in enumerate(blocks)
                     if kind == "epb" and b2 in set(addresses(d["data"])))
        named = [i for i, (kind, d) in enumerate(blocks)
                 if kind == "nrb" and (scene.ips["b2"], scene.names["b"]) in d["names"]]
        assert named and named[0] < first, (path.name, named, first)
        assert _hosts(path)[scene.ips["b2"]] == scene.names["b"]


def _iface(blocks: Blocks, container_ip: str, scene: Scene) -> int:
    key = "a" if container_ip == scene.ips["a"] else "b"
    return next(i for i, d in enumerate(blocks.interfaces)
                if f"k8s.podName={scene.pods[key]};" in d["description"])


def test_lua_fields_filter_by_pod_and_name_the_peer(scene: Scene) -> None:
    blocks = walk(scene.group)
    ifa = _iface(blocks, scene.ips["a"], scene)
    on_a = sum(1 for kind, d in blocks.order if kind == "epb" and d["iface"] == ifa)
    rows = _resolved(
        scene.group, "-X", f"lua_script:{LUA}", "-T", "fields", "-E", "separator=\t",
        "-e", "podcap.namespace", "-e", "podcap.container", "-e", "podcap.peer",
        "-e", "tcp.port", "-e", "ip.src", "-e", "ip.dst",
        "-Y", f'podcap.pod == "{scene.pods["a"]}"')
    assert len(rows) == on_a > 0
    assert {r[0] for r in rows} == {scene.ns} and {r[1] for r in rows} == {"wsa"}
    # a's own TCP (the bridge also floods a frames for others: those have other peers)
    mine = [r for r in rows if r[3] and scene.ips["a"] in (r[4], r[5])]
    assert {r[2] for r in mine} == {scene.names["b"]} and len(mine) > 10


def test_directions_agree_with_sll2_and_the_sender(scene: Scene) -> None:
    blocks = walk(scene.group)
    own = {_iface(blocks, ip, scene): ip for ip in (scene.ips["a"], scene.ips["b"])}
    import ipaddress
    seen = set()
    for kind, d in blocks.order:
        if kind != "epb":
            continue
        outgoing = d["data"][10] == 4  # LINUX_SLL2 packet type PACKET_OUTGOING
        assert d["flags"] is not None and d["flags"] & 3 == (2 if outgoing else 1)
        ends = list(addresses(d["data"]))
        if ends and len(ends[0]) == 4:
            sent = ends[0] == ipaddress.ip_address(own[d["iface"]]).packed
            assert sent == outgoing, (d["iface"], ends)
            seen.add(outgoing)
    assert seen == {True, False}
    # and as tshark reads them: its direction against its own reading of the packet type
    rows = tshark_fields(scene.group, "frame.packet_flags_direction", "sll.pkttype")
    assert {(d, kind == "4") for d, kind in rows} == {("0x00000002", True),
                                                       ("0x00000001", False)}


def test_tcpdump_reads_every_pcapng_and_the_pcap_is_unchanged(scene: Scene) -> None:
    for path in (scene.group, scene.followed, scene.group_followed, scene.single):
        epbs = sum(1 for kind, _ in walk(path).order if kind == "epb")
        assert tcpdump_count(path) == epbs > 0, path
    assert scene.plain == (scene.ring, scene.ring)


def test_v1_interfaces_are_the_namespace_addresses(wserver: Server) -> None:
    import os
    made = []
    try:
        web = pod("wsif", {})
        host = pod("wshost", {}, command=["sleep", "600"], network_mode="host")
        made += [web, host]
        web.reload()
        with wserver.client() as c:
            for container, pid in ((web, web.attrs["State"]["Pid"]), (host, os.getpid())):
                def shown(container=container) -> dict | None:
                    r = c.get(f"/v1/workload/{container.id}")
                    assert r.status_code == 200, r.text
                    return {name: [(x["ip"], x["ip_prefix"]) for x in addrs]
                            for name, addrs in r.json()["workload"]["interfaces"].items()}
                # The view may hold the container as created, not yet running, for a moment
                # (the inventory is pushed: docs/CLUSTER.md); a running one has interfaces.
                wait_for(shown, timeout=10, what=f"{container.name} listed as running")
                assert shown() == netns_addresses(pid) != {}, container.name
    finally:
        for m in made:
            remove_container(m)


def test_cli_get_pcapng(scene: Scene, wserver: Server, tmp_path: Path) -> None:
    import os
    env = {k: v for k, v in os.environ.items() if not k.startswith(("PODCAP_", "XDG_"))}
    env["HOME"] = str(tmp_path)
    done = subprocess.run([PODCAP, "login", "--server", wserver.url, "-u", "admin",
                           "--password-stdin"], input=wserver.password + "\n", text=True,
                          capture_output=True, env=env, timeout=30)
    assert done.returncode == 0, done.stderr
    done = subprocess.run([PODCAP, "capture", "get", scene.captures["a"], "--pcapng", "-o",
                           str(tmp_path)], capture_output=True, text=True, env=env, timeout=60)
    assert done.returncode == 0, done.stderr
    [saved] = tmp_path.glob("*.pcapng")
    assert saved.read_bytes() == scene.single.read_bytes()
