"""A real Alertmanager (Debian's prometheus-alertmanager) delivers an alert to podcap's
webhook: the member the alert names is frozen, its snapshot holds a marker sent 5 s before
the alert and one sent after it; the other member is not frozen. Then the same alert posted
to the webhook 20 times in 10 s: the cooldown holds it to one snapshot."""

from __future__ import annotations

import shutil
import subprocess
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import httpx
import pytest

from tests.groups.group_support import ip_of, pod, tag
from tests.recorders.rec_support import create, holds, marker, members, recorder, snapshot
from tests.support import (
    Server,
    free_port,
    remove_container,
    running_server,
    stop_process,
    wait_for,
)

TOKEN = "am-test-token-" + "y" * 16
ALERTMANAGER = shutil.which("prometheus-alertmanager")


@pytest.fixture(scope="module")
def amserver(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    with running_server(tmp_path_factory.mktemp("am"), ["--trust-namespace-labels"],
                        env={"PODCAP_ALERTMANAGER_TOKEN": TOKEN}) as srv:
        yield srv


@pytest.fixture(scope="module")
def alertmanager(amserver: Server, tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    if ALERTMANAGER is None:
        pytest.fail("prometheus-alertmanager is not installed (scripts/setup.sh installs it)")
    work = tmp_path_factory.mktemp("alertmanager")
    (work / "am.yml").write_text(f"""
route: {{receiver: podcap, group_by: [alertname, namespace, pod], group_wait: 1s,
        group_interval: 1s, repeat_interval: 1h}}
receivers:
  - name: podcap
    webhook_configs:
      - url: {amserver.url}/api/hooks/alertmanager
        send_resolved: false
        http_config:
          authorization: {{type: Bearer, credentials: {TOKEN}}}
""")
    port = free_port()
    log = (work / "am.log").open("wb")
    proc = subprocess.Popen([ALERTMANAGER, f"--config.file={work / 'am.yml'}",
                             f"--storage.path={work / 'data'}",
                             f"--web.listen-address=127.0.0.1:{port}",
                             "--cluster.listen-address="], stdout=log, stderr=log,
                            stdin=subprocess.DEVNULL)
    url = f"http://127.0.0.1:{port}"
    try:
        wait_for(lambda: _ready(url), timeout=20, what="alertmanager to answer")
        yield url
    finally:
        stop_process(proc)
        log.close()
        print(Path(work / "am.log").read_text()[-2000:])


def _ready(url: str) -> bool:
    try:
        return httpx.get(url + "/-/ready", timeout=1).status_code == 200
    except httpx.HTTPError:
        return False


def test_an_alert_through_alertmanager_freezes_the_member_it_names(
        amserver: Server, alertmanager: str) -> None:
    t = tag()
    ns = f"shop-{t}"
    web = pod("amweb", {"app": t}, ns)
    other = pod("amoth", {"app": t}, ns)
    try:
        ip = ip_of(web)
        with amserver.client() as c:
            rec = create(c, name=f"am-{t}", labels=f"app={t}", window_s=30, bytes_mb=2,
                         after_s=2, cooldown_s=60)
            rings = {m["workload_name"]: m for m in members(c, rec["id"], 2)}
            target = rings[web.name]
            before = marker(ip)
            time.sleep(5)
            r = httpx.post(alertmanager + "/api/v2/alerts", json=[{
                "labels": {"alertname": "KubePodCrashLooping", "namespace": ns,
                           "pod": target["pod_name"]}, "annotations": {}}])
            assert r.status_code == 200, r.text
            frozen = wait_for(lambda: recorder(c, rec["id"])["triggers"], timeout=15,
                              interval=0.1, what="alertmanager's delivery")
            after = marker(ip)
            assert [(x["capture_id"], x["outcome"], x["source"]) for x in frozen] == [
                (target["capture_id"], "frozen", "alert")]
            snap = snapshot(amserver, c, target["capture_id"])
            assert snap["reason"] == "triggered: alert KubePodCrashLooping"
            assert holds(snap["pcap"], before) and holds(snap["pcap"], after)
            view = recorder(c, rec["id"])
            assert rings[other.name]["capture_id"] in [m["capture_id"] for m in view["members"]]
            c.delete(f"/api/recorders/{rec['id']}")
    finally:
        for x in (web, other):
            remove_container(x)


def test_cooldown_holds_an_alert_sent_20_times_in_10_s(amserver: Server) -> None:
    t = tag()
    ns = f"shop-{t}"
    web = pod("amcool", {"app": t}, ns)
    try:
        with amserver.client() as c:
            rec = create(c, name=f"cool-{t}", labels=f"app={t}", window_s=10, bytes_mb=2,
                         after_s=1, cooldown_s=60, max_snapshots=3)
            ring = members(c, rec["id"], 1)[0]
            start = datetime.now(UTC)
            outcomes: dict[str, int] = {}
            for i in range(20):
                at = (start + timedelta(seconds=i)).isoformat().replace("+00:00", "Z")
                r = httpx.post(amserver.url + "/api/hooks/alertmanager",
                               headers={"Authorization": f"Bearer {TOKEN}"},
                               json={"version": "4", "status": "firing", "alerts": [{
                                   "status": "firing", "startsAt": at, "fingerprint": f"f{t}",
                                   "labels": {"alertname": "Flap", "namespace": ns,
                                              "pod": ring["pod_name"]}}]})
                assert r.status_code == 200, r.text
                for k, n in r.json()["outcomes"].items():
                    outcomes[k] = outcomes.get(k, 0) + n
                time.sleep(0.5)
            assert outcomes.get("frozen") == 1, outcomes
            assert outcomes.get("cooldown", 0) + outcomes.get("extended", 0) == 19, outcomes
            view = wait_for(lambda: len((v := recorder(c, rec["id"]))["snapshots"]) == 1
                            and len(v["members"]) == 1 and v, timeout=10,
                            what="one snapshot and the member recording again")
            assert view["snapshots"][0]["capture_id"] == ring["capture_id"]
            # a repeated delivery (same fingerprint and startsAt) is a duplicate
            r = httpx.post(amserver.url + "/api/hooks/alertmanager",
                           headers={"Authorization": f"Bearer {TOKEN}"},
                           json={"version": "4", "status": "firing", "alerts": [{
                               "status": "firing", "fingerprint": f"f{t}",
                               "startsAt": start.isoformat().replace("+00:00", "Z"),
                               "labels": {"alertname": "Flap", "namespace": ns,
                                          "pod": ring["pod_name"]}}]})
            assert r.json()["outcomes"] == {"duplicate": 1}, r.text
            c.delete(f"/api/recorders/{rec['id']}")
    finally:
        remove_container(web)
