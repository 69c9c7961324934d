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

from podcap import limits
from podcap.controller.audit_gate import Gate
from podcap.controller.db import LoginFailures, open_db
from podcap.controller.throttle import pair_key
from tests.support import PODCAP, Server, remove_container, run_container, running_server, unique

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
        from tests.pg import new_database
        env["PODCAP_DATABASE_URL"] = new_database(request.getfixturevalue("postgres_url"))
    with running_server(tmp_path, env=env) as server:
        yield server


def test_a_guesser_cannot_lock_the_admin_out(own: Server) -> None:
    """Issue 24: 21 bad logins for admin locked it from every address, each try while locked
    reset the hour, and with one admin nobody could get back in."""
    codes = [login_from(own, ATTACKER, "admin", "wrong-password").status_code
             for _ in range(21)]
    free = limits.LOGIN_USER_FREE_FAILURES + 1
    # The back-off after the first block is 1 s: on a slow machine it can end within the 21
    # tries, and the next try is counted and blocks for 2 s. So: free tries, then blocks, and
    # only the tries that were let through were counted.
    assert codes[:free] == [401] * free and 429 in codes[free:], codes
    sessions = open_db(own.env.get("PODCAP_DATABASE_URL"), own.data_dir)
    try:
        with sessions() as db, db.begin():
            row = db.get(LoginFailures, pair_key("admin", ATTACKER))
            assert row.failures == codes.count(401), codes  # knocks while blocked: free
            row.blocked_until = time.time() + 60  # a back-off in progress, however slow we are
        assert login_from(own, ATTACKER, "admin", own.password).status_code == 429
        # The owner, from an address with no failures, is let in with the right password.
        r = login_from(own, OWNER, "admin", own.password)
        assert r.status_code == 200, r.text
        # The guesser's pair one failure short of the lock, then that failure: locked for an
        # hour.
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


def metric(srv: Server, token: str, name: str, address: str = OWNER) -> dict[str, float]:
    """Samples of one metric family: labels text -> value."""
    with httpx.Client(base_url=srv.url, timeout=30, headers={"X-Auth-Token": token},
                      transport=httpx.HTTPTransport(local_address=address)) as c:
        text = c.get("/metrics").text
    return {line.split(" ")[0].removeprefix(name): float(line.split(" ")[1])
            for line in text.splitlines() if line.startswith(name)}


def add_user(srv: Server, name: str, role: str, **extra: object) -> httpx.Client:
    """A new user, and a client signed in as it."""
    password = f"{name}-password"
    with srv.client() as c:
        r = c.post("/api/users", json={"username": name, "password": password, "role": role,
                                       **extra})
    assert r.status_code == 201, r.text
    return srv.client(srv.login(name, password))


