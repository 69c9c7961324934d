"""containerd (CRI) restarted under running captures, on the private CRI test bed
(tests/cri/cri_testbed.py: its own containerd, never the host's).

containerd's shims keep containers running while containerd is down, as on a real node. While
it is down, one pod's container dies (SIGKILL, as an OOM kill would): its capture ends with
"container exited"; the other pod's capture goes on across the restart; the workload list
recovers without restarting podcap.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
from collections.abc import Iterator
from pathlib import Path

import grpc
import pytest

from podcap.runtime.cri_proto import api_pb2 as pb
from tests.cri import cri_testbed
from tests.support import Server, enter_bed, running_server, wait_for

pytestmark = pytest.mark.cri


@pytest.fixture()
def bed() -> Iterator[cri_testbed.CriTestbed]:
    with enter_bed(cri_testbed.cri_testbed()) as b:
        yield b


def _container_pid(bed: cri_testbed.CriTestbed, container_id: str) -> int:
    status = bed.runtime.ContainerStatus(
        pb.ContainerStatusRequest(container_id=container_id, verbose=True), timeout=10)
    return int(json.loads(status.info["info"])["pid"])


def _workload_ids(srv: Server) -> set[str]:
    with srv.client() as c:
        r = c.get("/v1/workload")
    assert r.status_code == 200, r.text
    return {w["id"] for w in r.json()["workloads"]}


def _restart_containerd(bed: cri_testbed.CriTestbed, while_down: object) -> None:
    assert bed.proc is not None
    bed.proc.terminate()
    bed.proc.wait(30)
    if bed.channel is not None:
        bed.channel.close()
    assert callable(while_down)
    while_down()
    # The bed's own start() also writes its config and imports images: only the daemon here.
    with open(bed.dir / "containerd.log", "ab") as out:
        bed.proc = subprocess.Popen(["containerd", "--config", str(bed.dir / "config.toml")],
                                    stdout=out, stderr=subprocess.STDOUT,
                                    start_new_session=True)
    bed.channel = grpc.insecure_channel(f"unix://{bed.socket}")
    wait_for(lambda: _answers(bed), timeout=30, what="containerd after the restart")


def _answers(bed: cri_testbed.CriTestbed) -> bool:
    try:
        bed.runtime.Version(pb.VersionRequest(), timeout=1)
        return True
    except grpc.RpcError:
        return False


def test_containerd_restart_during_captures(tmp_path: Path,
                                            bed: cri_testbed.CriTestbed) -> None:
    web = bed.run_pod("web", ["sh", "-c", "ping -q -i 0.05 127.0.0.1"])
    dying = bed.run_pod("dying", ["sh", "-c", "ping -q -i 0.05 127.0.0.1"])
    args = ["--runtime", "cri", "--cri-socket", str(bed.socket), "--node-name", "cri-node"]
    with running_server(tmp_path, extra_args=args) as srv:
        assert {web.container_id, dying.container_id} <= _workload_ids(srv)
        goes_on = srv.sniff(web.container_id)
        ends = srv.sniff(dying.container_id)
        for cid in (goes_on, ends):
            wait_for(lambda c=cid: srv.sniffer(c)["stats"]["captured"] > 5, timeout=20,
                     what="packets before the restart")
        victim = _container_pid(bed, dying.container_id)

        def kill_while_down() -> None:
            os.kill(victim, signal.SIGKILL)  # our pod's process, by the pid CRI gave
            final = srv.ended(ends, timeout=20)
            assert (final["status"], final["reason"]) == ("stopped", "container exited")

        _restart_containerd(bed, kill_while_down)
        before = srv.sniffer(goes_on)["stats"]["captured"]
        wait_for(lambda: srv.sniffer(goes_on)["stats"]["captured"] > before + 5, timeout=20,
                 what="packets after the restart")
        assert srv.sniffer(goes_on)["status"] == "running"
        wait_for(lambda: web.container_id in _workload_ids(srv), timeout=30,
                 what="the workload list after the restart")
        again = srv.sniff(web.sandbox_id)  # and a new start goes through the new containerd
        wait_for(lambda: srv.sniffer(again)["stats"]["captured"] > 3, timeout=20,
                 what="a capture started after the restart")
