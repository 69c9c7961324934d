"""Capture groups end to end on real containers, read back with tshark and tcpdump.

One scenario per module: two "pods" of ``app=web-…`` in namespace ``shop-…`` talked to by a
client that is not selected, a host-network container with the same label (skipped), and a
third web pod started after the group (it joins). The group is stopped and its merged pcapng
is checked against the members' own pcaps.
"""

from __future__ import annotations

import time
import urllib.parse
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from podcap.controller.netstate_note import as_text
from tests.groups.group_support import (
    Blocks,
    client_of,
    ip_of,
    pod,
    tag,
    tcpdump_count,
    tshark_fields,
    walk,
)
from tests.support import Server, read_pcap, remove_container, wait_for


@dataclass
class Scenario:
    group: dict
    path: Path
    blocks: Blocks
    ips: dict[str, str]  # container name -> its IP
    member_counts: dict[str, int]  # capture id -> packets in the member's own pcap
    late: str  # the name of the member that joined later
    host: str  # the host-network container's name
    namespace: str
    label: str


@pytest.fixture(scope="module")
def scenario(gserver: Server, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Scenario]:
    t = tag()
    label, namespace = f"web-{t}", f"shop-{t}"
    made = []
    try:
        web1 = pod("gweb1", {"app": label, "tier": "front"}, namespace)
        web2 = pod("gweb2", {"app": label, "tier": "front"}, namespace)
        host = pod("ghost", {"app": label}, namespace, ["sleep", "600"], network_mode="host")
        made += [web1, web2, host]
        ips = {web1.name: ip_of(web1), web2.name: ip_of(web2)}
        made.append(client_of("gcli1", list(ips.values())))
        with gserver.client() as c:
            r = c.post("/api/capture-groups", json={"labels": f"app={label},tier!=db"})
            assert r.status_code == 201, r.text
            gid = r.json()["group"]["id"]
            web3 = pod("gweb3", {"app": label}, namespace)
            made.append(web3)
            ips[web3.name] = ip_of(web3)
            wait_for(lambda: len(c.get(f"/api/capture-groups/{gid}").json()["group"]["members"])
                     == 3, timeout=30, what="the third web pod to join")
            made.append(client_of("gcli2", [ips[web3.name]]))
            wait_for(lambda: all(m["capture"]["stats"]["captured"] > 0 for m in c.get(
                f"/api/capture-groups/{gid}").json()["group"]["members"]),
                timeout=40, interval=0.5, what="packets on every member")
            r = c.post(f"/api/capture-groups/{gid}/stop")
            assert r.status_code == 200, r.text
            group = r.json()["group"]
            path = tmp_path_factory.mktemp("gdl") / "group.pcapng"
            with c.stream("GET", f"/api/capture-groups/{gid}/pcapng") as resp:
                assert resp.status_code == 200, resp.read()
                assert resp.headers["content-type"] == "application/x-pcapng"
                with path.open("wb") as f:
                    for chunk in resp.iter_bytes():
                        f.write(chunk)
            counts = {m["capture_id"]: len(read_pcap(gserver.pcap(m["capture_id"]))[1])
                      for m in group["members"]}
        yield Scenario(group, path, walk(path), ips, counts, web3.name, host.name, namespace,
                       label)
    finally:
        for c in made:
            remove_container(c)


def test_members_are_the_selected_containers_and_the_host_one_is_skipped(
        scenario: Scenario) -> None:
    g = scenario.group
    names = sorted(m["workload_name"] for m in g["members"])
    assert names == sorted(scenario.ips)
    assert g["status"] == "stopped" and g["stop_reason"] == "stopped by user"
    assert [(s["workload_name"], s["reason"]) for s in g["skipped"]] == [
        (scenario.host, "host network")]
    assert all(m["capture"]["status"] == "stopped" for m in g["members"])


