"""`podcap capture live` through the installed console script, piped into the real tshark."""

from __future__ import annotations

import os
import subprocess
import time

import pytest

from tests.support import PODCAP, Server, WebPair


def env_for(server: Server, tmp_path) -> dict[str, str]:
    return {**os.environ, "PODCAP_SERVER": server.url, "PODCAP_USER": "admin",
            "PODCAP_PASSWORD": server.password, "PODCAP_CONFIG": str(tmp_path / "none.json")}


def captures_of(server: Server, workload_id: str) -> list[dict]:
    with server.client() as c:
        return c.get("/api/captures", params={"workload": workload_id}).json()["captures"]


@pytest.mark.parametrize("form", ["pcap", "pcapng"])
def test_live_into_tshark_reads_packets(server: Server, pair: WebPair, tmp_path,
                                        form: str) -> None:
    extra = ["--pcapng"] if form == "pcapng" else []
    live = subprocess.Popen([PODCAP, "capture", "live", pair.web.name, "-f", "tcp port 80",
                             "--duration", "2", *extra], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, env=env_for(server, tmp_path))
    assert live.stdout is not None
    shark = subprocess.run(["tshark", "-r", "-", "-T", "fields", "-e", "ip.src"],
                           stdin=live.stdout, capture_output=True, text=True, timeout=60)
    live.stdout.close()
    assert live.wait(30) == 0, live.stderr.read() if live.stderr else ""
    assert shark.returncode == 0, shark.stderr
    sources = shark.stdout.split()
    assert len(sources) > 10 and pair.client_ip in sources and pair.web_ip in sources
    ended = captures_of(server, pair.web.id)[0]
    assert ended["status"] == "stopped" and ended["reason"] == "duration reached"
    assert ended["stats"]["captured"] == len(sources)


def test_closing_the_pipe_stops_the_capture(server: Server, pair: WebPair, tmp_path) -> None:
    for keep in (True, False):
        args = [PODCAP, "capture", "live", pair.web.name, "-f", "tcp port 80"]
        live = subprocess.Popen(args + ([] if keep else ["--rm"]), stdout=subprocess.PIPE,
                                stderr=subprocess.PIPE, env=env_for(server, tmp_path))
        assert live.stdout is not None and live.stderr is not None
        head = live.stdout.read(24)
        assert head[:4] == b"\xd4\xc3\xb2\xa1"
        cid = next(c["id"] for c in captures_of(server, pair.web.id)
                   if c["status"] == "running")
        closed = time.monotonic()
        live.stdout.close()  # the reader goes away (Wireshark quit)
        assert live.wait(15) == 0
        took = time.monotonic() - closed
        err = live.stderr.read().decode()
        assert "the pipe closed" in err, err
        assert took < 8, took
        with server.client() as c:
            r = c.get(f"/api/captures/{cid}")
        if keep:
            assert r.json()["capture"]["status"] == "stopped", r.text
            assert r.json()["capture"]["reason"] == "stopped by user"
        else:
            assert r.status_code == 404, r.text


def test_live_refuses_a_terminal_and_bad_filters(server: Server, pair: WebPair,
                                                 tmp_path) -> None:
    bad = subprocess.run([PODCAP, "capture", "live", pair.web.name, "-f", "tcp port"],
                         capture_output=True, text=True,
                         env=env_for(server, tmp_path), timeout=30)
    assert bad.returncode == 2 and "filter" in bad.stderr, bad.stderr
    before = captures_of(server, pair.web.id)
    # A pseudo-terminal as stdout: refused before anything starts.
    import pty
    leader, follower = pty.openpty()
    try:
        tty = subprocess.run([PODCAP, "capture", "live", pair.web.name], stdout=follower,
                             stderr=subprocess.PIPE, text=True, env=env_for(server, tmp_path),
                             timeout=30)
    finally:
        os.close(follower)
        os.close(leader)
    assert tty.returncode == 2 and "stdout is a terminal" in tty.stderr, tty.stderr
    deadline = time.monotonic() + 2
    while len(after := captures_of(server, pair.web.id)) != len(before):
        assert time.monotonic() < deadline, (
            f"captures before: {[(c['id'], c['status']) for c in before]}; "
            f"after: {[(c['id'], c['status'], c['reason']) for c in after]}")
        time.sleep(0.1)


def test_follow_an_existing_capture(server: Server, pair: WebPair, tmp_path) -> None:
    cid = server.sniff(pair.web.id, filter="tcp port 80", duration=2)
    follow = subprocess.Popen([PODCAP, "capture", "follow", cid[:12]], stdout=subprocess.PIPE,
                              stderr=subprocess.PIPE, env=env_for(server, tmp_path))
    out, err = follow.communicate(timeout=60)
    assert follow.returncode == 0, err
    shark = subprocess.run(["tshark", "-r", "-", "-T", "fields", "-e", "frame.number"],
                           input=out, capture_output=True, timeout=60)
    assert shark.returncode == 0, shark.stderr
    assert out == server.pcap(cid) and len(shark.stdout.split()) > 10
    # A reader that goes away stops only its own reading: the capture goes on.
    cid = server.sniff(pair.web.id, filter="tcp port 80")
    follow = subprocess.Popen([PODCAP, "capture", "follow", cid, "--from-now"],
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                              env=env_for(server, tmp_path))
    assert follow.stdout is not None
    assert follow.stdout.read(24)[:4] == b"\xd4\xc3\xb2\xa1"
    follow.stdout.close()
    assert follow.wait(15) == 0
    assert server.sniffer(cid)["status"] == "running"
    server.stop_sniffer(cid)
