"""The `podcap` CLI against a real `podcap serve`, real containers and real tcpdump.

Commands run in-process through Typer's CliRunner (fast), and once through the installed console
script, to prove the entry point. Each test gets its own login file through PODCAP_CONFIG.
"""

from __future__ import annotations

import json
import os
import secrets
import stat
import subprocess
import time
from pathlib import Path

import httpx
import pytest
from typer.testing import CliRunner

from podcap.cli.main import app
from tests.support import (
    PODCAP,
    free_port,
    read_pcap,
    remove_container,
    run_container,
    running_server,
    unique,
    wait_for,
    web_pair,
)

ISOLATED = {"PODCAP_SERVER": None, "PODCAP_USER": None, "PODCAP_PASSWORD": None,
            "PODCAP_TOKEN": None, "PODCAP_CACERT": None, "PODCAP_INSECURE": None}


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    with running_server(tmp_path_factory.mktemp("cli")) as srv:
        yield srv


@pytest.fixture
def cli(tmp_path, monkeypatch):
    """``cli(*args)`` runs podcap with a private login file; ``cli.config`` is that file."""
    cfg = tmp_path / "config" / "podcap.json"
    monkeypatch.chdir(tmp_path)

    def invoke(*args: str, input: str | None = None, env: dict | None = None):
        environ = {**ISOLATED, "PODCAP_CONFIG": str(cfg), **(env or {})}
        return CliRunner().invoke(app, list(args), input=input, env=environ)
    invoke.config = cfg  # type: ignore[attr-defined]
    return invoke


def login(cli, server) -> None:
    result = cli("login", "--server", server.url, "-u", "admin", "--password-stdin",
                 input=server.password + "\n")
    assert result.exit_code == 0, result.output


def as_json(result) -> dict:
    assert result.exit_code == 0, result.output
    return json.loads(result.stdout)


def as_json_text(result) -> str:
    assert result.exit_code == 0, result.output
    return result.stdout


def test_login_writes_a_private_file_and_logout_forgets_the_token(cli, server):
    login(cli, server)
    assert stat.S_IMODE(os.stat(cli.config).st_mode) == 0o600
    saved = json.loads(cli.config.read_text())
    assert saved["server"] == server.url and saved["token"]
    assert server.password not in cli.config.read_text()
    whoami = cli("whoami")
    assert whoami.exit_code == 0 and "admin" in whoami.stdout and server.url in whoami.stdout
    with server.client(saved["token"]) as http:  # the token ends elsewhere (another logout)
        assert http.post("/api/logout").status_code == 204
    stale = cli("ps")
    assert stale.exit_code == 3 and "podcap login` again" in stale.output
    login(cli, server)
    saved = json.loads(cli.config.read_text())
    logout = cli("logout")
    assert logout.exit_code == 0, logout.output
    assert not cli.config.exists()
    with server.client(saved["token"]) as http:
        assert http.get("/api/whoami").status_code == 401
    result = cli("ps")
    assert result.exit_code == 3 and "podcap login" in result.output


def test_bad_password_exits_3_with_the_servers_message(cli, server):
    result = cli("login", "--server", server.url, "-u", "admin", "-p", "wrong-" + server.password)
    assert result.exit_code == 3
    assert "error:" in result.output and len(result.output.strip()) > len("error:")
    assert not cli.config.exists()
    result = cli("--server", server.url, "-u", "admin", "-p", "nope", "ps")
    assert result.exit_code == 3


