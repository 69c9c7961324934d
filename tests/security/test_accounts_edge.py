"""Issue 24's accounts and edge, through a real `podcap serve`: a lockout one address cannot
impose on the others (tries from 127.0.0.1 and 127.0.0.2), the offline unlock on the host,
forwarded-for headers trusted only from a listed proxy, refusals of signed-in users audited,
floods of failed logins that do not grow the audit log, and conversation fields checked by
their canonical protocol."""

from __future__ import annotations

import json
import os
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from sqlalchemy.engine import make_url
from support import PODCAP, Server, running_server

from podcap import limits
from podcap.controller.db import LoginFailures, open_db
from podcap.controller.throttle import pair_key

NO_CAPTURE = "0" * 32  # a well-formed id that names nothing
ATTACKER, OWNER = "127.0.0.1", "127.0.0.2"  # both loopback: Linux routes all of 127/8 to lo


def login_from(srv: Server, address: str, username: str, password: str) -> httpx.Response:
    """POST /api/login from a chosen local source address."""
    transport = httpx.HTTPTransport(local_address=address)
    with httpx.Client(transport=transport, base_url=srv.url, timeout=30) as c:
        return c.post("/api/login", json={"username": username, "password": password})


@pytest.fixture(params=["sqlite", "postgresql"])
def own(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Server]:
    """A server of its own: these tests lock its admin."""
    env = {}
    if request.param == "postgresql":
        from pg import new_database
        env["PODCAP_DATABASE_URL"] = new_database(request.getfixturevalue("postgres_url"))
    with running_server(tmp_path, env=env) as server:
        yield server


def test_a_guesser_cannot_lock_the_admin_out(own: Server) -> None:
    """Issue 24: 21 bad logins for admin locked it from every address, each try while locked
    reset the hour, and with one admin nobody could get back in."""
    codes = [login_from(own, ATTACKER, "admin", "wrong-password").status_code
             for _ in range(21)]
    free = limits.LOGIN_USER_FREE_FAILURES + 1
    assert codes == [401] * free + [429] * (21 - free)
    assert login_from(own, ATTACKER, "admin", own.password).status_code == 429
    # The owner, from an address with no failures, is let in with the right password.
    r = login_from(own, OWNER, "admin", own.password)
    assert r.status_code == 200, r.text
    # The guesser's pair one failure short of the lock, then that failure: locked for an hour.
    sessions = open_db(own.env.get("PODCAP_DATABASE_URL"), own.data_dir)
    try:
        with sessions() as db, db.begin():
            row = db.get(LoginFailures, pair_key("admin", ATTACKER))
            row.failures, row.blocked_until = limits.LOGIN_LOCK_FAILURES - 1, 0.0
        assert login_from(own, ATTACKER, "admin", "wrong-password").status_code == 401
        locked = login_from(own, ATTACKER, "admin", own.password)
        assert locked.status_code == 429 and "locked from address 127.0.0.1" in \
            locked.json()["message"] and "--data-dir" in locked.json()["message"]
        assert limits.LOGIN_LOCK_S - 60 < int(locked.headers["retry-after"]) <= \
            limits.LOGIN_LOCK_S
        with sessions() as db:
            until = db.get(LoginFailures, pair_key("admin", ATTACKER)).blocked_until
        time.sleep(1.1)  # so that an extended lock would show
        for password in ("wrong-password", own.password, "wrong-password"):
            assert login_from(own, ATTACKER, "admin", password).status_code == 429
        with sessions() as db:  # knocking while locked never extends the lock
            row = db.get(LoginFailures, pair_key("admin", ATTACKER))
            assert row.blocked_until == until and row.failures == limits.LOGIN_LOCK_FAILURES
        assert login_from(own, OWNER, "admin", own.password).status_code == 200
    finally:
        sessions.kw["bind"].dispose()
    # On the host, without logging in: the offline unlock, audited.
    env = dict(os.environ, **own.env)
    done = subprocess.run([PODCAP, "user", "unlock", "admin", "--data-dir", str(own.data_dir)],
                          capture_output=True, text=True, timeout=60, env=env)
    assert done.returncode == 0 and "user admin unlocked" in done.stderr, done
    assert login_from(own, ATTACKER, "admin", own.password).status_code == 200
    with own.client() as c:
        entry = c.get("/api/audit", params={"event": "user.unlock"}).json()["events"][0]
    assert entry["username"].startswith("host:") and entry["source"] == "host"
    assert "user admin" in entry["detail"] and "--data-dir" in entry["detail"]
    lines = (own.data_dir / "audit.jsonl").read_text().splitlines()  # mirrored to the file
    assert any(json.loads(line)["event"] == "user.unlock" for line in lines)


