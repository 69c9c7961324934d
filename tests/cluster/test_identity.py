"""Who may talk to the controller's agent listeners, tested against a real `podcap controller`
on loopback, on SQLite and on PostgreSQL: join tokens, certificates, revocation, and messages
that are malformed, oversized or out of order."""

from __future__ import annotations

import contextlib
import datetime
import signal
import socket
import time
from collections.abc import Iterator
from pathlib import Path

import grpc
import httpx
import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID
from sqlalchemy import create_engine, text

from podcap.errors import InvalidArgument, Unauthenticated
from podcap.pki.csr import new_key_and_csr
from podcap.pki.names import AGENT_URI_PREFIX, CONTROLLER_NAME, NODE_URI_PREFIX
from podcap.transport.data import wire
from podcap.transport.grpc.agent_proto import agent_pb2 as pb
from podcap.transport.grpc.agent_proto import agent_pb2_grpc as pb_grpc
from podcap.transport.grpc.join import CLIENT_OPTIONS, Identity, join
from tests.cluster.cluster_support import AgentProc, Cluster, running_cluster
from tests.support import wait_for


@pytest.fixture(scope="module", params=["sqlite", "postgresql"])
def cluster(request: pytest.FixtureRequest,
            tmp_path_factory: pytest.TempPathFactory) -> Iterator[Cluster]:
    url = None
    if request.param == "postgresql":
        from tests.pg import new_database

        url = new_database(request.getfixturevalue("postgres_url"))
    with running_cluster(tmp_path_factory.mktemp(f"ctl-{request.param}"),
                         database_url=url) as c:
        c.database_url = url or f"sqlite:///{c.server.data_dir / 'podcap.db'}"  # type: ignore[attr-defined]
        yield c


def _hello(node: str = "fake") -> pb.AgentMessage:
    return pb.AgentMessage(hello=pb.Hello(node=node, version="test", runtimes=["docker"]))


def _session(cluster: Cluster, credentials: grpc.ChannelCredentials,
             messages: list[pb.AgentMessage], timeout: float = 5.0) -> list[pb.ControllerMessage]:
    """Open a Session with these credentials, send ``messages``, read what comes back."""
    with grpc.secure_channel(cluster.agent_address, credentials,
                             options=CLIENT_OPTIONS) as channel:
        call = pb_grpc.AgentGatewayStub(channel).Session(iter(messages), timeout=timeout)
        return list(call)


def _refused_session(cluster: Cluster, credentials: grpc.ChannelCredentials,
                     messages: list[pb.AgentMessage]) -> grpc.RpcError:
    """Open a Session that must be refused: the error, after asserting nothing came first. A
    session the controller admitted and then closed also ends in an error (CANCELLED, once the
    agent's side ends), so the error's code alone does not prove a refusal; no Welcome does."""
    received: list[pb.ControllerMessage] = []
    with grpc.secure_channel(cluster.agent_address, credentials,
                             options=CLIENT_OPTIONS) as channel:
        call = pb_grpc.AgentGatewayStub(channel).Session(iter(messages), timeout=5)
        with pytest.raises(grpc.RpcError) as caught:
            for message in call:
                received.append(message)
    assert received == [], f"admitted before the error: {received}"
    return caught.value


def _other_ca_credentials(agent_id: str) -> tuple[bytes, bytes]:
    """A certificate that looks right (URI SAN, client auth) but comes from another CA."""
    now = datetime.datetime.now(datetime.UTC)
    ca_key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "evil-ca")])
    key = ec.generate_private_key(ec.SECP256R1())
    cert = (x509.CertificateBuilder().subject_name(x509.Name(
        [x509.NameAttribute(NameOID.COMMON_NAME, agent_id)])).issuer_name(name)
        .public_key(key.public_key()).serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(days=1))
        .add_extension(x509.SubjectAlternativeName(
            [x509.UniformResourceIdentifier(AGENT_URI_PREFIX + agent_id)]), critical=False)
        .sign(ca_key, hashes.SHA256()))
    key_pem = key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                serialization.NoEncryption())
    return key_pem, cert.public_bytes(serialization.Encoding.PEM)