def test_capture_by_name_from_start_to_download(cli, server, tmp_path):
    login(cli, server)
    with web_pair("cli") as pair:
        name = pair.web.name
        workloads = as_json(cli("ps", "-o", "json"))["workloads"]
        mine = [w for w in workloads if w["name"].lstrip("/") == name]
        assert len(mine) == 1 and mine[0]["cap_sniff"] is True
        table = cli("ps", "-q", name)
        assert table.exit_code == 0 and name in table.stdout and "yes" in table.stdout

        started = as_json(cli("capture", "start", name, "--filter", "tcp port 80",
                              "--files", "2", "--file-size", "1", "-o", "json"))["capture"]
        cid = started["id"]
        assert started["workload_id"] == pair.web.id and started["status"] == "running"
        listed = as_json(cli("capture", "ls", "-o", "json"))["captures"]
        assert [c["status"] for c in listed if c["id"] == cid] == ["running"]
        assert cid[:12] in cli("capture", "ls").stdout  # tables show docker-style short ids
        wait_for(lambda: as_json(cli("capture", "show", cid, "-o", "json"))
                 ["capture"]["stats"]["captured"] > 10, timeout=20, what="packets")

        stopped = cli("capture", "stop", cid)
        assert stopped.exit_code == 0 and "stopped by user" in stopped.stdout
        final = as_json(cli("capture", "show", cid, "-o", "json"))["capture"]
        assert final["status"] == "stopped" and final["reason"] == "stopped by user"
        shown = cli("capture", "show", cid[:8])  # a unique prefix is enough
        assert shown.exit_code == 0 and "tcp port 80" in shown.stdout and cid in shown.stdout

    out = tmp_path / "web.pcap"
    got = cli("capture", "get", cid, "-o", str(out))
    assert got.exit_code == 0, got.output
    _, packets = read_pcap(out)
    assert len(packets) == final["stats"]["captured"] > 10
    default = cli("capture", "get", cid)  # the server's Content-Disposition name, in the cwd
    assert default.exit_code == 0, default.output
    named = [p for p in Path.cwd().glob("*.pcap") if p != out]
    assert len(named) == 1 and named[0].read_bytes() == out.read_bytes()
    assert cli("capture", "get", cid).exit_code == 6  # would overwrite
    head = cli("capture", "get", cid, "--limit", "1", "-o", "-")  # whole ring files, as NeuVector
    assert head.exit_code == 0 and head.stdout_bytes == out.read_bytes()

    removed = cli("capture", "rm", cid)
    assert removed.exit_code == 0, removed.output
    assert cid[:12] not in cli("capture", "ls").stdout
    with server.client() as http:  # really gone on the server, files and all
        assert http.get(f"/api/captures/{cid}").status_code == 404
    assert not (server.data_dir / "captures" / cid).exists()
    for command in ("show", "stop", "get", "rm"):
        result = cli("capture", command, cid)
        assert result.exit_code == 4, (command, result.output)


def test_refusals_carry_the_servers_message_and_wait_follows_to_the_end(cli, server):
    login(cli, server)
    absent = unique("absent")
    missing = cli("capture", "start", absent)
    assert missing.exit_code == 4 and f"no workload is named '{absent}'" in missing.output
    host = run_container(unique("cli-host"), ["sleep", "60"], network_mode="host")
    try:
        wait_for(lambda: any(w["name"].lstrip("/") == host.name for w in
                             as_json(cli("ps", "-o", "json"))["workloads"]), what="host ps")
        result = cli("capture", "start", host.name)
        assert result.exit_code == 6, result.output  # a failed precondition (409): refused
        assert "host" in result.output.lower()
        assert "no: host network" in cli("ps", "-q", host.name).stdout
    finally:
        remove_container(host)
    with web_pair("cli-bad") as pair:
        result = cli("capture", "start", pair.web.name, "--filter", "tcp port eighty")
        assert result.exit_code == 2 and "error:" in result.output, result.output
        waited = as_json(cli("capture", "start", pair.web.name, "-d", "1", "--wait", "-o", "json"))
        assert (waited["capture"]["status"], waited["capture"]["reason"]) == (
            "stopped", "duration reached")
    too_many = cli("capture", "start", "x", "--files", "51")  # refused before sending
    assert too_many.exit_code == 2 and "50" in too_many.output, too_many.output
    assert "not found" not in too_many.output  # never reached the server's workload lookup


def test_console_script_with_credentials_from_the_environment(server, tmp_path):
    env = {**os.environ, "PODCAP_CONFIG": str(tmp_path / "none.json"),
           "PODCAP_SERVER": server.url, "PODCAP_USER": "admin",
           "PODCAP_PASSWORD": server.password}
    env.pop("PODCAP_TOKEN", None)
    box = run_container(unique("cli-env"), ["sleep", "60"])
    try:
        done = subprocess.run([PODCAP, "ps", "-o", "json"], env=env, capture_output=True,
                              text=True, timeout=30)
        with server.client() as http:
            expected = {w["id"] for w in http.get("/api/workloads").json()["workloads"]}
            captures = {c["id"] for c in http.get("/api/captures").json()["captures"]}
    finally:
        remove_container(box)
    assert done.returncode == 0, done.stderr
    listed = {w["id"]: w for w in json.loads(done.stdout)["workloads"]}
    assert box.id in expected and listed[box.id]["cap_sniff"] is True
    assert listed[box.id]["name"].lstrip("/") == box.name
    del env["PODCAP_USER"], env["PODCAP_PASSWORD"]
    env["PODCAP_TOKEN"] = server.token
    done = subprocess.run([PODCAP, "capture", "ls", "-o", "json"], env=env,
                          capture_output=True, text=True, timeout=30)
    assert done.returncode == 0, done.stderr
    assert {c["id"] for c in json.loads(done.stdout)["captures"]} == captures