def test_one_idb_per_container_named_as_inspektor_gadget_does(scenario: Scenario) -> None:
    idbs = scenario.blocks.interfaces
    assert len(idbs) == 3
    assert {(i["linktype"], i["snaplen"], i["tsresol"]) for i in idbs} == {(276, 262144, 9)}
    by_name = {m["workload_name"]: m for m in scenario.group["members"]}
    for idb in idbs:
        container = idb["name"].split("/")[2]
        member = next(m for name, m in by_name.items() if name.startswith(
            f"podcap-t-{container}-"))
        assert idb["name"] == f"{scenario.namespace}/{member['pod_name']}/{container}"
        assert idb["description"] == (
            f"k8s.node={urllib.parse.quote(member['node'])};k8s.namespace={scenario.namespace};"
            f"k8s.podName={member['pod_name']};k8s.containerName={container}")
        assert any(member["capture_id"] in c for c in idb["comments"])


def test_section_header_names_selector_times_and_version(scenario: Scenario) -> None:
    from podcap import __version__

    text = "\n".join(scenario.blocks.shb_comments)
    assert f"selector: labels app={scenario.label},tier!=db" in text
    assert "start: 20" in text and "stop: 20" in text
    assert f"podcap version: {__version__}" in text
    assert f"skipped: {scenario.host} (host network)" in text


def test_packet_count_is_the_sum_of_the_members(scenario: Scenario) -> None:
    rows = tshark_fields(scenario.path, "frame.number")
    assert len(rows) == sum(scenario.member_counts.values()) > 0
    assert all(n > 0 for n in scenario.member_counts.values())


def test_timestamps_never_go_backwards(scenario: Scenario) -> None:
    times = [float(r[0]) for r in tshark_fields(scenario.path, "frame.time_epoch")]
    assert times == sorted(times)
    stamps = [d["ts"] for kind, d in scenario.blocks.order if kind == "epb"]
    assert stamps == sorted(stamps)