def test_join_once_then_certificate_alone(cluster: Cluster, tmp_path: Path) -> None:
    token = cluster.join_token()
    agent = AgentProc(cluster, "join-node", tmp_path / "agent").start(token)
    try:
        record = cluster.wait_connected("join-node")
        assert record["runtimes"] == ["docker"] and record["version"]
        identity = Identity.load(agent.data_dir)
        assert identity is not None and identity.agent_id == record["id"]
        cert = x509.load_pem_x509_certificate(identity.cert_pem)
        sans = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
        assert sans.get_values_for_type(x509.UniformResourceIdentifier) == [
            AGENT_URI_PREFIX + record["id"], NODE_URI_PREFIX + "join-node"]  # name bound
        # The key never left the node: the controller's data dir holds no agent key.
        assert not list(cluster.server.data_dir.glob("agent.key"))

        agent.stop(signal.SIGKILL)
        cluster.wait_connected("join-node", connected=False)
        agent.start(token=None)  # restart: no token, the certificate is enough
        assert cluster.wait_connected("join-node")["id"] == record["id"]
        assert len([a for a in cluster.agents() if a["node"] == "join-node"]) == 1
    finally:
        agent.stop()


def test_reused_expired_and_malformed_tokens_are_refused(cluster: Cluster) -> None:
    token = cluster.join_token()
    join(cluster.join_address, token, "once")
    with pytest.raises(Unauthenticated, match="used up"):
        join(cluster.join_address, token, "twice")

    expired = cluster.join_token()
    engine = create_engine(cluster.database_url)  # type: ignore[attr-defined]
    with engine.begin() as db:
        db.execute(text("UPDATE join_tokens SET expires = :t WHERE id = :id"),
                   {"t": time.time() - 1, "id": expired.split(".")[0]})
    engine.dispose()
    with pytest.raises(Unauthenticated, match="expired"):
        join(cluster.join_address, expired, "late")

    tid, secret, pin = cluster.join_token().split(".")
    with pytest.raises(Unauthenticated, match="unknown"):
        join(cluster.join_address, f"{tid}.{'0' * 32}.{pin}", "guess")
    with pytest.raises(InvalidArgument, match="looks like"):
        join(cluster.join_address, "not-a-token", "bad")
    # A token naming another CA is never even sent: the pin does not match.
    with pytest.raises(Unauthenticated, match="expects"):
        join(cluster.join_address, f"{tid}.{secret}.{'ab' * 32}", "pinned")
    assert {a["node"] for a in cluster.agents()}.isdisjoint({"twice", "late", "guess", "bad"})
    with cluster.server.client() as c:
        joins = c.get("/api/audit", params={"event": "agent.join", "limit": 500}).json()["events"]
    refused = [e["detail"] for e in joins if not e["ok"]]
    assert any("'twice'" in d and "used up" in d for d in refused)
    assert any("'late'" in d and "expired" in d for d in refused)
    assert any(e["ok"] and "on node once" in e["detail"] for e in joins)


def test_no_client_certificate_is_refused(cluster: Cluster) -> None:
    ca = (cluster.server.data_dir / "ca.crt").read_bytes()
    with pytest.raises(grpc.RpcError) as caught:
        _session(cluster, grpc.ssl_channel_credentials(ca), [_hello("anon")])
    assert caught.value.code() == grpc.StatusCode.UNAVAILABLE  # the TLS handshake fails
    # The join port serves Join only: a session there has no certificate to name an agent.
    with grpc.secure_channel(cluster.join_address, grpc.ssl_channel_credentials(ca),
                             options=CLIENT_OPTIONS) as channel, \
            pytest.raises(grpc.RpcError) as caught:
        list(pb_grpc.AgentGatewayStub(channel).Session(iter([_hello("anon")]), timeout=5))
    assert caught.value.code() == grpc.StatusCode.UNAUTHENTICATED
    assert "certificate is required" in caught.value.details()


def test_certificate_from_another_ca_is_refused(cluster: Cluster) -> None:
    ca = (cluster.server.data_dir / "ca.crt").read_bytes()
    victim = join(cluster.join_address, cluster.join_token(), "victim")
    key, cert = _other_ca_credentials(victim.agent_id)
    with pytest.raises(grpc.RpcError) as caught:
        _session(cluster, grpc.ssl_channel_credentials(ca, key, cert), [_hello("evil")])
    assert caught.value.code() == grpc.StatusCode.UNAVAILABLE
    assert cluster.agent("evil") is None


