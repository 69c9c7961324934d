"""The HTTP edge, attacked through a real `podcap serve`: body bombs, parser bombs, bad text,
unexpected errors, security headers, Host checks, slow clients, the event loop, the
certificate and the API docs."""

from __future__ import annotations

import contextlib
import inspect
import os
import re
import select
import socket
import sqlite3
import ssl
import subprocess
import threading
import time
from pathlib import Path

import httpx
import pytest
from cryptography import x509

from podcap import limits
from tests.support import PODCAP, Server, free_port, running_server, stop_process, wait_for

JSON_ROUTES = [("POST", "/v1/auth"), ("POST", "/api/login"), ("POST", "/v1/sniffer"),
               ("POST", "/api/captures"), ("POST", "/api/filter/check"),
               ("POST", "/api/agent-tokens")]


def rss_kib(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    raise AssertionError("no VmRSS")


def assert_refused(r: httpx.Response, status: int, words: str) -> None:
    assert r.status_code == status, r.text
    body = r.json()
    assert body["code"] == 6 and words in body["message"], body


# ---- body size ----------------------------------------------------------------------------

def test_declared_body_over_a_mebibyte_is_413_before_reading(server: Server) -> None:
    big = b"x" * (limits.BODY_MAX_BYTES + 1)
    for method, path in JSON_ROUTES:
        r = httpx.request(method, server.url + path, content=big,
                          headers={"X-Auth-Token": server.token})
        assert_refused(r, 413, "larger than 1048576 bytes")
    exact = b" " * limits.BODY_MAX_BYTES  # the limit itself passes the edge
    r = httpx.post(server.url + "/v1/auth", content=exact)
    assert r.status_code == 400 and "not valid JSON" in r.json()["message"], r.text


def test_declared_length_is_refused_before_any_body_byte(server: Server) -> None:
    """A head that announces 100 MiB gets its 413 at once: nothing waits for the body."""
    with socket.create_connection(("127.0.0.1", server.port), timeout=3) as s:
        s.sendall(b"POST /v1/auth HTTP/1.1\r\nHost: 127.0.0.1\r\n"
                  b"Content-Type: application/json\r\nContent-Length: 104857600\r\n\r\n")
        assert s.recv(4096).startswith(b"HTTP/1.1 413")


def test_chunked_body_bomb_is_cut_and_memory_stays_flat(server: Server) -> None:
    """100 MiB sent chunked (no Content-Length) to the unauthenticated login: a 413 once past
    1 MiB, while the client is still sending. The payload is flat (no brackets): a body of
    ``[`` read whole would also be refused, with the JSON depth check's 400, which hid whether
    the running count had cut it. The client stops sending once the answer is there, so the
    413 is read, not lost to a reset (httpx sends the whole body first, then meets a broken
    pipe, and saw no answer at all)."""
    assert server.proc is not None
    before = rss_kib(server.proc.pid)
    piece = b"x" * 65536
    chunk = f"{len(piece):x}\r\n".encode() + piece + b"\r\n"
    sent = 0
    with socket.create_connection(("127.0.0.1", server.port), timeout=30) as s:
        s.sendall(f"POST /v1/auth HTTP/1.1\r\nHost: 127.0.0.1:{server.port}\r\n"
                  "Content-Type: application/json\r\nTransfer-Encoding: chunked\r\n\r\n"
                  .encode())
        answered = select.poll()  # not select.select: it cannot take a descriptor over 1023
        answered.register(s, select.POLLIN)
        try:
            while sent < 100 * 1024 * 1024 and not answered.poll(0):
                s.sendall(chunk)
                sent += len(piece)
        except OSError:
            pass  # closed after its answer: the answer is still to be read
        answer = b""
        with contextlib.suppress(OSError):
            while b"\r\n\r\n" not in answer and (data := s.recv(65536)):
                answer += data
    assert answer.startswith(b"HTTP/1.1 413"), (answer[:200], sent)
    assert sent < 16 * limits.BODY_MAX_BYTES, f"answered only after {sent} bytes"
    grown = rss_kib(server.proc.pid) - before
    assert grown < 30 * 1024, f"server grew by {grown} KiB"
    assert httpx.get(server.url + "/healthz").status_code == 200


# ---- JSON depth and text ------------------------------------------------------------------

@pytest.mark.parametrize("method,path", JSON_ROUTES)
def test_deep_json_is_400(server: Server, method: str, path: str) -> None:
    for body in ("[" * 100_000 + "]" * 100_000, '{"a":' * 50_000 + "1" + "}" * 50_000,
                 "[" * 100_000):
        r = httpx.request(method, server.url + path, content=body.encode(),
                          headers={"X-Auth-Token": server.token})
        assert_refused(r, 400, "nests deeper than 32 levels")


def test_brackets_inside_strings_are_not_depth(server: Server) -> None:
    r = httpx.post(server.url + "/api/login",
                   json={"username": "[" * 200, "password": "{" * 600})
    assert r.status_code == 401, r.text


LONE = [rb'"\ud800"', rb'"a\udfffb"', rb'"\uDBFF"', rb'"\ud800\u0041"']


@pytest.mark.parametrize("text", LONE)
def test_lone_surrogate_in_user_name_or_filter_is_400(server: Server, pair,
                                                      text: bytes) -> None:
    bodies = [
        ("/v1/auth", b'{"password":{"username":' + text + b',"password":"x"}}'),
        ("/api/login", b'{"username":' + text + b',"password":"x"}'),
        (f"/v1/sniffer?f_workload={pair.web.id}", b'{"sniffer":{"filter":' + text + b"}}"),
        ("/api/captures", b'{"workload_id":"' + pair.web.id.encode() + b'","filter":' + text
         + b"}"),
        ("/api/filter/check", b'{"filter":' + text + b"}"),
    ]
    for path, raw in bodies:
        r = httpx.post(server.url + path, content=raw, headers={"X-Auth-Token": server.token})
        assert_refused(r, 400, "lone UTF-16 surrogate")


def test_paired_surrogates_and_escaped_backslashes_pass(server: Server) -> None:
    for raw in (rb'{"username":"\ud83d\ude00","password":"xxxxxxxx"}',
                rb'{"username":"\\ud800","password":"xxxxxxxx"}'):
        r = httpx.post(server.url + "/api/login", content=raw,
                       headers={"Content-Type": "application/json"})
        assert r.status_code == 401, r.text


def test_invalid_utf8_is_400(server: Server) -> None:
    r = httpx.post(server.url + "/api/login", content=b'{"username":"\xff\xfe","password":"x"}')
    assert_refused(r, 400, "not valid UTF-8")


# ---- answers ------------------------------------------------------------------------------

def test_security_headers_on_every_answer(server: Server) -> None:
    token = {"X-Auth-Token": server.token}
    answers = {
        "ui": httpx.get(server.url + "/"),
        "ui js": httpx.get(server.url + "/app.js"),
        "api ok": httpx.get(server.url + "/api/whoami", headers=token),
        "v1 ok": httpx.get(server.url + "/v1/sniffer", headers=token),
        "401": httpx.get(server.url + "/api/captures"),
        "404": httpx.get(server.url + "/v1/nothing"),
        "413": httpx.post(server.url + "/api/login", content=b"x" * (2 << 20)),
        "400 host": httpx.get(server.url + "/api/limits", headers={"Host": "evil.example"}),
    }
    statuses = {what: r.status_code for what, r in answers.items()}
    assert statuses == {"ui": 200, "ui js": 200, "api ok": 200, "v1 ok": 200, "401": 401,
                        "404": 404, "413": 413, "400 host": 400}  # each answer is what it says
    for what, r in answers.items():
        h = r.headers
        assert h["x-content-type-options"] == "nosniff", what
        assert h["x-frame-options"] == "DENY", what
        assert "frame-ancestors 'none'" in h["content-security-policy"], what
        assert "script-src 'self'" in h["content-security-policy"], what
        assert h["referrer-policy"] == "no-referrer", what
        assert "strict-transport-security" not in h, what  # plain HTTP: HSTS means nothing
    for what in ("api ok", "v1 ok", "401", "413"):
        assert answers[what].headers["cache-control"] == "no-store", what


def test_host_header_must_name_this_server(server: Server) -> None:
    port = server.port
    for host in ("evil.example", f"evil.example:{port}", "127.0.0.2", "[::2]", "",
                 f"127.0.0.1.evil.example:{port}"):
        r = httpx.get(server.url + "/api/limits", headers={"Host": host})
        assert_refused(r, 400, "Host header")
    for host in (f"127.0.0.1:{port}", f"localhost:{port}", "LOCALHOST", f"[::1]:{port}"):
        r = httpx.get(server.url + "/api/limits", headers={"Host": host})
        assert r.status_code == 200, (host, r.text)


def test_unexpected_error_is_a_generic_500_with_an_id_in_the_log(tmp_path: Path) -> None:
    """A real fault: the tokens table disappears under a running server."""
    with running_server(tmp_path) as srv:
        token = srv.login()
        with sqlite3.connect(srv.data_dir / "podcap.db") as db:
            db.execute("DROP TABLE tokens")
        r = httpx.get(srv.url + "/api/whoami", headers={"X-Auth-Token": token})
        assert r.status_code == 500, r.text
        body = r.json()
        match = re.fullmatch(r"internal error ([0-9a-f]{16}); the server's log has the "
                             r"details", body["message"])
        assert match and body["code"] == 21, body
        assert "tokens" not in r.text and "sqlite" not in r.text.lower()
        assert r.headers["x-content-type-options"] == "nosniff"
        wait_for(lambda: match.group(1) in srv.log(), timeout=5, what="the id in the log")
        log_line = next(line for line in srv.log().splitlines() if match.group(1) in line)
        assert "GET /api/whoami" in log_line
        assert "no such table: tokens" in srv.log()  # the details are in the log, not the answer


# ---- slow clients -------------------------------------------------------------------------

def test_slow_and_silent_clients_are_dropped(server: Server) -> None:
    """One client never sends a byte, one sends its head a byte a second: both are closed
    HEADER_TIMEOUT_S after connecting, while the server goes on answering."""
    closed_after: dict[str, float] = {}

    def client(kind: str) -> None:
        start = time.monotonic()
        with socket.create_connection(("127.0.0.1", server.port), timeout=30) as s:
            head = b"GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\nX-Slow: " + b"a" * 60
            if kind == "trickle":
                for byte in head:
                    try:
                        s.sendall(bytes([byte]))
                    except OSError:
                        break
                    if _recv_or_block(s) == b"":
                        break
                    time.sleep(1)
            s.settimeout(30)
            try:
                while s.recv(1024):
                    pass
            except OSError:
                pass
        closed_after[kind] = time.monotonic() - start

    threads = [threading.Thread(target=client, args=(k,)) for k in ("silent", "trickle")]
    for t in threads:
        t.start()
    time.sleep(1)
    assert httpx.get(server.url + "/healthz").status_code == 200
    for t in threads:
        t.join(40)
    for kind in ("silent", "trickle"):
        assert limits.HEADER_TIMEOUT_S - 1 < closed_after[kind] < limits.HEADER_TIMEOUT_S + 5, \
            closed_after


def test_a_body_sent_a_byte_a_second_gets_408(server: Server) -> None:
    with socket.create_connection(("127.0.0.1", server.port), timeout=30) as s:
        s.sendall(b"POST /api/login HTTP/1.1\r\nHost: 127.0.0.1\r\n"
                  b"Content-Type: application/json\r\nContent-Length: 100\r\n\r\n")
        start = time.monotonic()
        answer = b""
        for _ in range(40):
            try:
                s.sendall(b" ")
            except OSError:
                break
            got = _recv_or_block(s)
            if got:
                answer = got + s.recv(4096)
                break
            time.sleep(0.5)
        took = time.monotonic() - start
    assert answer.startswith(b"HTTP/1.1 408"), answer
    assert limits.BODY_TIMEOUT_S - 1 < took < limits.BODY_TIMEOUT_S + 3


def _recv_or_block(s: socket.socket) -> bytes | None:
    try:
        return s.recv(1, socket.MSG_DONTWAIT)
    except BlockingIOError:
        return None


def test_keep_alive_connection_is_closed_when_idle(server: Server) -> None:
    with socket.create_connection(("127.0.0.1", server.port), timeout=30) as s:
        s.sendall(b"GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n")
        assert s.recv(4096).startswith(b"HTTP/1.1 200")
        start = time.monotonic()
        while s.recv(1024):
            pass
        idle = time.monotonic() - start
    assert limits.KEEP_ALIVE_S - 1 < idle < limits.KEEP_ALIVE_S + 3


def test_oversized_request_head_is_refused(server: Server) -> None:
    r = httpx.get(server.url + "/healthz", headers={"X-Big": "a" * (limits.HEADER_MAX_BYTES * 2)})
    assert r.status_code == 431, r.text


# ---- the event loop -----------------------------------------------------------------------

# Handlers that are `async def` run on the event loop: each must hand every blocking call
# (password hash, database, Docker, subprocess) to a thread. These were read for that; a new
# async handler fails this test until it is read too.
# FastAPI's /openapi.json builds a document from the route table once: no I/O.
AUDITED_ASYNC = {"podcap.api.v1_auth.login", "podcap.api.native_session.login",
                 "podcap.api.v1_sniffer.start_sniffer", "fastapi.applications.openapi"}


def test_no_unaudited_async_handler() -> None:
    from podcap.api.app import create_app
    from tests.security.route_table import api_routes

    routes = api_routes(create_app(service=None, auth=None))  # type: ignore[arg-type]
    assert len(routes) > 20 and any(r.path == "/v1/auth" for r in routes)
    found = {r.name for r in routes if inspect.iscoroutinefunction(r.endpoint)}
    assert found == AUDITED_ASYNC


# ---- HTTPS: the certificate, HSTS, trusted hosts, local API docs --------------------------

def test_https_leaf_certificate_hsts_hosts_and_local_docs(tmp_path: Path) -> None:
    port = free_port()
    data = tmp_path / "d"
    log = tmp_path / "log"
    env = dict(os.environ, PODCAP_ADMIN_PASSWORD="https-test-password")
    with open(log, "wb") as fh:
        proc = subprocess.Popen([PODCAP, "serve", "--listen", f"127.0.0.1:{port}", "--data-dir",
                                 str(data), "--api-docs", "--allowed-hosts",
                                 "127.0.0.1,podcap.example"],
                                stdout=fh, stderr=subprocess.STDOUT, env=env)
    try:
        url = f"https://127.0.0.1:{port}"
        cert_path = data / "tls.crt"

        def up() -> bool:
            try:
                return httpx.get(url + "/healthz", verify=ssl.create_default_context(
                    cafile=str(cert_path))).status_code == 200
            except (httpx.HTTPError, OSError, ssl.SSLError):
                return False

        wait_for(up, timeout=30, what="the HTTPS server")
        cert = x509.load_pem_x509_certificate(cert_path.read_bytes())
        assert cert.extensions.get_extension_for_class(x509.BasicConstraints).value.ca is False
        sans = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
        import ipaddress
        assert ipaddress.ip_address("127.0.0.1") in sans.get_values_for_type(x509.IPAddress)
        assert "localhost" in sans.get_values_for_type(x509.DNSName)
        assert socket.gethostname() in sans.get_values_for_type(x509.DNSName)
        pinned = ssl.create_default_context(cafile=str(cert_path))  # pinning a leaf works
        with httpx.Client(base_url=url, verify=pinned) as c:
            r = c.get("/api/limits")
            assert r.status_code == 200
            assert r.headers["strict-transport-security"] == "max-age=31536000"
            assert c.get("/api/limits", headers={"Host": "podcap.example"}).status_code == 200
            assert c.get("/api/limits", headers={"Host": "localhost"}).status_code == 400
            page = c.get("/docs")
            assert page.status_code == 200 and "swagger-ui" in page.text
            sources = re.findall(r'(?:src|href)="([^"]+)"', page.text)
            assert sources and all(s.startswith("/docs/") for s in sources), sources
            for source in sources:
                assert c.get(source).status_code == 200, source
            assert "<script>" not in page.text  # no inline script: the CSP allows none
    finally:
        stop_process(proc)


def test_docs_are_off_by_default(server: Server) -> None:
    assert httpx.get(server.url + "/docs").status_code == 404
    assert httpx.get(server.url + "/docs/assets/swagger-ui-bundle.js").status_code == 404
    assert "/api/captures" in httpx.get(server.url + "/openapi.json").json()["paths"]


def test_old_ca_certificate_is_replaced(tmp_path: Path) -> None:
    """A data dir from before: tls.crt made as a CA. The next start makes a leaf."""
    import datetime

    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    from podcap.tls import ensure_self_signed

    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "old")])
    now = datetime.datetime.now(datetime.UTC)
    old = (x509.CertificateBuilder().subject_name(name).issuer_name(name)
           .public_key(key.public_key()).serial_number(1).not_valid_before(now)
           .not_valid_after(now + datetime.timedelta(days=1))
           .add_extension(x509.SubjectAlternativeName([x509.DNSName("localhost")]), False)
           .add_extension(x509.BasicConstraints(ca=True, path_length=None), True)
           .sign(key, hashes.SHA256()))
    (tmp_path / "tls.crt").write_bytes(old.public_bytes(serialization.Encoding.PEM))
    (tmp_path / "tls.key").write_bytes(key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption()))
    cert_path, _ = ensure_self_signed(tmp_path, "node-1", "10.1.2.3")
    new = x509.load_pem_x509_certificate(cert_path.read_bytes())
    assert new.extensions.get_extension_for_class(x509.BasicConstraints).value.ca is False
    import ipaddress
    ips = new.extensions.get_extension_for_class(x509.SubjectAlternativeName).value \
        .get_values_for_type(x509.IPAddress)
    assert ipaddress.ip_address("10.1.2.3") in ips
    again, _ = ensure_self_signed(tmp_path, "node-1", "10.1.2.3")
    assert again.read_bytes() == cert_path.read_bytes()  # a good one is kept
