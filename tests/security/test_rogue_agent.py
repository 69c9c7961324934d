"""A compromised node (joined with a real token, speaking the real protocol, then lying) must
not break the controller for anyone else (issue 24). Each case runs against a real `podcap
controller` on SQLite and on PostgreSQL with a real agent on the Docker engine; after each, a
user on another node is answered normally and the real node's capture starts, stops and
downloads."""

from __future__ import annotations

import random
import secrets
import socket
import threading
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import grpc
import pytest

from podcap import limits
from podcap.errors import FailedPrecondition
from podcap.pki.names import CONTROLLER_NAME
from podcap.transport.data import wire
from podcap.transport.grpc.agent_proto import agent_pb2 as pb
from podcap.transport.grpc.agent_proto import agent_pb2_grpc as pb_grpc
from podcap.transport.grpc.join import CLIENT_OPTIONS, join
from tests.cluster.cluster_support import AgentProc, Cluster, running_cluster
from tests.security import rogue as r
from tests.security.rogue import Rogue
from tests.support import WebPair, unique, wait_for

PCAP_MAGICS = (b"\xd4\xc3\xb2\xa1", b"\xa1\xb2\xc3\xd4", b"\x4d\x3c\xb2\xa1", b"\xa1\xb2\x3c\x4d")


@dataclass
class Bed:
    cluster: Cluster
    real: AgentProc
    pair: WebPair
    user: str  # a token of another user (an operator of every namespace, with download)

    def client(self, token: str | None = None):  # noqa: ANN201 - httpx.Client
        return self.cluster.server.client(token or self.user)


@pytest.fixture(scope="module", params=["sqlite", "postgresql"])
def bed(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory,
        pair: WebPair) -> Iterator[Bed]:
    url = None
    if request.param == "postgresql":
        from tests.pg import new_database

        url = new_database(request.getfixturevalue("postgres_url"))
    tmp = tmp_path_factory.mktemp(f"rogue-{request.param}")
    with running_cluster(tmp, database_url=url) as cluster:
        real = AgentProc(cluster, unique("real"), tmp / "agent").start(cluster.join_token())
        try:
            password = secrets.token_urlsafe(12)
            with cluster.server.client() as c:
                made = c.post("/api/users", json={"username": "carol", "password": password,
                                                  "role": "operator", "download": True})
                assert made.status_code == 201, made.text
            yield Bed(cluster, real, pair, cluster.server.login("carol", password))
        finally:
            real.stop()


@pytest.fixture
def rogues(bed: Bed) -> Iterator[list[Rogue]]:
    """Rogues a test made: closed and revoked after it, so no lie outlives its test."""
    made: list[Rogue] = []
    yield made
    for one in made:
        one.close()
        with bed.cluster.server.client() as c:
            c.delete(f"/api/agents/{one.agent_id}")


def assert_healthy(bed: Bed) -> None:
    """Another user is answered normally; the real node captures, stops and downloads."""
    with bed.client() as c:
        for path in ("/api/captures", "/api/workloads", "/v1/sniffer", "/v1/workload",
                     "/api/agents"):
            got = c.get(path)
            assert got.status_code == 200, (path, got.status_code, got.text)
        started = c.post("/api/captures", json={"workload_id": bed.pair.web.id})
        assert started.status_code == 201, started.text
        capture = started.json()["capture"]
        assert capture["node"] == bed.real.node
        time.sleep(0.5)  # the client fetches five times a second
        stopped = c.post(f"/api/captures/{capture['id']}/stop")
        assert stopped.status_code == 200, stopped.text
        pcap = c.get(f"/api/captures/{capture['id']}/pcap")
        assert pcap.status_code == 200 and pcap.content[:4] in PCAP_MAGICS, pcap.text[:200]
        assert c.delete(f"/api/captures/{capture['id']}").status_code in (200, 204)
    with bed.cluster.server.client() as admin:
        metrics = admin.get("/metrics")
        assert metrics.status_code == 200, metrics.text


def metric(bed: Bed, name: str, **labels: str) -> float:
    """Sum of the samples of ``name`` whose labels include ``labels``."""
    with bed.cluster.server.client() as c:
        text = c.get("/metrics").text
    total = 0.0
    for line in text.splitlines():
        if line.startswith(name + "{") or line.startswith(name + " "):
            if all(f'{k}="{v}"' in line for k, v in labels.items()):
                total += float(line.rsplit(" ", 1)[1])
    return total


