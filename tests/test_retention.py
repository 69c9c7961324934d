"""Retention (``--retention-days``) and reclaim (``--reclaim oldest``) on a real server with real
captures.

Ages are made by editing a capture's stored record while the server is down (the agent reads
its records back on start), so nothing waits for days: a capture re-adopted while still running
keeps its old start time and must survive; a stopped one whose stop time is old must go, files
and all, with an audit entry. Reclaim is tested with a disk budget set, after the captures exist,
to the exact number of bytes that makes the next start need the oldest one's room.
"""

from __future__ import annotations

import json
import signal
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from tests.support import Server, WebPair, free_port, wait_for

DAY = 86_400


@pytest.fixture
def box(tmp_path: Path) -> Iterator[Server]:
    """A server not started yet: each test starts (and restarts) it with its own flags."""
    srv = Server(data_dir=tmp_path / "data", port=free_port(), password="retention-test-pw")
    try:
        yield srv
    finally:
        srv.stop()


def restart(srv: Server, *args: str, sig: int = signal.SIGTERM, **env: str) -> Server:
    srv.stop(sig)
    srv.extra_args, srv.env = list(args), dict(env)
    return srv.start()


def stopped_capture(srv: Server, pair: WebPair, packets: int = 3) -> dict:
    cid = srv.sniff(pair.web.id, file_number=1, file_size_mb=1)
    wait_for(lambda: srv.sniffer(cid)["stats"]["captured"] >= packets, what="packets")
    srv.stop_sniffer(cid)
    return srv.sniffer(cid)


def edit_record(srv: Server, cid: str, **fields: float | None) -> None:
    path = srv.data_dir / "captures" / cid / "capture.json"
    record = json.loads(path.read_text())
    record.update(fields)
    path.write_text(json.dumps(record))


def status(srv: Server, cid: str) -> int:
    with srv.client() as c:
        return c.get(f"/api/captures/{cid}").status_code


def start_one_mb(srv: Server, pair: WebPair) -> httpx.Response:
    """Ask for a one-file 1 MB ring: the start each budget case below is measured against."""
    with srv.client() as c:
        return c.post("/api/captures", json={"workload_id": pair.web.id, "file_number": 1,
                                             "file_size_mb": 1})


def limits_shown(srv: Server) -> dict:
    with srv.client() as c:
        return c.get("/api/limits").json()


def audit(srv: Server, event: str) -> list[dict]:
    with srv.client() as c:
        r = c.get("/api/audit", params={"event": event})
    assert r.status_code == 200, r.text
    return r.json()["events"]


def test_retention_deletes_old_stopped_captures_only(box: Server, pair: WebPair) -> None:
    box.start()
    old = stopped_capture(box, pair)["id"]
    recent = stopped_capture(box, pair)["id"]
    running = box.sniff(pair.web.id)
    wait_for(lambda: box.sniffer(running)["stats"]["captured"] > 0, what="packets")
    # Killed: the running capture's tcpdump goes on and is re-adopted by the next start.
    box.stop(signal.SIGKILL)
    edit_record(box, old, stop_time=time.time() - 3 * DAY)
    edit_record(box, recent, stop_time=time.time() - 1 * DAY)
    edit_record(box, running, start_time=time.time() - 9 * DAY)  # old, but still running
    assert (box.data_dir / "captures" / old / "files").is_dir()
    restart(box, "--retention-days", "2", PODCAP_RETENTION_SWEEP_S="0.3")
    with box.client() as c:
        shown = c.get("/api/limits").json()
    assert (shown["retention_days"], shown["reclaim"]) == (2, "none")

    wait_for(lambda: status(box, old) == 404, what="the old capture to expire")
    assert not (box.data_dir / "captures" / old).exists()
    [entry] = audit(box, "capture.expired")
    assert entry["capture_id"] == old and entry["ok"] and entry["source"] == "retention"
    assert "--retention-days 2" in entry["detail"]
    assert f"capture {old}" in box.log() and "deleted" in box.log()
    time.sleep(1.5)  # several more sweeps: the others stay
    assert box.sniffer(running)["status"] == "running"
    assert box.sniffer(recent)["status"] == "stopped"
    assert (box.data_dir / "captures" / recent / "files").is_dir()
    assert [e["capture_id"] for e in audit(box, "capture.expired")] == [old]
    box.stop_sniffer(running)


def test_reclaim_deletes_the_oldest_stopped_capture_and_never_a_running_one(
        box: Server, pair: WebPair) -> None:
    box.start()
    first, second, third = (stopped_capture(box, pair) for _ in range(3))
    sizes = [first["size"], second["size"], third["size"]]
    assert all(sizes)
    mb = 1_000_000
    # Room for one running 1 MB ring and one new 1 MB ring beside the 2nd and 3rd captures,
    # and half of the first: the new start needs the first's room, not more.
    budget = 2 * mb + sizes[1] + sizes[2] + sizes[0] // 2

    restart(box, "--disk-budget", str(budget))  # reclaim off: refused, naming the budget
    running = box.sniff(pair.web.id, file_number=1, file_size_mb=1)
    r = start_one_mb(box, pair)
    shown = limits_shown(box)
    assert r.status_code == 409 and r.json()["kind"] == "FailedPrecondition", r.text
    assert "disk budget" in r.json()["message"] and "--reclaim oldest" in r.json()["message"]
    assert shown["reclaim"] == "none"
    assert all(status(box, c["id"]) == 200 for c in (first, second, third))
    with box.client() as c:  # not left behind as a 4th stopped capture
        assert c.delete(f"/api/captures/{running}").status_code == 204

    restart(box, "--disk-budget", str(budget), "--reclaim", "oldest")
    running = box.sniff(pair.web.id, file_number=1, file_size_mb=1)
    r = start_one_mb(box, pair)
    shown = limits_shown(box)
    assert r.status_code == 201, r.text
    new = r.json()["capture"]["id"]
    assert shown["reclaim"] == "oldest"
    assert status(box, first["id"]) == 404
    assert not (box.data_dir / "captures" / first["id"]).exists()
    assert status(box, second["id"]) == status(box, third["id"]) == 200
    assert box.sniffer(running)["status"] == "running"
    [entry] = audit(box, "capture.reclaimed")
    assert entry["capture_id"] == first["id"] and entry["username"] == "admin"
    assert new in entry["detail"] and "--reclaim oldest" in entry["detail"]
    assert f"capture {first['id']} deleted" in box.log()

    # Two running rings fill the budget but for the stopped ones: a third cannot fit even if
    # every stopped capture went, so it is refused and nothing is deleted.
    r = start_one_mb(box, pair)
    assert r.status_code == 409, r.text
    assert "by running captures" in r.json()["message"]
    assert status(box, second["id"]) == status(box, third["id"]) == 200
    assert len(audit(box, "capture.reclaimed")) == 1
    for cid in (running, new):
        box.stop_sniffer(cid)
