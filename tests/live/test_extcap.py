"""The Wireshark extcap with the real tshark: installed into a private HOME, listed by
`tshark -D`, and recording a container's traffic through the server."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

import pytest

from tests.support import PODCAP, Server, WebPair, tcp_flows, wait_for

EXTCAP = str(Path(PODCAP).parent / "podcap-extcap")


@pytest.fixture
def home(tmp_path: Path, server: Server) -> dict[str, str]:
    """An environment with a private HOME holding the login file and the installed extcap."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("PODCAP_", "XDG_"))}
    env["HOME"] = str(tmp_path / "home")
    done = subprocess.run([PODCAP, "login", "--server", server.url, "-u", "admin",
                           "--password-stdin"], input=server.password + "\n", text=True,
                          capture_output=True, env=env, timeout=30)
    assert done.returncode == 0, done.stderr
    done = subprocess.run([PODCAP, "extcap", "install"], capture_output=True, text=True,
                          env=env, timeout=30)
    assert done.returncode == 0, done.stderr
    installed = Path(env["HOME"]) / ".config" / "wireshark" / "extcap" / "podcap-extcap"
    assert installed.is_symlink() and os.access(installed, os.X_OK)
    return env


def extcap(env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([EXTCAP, *args], capture_output=True, text=True, env=env, timeout=30)


def test_tshark_lists_it(home: dict[str, str]) -> None:
    out = subprocess.run(["tshark", "-D"], capture_output=True, text=True, env=home, timeout=60)
    assert out.returncode == 0, out.stderr
    assert any(line.split(". ", 1)[-1].startswith("podcap ") for line in out.stdout.splitlines())


def test_protocol_answers(home: dict[str, str], pair: WebPair) -> None:
    listing = extcap(home, "--extcap-interfaces", "--extcap-version=4.0")
    assert listing.returncode == 0
    assert "interface {value=podcap}" in listing.stdout and listing.stdout.startswith("extcap ")
    dlts = extcap(home, "--extcap-interface", "podcap", "--extcap-dlts")
    assert "dlt {number=276}" in dlts.stdout
    config = extcap(home, "--extcap-interface", "podcap", "--extcap-config")
    assert config.returncode == 0, config.stderr
    for call in ("--server", "--namespace", "--workload", "--selector"):
        assert f"{{call={call}}}" in config.stdout
    assert "{reload=true}" in config.stdout
    assert f"{{value={pair.web.name}}}" in config.stdout  # the workloads, from the server
    reload = extcap(home, "--extcap-interface", "podcap", "--extcap-config",
                    "--extcap-reload-option", "workload")
    lines = reload.stdout.splitlines()
    assert lines and all(line.startswith("value {arg=2}") for line in lines), reload.stdout
    good = extcap(home, "--extcap-interface", "podcap", "--extcap-capture-filter", "tcp port 80")
    assert good.returncode == 0 and good.stdout == ""
    bad = extcap(home, "--extcap-interface", "podcap", "--extcap-capture-filter", "tcp port")
    assert bad.returncode != 0 and "syntax error" in bad.stdout, bad.stdout


def test_tshark_records_a_container_through_the_server(home: dict[str, str], pair: WebPair,
                                                       server: Server, tmp_path: Path) -> None:
    out = tmp_path / "out.pcapng"
    done = subprocess.run(["tshark", "-i", "podcap", "-o",
                           f"extcap.podcap.workload:{pair.web.name}", "-f", "tcp port 80",
                           "-a", "duration:3", "-w", str(out)],
                          capture_output=True, text=True, env=home, timeout=90)
    assert done.returncode == 0, done.stderr
    read = subprocess.run(["tshark", "-r", str(out), "-T", "fields", "-e", "ip.src", "-e",
                           "tcp.port"], capture_output=True, text=True, timeout=60)
    assert read.returncode == 0, read.stderr
    rows = [line.split("\t") for line in read.stdout.splitlines()]
    assert len(rows) > 5 and {pair.client_ip, pair.web_ip} <= {r[0] for r in rows}
    # On the server it is a normal capture of that workload, stopped when tshark stopped (by
    # the extcap, which tshark does not wait for).
    def stopped() -> dict | None:
        with server.client() as c:
            cap = c.get("/api/captures", params={"workload": pair.web.id}).json()["captures"][0]
        return cap if cap["status"] == "stopped" else None

    cap = wait_for(stopped, timeout=10, what="the extcap to stop its capture")
    assert cap["spec"]["filter"] == "tcp port 80", cap
    assert cap["stats"]["captured"] >= len(rows)
    from tests.support import read_pcap
    _, packets = read_pcap(server.pcap(cap["id"]))
    assert (pair.client_ip, pair.web_ip) in tcp_flows(packets)


def test_tshark_records_a_label_selector_as_one_group(home: dict[str, str], server: Server,
                                                      tmp_path: Path) -> None:
    """No workload, a label selector: every matching container, one pcapng, one interface
    each (a capture group on the server)."""
    from tests.support import container_ip, remove_container, run_container, unique

    label = f"h5-{os.getpid()}"
    web = run_container(unique("xg-web"), ["httpd", "-f", "-p", "80", "-h", "/www"],
                        labels={"podcap.test": label})
    cli = None
    try:
        ip = container_ip(web)
        cli = run_container(unique("xg-cli"), ["sh", "-c", f"while true; do wget -q -O "
                                                f"/dev/null http://{ip}/; sleep 0.2; done"],
                            labels={"podcap.test": label})
        out = tmp_path / "group.pcapng"
        done = subprocess.run(["tshark", "-i", "podcap", "-o",
                               f"extcap.podcap.selector:podcap.test={label}", "-a",
                               "duration:4", "-w", str(out)],
                              capture_output=True, text=True, env=home, timeout=90)
        assert done.returncode == 0, done.stderr
        read = subprocess.run(["tshark", "-r", str(out), "-T", "fields", "-e",
                               "frame.interface_name"], capture_output=True, text=True,
                              timeout=60)
        names = set(read.stdout.split())
        assert {web.name, cli.name} <= names, (names, done.stderr)
        def group_stopped() -> bool:  # tshark ends its extcap and does not wait for it
            with server.client() as c:
                groups = c.get("/api/capture-groups").json()["groups"]
            return any(g["status"] != "running" for g in groups)

        wait_for(group_stopped, timeout=10, what="the extcap to stop its group")
    finally:
        for c in (cli, web):
            if c is not None:
                remove_container(c)


def test_an_interrupt_during_the_stop_does_not_cut_it() -> None:
    """tshark closes the fifo as it sends SIGTERM: the pipe watcher's interrupt (a SIGINT) can
    land while the extcap is stopping its capture, and once cut the stop left the group running
    with nobody reading (a loaded run saw it)."""
    import _thread
    import signal
    import time

    from podcap.cli import extcap_interface as extcap

    stopped: list[str] = []

    class Api:
        def json(self, method: str, url: str, **_: object) -> dict:
            _thread.interrupt_main()  # what PipeWatcher does when the reader has gone
            time.sleep(0.05)  # the interrupt is delivered while the stop is under way
            stopped.append(f"{method} {url}")
            return {}

    handlers = signal.getsignal(signal.SIGINT), signal.getsignal(signal.SIGTERM)
    signal.signal(signal.SIGINT, extcap._on_term)  # as _capture sets them
    signal.signal(signal.SIGTERM, extcap._on_term)
    try:
        extcap._stop(Api(), "group", "g1")  # type: ignore[arg-type]
    finally:
        signal.signal(signal.SIGINT, handlers[0])
        signal.signal(signal.SIGTERM, handlers[1])
    assert stopped == ["POST /api/capture-groups/g1/stop"]