def lying(**answers: object) -> r.Answer:
    """Answer the named commands with these replies (a callable gets the command), the rest
    as an empty node would."""
    def answer(command: pb.Command) -> pb.Reply | None:
        op = command.WhichOneof("op")
        if op in answers:
            given = answers[op]
            if callable(given):
                return given(command)
            reply = pb.Reply()
            reply.CopyFrom(given)  # type: ignore[arg-type]
            return reply
        return r.honest_nothing(command)
    return answer


# ---- every field checked; a bad answer fails that node only --------------------------------


def test_a_bogus_status_fails_only_its_node(bed: Bed, rogues: list[Rogue]) -> None:
    node = unique("bogus")
    rogue = Rogue(bed.cluster, node)
    rogues.append(rogue)
    bogus = r.capture(secrets.token_hex(16), rogue.agent_id, node, status="bogus")
    fine = r.capture(secrets.token_hex(16), rogue.agent_id, node, status="stopped")
    rogue.start(lying(
        list_captures=pb.Reply(captures=pb.Captures(items=[bogus, fine])),
        get_capture=pb.Reply(capture=bogus),
        list_workloads=pb.Reply(workloads=pb.Workloads(items=[
            r.workload(secrets.token_hex(32), node, name="evil\nname"),
            r.workload(secrets.token_hex(32), node, ips=["not an ip"]),
            r.workload(secrets.token_hex(32), node, runtime="podman")]))))
    with bed.client() as c:
        listed = c.get("/api/captures")
        assert listed.status_code == 200, listed.text
        ids = [x["id"] for x in listed.json()["captures"]]
        assert bogus.id not in ids and fine.id in ids  # the bad entry dropped, not the list
        one = c.get(f"/api/captures/{bogus.id}")
        assert one.status_code in (404, 503), one.text  # never 500
        workloads = c.get("/api/workloads").json()["workloads"]
        assert not [w for w in workloads if w["node"] == node]
    assert_healthy(bed)
    assert metric(bed, "podcap_agent_messages_dropped_total", agent_id=rogue.agent_id,
                  why="invalid") >= 4
    assert "evil\nname" not in bed.cluster.server.log()


def test_fuzzed_messages_built_from_the_proto(bed: Bed, rogues: list[Rogue]) -> None:
    rng = random.Random(24)
    node = unique("fuzz")
    rogue = Rogue(bed.cluster, node)
    rogues.append(rogue)
    base = r.capture(secrets.token_hex(16), rogue.agent_id, node)

    def fuzzed(command: pb.Command) -> pb.Reply:
        op = command.WhichOneof("op")
        if op == "list_captures":
            return pb.Reply(captures=pb.Captures(items=[
                r.fuzz_message(rng, pb.Capture, valid=base) for _ in range(20)]))
        if op == "list_workloads":
            return pb.Reply(workloads=pb.Workloads(items=[
                r.fuzz_message(rng, pb.Workload, valid=base.workload) for _ in range(20)]))
        return r.fuzz_message(rng, pb.Reply)  # type: ignore[return-value]

    rogue.start(fuzzed)
    with bed.client() as c:
        for _ in range(15):
            for path in ("/api/captures", "/api/workloads", "/v1/sniffer",
                         f"/api/captures/{base.id}"):
                got = c.get(path)
                assert got.status_code < 500 or got.status_code == 503, (path, got.text)
    log_lines = len(bed.cluster.server.log().splitlines())
    for _ in range(200):  # unasked replies, stray hellos, random heartbeats
        rogue._outbox.put(r.fuzz_message(rng, pb.AgentMessage))
    time.sleep(1)
    grown = bed.cluster.server.log().splitlines()[log_lines:]
    assert len(grown) < 20, f"200 stray messages wrote {len(grown)} log lines: {grown}"  # counted
    assert_healthy(bed)
    assert bed.cluster.server.proc is not None and bed.cluster.server.proc.poll() is None


# ---- capture ids belong to their agent ------------------------------------------------------