def test_https_with_the_servers_own_certificate(cli, tmp_path):
    """The default server is HTTPS with a self-signed tls.crt: --cacert trusts it, -k skips."""
    port, password = free_port(), secrets.token_urlsafe(12)
    data = tmp_path / "tls-data"
    url = f"https://127.0.0.1:{port}"
    log = open(tmp_path / "serve-tls.log", "wb")  # noqa: SIM115 - closed below
    proc = subprocess.Popen([PODCAP, "serve", "--listen", f"127.0.0.1:{port}",
                             "--data-dir", str(data)], stdout=log, stderr=subprocess.STDOUT,
                            env={**os.environ, "PODCAP_ADMIN_PASSWORD": password})
    try:
        def up() -> bool:
            try:
                return httpx.get(url + "/healthz", verify=False, timeout=1).status_code == 200
            except httpx.HTTPError:
                assert proc.poll() is None, (tmp_path / "serve-tls.log").read_text()
                time.sleep(0.1)
                return False
        wait_for(up, timeout=30, what="HTTPS server")
        untrusted = cli("login", "--server", url, "-u", "admin", "-p", password)
        assert untrusted.exit_code == 5 and "--cacert" in untrusted.output
        cert = str(data / "tls.crt")
        trusted = cli("login", "--server", url, "-u", "admin", "-p", password, "--cacert", cert)
        assert trusted.exit_code == 0, trusted.output
        saved = json.loads(cli.config.read_text())
        assert (saved["server"], saved["cacert"], saved["insecure"]) == (url, cert, False)
        ps = cli("ps", "-o", "json")  # the login file remembers the certificate
        assert ps.exit_code == 0 and isinstance(json.loads(ps.stdout)["workloads"], list)
        # a list nothing else changes (other tests' containers come and go in `ps`)
        remembered = cli("capture", "ls", "-o", "json")
        assert remembered.exit_code == 0, remembered.output
        assert json.loads(remembered.stdout) == {"captures": [], "unreachable": []}
        skipped = cli("-k", "--server", url, "-u", "admin", "-p", password,
                      "capture", "ls", "-o", "json")
        assert json.loads(as_json_text(skipped)) == {"captures": [], "unreachable": []}
    finally:
        proc.terminate()
        try:
            proc.wait(15)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(5)
        log.close()


def test_user_commands(cli, server) -> None:
    """`podcap user add|ls|set|passwd|unlock|rm` against the real server."""
    login(cli, server)
    r = cli("user", "add", "cli-op", "--role", "operator", "-n", "team-a", "-n", "team-b",
            "--password-stdin", input="cli-op-password\n")
    assert r.exit_code == 0, r.output
    r = cli("user", "add", "cli-op", "--password-stdin", input="cli-op-password\n")
    assert r.exit_code == 6 and "exists" in r.output  # 409: refused
    r = cli("user", "ls", "-o", "json")
    users = {u["username"]: u for u in json.loads(r.stdout)["users"]}
    assert users["cli-op"]["namespaces"] == ["team-a", "team-b"]
    assert users["cli-op"]["download"] is False
    r = cli("user", "set", "cli-op", "--all-namespaces", "--download")
    assert r.exit_code == 0, r.output
    r = cli("user", "ls")
    assert r.exit_code == 0 and "cli-op" in r.stdout and "(all)" in r.stdout
    with httpx.Client(base_url=server.url) as c:  # five wrong passwords, then the back-off
        for _ in range(7):
            c.post("/api/login", json={"username": "cli-op", "password": "wrong-password"})
    r = cli("user", "ls", "-o", "json")
    assert {u["username"]: u for u in json.loads(r.stdout)["users"]}["cli-op"]["locked"]
    assert cli("user", "unlock", "cli-op").exit_code == 0
    r = cli("user", "passwd", "cli-op", "--password-stdin", input="changed-password\n")
    assert r.exit_code == 0, r.output
    assert server.login("cli-op", "changed-password")
    own = {"PODCAP_USER": "cli-op", "PODCAP_PASSWORD": "changed-password"}
    r = cli("user", "ls", env=own)
    assert r.exit_code == 3 and "not an admin" in r.output
    r = cli("user", "passwd", "--password-stdin", env=own,
            input="changed-password\nthird-password\n")
    assert r.exit_code == 0, r.output
    assert server.login("cli-op", "third-password")
    assert cli("user", "rm", "cli-op").exit_code == 0
    r = cli("user", "rm", "cli-op")
    assert r.exit_code == 4 and "not found" in r.output
    r = cli("user", "set", "admin", "--role", "reader")
    assert r.exit_code == 6 and "last admin" in r.output  # 409: a failed precondition
