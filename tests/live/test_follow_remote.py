"""Follow a capture on a remote agent: agent -> data port -> controller -> HTTP, live.

A quiet follow stream must outlive the controller's download idle limit (UPLOAD_IDLE_S): the
agent sends empty keepalive frames while nothing happens. The controller here runs with a short
idle limit (PODCAP_UPLOAD_IDLE_S, still above the keepalive interval) so that test waits seconds,
not the default 30."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from podcap import limits
from tests.cluster.cluster_support import AgentProc, Cluster, running_cluster
from tests.live.live_support import Followed, p95
from tests.support import WebPair, read_pcap, wait_for, web_pair

# The controller's upload idle limit in this module: above the agent's keepalive interval, far
# below the default, so a stream without keepalives would be cut well inside the quiet wait.
IDLE_S = limits.FOLLOW_KEEPALIVE_S + 3


@pytest.fixture(scope="module")
def cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Cluster]:
    tmp = tmp_path_factory.mktemp("follow-remote")
    with running_cluster(tmp, env={"PODCAP_UPLOAD_IDLE_S": str(IDLE_S)}) as c:
        agent = AgentProc(c, socket.gethostname(), tmp / "agent").start(c.join_token())
        try:
            yield c
        finally:
            agent.stop()


@pytest.fixture(scope="module")
def remote_pair() -> Iterator[WebPair]:
    with web_pair("remote") as p:
        yield p


def follow(cluster: Cluster, cid: str, **params: str) -> Followed:
    srv = cluster.server
    return Followed(f"{srv.url}/api/captures/{cid}/pcap", {"X-Auth-Token": srv.token},
                    {"follow": "true", **params}).start()


def test_remote_follow_is_live_and_equals_the_download(cluster: Cluster,
                                                       remote_pair: WebPair) -> None:
    srv = cluster.server
    cid = srv.sniff(remote_pair.web.id, filter="tcp port 80")
    f = follow(cluster, cid)
    opened = time.time()
    wait_for(lambda: sum(1 for ts, _ in f.arrivals if ts > opened + 0.5) >= 40, timeout=20,
             what="live packets from the remote agent")
    srv.stop_sniffer(cid)
    assert f.ended.wait(15) and f.error is None, f.error
    latencies = [arrived - ts for ts, arrived in f.arrivals if ts > opened + 0.5]
    print(f"remote follow latency: n={len(latencies)} p95={p95(latencies):.3f} s")
    assert p95(latencies) <= 1.5
    assert read_pcap(bytes(f.raw)) == read_pcap(srv.pcap(cid))


def test_quiet_remote_follow_outlives_the_upload_idle_limit(cluster: Cluster,
                                                            remote_pair: WebPair) -> None:
    srv = cluster.server
    assert srv.proc is not None  # the controller really runs with the short limit:
    environ = Path(f"/proc/{srv.proc.pid}/environ").read_bytes().split(b"\0")
    assert f"PODCAP_UPLOAD_IDLE_S={IDLE_S}".encode() in environ
    cid = srv.sniff(remote_pair.web.id, filter="tcp port 7777")  # nothing, until we send
    f = follow(cluster, cid)
    time.sleep(IDLE_S + 5)
    assert not f.ended.is_set(), f"the quiet stream was cut: {f.error}"
    remote_pair.client.exec_run(["sh", "-c", f"nc -w 1 {remote_pair.web_ip} 7777 </dev/null"])
    # (refused: a SYN and a RST)
    wait_for(lambda: len(f.arrivals) >= 1, timeout=10, what="the packet after the silence")
    srv.stop_sniffer(cid)
    assert f.ended.wait(15) and f.error is None, f.error
    assert read_pcap(bytes(f.raw)) == read_pcap(srv.pcap(cid))
    log = Path(srv.log_path).read_text(errors="replace") if srv.log_path else ""
    assert "sent nothing for" not in log


def test_the_upload_idle_limit_follows_its_environment_variable() -> None:
    """What lets the quiet test above wait seconds: the controller reads PODCAP_UPLOAD_IDLE_S."""
    code = "from podcap import limits; print(limits.UPLOAD_IDLE_S)"
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          env={**os.environ, "PODCAP_UPLOAD_IDLE_S": str(IDLE_S)}, check=True)
    assert float(done.stdout) == IDLE_S
    too_short = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                               env={**os.environ, "PODCAP_UPLOAD_IDLE_S": "1"})
    assert too_short.returncode != 0 and "must exceed the follow keepalive" in too_short.stderr