def test_fake_and_reused_capture_ids(bed: Bed, rogues: list[Rogue]) -> None:
    with bed.client() as c:
        started = c.post("/api/captures", json={"workload_id": bed.pair.web.id})
        assert started.status_code == 201, started.text
        real = started.json()["capture"]
    node = unique("ids")
    rogue = Rogue(bed.cluster, node)
    rogues.append(rogue)
    copy = r.capture(real["id"], rogue.agent_id, node)  # the real id, counters made up
    fakes = [r.capture(secrets.token_hex(16), rogue.agent_id, node, file_number=50,
                       file_size_mb=1000, buffer_kib=262_144)
             for _ in range(limits.QUOTA_NAMESPACE_CAPTURES + 6)]
    rogue.start(lying(list_captures=pb.Reply(captures=pb.Captures(items=[copy, *fakes]))))
    try:
        with bed.client() as c:
            mine = [x for x in c.get("/api/captures").json()["captures"]
                    if x["id"] == real["id"]]
            assert [x["node"] for x in mine] == [bed.real.node], mine
            assert c.get(f"/api/captures/{real['id']}").json()["capture"]["node"] == \
                bed.real.node
        assert_healthy(bed)  # a start: the fakes count in no user's or namespace's quota
        assert metric(bed, "podcap_agent_messages_dropped_total", agent_id=rogue.agent_id,
                      why="not_its_capture") >= 1
    finally:
        with bed.client() as c:
            c.post(f"/api/captures/{real['id']}/stop")
            c.delete(f"/api/captures/{real['id']}")


# ---- identity is (node, container) ----------------------------------------------------------


def test_another_nodes_container_id_does_not_shadow_it(bed: Bed, rogues: list[Rogue]) -> None:
    node = unique("shadow")
    rogue = Rogue(bed.cluster, node)
    rogues.append(rogue)
    rogue.start(lying(list_workloads=pb.Reply(workloads=pb.Workloads(items=[
        r.workload(bed.pair.web.id, node, name="web-shadow")]))))
    with bed.client() as c:
        shown = [w for w in c.get("/api/workloads").json()["workloads"]
                 if w["id"] == bed.pair.web.id]
        # each node lists what it reports: the rogue's copy under the rogue's name
        assert sorted(w["node"] for w in shown) == sorted([bed.real.node, node]), shown
    assert_healthy(bed)  # starts by the full id: not "ambiguous", and on the real node
    assert metric(bed, "podcap_agent_messages_dropped_total", agent_id=rogue.agent_id,
                  why="duplicate_workload") >= 1


# ---- node names: validated on Hello, bound to the certificate -------------------------------


def test_hello_must_repeat_the_name_in_the_certificate(bed: Bed, rogues: list[Rogue]) -> None:
    node = unique("liar")
    rogue = Rogue(bed.cluster, node)
    rogues.append(rogue)
    injected = 'x\n2026-12-07 INFO podcap: admin logged in "forged"'
    for name, code in ((bed.real.node, grpc.StatusCode.PERMISSION_DENIED),
                       (injected, grpc.StatusCode.INVALID_ARGUMENT),
                       ("", grpc.StatusCode.INVALID_ARGUMENT)):
        with rogue.channel() as channel, pytest.raises(grpc.RpcError) as caught:
            list(pb_grpc.AgentGatewayStub(channel).Session(iter([pb.AgentMessage(
                hello=pb.Hello(node=name, version="x"))]), timeout=5))
        assert caught.value.code() == code, (name, caught.value.details())
    assert "\n2026-12-07 INFO podcap: admin" not in bed.cluster.server.log()
    named = [a for a in bed.cluster.agents() if a["node"] == bed.real.node]
    assert [a["id"] for a in named] == [bed.cluster.agent(bed.real.node)["id"]]  # type: ignore[index]
    assert bed.cluster.agent(node) is not None  # its own record keeps its own name
    with pytest.raises(Exception, match="invalid node name"):
        join(bed.cluster.join_address, bed.cluster.join_token(), "a\nb")
    # Nor can a token buy a certificate in a live node's name; the refusal spends no use.
    token = bed.cluster.join_token()
    with pytest.raises(FailedPrecondition, match="already joined"):
        join(bed.cluster.join_address, token, bed.real.node)
    spent = unique("spent")
    rogues.append(Rogue(bed.cluster, spent, join(bed.cluster.join_address, token, spent)))
    assert_healthy(bed)


# ---- filters are compiled on the controller -------------------------------------------------