def test_refusals_of_signed_in_users_are_audited_and_rate_limited(server: Server) -> None:
    """Issue 24: cross-namespace and missing-right requests left no audit entry."""
    box = run_container(unique("refused"), ["sleep", "300"])
    try:
        with add_user(server, "ref-reader", "reader") as reader, \
                add_user(server, "ref-scoped", "operator", namespaces=["team-a"]) as scoped:
            assert reader.post("/api/users", json={"username": "x9", "password": "x9-password",
                                                   "role": "admin"}).status_code == 403
            # Plain Docker containers have no namespace: team-a's operator may not see it.
            r = scoped.get(f"/v1/workload/{box.id}")
            assert r.status_code == 404 and r.json()["message"] == \
                f"workload {box.id} not found"  # exactly what a missing one answers
            assert scoped.get("/v1/workload/no-such-workload-at-all").status_code == 404
            r = scoped.post("/v1/sniffer", params={"f_workload": box.id},
                            json={"sniffer": {}})
            assert r.status_code == 404
            with server.client() as admin:
                rows = admin.get("/api/audit", params={"event": "refused"}).json()["events"]
            mine = [e for e in rows if e["username"] in ("ref-reader", "ref-scoped")]
            assert {(e["username"], e["detail"].split(":")[0]) for e in mine} == {
                ("ref-reader", "POST /api/users"),
                ("ref-scoped", f"GET /v1/workload/{box.id}"),
                ("ref-scoped", "POST /v1/sniffer")}, mine
            assert all(e["ok"] is False and e["source"] == "127.0.0.1" for e in mine)
            assert "is not an admin" in next(e["detail"] for e in mine
                                              if e["username"] == "ref-reader")
            # A user who keeps knocking writes a bounded number of rows; the rest is counted.
            for _ in range(3 * limits.AUDIT_REFUSALS_PER_USER):
                assert reader.get("/api/audit").status_code == 403
            with server.client() as admin:
                rows = admin.get("/api/audit", params={"event": "refused",
                                                       "username": "ref-reader"}).json()
            # (a window may end during the loop: then twice the limit at most)
            per = limits.AUDIT_REFUSALS_PER_USER
            assert per <= rows["total"] <= 2 * per
            left = metric(server, server.token, "podcap_audit_suppressed_total",
                          address="127.0.0.1")
            assert left['{event="refused"}'] >= 3 * per + 1 - rows["total"]
            # Another user's refusal is still recorded.
            assert scoped.get("/api/users").status_code == 403
            with server.client() as admin:
                last = admin.get("/api/audit", params={"event": "refused", "limit": 1}).json()
            assert last["events"][0]["username"] == "ref-scoped"
    finally:
        remove_container(box)


def test_a_flood_of_failed_logins_does_not_grow_the_audit(tmp_path: Path) -> None:
    """Issue 24: 300 blocked logins in 1.6 s wrote 300 rows; now a few, and a counter."""
    with running_server(tmp_path) as srv:
        size_before = (srv.data_dir / "audit.jsonl").stat().st_size \
            if (srv.data_dir / "audit.jsonl").exists() else 0
        transport = httpx.HTTPTransport(local_address=ATTACKER)
        with httpx.Client(transport=transport, base_url=srv.url, timeout=30) as c:
            codes = [c.post("/api/login", json={"username": "flood", "password": "wrong-pw"}
                            ).status_code for _ in range(300)]
        assert codes.count(429) > 250
        token = login_from(srv, OWNER, "admin", srv.password).json()["token"]
        with httpx.Client(base_url=srv.url, timeout=30, headers={"X-Auth-Token": token},
                          transport=httpx.HTTPTransport(local_address=OWNER)) as c:
            rows = c.get("/api/audit", params={"event": "login", "username": "flood"}).json()
        per = limits.AUDIT_FAILURES_PER_ADDRESS  # a window may end during the flood: 2x
        assert per <= rows["total"] <= 2 * per
        left = metric(srv, token, "podcap_audit_suppressed_total")
        assert left['{event="login"}'] == 300 - rows["total"]
        grown = (srv.data_dir / "audit.jsonl").stat().st_size - size_before
        assert grown < 500 * (rows["total"] + 2)  # ~300 B a row
        # The owner's own failure from elsewhere is still recorded.
        assert login_from(srv, OWNER, "admin", "wrong-password").status_code == 401
        with httpx.Client(base_url=srv.url, timeout=30, headers={"X-Auth-Token": token},
                          transport=httpx.HTTPTransport(local_address=OWNER)) as c:
            last = c.get("/api/audit", params={"event": "login", "ok": False,
                                               "limit": 1}).json()["events"][0]
        assert last["username"] == "admin" and last["source"] == OWNER


def test_the_gate_counts_what_it_leaves_out_and_says_so_later() -> None:
    now = [0.0]
    gate = Gate(per_key=2, overall=3, window_s=60, clock=lambda: now[0])
    assert [gate.admit("a"), gate.admit("a"), gate.admit("a"), gate.admit("a")] == \
        [0, 0, None, None]
    assert gate.admit("b") == 0
    assert gate.admit("c") is None  # every key together: 3 a window
    assert gate.left_out == 3
    now[0] = 61.0  # a new window: a's next row says two of its rows were left out
    assert gate.admit("a") == 2 and gate.admit("a") == 0
    assert gate.admit("c") == 0  # c was never admitted, so never remembered
