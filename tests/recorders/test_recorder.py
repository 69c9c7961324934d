"""Flight recorders end to end on real containers (issue 21): rings on the members, a trigger
by hand (and one during its after period, which extends it), containers that exit non-zero or
are OOM-killed freezing their own rings, members joining and leaving, the snapshot limit, and
the webhook's refusals. The real Alertmanager is in test_alertmanager.py."""

from __future__ import annotations

import os
import re
import signal
import socket
import threading
import time
from collections.abc import Iterator

import httpx
import pytest

from tests.groups.group_support import ip_of, pod, tag
from tests.recorders.rec_support import (
    create,
    holds,
    marker,
    members,
    recorder,
    snapshot,
    tcpdump_of,
)
from tests.support import Server, remove_container, running_server, wait_for

TOKEN = "rec-test-token-" + "x" * 16


@pytest.fixture(scope="module")
def rserver(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    with running_server(tmp_path_factory.mktemp("rec"), ["--trust-namespace-labels"],
                        env={"PODCAP_ALERTMANAGER_TOKEN": TOKEN}) as srv:
        yield srv


@pytest.fixture
def made() -> Iterator[list]:
    containers: list = []
    yield containers
    for c in containers:
        remove_container(c)


def test_manual_trigger_freezes_the_window_and_the_after_period(rserver: Server,
                                                                 made: list) -> None:
    t = tag()
    web = pod("rweb", {"app": t}, f"shop-{t}")
    made.append(web)
    ip = ip_of(web)
    with rserver.client() as c:
        rec = create(c, name=f"r-{t}", labels=f"app={t}", window_s=30, bytes_mb=2, after_s=2,
                     cooldown_s=0)
        assert rec["spec"]["duration"] == 0 and rec["spec"]["file_number"] == 2
        ring = members(c, rec["id"], 1)[0]
        assert ring["status"] == "recording"
        listed = c.get(f"/api/captures/{ring['capture_id']}").json()["capture"]
        assert listed["status"] == "recording" and listed["recorder"] == rec["id"]
        before = marker(ip)
        time.sleep(1.0)
        r = c.post(f"/api/recorders/{rec['id']}/trigger", json={})
        assert r.status_code == 200, r.text
        assert r.json()["snapshots"] == [ring["capture_id"]]
        triggered = time.time()
        time.sleep(0.5)
        during = marker(ip)
        r = c.post(f"/api/recorders/{rec['id']}/trigger", json={})  # extends, no 2nd snapshot
        assert [o["outcome"] for o in r.json()["outcomes"]] == ["extended"]
        time.sleep(1.5)
        after = marker(ip)  # 2 s after the first trigger, inside the extended period
        snap = snapshot(rserver, c, ring["capture_id"])
        ready = time.time() - triggered
        assert snap["reason"] == "triggered by admin"
        assert all(holds(snap["pcap"], m) for m in (before, during, after))
        assert ready < 2.5 + 2 + 2, ready  # the extended after period, then at most ~2 s
        # the recorder goes on recording, on a ring of its own
        nxt = members(c, rec["id"], 1)[0]
        assert nxt["capture_id"] != ring["capture_id"] and nxt["status"] == "recording"
        view = recorder(c, rec["id"])
        assert [s["capture_id"] for s in view["snapshots"]] == [ring["capture_id"]]
        audit = c.get("/api/audit", params={"event": "recorder.trigger"}).json()
        assert any(rec["id"] in e["detail"] and "triggered by admin" in e["detail"]
                   for e in audit["events"])
        after_next = marker(ip)
        time.sleep(0.3)
        r = c.post(f"/api/recorders/{rec['id']}/trigger", json={"after_s": 0})
        second = snapshot(rserver, c, nxt["capture_id"])
        assert holds(second["pcap"], after_next) and not holds(second["pcap"], before)
        c.delete(f"/api/recorders/{rec['id']}")


def test_exit_and_oom_freeze_their_own_rings(rserver: Server, made: list) -> None:
    t = tag()
    # Each waits for /go before it ends, so its ring is up first however slow the machine.
    wait = "while [ ! -e /go ]; do sleep 0.1; done; "
    crash = pod("rcrash", {"app": t}, f"shop-{t}", ["sh", "-c", wait + "exit 1"])
    oom = pod("room", {"app": t}, f"shop-{t}",
              ["sh", "-c", wait + "x=$(head -c 64000000 /dev/zero | tr '\\0' a)"],
              mem_limit="16m", memswap_limit="16m")
    made += [crash, oom]
    ip = ip_of(crash)
    with rserver.client() as c:
        rec = create(c, name=f"x-{t}", labels=f"app={t}", window_s=30, bytes_mb=2, after_s=1,
                     cooldown_s=0)
        rings = {m["workload_name"]: m["capture_id"] for m in members(c, rec["id"], 2)}
        sent = marker(ip)
        for box in (crash, oom):
            box.exec_run(["touch", "/go"])
        crashed = snapshot(rserver, c, rings[crash.name], timeout=20)
        assert crashed["reason"] == "triggered: container exited 1"
        assert holds(crashed["pcap"], sent)
        oomed = snapshot(rserver, c, rings[oom.name], timeout=20)
        # podcap says what the runtime says. Docker learns of an OOM kill from containerd's
        # event, which on cgroup v2 can be lost when the cgroup goes at once (a full run saw
        # OOMKilled false): the label must match Docker's own record, read after podcap's.
        oom.reload()
        said = " (OOMKilled)" if oom.attrs["State"]["OOMKilled"] else ""
        assert oomed["reason"] == f"triggered: container exited 137{said}"
        def noted() -> dict | None:
            v = recorder(c, rec["id"])
            return v if [s["source"] for s in v["snapshots"]] == ["exit", "exit"] else None

        view = wait_for(noted, timeout=10, what="both snapshots noted")
        assert view["members"] == []  # both containers are gone: no member
        c.delete(f"/api/recorders/{rec['id']}")


def test_a_later_container_joins_and_a_stopped_one_leaves(rserver: Server,
                                                         made: list) -> None:
    t = tag()
    first = pod("rj1", {"app": t}, f"shop-{t}")
    made.append(first)
    with rserver.client() as c:
        rec = create(c, name=f"j-{t}", labels=f"app={t}", window_s=10, bytes_mb=2)
        members(c, rec["id"], 1)
        late = pod("rj2", {"app": t}, f"shop-{t}",
                   ["sh", "-c", "trap 'exit 0' TERM; while true; do sleep 0.2; done"])
        made.append(late)
        joined = members(c, rec["id"], 2)
        ring = next(m["capture_id"] for m in joined if m["workload_name"] == late.name)
        late.stop(timeout=5)  # exits 0: no incident, the member leaves with no snapshot
        members(c, rec["id"], 1)
        wait_for(lambda: c.get(f"/api/captures/{ring}").status_code == 404, timeout=10,
                 what="the ended ring removed")
        assert recorder(c, rec["id"])["snapshots"] == []
        c.delete(f"/api/recorders/{rec['id']}")


def test_snapshot_limit_deletes_the_oldest(rserver: Server, made: list) -> None:
    t = tag()
    made.append(pod("rlim", {"app": t}, f"shop-{t}"))
    with rserver.client() as c:
        rec = create(c, name=f"l-{t}", labels=f"app={t}", window_s=10, bytes_mb=2, after_s=0,
                     cooldown_s=0, max_snapshots=2)
        made_ids = []
        for _ in range(3):
            ring = members(c, rec["id"], 1)[0]["capture_id"]
            wait_for(lambda r=ring: c.post(f"/api/recorders/{rec['id']}/trigger",
                                           json={}).json()["snapshots"] == [r],
                     timeout=10, what="a trigger that freezes")
            snapshot(rserver, c, ring)
            made_ids.append(ring)
        view = wait_for(lambda: [s["capture_id"] for s in recorder(c, rec["id"])["snapshots"]]
                        == made_ids[:0:-1] and recorder(c, rec["id"]), timeout=10,
                        what="the two newest snapshots kept")
        assert c.get(f"/api/captures/{made_ids[0]}").status_code == 404
        audit = c.get("/api/audit", params={"event": "recorder.snapshot.delete"}).json()
        assert any(made_ids[0] == e["capture_id"] for e in audit["events"])
        assert view["max_snapshots"] == 2
        c.delete(f"/api/recorders/{rec['id']}")


def test_webhook_refuses_a_wrong_token_and_names_a_bad_field(rserver: Server) -> None:
    url = rserver.url + "/api/hooks/alertmanager"
    good = {"version": "4", "status": "firing", "alerts": [
        {"status": "firing", "labels": {"alertname": "X", "namespace": "none", "pod": "p"},
         "startsAt": "2026-01-01T00:00:00Z", "fingerprint": "abc"}]}
    r = httpx.post(url, json=good, headers={"Authorization": "Bearer wrong-token"})
    assert r.status_code == 401, r.text
    r = httpx.post(url, json=good)
    assert r.status_code == 401, r.text
    with rserver.client() as c:
        audit = c.get("/api/audit", params={"event": "hook.refused"}).json()["events"]
    assert any("wrong bearer token" in e["detail"] for e in audit)
    auth = {"Authorization": f"Bearer {TOKEN}"}
    bad = {"version": "4", "alerts": [{"status": "firing", "labels": {"pod": 3}}]}
    r = httpx.post(url, json=bad, headers=auth)
    assert r.status_code == 400 and "alerts[0].labels" in r.json()["message"], r.text
    r = httpx.post(url, json={"version": "3", "alerts": []}, headers=auth)
    assert r.status_code == 400 and "version" in r.json()["message"], r.text
    r = httpx.post(url, json=good, headers=auth)
    assert r.status_code == 200 and r.json() == {"alerts": 1, "outcomes": {}}, r.text


def test_bad_recorder_settings_name_the_field(rserver: Server) -> None:
    with rserver.client() as c:
        for body, field in [({"name": "a", "labels": "app=x", "window_s": 0}, "window_s"),
                            ({"name": "a", "labels": "app=x", "bytes_mb": 1}, "bytes_mb"),
                            ({"name": "A b", "labels": "app=x"}, "name"),
                            ({"name": "a"}, "selector"),
                            ({"name": "a", "labels": "app=x", "alert_labels": {"pod": "x"}},
                             "alert_labels")]:
            r = c.post("/api/recorders", json=body)
            assert r.status_code == 400 and field in r.json()["message"], (body, r.text)


def test_cli_and_metrics(rserver: Server, made: list, tmp_path, monkeypatch) -> None:
    import json

    from typer.testing import CliRunner

    from podcap.cli.main import app
    from tests.groups.test_group_cli import ISOLATED

    monkeypatch.chdir(tmp_path)
    env = {**ISOLATED, "PODCAP_CONFIG": str(tmp_path / "podcap.json"),
           "PODCAP_SERVER": rserver.url, "PODCAP_USER": "admin",
           "PODCAP_PASSWORD": rserver.password}

    def cli(*args: str):
        result = CliRunner().invoke(app, list(args), env=env)
        assert result.exit_code == 0, result.output
        return result.stdout

    t = tag()
    web = pod("rcli", {"app": t}, f"shop-{t}")
    made.append(web)
    rid = cli("recorder", "create", f"c-{t}", "-l", f"app={t}", "--window", "20",
              "--bytes-mb", "2", "--after", "1", "--cooldown", "0").strip().splitlines()[-1]
    with rserver.client() as c:
        ring = members(c, rid, 1)[0]["capture_id"]
    assert f"c-{t}" in cli("recorder", "ls")
    sent = marker(ip_of(web))
    time.sleep(0.3)
    snaps = cli("recorder", "trigger", f"c-{t}").split()
    assert snaps == [ring]
    assert "triggered by admin" in cli("recorder", "show", rid[:8])
    got = json.loads(cli("recorder", "show", rid, "-o", "json"))["recorder"]
    assert got["snapshots"][0]["capture_id"] == ring
    cli("capture", "get", ring, "-o", str(tmp_path / "snap.pcap"))
    assert holds((tmp_path / "snap.pcap").read_bytes(), sent)
    with rserver.client() as c:
        wait_for(lambda: "triggered" not in str(recorder(c, rid)["members"]) and
                 recorder(c, rid)["snapshots"][0]["source"] == "admin", timeout=10,
                 what="the snapshot noted")
        text = c.get("/metrics").text
    assert f'podcap_recorder_members{{recorder="c-{t}"}} 1.0' in text
    assert f'podcap_recorder_snapshots{{recorder="c-{t}"}} 1.0' in text
    assert 'podcap_recorder_triggers_total{outcome="frozen",source="admin"}' in text
    assert f'podcap_recorder_bytes{{kind="snapshot",recorder="c-{t}"}}' in text
    cli("recorder", "rm", f"c-{t}")
    with rserver.client() as c:
        assert c.get(f"/api/recorders/{rid}").status_code == 404
        assert c.get(f"/api/captures/{ring}").status_code == 200  # the snapshot stays


def _flood(ip: str, stop: threading.Event, per_burst: int, pause: float,
           payload: bytes = b"f" * 16, bursts: int = 3000) -> int:
    """UDP datagrams to port 9 of ``ip``: ``bursts`` bursts, or fewer if ``stop`` is set."""
    sent = 0
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        for _ in range(bursts):
            if stop.is_set():
                break
            for _ in range(per_burst):
                s.sendto(payload, (ip, 9))
            sent += per_burst
            if pause:
                time.sleep(pause)
    return sent


def test_a_flood_past_the_rate_threshold_freezes_the_member(rserver: Server,
                                                            made: list) -> None:
    t = tag()
    web = pod("rrate", {"app": t}, f"shop-{t}")
    made.append(web)
    ip = ip_of(web)
    with rserver.client() as c:
        rec = create(c, name=f"p-{t}", labels=f"app={t}", window_s=30, bytes_mb=4, after_s=0,
                     cooldown_s=300, rate_pps=400, filter="udp port 9")
        ring = members(c, rec["id"], 1)[0]["capture_id"]
        time.sleep(1.5)  # a second of quiet counted: the threshold is crossed by the flood
        assert c.get(f"/api/captures/{ring}").json()["capture"]["status"] == "recording"
        sent = marker(ip)
        stop = threading.Event()
        flood = threading.Thread(target=_flood, args=(ip, stop, 20, 0.01), daemon=True)
        flood.start()  # ~1,500 datagrams/s
        try:
            snap = snapshot(rserver, c, ring, timeout=20)
        finally:
            stop.set()
            flood.join(5)
        assert re.fullmatch(r"triggered: \d+ packets/s \(threshold 400\)", snap["reason"]), snap
        assert holds(snap["pcap"], sent)  # the packets from before the flood are kept
        view = wait_for(lambda: (v := recorder(c, rec["id"]))["snapshots"] and
                        v["snapshots"][0]["source"] and v, timeout=10, what="the snapshot noted")
        assert view["snapshots"][0]["source"] == "rate"
        assert [(x["source"], x["outcome"]) for x in view["triggers"]] == [("rate", "frozen")]
        c.delete(f"/api/recorders/{rec['id']}")


def test_kernel_drops_past_the_threshold_freeze_the_member(rserver: Server,
                                                           made: list) -> None:
    """Real kernel drops: the ring's tcpdump is held still (SIGSTOP) while a burst larger than
    its kernel buffer arrives; once it runs again its counters say what the kernel dropped."""
    t = tag()
    web = pod("rdrop", {"app": t}, f"shop-{t}")
    made.append(web)
    ip = ip_of(web)
    with rserver.client() as c:
        rec = create(c, name=f"d-{t}", labels=f"app={t}", window_s=30, bytes_mb=2, after_s=0,
                     cooldown_s=300, drops_per_s=100, filter="udp port 9")
        ring = members(c, rec["id"], 1)[0]["capture_id"]
        time.sleep(1.5)  # the ring's counters read once before the drops
        pid = tcpdump_of(ring)
        os.kill(pid, signal.SIGSTOP)
        try:  # 16 MB of datagrams into the 8 MiB buffer of a tcpdump that reads nothing
            _flood(ip, threading.Event(), 12_000, 0, payload=b"d" * 1400, bursts=1)
        finally:
            os.kill(pid, signal.SIGCONT)
        snap = snapshot(rserver, c, ring, timeout=20)
        assert re.fullmatch(r"triggered: \d+ kernel drops/s \(threshold 100\)",
                            snap["reason"]), snap
        assert snap["stats"]["dropped"] > 0
        view = wait_for(lambda: (v := recorder(c, rec["id"]))["snapshots"] and
                        v["snapshots"][0]["source"] and v, timeout=10, what="the snapshot noted")
        assert view["snapshots"][0]["source"] == "drops"
        c.delete(f"/api/recorders/{rec['id']}")