def test_filter_check_never_reaches_a_node(bed: Bed, rogues: list[Rogue]) -> None:
    node = f"0-{secrets.token_hex(3)}"  # sorts before every other node
    rogue = Rogue(bed.cluster, node)
    rogues.append(rogue)
    rogue.start(lying(check_filter=lambda _: None))  # would stall every check
    with bed.client() as c:
        began = time.monotonic()
        good = c.post("/api/filter/check", json={"filter": "tcp port 80 and host 10.1.2.3"})
        bad = c.post("/api/filter/check", json={"filter": "tcp port"})
        took = time.monotonic() - began
    assert good.json() == {"ok": True, "message": ""}, good.text
    assert bad.json()["ok"] is False and "syntax" in bad.json()["message"], bad.text
    assert took < 2.0, took
    assert not [cmd for cmd in rogue.commands if cmd.WhichOneof("op") == "check_filter"]
    assert_healthy(bed)


# ---- silent streams, streams per agent ------------------------------------------------------


def threads(bed: Bed) -> int:
    """Threads of the controller process now (its gRPC pool grows a thread per call it
    serves at once, up to limits.GRPC_WORKERS)."""
    assert bed.cluster.server.proc is not None
    return len(list(Path(f"/proc/{bed.cluster.server.proc.pid}/task").iterdir()))


def test_silent_streams_cannot_hold_the_server(bed: Bed, rogues: list[Rogue]) -> None:
    """50 silent sessions (a coroutine of the gateway's loop each) and 50 silent data
    connections (the data port: a socket each, on the HTTP loop): refused over the caps, the
    rest cancelled after the first-message limit, and the real node's download goes on."""
    rogue = Rogue(bed.cluster, unique("silent"))
    rogues.append(rogue)
    quiet = threading.Event()

    def silent() -> Iterator[pb.AgentMessage]:
        quiet.wait(60)
        return
        yield  # a generator that sends nothing

    threads_before = threads(bed)
    outcomes: list[str] = []
    assert rogue.identity is not None
    data_tls = wire.client_context(rogue.identity.key_pem, rogue.identity.cert_pem,
                                   rogue.identity.ca_pem)

    def hold(kind: str) -> None:
        began = time.monotonic()
        if kind == "data":  # TLS with the rogue's certificate, then not a byte
            with socket.create_connection((bed.cluster.host, bed.cluster.data_port)) as raw, \
                    data_tls.wrap_socket(raw, server_hostname=CONTROLLER_NAME) as tls:
                tls.settimeout(30)
                outcomes.append(f"data closed {time.monotonic() - began:.0f}s"
                                if tls.recv(1) == b"" else "data answered")
            return
        with rogue.channel() as channel:
            stub = pb_grpc.AgentGatewayStub(channel)
            try:
                list(stub.Session(silent(), timeout=30))
                outcomes.append(f"{kind} ended")
            except grpc.RpcError as exc:
                outcomes.append(f"{kind} {exc.code().name} {time.monotonic() - began:.0f}s")

    try:
        with ThreadPoolExecutor(100) as pool:
            for kind in ["session"] * 50 + ["data"] * 50:
                pool.submit(hold, kind)
            time.sleep(1.5)
            threads_during = threads(bed)
            assert_healthy(bed)  # the real node's download still gets its thread
    finally:
        quiet.set()
    print(f"\nsilent streams: controller threads {threads_before} before, {threads_during} "
          f"while 100 silent streams were open; outcomes {sorted(set(outcomes))}, "
          f"{sum('CANCELLED' in o for o in outcomes)} held then cancelled")
    refused = [o for o in outcomes if "RESOURCE_EXHAUSTED" in o]
    cancelled = [o for o in outcomes if "CANCELLED" in o]
    assert len(refused) >= 50 - limits.AGENT_SESSIONS_MAX
    assert all(int(o.split()[-1][:-1]) <= limits.STREAM_FIRST_MESSAGE_S + 2 for o in cancelled)
    closed = [o for o in outcomes if o.startswith("data closed")]
    # Refused, or ended by the first-message limit: none left to its own deadline.
    assert sorted(refused + cancelled + closed) == sorted(outcomes), outcomes
    assert len(cancelled) <= limits.AGENT_SESSIONS_MAX  # held only up to the cap
    assert len(closed) == 50  # each closed by the controller, none answered
    assert all(int(o.split()[-1][:-1]) <= limits.STREAM_FIRST_MESSAGE_S + 2 for o in closed)
    assert metric(bed, "podcap_agent_streams_refused_total", agent_id=rogue.agent_id) >= \
        len(refused) + len(closed)