def test_certificate_claiming_another_agents_id_is_refused(cluster: Cluster) -> None:
    """A certificate from the right CA that was not the one issued to that agent (a leaked CA
    key, an old certificate): the fingerprint on record decides."""
    victim = join(cluster.join_address, cluster.join_token(), "victim2")
    from podcap.pki.ca import ClusterCA

    ca = ClusterCA.load_or_create(cluster.server.data_dir)
    key_pem, csr_pem = new_key_and_csr("evil")
    forged = ca.sign_agent(csr_pem, victim.agent_id)
    creds = grpc.ssl_channel_credentials(ca.cert_pem, key_pem, forged)
    refused = _refused_session(cluster, creds, [_hello("evil2")])  # no Welcome, then:
    assert refused.code() == grpc.StatusCode.UNAUTHENTICATED
    assert "not issued to it" in (refused.details() or "")
    assert cluster.agent("evil2") is None


def test_revocation_closes_an_open_stream(cluster: Cluster, tmp_path: Path) -> None:
    agent = AgentProc(cluster, "doomed", tmp_path / "agent").start(cluster.join_token())
    try:
        agent_id = cluster.wait_connected("doomed")["id"]
        with cluster.server.client() as c:
            began = time.monotonic()
            assert c.delete(f"/api/agents/{agent_id}").status_code == 204
            assert c.delete(f"/api/agents/{agent_id}").status_code == 404
        assert cluster.agent("doomed") is None
        wait_for(lambda: "session ended" in agent.log(), timeout=5, what="the stream to close")
        closed_after = time.monotonic() - began
        assert closed_after < 3, closed_after
        # Its certificate no longer opens a session.
        identity = Identity.load(agent.data_dir)
        assert identity is not None
        refused = _refused_session(cluster, identity.credentials(), [_hello("doomed")])
        assert refused.code() == grpc.StatusCode.PERMISSION_DENIED
        assert "revoked" in (refused.details() or "")
    finally:
        agent.stop()


def test_revoke_and_tokens_are_for_admins_only(cluster: Cluster) -> None:
    from podcap.controller.auth import Auth
    from podcap.controller.db import open_db

    Auth(open_db(cluster.database_url, cluster.server.data_dir)).add_user(  # type: ignore[attr-defined]
        "viewer", "viewer-password", "reader")
    victim = join(cluster.join_address, cluster.join_token(), "kept")
    with cluster.server.client(cluster.server.login("viewer", "viewer-password")) as c:
        assert "kept" in [a["node"] for a in c.get("/api/agents").json()["agents"]]
        for r in (c.post("/api/agent-tokens", json={}),
                  c.delete(f"/api/agents/{victim.agent_id}")):
            assert r.status_code == 403, r.text
            assert "is not an admin" in r.json()["message"]
    assert cluster.agent("kept") is not None
    with cluster.server.client() as c:
        r = c.post("/api/agent-tokens", json={"ttl_s": 10})
        assert r.status_code == 400 and "ttl_s" in r.json()["message"]
        r = c.delete("/api/agents/NOT-AN-ID")
        assert r.status_code == 400 and "agent id" in r.json()["message"]
        assert c.delete(f"/api/agents/{'0' * 16}").status_code == 404
    r = httpx.post(cluster.server.url + "/api/agent-tokens", json={})
    assert r.status_code == 401