def test_each_packet_is_on_the_interface_of_the_container_owning_its_address(
        scenario: Scenario) -> None:
    rows = tshark_fields(scenario.path, "frame.interface_name", "frame.interface_description",
                         "ip.src", "ip.dst", display_filter="ip")
    assert rows
    prefix = {name.split("-")[2]: ip for name, ip in scenario.ips.items()}  # gweb1 -> IP
    for if_name, description, src, dst in rows[::max(1, len(rows) // 200)]:  # ~200 samples
        container = description.rsplit("k8s.containerName=", 1)[1]
        assert if_name.endswith("/" + container)
        assert prefix[container] in (src, dst), (if_name, src, dst)


def test_tcpdump_reads_the_merged_file(scenario: Scenario) -> None:
    assert tcpdump_count(scenario.path) == sum(scenario.member_counts.values())


def test_a_member_that_joined_later_has_its_idb_before_its_first_packet(
        scenario: Scenario) -> None:
    seen = 0
    late_index = None
    for kind, d in scenario.blocks.order:
        if kind == "idb":
            if d["name"].split("/")[2] == "gweb3":
                late_index = seen
            seen += 1
        elif kind == "epb":
            assert d["iface"] < seen, "a packet before its interface's IDB"
    assert late_index is not None
    first_epb = next(i for i, (k, _) in enumerate(scenario.blocks.order) if k == "epb")
    late_idb = next(i for i, (k, d) in enumerate(scenario.blocks.order)
                    if k == "idb" and d["name"].split("/")[2] == "gweb3")
    assert late_idb > first_epb, "the late member's IDB should come mid-file"
    late = next(m for m in scenario.group["members"] if m["workload_name"] == scenario.late)
    assert late["joined"] > scenario.group["start_time"]


def test_members_are_normal_captures_listed_by_the_neuvector_api(gserver: Server,
                                                                  scenario: Scenario) -> None:
    with gserver.client() as c:
        sniffers = c.get("/v1/sniffer").json()["sniffers"]
    ids = {s["id"] for s in sniffers}
    assert {m["capture_id"] for m in scenario.group["members"]} <= ids


def test_a_namespace_without_containers_is_named_in_the_refusal(gserver: Server) -> None:
    with gserver.client() as c:
        r = c.post("/api/capture-groups", json={"namespace": "nothing-here-" + tag()})
        assert r.status_code == 400
        assert "selector namespace nothing-here-" in r.json()["message"]


def test_selector_errors(gserver: Server) -> None:
    with gserver.client() as c:
        r = c.post("/api/capture-groups", json={"labels": "app=web,,tier=db"})
        assert r.status_code == 400
        assert "at position 8" in r.json()["message"]
        r = c.post("/api/capture-groups", json={"labels": "app in (a"})
        assert r.status_code == 400 and "at position 9" in r.json()["message"]
        r = c.post("/api/capture-groups", json={"labels": "app=no-such-" + tag()})
        assert r.status_code == 400
        assert "matches no running container" in r.json()["message"]
        assert "labels app=no-such-" in r.json()["message"]
        r = c.post("/api/capture-groups", json={})
        assert r.status_code == 400 and "needs a selector" in r.json()["message"]
        r = c.get("/api/capture-groups/nothex")
        assert r.status_code == 400


def test_delete_removes_the_group_and_its_captures(gserver: Server) -> None:
    t = tag()
    made = [pod("gdel", {"app": f"del-{t}"}, f"ns-{t}")]
    try:
        with gserver.client() as c:
            r = c.post("/api/capture-groups", json={"namespace": f"ns-{t}", "filter": "tcp port"})
            assert r.status_code == 400 and "invalid filter" in r.json()["message"]
            assert c.get("/api/captures", params={"workload": made[0].id}).json()[
                "captures"] == []  # refused once, before any member started
            r = c.post("/api/capture-groups", json={
                "namespace": f"ns-{t}", "workloads": [made[0].name], "duration": 30})
            assert r.status_code == 201, r.text
            group = r.json()["group"]
            assert [m["workload_name"] for m in group["members"]] == [made[0].name]
            assert group["deadline"] == pytest.approx(group["start_time"] + 30)
            r = c.get(f"/api/capture-groups/{group['id']}/pcapng", params={"from": "now"})
            assert r.status_code == 400 and "follow=true only" in r.json()["message"]
            r = c.get(f"/api/capture-groups/{group['id']}/pcapng",
                      params={"follow": "true", "from": "later"})
            assert r.status_code == 400 and "'start' or 'now'" in r.json()["message"]
            assert group["id"] in {g["id"] for g in c.get("/api/capture-groups").json()["groups"]}
            assert c.delete(f"/api/capture-groups/{group['id']}").status_code == 204
            events = {e["event"]: e for e in c.get("/api/audit", params={"limit": 50}).json()[
                "events"] if group["id"] in e["detail"]}
            assert set(events) == {"group.start", "group.delete"}
            assert f"namespace ns-{t}" in events["group.start"]["detail"]
            assert c.get(f"/api/capture-groups/{group['id']}").status_code == 404
            cid = group["members"][0]["capture_id"]
            assert c.get(f"/api/captures/{cid}").status_code == 404
    finally:
        for m in made:
            remove_container(m)


def test_duration_ends_the_group(gserver: Server) -> None:
    t = tag()
    made = [pod("gdur", {"app": f"dur-{t}"})]
    try:
        with gserver.client() as c:
            r = c.post("/api/capture-groups", json={"labels": f"app=dur-{t}", "duration": 2})
            assert r.status_code == 201, r.text
            gid = r.json()["group"]["id"]
            ended = wait_for(lambda: (g := c.get(f"/api/capture-groups/{gid}").json()["group"])
                             ["status"] == "stopped" and g, timeout=20, what="the group to end")
            assert ended["stop_reason"] == "duration reached"
            assert time.time() >= ended["start_time"] + 2
    finally:
        for m in made:
            remove_container(m)


def test_dpkt_reads_the_merged_file(scenario: Scenario) -> None:
    """A third reader (dpkt's pcapng reader): same packet count."""
    import dpkt

    with scenario.path.open("rb") as f:
        reader = dpkt.pcapng.Reader(f)
        assert reader.datalink() == 276
        assert sum(1 for _ in reader) == sum(scenario.member_counts.values())


def test_netstate_snapshot_is_a_comment_on_the_member_idb(gserver: Server,
                                                         scenario: Scenario) -> None:
    by_capture = {m["capture_id"]: m for m in scenario.group["members"]}
    with gserver.client() as c:
        for idb in scenario.blocks.interfaces:
            cid = next(k for k in by_capture if any(k in x for x in idb["comments"]))
            r = c.get(f"/api/captures/{cid}/netstate")
            notes = [x for x in idb["comments"] if x.startswith("Network state at capture")]
            if r.status_code == 404:
                assert notes == []
                continue
            assert r.status_code == 200, r.text
            assert len(notes) == 1
            assert notes[0] == as_text(r.json()["netstate"])
            assert "Addresses:" in notes[0] and "Sockets:" in notes[0]


def test_rights_follow_those_of_captures(gserver: Server) -> None:
    """A reader may not start one nor download without the right; a user scoped to other
    namespaces does not see the group; an operator of the namespace sees it and its members."""
    t = tag()
    ns = f"rights-{t}"
    made = [pod("grt", {"app": f"rt-{t}"}, ns)]
    password = "correct horse battery " + t
    try:
        with gserver.client() as admin:
            for name, role, spaces, download in (
                    (f"rd{t}", "reader", [ns], False), (f"op{t}", "operator", [ns], True),
                    (f"other{t}", "operator", [f"elsewhere-{t}"], True)):
                r = admin.post("/api/users", json={"username": name, "password": password,
                                                   "role": role, "namespaces": spaces,
                                                   "download": download})
                assert r.status_code == 201, r.text
            tokens = {n: gserver.login(n + t, password) for n in ("rd", "op", "other")}
            with gserver.client(tokens["rd"]) as reader:
                r = reader.post("/api/capture-groups", json={"namespace": ns})
                assert r.status_code == 403
            with gserver.client(tokens["op"]) as op:
                r = op.post("/api/capture-groups", json={"namespace": ns})
                assert r.status_code == 201, r.text
                gid = r.json()["group"]["id"]
                assert r.json()["group"]["owner"] == f"op{t}"
            with gserver.client(tokens["rd"]) as reader:
                assert reader.get(f"/api/capture-groups/{gid}").status_code == 200
                assert reader.get(f"/api/capture-groups/{gid}/pcapng").status_code == 403
                assert reader.post(f"/api/capture-groups/{gid}/stop").status_code == 403
            with gserver.client(tokens["other"]) as other:
                assert other.get(f"/api/capture-groups/{gid}").status_code == 404
                assert gid not in {g["id"] for g in
                                   other.get("/api/capture-groups").json()["groups"]}
                r = other.post("/api/capture-groups", json={"namespace": ns})
                assert r.status_code == 400  # it cannot see that namespace: nothing matches
            with gserver.client(tokens["op"]) as op:
                assert op.delete(f"/api/capture-groups/{gid}").status_code == 204
    finally:
        for m in made:
            remove_container(m)


def test_a_member_without_netstate_gets_no_comment() -> None:
    """A capture whose agent keeps no snapshot (an older agent): skipped silently."""
    from types import SimpleNamespace

    from podcap.controller.netstate_note import netstate_note
    from podcap.controller.principal import Principal
    from podcap.errors import NotFound

    def document(*_: object) -> dict:
        raise NotFound("no network-state snapshot for capture x")

    fake = SimpleNamespace(document=document)
    assert netstate_note(fake, Principal("admin", "admin"), "0" * 32) == ""  # type: ignore[arg-type]