# ---- caps on what one agent reports ---------------------------------------------------------


def test_per_agent_caps_on_workloads_and_captures(bed: Bed, rogues: list[Rogue]) -> None:
    node = unique("huge")
    rogue = Rogue(bed.cluster, node)
    rogues.append(rogue)
    many = pb.Reply(workloads=pb.Workloads(items=[
        r.workload(f"{i:064x}", node) for i in range(60_000)]))
    lots = pb.Reply(captures=pb.Captures(items=[
        r.capture(f"{i:032x}", rogue.agent_id, node, status="stopped")
        for i in range(limits.AGENT_CAPTURES_MAX + 1)]))
    rogue.start(lying(list_workloads=many, list_captures=lots))
    with bed.client() as c:
        began = time.monotonic()
        listed = c.get("/api/workloads")
        took = time.monotonic() - began
        assert listed.status_code == 200, listed.text
        body = listed.json()
        assert not [w for w in body["workloads"] if w["node"] == node]
        assert [u["node"] for u in body["unreachable"]] == [node]
        assert "at most 5000" in body["unreachable"][0]["reason"]
        caps = c.get("/api/captures").json()
        assert [u["node"] for u in caps["unreachable"]] == [node]
    print(f"\n60,000-workload node: /api/workloads took {took:.2f} s, {len(listed.content)} "
          "bytes")
    assert took < 3.0 and len(listed.content) < 1_000_000
    assert metric(bed, "podcap_agent_limits_hit_total", agent_id=rogue.agent_id,
                  what="workloads") >= 1
    assert metric(bed, "podcap_agent_limits_hit_total", agent_id=rogue.agent_id,
                  what="captures") >= 1
    assert_healthy(bed)


# ---- the join port ----------------------------------------------------------------------------


def test_a_join_flood_is_rate_limited_and_audited_at_a_bounded_rate(bed: Bed) -> None:
    audit = bed.cluster.server.data_dir / "audit.jsonl"
    lines_before = len(audit.read_text().splitlines())
    ca = (bed.cluster.server.data_dir / "ca.crt").read_bytes()
    tid = "0" * 16
    codes: list[str] = []
    began = time.monotonic()
    with grpc.secure_channel(bed.cluster.join_address, grpc.ssl_channel_credentials(ca),
                             options=CLIENT_OPTIONS) as channel:
        stub = pb_grpc.AgentGatewayStub(channel)

        def bad_join(i: int) -> None:
            try:
                stub.Join(pb.JoinRequest(token=f"{tid}.{i:032x}.{'ab' * 32}", node=f"n{i}",
                                         csr_pem=b"junk"), timeout=10)
            except grpc.RpcError as exc:
                codes.append(exc.code().name)

        with ThreadPoolExecutor(16) as pool:
            list(pool.map(bad_join, range(300)))
    took = time.monotonic() - began
    grown = len(audit.read_text().splitlines()) - lines_before
    print(f"\njoin flood: 300 bad joins in {took:.2f} s: {codes.count('RESOURCE_EXHAUSTED')} "
          f"rate-limited; audit.jsonl grew by {grown} lines")
    assert len(codes) == 300 and codes.count("RESOURCE_EXHAUSTED") >= 250
    # one address: its rows, plus those of the window before if the flood straddles two
    assert grown <= 2 * limits.AUDIT_FAILURES_PER_ADDRESS
    assert metric(bed, "podcap_joins_refused_total") >= 300
    assert metric(bed, "podcap_joins_refused_total", why="rate_limited") >= 250
    # The bucket refills: a real join gets through again within seconds.
    wait_for(lambda: _joins(bed), timeout=10, interval=1, what="a join after the flood")
    assert_healthy(bed)


def _joins(bed: Bed) -> bool:
    try:
        identity = join(bed.cluster.join_address, bed.cluster.join_token(), unique("after"))
    except Exception:  # noqa: BLE001 - still rate-limited: try again
        return False
    with bed.cluster.server.client() as c:
        c.delete(f"/api/agents/{identity.agent_id}")
    return True