def test_malformed_oversized_and_out_of_order_messages(cluster: Cluster) -> None:
    identity = join(cluster.join_address, cluster.join_token(), "rude")
    creds = identity.credentials()
    # A session must begin with Hello.
    with pytest.raises(grpc.RpcError) as caught:
        _session(cluster, creds, [pb.AgentMessage(heartbeat=pb.Heartbeat())])
    assert caught.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    # Over the message size limit: refused by gRPC, the controller goes on.
    huge = pb.AgentMessage(hello=pb.Hello(node="x" * (17 * 1024 * 1024)))
    with pytest.raises(grpc.RpcError) as caught:
        _session(cluster, creds, [huge])
    assert caught.value.code() == grpc.StatusCode.RESOURCE_EXHAUSTED
    # A reply nobody asked for: logged, never a crash. (The session then ends as the agent
    # closes its side, or at the deadline: either is fine here.)
    with contextlib.suppress(grpc.RpcError):
        _session(cluster, creds, [_hello("rude"), pb.AgentMessage(
            reply=pb.Reply(seq=999_999, ok=pb.Empty()))], timeout=2)
    # A download nobody asked for, on the data port (tests/security/test_data_port.py has
    # each refusal): the connection is closed and nothing else happens.
    with socket.create_connection((cluster.host, cluster.data_port)) as raw, \
            wire.client_context(identity.key_pem, identity.cert_pem, identity.ca_pem
                                ).wrap_socket(raw, server_hostname=CONTROLLER_NAME) as tls:
        tls.sendall(wire.header("f" * 32, -1) + wire.FRAME.pack(wire.DATA, 1) + b"x")
        tls.settimeout(10)
        assert tls.recv(1) == b""
    wait_for(lambda: "reply 999999 answers no open command" in cluster.server.log(),
             timeout=5, what="the stray reply to be logged")
    assert httpx.get(cluster.server.url + "/healthz").status_code == 200
    assert cluster.server.proc is not None and cluster.server.proc.poll() is None


def test_controller_name_is_what_agents_verify(cluster: Cluster) -> None:
    cert = x509.load_pem_x509_certificate((cluster.server.data_dir / "ca.crt").read_bytes())
    names = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    assert CONTROLLER_NAME in names.get_values_for_type(x509.DNSName)


def test_cli_creates_tokens_lists_and_revokes_agents(cluster: Cluster) -> None:
    import json
    import subprocess

    from tests.support import PODCAP

    def cli(*args: str) -> subprocess.CompletedProcess:
        return subprocess.run([PODCAP, "-s", cluster.server.url, "-u", "admin", "-p",
                               cluster.server.password, *args], capture_output=True,
                              text=True, timeout=30)

    made = cli("token", "create", "--ttl", "10m", "--uses", "2")
    assert made.returncode == 0, made.stderr
    token = made.stdout.strip()
    assert "for 2 join(s)" in made.stderr
    joined = join(cluster.join_address, token, "cli-node")
    listed = json.loads(cli("agents", "-o", "json").stdout)["agents"]
    assert joined.agent_id in [a["id"] for a in listed]
    assert cli("agents").stdout.count("cli-node") == 1
    gone = cli("agents", "rm", joined.agent_id)
    assert gone.returncode == 0, gone.stderr
    assert joined.agent_id not in [a["id"] for a in cluster.agents()]
    bad = cli("token", "create", "--ttl", "soon")
    assert bad.returncode == 2 and "--ttl" in bad.stderr


def test_processes_of_a_killed_test_run_are_swept(tmp_path: Path) -> None:
    """A test process SIGKILLed with a controller and an agent running: the next cluster ends
    both (they run in sessions of their own, so nothing else would)."""
    import subprocess
    import sys

    from tests.cluster.cluster_support import sweep_orphans
    from tests.support import ROOT

    script = f"""
import time
from tests.cluster.cluster_support import AgentProc, running_cluster
from pathlib import Path
with running_cluster(Path({str(tmp_path)!r})) as c:
    AgentProc(c, "orphan", Path({str(tmp_path)!r}) / "agent").start(c.join_token())
    print(c.server.proc.pid, flush=True)
    time.sleep(600)
"""
    child = subprocess.Popen([sys.executable, "-c", script], cwd=ROOT, stdout=subprocess.PIPE,
                             text=True)
    try:
        controller = int(child.stdout.readline())  # type: ignore[union-attr]
    finally:
        child.kill()
        child.wait(5)
    assert Path(f"/proc/{controller}").exists()  # outlived its test process
    ended = sweep_orphans()
    assert controller in ended and len(ended) >= 2  # the controller and the agent
    wait_for(lambda: not Path(f"/proc/{controller}").exists() or
             "Z" in Path(f"/proc/{controller}/stat").read_text().split()[2], timeout=5,
             what="the orphaned controller to end")
