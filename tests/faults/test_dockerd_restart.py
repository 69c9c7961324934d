"""The Docker Engine restarted under running captures (a private dockerd: the shared one is
never restarted).

Without live-restore a dockerd stop kills its containers: their captures end with "container
exited". A container with a restart policy comes back as a new process; it is in the workload
list again, without podcap being restarted, and a new capture of it runs. With live-restore the
containers outlive the daemon and their captures go on, counting packets across the restart.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.faults.private_dockerd import PrivateDockerd
from tests.support import Server, running_server, wait_for

PING = ("ping", "-q", "-i", "0.05", "-w", "600", "127.0.0.1")


def _names(srv: Server) -> set[str]:
    with srv.client() as c:
        r = c.get("/v1/workload")
    assert r.status_code == 200, r.text
    return {w["display_name"] for w in r.json()["workloads"]}


@pytest.fixture(params=[False, True], ids=["live-restore-off", "live-restore-on"])
def dockerd(request: pytest.FixtureRequest) -> Iterator[PrivateDockerd]:
    d = PrivateDockerd(live_restore=request.param)
    try:
        d.start()
        d.load_busybox()
        yield d
    finally:
        d.close()


def test_dockerd_restart_during_captures(tmp_path: Path, dockerd: PrivateDockerd) -> None:
    plain, kept = PrivateDockerd.name("plain"), PrivateDockerd.name("kept")
    plain_id = dockerd.run(plain, *PING)
    kept_id = dockerd.run(kept, *PING, restart="always")
    with running_server(tmp_path, extra_args=["--docker-socket", dockerd.url]) as srv:
        assert {plain, kept} <= _names(srv)
        cids = {n: srv.sniff(i) for n, i in ((plain, plain_id), (kept, kept_id))}
        for cid in cids.values():
            wait_for(lambda c=cid: srv.sniffer(c)["stats"]["captured"] > 5, timeout=20,
                     what="packets before the restart")
        dockerd.restart()
        if dockerd.live_restore:  # the containers outlived the daemon: captures go on
            for cid in cids.values():
                before = srv.sniffer(cid)["stats"]["captured"]
                wait_for(lambda c=cid, b=before: srv.sniffer(c)["stats"]["captured"] > b + 5,
                         timeout=20, what="packets after the restart")
                assert srv.sniffer(cid)["status"] == "running"
        else:  # the containers died with the daemon
            for cid in cids.values():
                final = srv.ended(cid, timeout=30)
                assert (final["status"], final["reason"]) == ("stopped", "container exited")
        # The list recovers without restarting podcap: the restarted container is there again.
        wait_for(lambda: kept in _names(srv), timeout=30, what="workload list after restart")
        new = srv.sniff(kept_id)
        wait_for(lambda: srv.sniffer(new)["stats"]["captured"] > 3, timeout=20,
                 what="a capture of the container after the restart")
        assert srv.proc is not None and srv.proc.poll() is None
