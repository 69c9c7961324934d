"""Tokens: NeuVector's login shape, 401 with code 3, logout that really ends the session."""

from __future__ import annotations

import httpx

from tests.support import Server


def test_no_token(server: Server) -> None:
    for path in ("/v1/sniffer", "/v1/workload", "/api/captures", "/api/workloads"):
        r = httpx.get(server.url + path)
        assert r.status_code == 401 and r.json()["code"] == 3, (path, r.text)


def test_a_start_asks_who_first(server: Server) -> None:
    """``POST /v1/sniffer`` checks its caller in the thread where it starts (it calls its
    ``Caller`` first there): still before its body, its filter or its workload is looked at."""
    for token in (None, "not-a-token"):
        headers = {"X-Auth-Token": token} if token else {}
        for params, body in ((None, b"{not json"), ({"f_workload": "nothing"}, b"[]"),
                             ({"f_workload": "nothing"}, b'{"sniffer": {"file_number": 0}}')):
            r = httpx.post(server.url + "/v1/sniffer", params=params, content=body,
                           headers=headers)
            assert r.status_code == 401 and r.json()["code"] == 3, (token, body, r.text)


def test_bad_password(server: Server) -> None:
    r = httpx.post(server.url + "/v1/auth",
                   json={"password": {"username": "admin", "password": "wrong-password"}})
    assert r.status_code == 401 and r.json()["code"] == 3
    r = httpx.post(server.url + "/api/login", json={"username": "nobody", "password": "x"})
    assert r.status_code == 401 and r.json()["code"] == 3


def test_login_shape_and_logout(server: Server) -> None:
    r = httpx.post(server.url + "/v1/auth",
                   json={"password": {"username": "admin", "password": server.password}})
    assert r.status_code == 200
    body = r.json()
    assert body["password_days_until_expire"] == -1
    assert body["token"]["username"] == "admin" and body["token"]["role"] == "admin"
    token = body["token"]["token"]
    headers = {"X-Auth-Token": token}
    assert httpx.get(server.url + "/v1/sniffer", headers=headers).status_code == 200
    bearer = {"Authorization": f"Bearer {token}"}
    assert httpx.get(server.url + "/api/whoami", headers=bearer).json()["username"] == "admin"
    assert httpx.delete(server.url + "/v1/auth", headers=headers).status_code == 200
    r = httpx.get(server.url + "/v1/sniffer", headers=headers)
    assert r.status_code == 401 and r.json()["code"] == 3


def test_admin_password_is_not_a_default(tmp_path) -> None:
    """Without PODCAP_ADMIN_PASSWORD a password is generated, printed once, stored hashed."""
    import os
    import re
    import subprocess
    import sys
    from pathlib import Path

    from tests.support import Server, free_port

    srv = Server(data_dir=tmp_path / "d", port=free_port(), password="unused")
    env = {k: v for k, v in os.environ.items() if k != "PODCAP_ADMIN_PASSWORD"}
    podcap = str(Path(sys.executable).parent / "podcap")
    log = tmp_path / "log"
    with open(log, "wb") as fh:
        proc = subprocess.Popen([podcap, "serve", "--insecure-http", "--listen",
                                 f"127.0.0.1:{srv.port}", "--data-dir", str(srv.data_dir)],
                                stdout=fh, stderr=subprocess.STDOUT, env=env)
    try:
        from tests.support import wait_for
        wait_for(lambda: "password:" in log.read_text(), timeout=20, what="password banner")
        password = re.search(r"password: (\S+)", log.read_text()).group(1)
        assert len(password) >= 16
        assert password.encode() not in (srv.data_dir / "podcap.db").read_bytes()
        srv.password = password
        wait_for(lambda: _up(srv.url), timeout=20, what="server")
        with srv.client(srv.login()) as c:  # the printed password is admin's, for real
            assert c.get("/api/whoami").json()["username"] == "admin"
        wrong = httpx.post(srv.url + "/v1/auth", json={"password": {
            "username": "admin", "password": password[:-1]}})
        assert wrong.status_code == 401 and wrong.json()["code"] == 3
    finally:
        proc.terminate()
        proc.wait(10)


