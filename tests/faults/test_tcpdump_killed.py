"""tcpdump SIGKILLed under a running capture (an OOM killer, a person): the capture ends by
itself with a reason that names the signal, and what it wrote still parses."""

from __future__ import annotations

import os
import signal
import subprocess
from pathlib import Path

from podcap.agent.recovery import find_tcpdumps
from tests.support import WebPair, read_pcap, running_server, wait_for


def test_sigkilled_tcpdump_ends_the_capture_with_the_signal_named(tmp_path: Path,
                                                                   pair: WebPair) -> None:
    with running_server(tmp_path) as srv:
        cid = srv.sniff(pair.web.id, filter="tcp port 80")
        wait_for(lambda: srv.sniffer(cid)["stats"]["captured"] > 10, timeout=20,
                 what="packets before the kill")
        pid, _ = find_tcpdumps(srv.data_dir / "captures")[cid]
        os.kill(pid, signal.SIGKILL)
        final = srv.ended(cid)
        assert final["status"] == "failed", final
        assert final["reason"] == "tcpdump killed by signal 9 (SIGKILL)", final
        data = srv.pcap(cid)
        assert read_pcap(data)[0] == 276  # dpkt reads every record
        path = tmp_path / "killed.pcap"
        path.write_bytes(data)
        done = subprocess.run(["tshark", "-r", str(path)], capture_output=True, text=True,
                              timeout=60)
        assert done.returncode == 0 and "cut short" not in done.stderr, done.stderr
        assert done.stdout.count("\n") >= 1  # the packets before the kill are there
        assert cid not in find_tcpdumps(srv.data_dir / "captures")
        with srv.client() as c:  # the server goes on: a new capture starts
            r = c.post("/v1/sniffer", params={"f_workload": pair.web.id},
                       json={"sniffer": {}})
            assert r.status_code == 200, r.text