def test_offline_unlock_says_what_is_wrong(own: Server, tmp_path: Path) -> None:
    env = dict(os.environ, **own.env)

    def unlock(*args: str) -> subprocess.CompletedProcess:
        return subprocess.run([PODCAP, "user", "unlock", *args], capture_output=True,
                              text=True, timeout=60, env=env)

    done = unlock("nobody-here", "--data-dir", str(own.data_dir))
    assert done.returncode == 4 and "user nobody-here not found" in done.stderr, done
    if "PODCAP_DATABASE_URL" in own.env:  # the URL is named, its password is not
        secret = make_url(own.env["PODCAP_DATABASE_URL"]).password
        assert secret and str(secret) not in done.stderr and "***" in done.stderr
    empty = tmp_path / "empty"
    empty.mkdir()
    if "PODCAP_DATABASE_URL" not in own.env:
        done = unlock("admin", "--data-dir", str(empty))
        assert done.returncode == 4 and "no database" in done.stderr, done
        assert not (empty / "podcap.db").exists()  # never creates an empty one
    done = unlock("admin", "--data-dir", str(tmp_path / "missing"))
    assert done.returncode == 4 and "no data dir" in done.stderr, done


def test_a_protocol_number_with_ports_needs_them(server: Server) -> None:
    """``proto=ip-6`` is tcp: without ports it built a filter with ``port None``."""
    with server.client() as c:
        r = c.get(f"/api/captures/{NO_CAPTURE}/conversations/pcap",
                  params={"proto": "ip-6", "a": "10.0.0.1", "b": "10.0.0.2"})
        assert r.status_code == 400 and "a_port" in r.json()["message"], r.text
        r = c.post(f"/api/captures/{NO_CAPTURE}/conversations/ticket",
                   json={"proto": "ip-17", "a": "10.0.0.1", "b": "10.0.0.2", "a_port": 53})
        assert r.status_code == 400 and "b_port" in r.json()["message"], r.text


def login_events(srv: Server, address: str = OWNER) -> list[dict]:
    """The audit's login events, read as the admin (logged in from ``address``)."""
    r = login_from(srv, address, "admin", srv.password)
    assert r.status_code == 200, r.text
    with httpx.Client(base_url=srv.url, timeout=30, transport=httpx.HTTPTransport(
            local_address=address), headers={"X-Auth-Token": r.json()["token"]}) as c:
        return c.get("/api/audit", params={"event": "login", "limit": 500}).json()["events"]


def test_forwarded_for_from_loopback_is_not_believed(tmp_path: Path) -> None:
    """Issue 24: uvicorn believed X-Forwarded-For from 127.0.0.1, so a local user (or a
    `kubectl port-forward`) chose the address the throttle counted and the audit recorded."""
    with running_server(tmp_path) as srv:
        transport = httpx.HTTPTransport(local_address=ATTACKER)
        with httpx.Client(transport=transport, base_url=srv.url, timeout=30) as c:
            codes = [c.post("/api/login", json={"username": f"xff-{i}", "password": "wrong-pw"},
                            headers={"X-Forwarded-For": f"203.0.113.{i}"}).status_code
                     for i in range(limits.LOGIN_ADDR_FREE_FAILURES + 2)]
            # Each try claimed another address; the peer's count blocked them all the same.
            assert codes[-1] == 429 and 401 in codes, codes
            r = c.post("/api/login", json={"username": "xff-last", "password": "wrong-pw"},
                       headers={"X-Forwarded-For": "198.51.100.1"})
            assert r.status_code == 429 and "address 127.0.0.1" in r.json()["message"]
        sources = {e["source"] for e in login_events(srv) if e["username"].startswith("xff-")}
        assert sources == {ATTACKER}


def test_forwarded_for_from_a_listed_proxy_names_the_client(tmp_path: Path) -> None:
    with running_server(tmp_path, extra_args=["--trusted-proxies", f"{OWNER}/32"]) as srv:
        for address, claimed, user in ((ATTACKER, "203.0.113.10", "via-nobody"),
                                       (OWNER, "203.0.113.11", "via-proxy")):
            with httpx.Client(transport=httpx.HTTPTransport(local_address=address),
                              base_url=srv.url, timeout=30) as c:
                r = c.post("/api/login", json={"username": user, "password": "wrong-pw"},
                           headers={"X-Forwarded-For": claimed})
                assert r.status_code == 401
        found = {e["username"]: e["source"] for e in login_events(srv, OWNER)}
        assert found["via-nobody"] == ATTACKER  # not a listed proxy: its header is ignored
        assert found["via-proxy"] == "203.0.113.11"
        assert found["admin"] == OWNER  # the proxy itself, sending no header


def test_trusted_proxies_must_be_addresses(tmp_path: Path) -> None:
    done = subprocess.run([PODCAP, "serve", "--insecure-http", "--data-dir", str(tmp_path),
                           "--listen", "127.0.0.1:1", "--trusted-proxies", "10.0.0.1,proxy.lan"],
                          capture_output=True, text=True, timeout=60)
    assert done.returncode == 2 and "trusted proxy 'proxy.lan' is not an IP address" in \
        done.stderr, done