def _up(url: str) -> bool:
    try:
        return httpx.get(url + "/healthz").status_code == 200
    except httpx.HTTPError:
        return False


def test_plain_http_only_on_loopback(tmp_path) -> None:
    import subprocess
    import sys
    from pathlib import Path
    podcap = str(Path(sys.executable).parent / "podcap")
    done = subprocess.run([podcap, "serve", "--insecure-http", "--listen", "0.0.0.0:1",
                           "--data-dir", str(tmp_path / "d")], capture_output=True, timeout=60)
    assert done.returncode != 0
    assert b"--insecure-http is allowed on loopback only" in done.stderr


def test_openapi_document_and_ui_are_served(server: Server) -> None:
    """The interactive /docs page is off unless --api-docs (tests/security/test_edge.py)."""
    assert httpx.get(server.url + "/docs").status_code == 404
    paths = httpx.get(server.url + "/openapi.json").json()["paths"]
    assert "/api/captures" in paths and "/v1/sniffer" in paths
    page = httpx.get(server.url + "/")
    assert page.status_code == 200 and "<html" in page.text.lower()
    missing = httpx.get(server.url + "/v1/nothing-here")
    assert missing.status_code == 404 and missing.json()["code"] == 1


def test_reader_reads_and_namespaces_scope(server: Server, pair) -> None:
    """Users are added through /api/users; their tokens then go through the real server."""
    with server.client() as admin:
        for user in ({"username": "viewer", "password": "viewer-password", "role": "reader"},
                     {"username": "team-a", "password": "team-a-password",
                      "role": "operator", "namespaces": ["team-a"], "download": True}):
            assert admin.post("/api/users", json=user).status_code == 201
    running = server.sniff(pair.web.id)
    with server.client(server.login("viewer", "viewer-password")) as c:
        assert running in [s["id"] for s in c.get("/v1/sniffer").json()["sniffers"]]
        assert any(w["id"] == pair.web.id for w in c.get("/v1/workload").json()["workloads"])
        assert c.get(f"/v1/sniffer/{running}").json()["sniffer"]["status"] == "running"
        # Every write a reader may try, on both APIs: start, stop, delete.
        for method, path, body in (
                ("POST", f"/v1/sniffer?f_workload={pair.web.id}", {"sniffer": {}}),
                ("PATCH", f"/v1/sniffer/stop/{running}", None),
                ("DELETE", f"/v1/sniffer/{running}", None),
                ("POST", "/api/captures", {"workload_id": pair.web.id}),
                ("POST", f"/api/captures/{running}/stop", None),
                ("DELETE", f"/api/captures/{running}", None)):
            r = c.request(method, path, json=body)
            assert r.status_code == 403 and r.json()["code"] == 3, (method, path, r.text)
            assert "user viewer (role reader) may only read" in r.json()["message"]
    after = server.sniffer(running)  # untouched: still running, files still there
    assert (after["status"], after["reason"]) == ("running", "")
    assert (server.data_dir / "captures" / running / "capture.json").exists()
    server.stop_sniffer(running)
    cid = server.sniff(pair.web.id, duration=1)
    with server.client(server.login("team-a", "team-a-password")) as c:
        # Plain Docker containers have no namespace: invisible to a user scoped to team-a.
        assert all(w["domain"] == "team-a" for w in c.get("/v1/workload").json()["workloads"])
        r = c.post("/v1/sniffer", params={"f_workload": pair.web.id}, json={"sniffer": {}})
        assert r.status_code == 404 and r.json()["code"] == 7
        assert cid not in [s["id"] for s in c.get("/v1/sniffer").json()["sniffers"]]
        assert c.get(f"/v1/sniffer/{cid}").status_code == 404
        assert c.delete(f"/v1/sniffer/{cid}").status_code == 404
    assert server.sniffer(cid)["id"] == cid
