"""The gRPC transport end to end, in one process: a real gateway on loopback (mutual TLS), a
real ``Uplink`` serving a stand-in ``AgentTransport`` (not an ``Agent``: the uplink serves the
interface), and the controller's ``RemoteAgent`` asking it. No node, no tcpdump: the behaviours
of a real agent behind this wire are proven in tests/cluster."""

from __future__ import annotations

import dataclasses
import threading
from collections.abc import Iterator
from concurrent import futures
from pathlib import Path

import grpc
import pytest

from podcap import errors, limits
from podcap.model import AgentInfo, Capture, CaptureSpec, Workload
from podcap.streams import PcapRequest, PcapStream
from podcap.transport.grpc.agent_proto import agent_pb2 as pb
from podcap.transport.grpc.agent_proto import agent_pb2_grpc as pb_grpc
from podcap.transport.grpc.errors import abort, from_rpc
from podcap.transport.grpc.gateway_server import GatewayServer
from podcap.transport.grpc.remote import RemoteAgent
from podcap.transport.grpc.uplink import OPERATIONS
from tests.loopback_gateway import connected, loopback_gateway

NODE = "fake-node"
WORKLOAD = Workload(id="w" * 12, name="web", runtime="docker", node=NODE, state="running",
                    pid=42, cap_sniff=True)


class StandIn:
    """An ``AgentTransport`` that is not an agent: answers from memory, records what it was
    asked, and raises ``fail`` (when set) from every method."""

    def __init__(self, agent_id: str) -> None:
        self.agent_id = agent_id
        self.fail: Exception | None = None
        self.fail_stream: Exception | None = None  # raised by a download after its first bytes
        self.asked: list[tuple[str, object]] = []
        self.closed = threading.Event()

    def _ask(self, op: str, arg: object = None) -> None:
        self.asked.append((op, arg))
        if self.fail is not None:
            raise self.fail

    def _capture(self, cid: str) -> Capture:
        return Capture(id=cid, agent_id=self.agent_id, workload=WORKLOAD, spec=CaptureSpec())

    def info(self) -> AgentInfo:
        return AgentInfo(id=self.agent_id, node=NODE, runtimes=("docker",), version="stand-in",
                         started=1.0, disk_budget=10**9, reclaim="none")

    def list_workloads(self) -> list[Workload]:
        self._ask("list_workloads")
        return [WORKLOAD]

    def check_filter(self, expression: str) -> None:
        self._ask("check_filter", expression)

    def start(self, workload_id: str, spec: CaptureSpec, owner: str = "") -> Capture:
        self._ask("start", (workload_id, spec, owner))
        return self._capture("c" * 32)

    def stop(self, capture_id: str) -> Capture:
        self._ask("stop", capture_id)
        return self._capture(capture_id)

    def remove(self, capture_id: str) -> None:
        self._ask("remove", capture_id)

    def list_captures(self) -> list[Capture]:
        self._ask("list_captures")
        return [self._capture("c" * 32)]

    def get_capture(self, capture_id: str) -> Capture:
        self._ask("get_capture", capture_id)
        return self._capture(capture_id)

    def known_captures(self) -> list[Capture]:
        return self.list_captures()

    def stream_pcap(self, capture_id: str, request: PcapRequest = PcapRequest()) -> PcapStream:
        self._ask("download", (capture_id, request))
        data = b"\xd4\xc3\xb2\xa1" + b"x" * (limits.UPLOAD_CHUNK_BYTES + 10)
        return PcapStream(self._chunks(data), len(data))

    def _chunks(self, data: bytes) -> Iterator[bytes]:
        yield data[:5]
        if self.fail_stream is not None:
            raise self.fail_stream
        yield data[5:]

    def document(self, capture_id: str, name: str, params: dict[str, str] | None = None,
                 ) -> dict[str, object]:
        self._ask("document", (capture_id, name, params))
        return {"name": name, "params": params or {}}

    def close(self) -> None:
        self.closed.set()


@dataclasses.dataclass
class Wire:
    stand_in: StandIn
    remote: RemoteAgent
    server: GatewayServer


@pytest.fixture
def wire(tmp_path: Path) -> Iterator[Wire]:
    with loopback_gateway(tmp_path) as gw:
        identity = gw.identity(NODE)
        stand_in = StandIn(identity.agent_id)
        try:
            with connected(gw, identity, stand_in) as (remote, _):
                yield Wire(stand_in, remote, gw.server)
        finally:
            gw.registry.close()


def test_the_operation_table_serves_every_command_of_the_protocol() -> None:
    """A command added to agent.proto without a handler would answer "unknown command"."""
    ops = {f.name for f in pb.Command.DESCRIPTOR.oneofs_by_name["op"].fields}
    assert set(OPERATIONS) == ops


def test_the_uplink_serves_any_agent_transport(wire: Wire) -> None:
    remote, stand_in = wire.remote, wire.stand_in
    info = remote.info()
    assert (info.node, info.version, info.runtimes, info.disk_budget, info.reclaim) == (
        NODE, "stand-in", ("docker",), 10**9, "none")
    assert [w.id for w in remote.list_workloads()] == [WORKLOAD.id]
    remote.check_filter("tcp port 80")
    spec = CaptureSpec(duration=5, filter="udp")
    assert remote.start(WORKLOAD.id, spec, "alice").id == "c" * 32
    assert remote.stop("d" * 32).id == "d" * 32
    remote.remove("d" * 32)
    assert [c.id for c in remote.list_captures()] == ["c" * 32]
    assert remote.get_capture("e" * 32).id == "e" * 32
    assert remote.document("e" * 32, "summary", {"k": "v"}) == {
        "name": "summary", "params": {"k": "v"}}
    stream = remote.stream_pcap("e" * 32, PcapRequest(offset=3, filter="tcp"))
    data = b"".join(stream)
    assert stream.size == len(data) == 4 + limits.UPLOAD_CHUNK_BYTES + 10
    assert data.startswith(b"\xd4\xc3\xb2\xa1x")
    assert stand_in.asked == [
        ("list_workloads", None), ("check_filter", "tcp port 80"),
        ("start", (WORKLOAD.id, spec, "alice")), ("stop", "d" * 32), ("remove", "d" * 32),
        ("list_captures", None), ("get_capture", "e" * 32),
        ("document", ("e" * 32, "summary", {"k": "v"})),
        ("download", ("e" * 32, PcapRequest(offset=3, filter="tcp")))]


def _sample(cls: type[errors.PodcapError]) -> errors.PodcapError:
    return cls(f"{cls.__name__}: what to change")


def test_every_kind_crosses_a_reply_and_an_upload_intact(wire: Wire) -> None:
    """What an agent raises is what the controller raises: same class, same message, whether it
    answers a command or ends a download midway."""
    for cls in errors.EDGES:
        wire.stand_in.fail = _sample(cls)
        with pytest.raises(errors.PodcapError) as caught:
            wire.remote.stop("d" * 32)
        assert type(caught.value) is cls and caught.value.message == _sample(cls).message
        wire.stand_in.fail = None
        wire.stand_in.fail_stream = _sample(cls)
        got = b""
        with pytest.raises(errors.PodcapError) as caught:
            for chunk in wire.remote.stream_pcap("e" * 32):
                got += chunk
        assert type(caught.value) is cls and caught.value.message == _sample(cls).message
        assert got == b"\xd4\xc3\xb2\xa1x"  # what came before the error was delivered
        wire.stand_in.fail_stream = None
    assert wire.remote.info().connected  # no error took the session down


class Refuser(pb_grpc.AgentGatewayServicer):
    """Refuses every join with ``exc``, as the gateway refuses a call (``errors.abort``)."""

    exc: errors.PodcapError = errors.PodcapError("unset")

    def Join(self, request: pb.JoinRequest, context: grpc.ServicerContext) -> pb.JoinReply:
        abort(context, self.exc)


def test_every_kind_crosses_a_refused_call_intact() -> None:
    """A refused call is a gRPC status, coarser than the tree (NotEnoughFilter and
    InvalidArgument share INVALID_ARGUMENT); the kind rides in the trailers."""
    refuser = Refuser()
    server = grpc.server(futures.ThreadPoolExecutor(2))
    pb_grpc.add_AgentGatewayServicer_to_server(refuser, server)
    port = server.add_insecure_port("127.0.0.1:0")
    server.start()
    try:
        with grpc.insecure_channel(f"127.0.0.1:{port}") as channel:
            stub = pb_grpc.AgentGatewayStub(channel)
            for cls in errors.EDGES:
                refuser.exc = _sample(cls)
                with pytest.raises(grpc.RpcError) as caught:
                    stub.Join(pb.JoinRequest(node="n"), timeout=5)
                assert caught.value.code().name == errors.EDGES[cls].grpc
                got = from_rpc(caught.value, "join")
                assert type(got) is cls and got.message == f"join: {_sample(cls).message}"
    finally:
        server.stop(0)


def test_a_status_without_a_kind_is_read_by_its_code() -> None:
    """A status from something that is not podcap (a proxy, a crash) still maps to the tree;
    a kind named in the trailers of another code is not believed."""

    class Bare(Exception):
        def __init__(self, code: grpc.StatusCode, trailers: tuple = ()) -> None:
            self._code, self._trailers = code, trailers

        def code(self) -> grpc.StatusCode:
            return self._code

        def details(self) -> str:
            return "x"

        def trailing_metadata(self) -> tuple:
            return self._trailers

    assert type(from_rpc(Bare(grpc.StatusCode.INVALID_ARGUMENT), "p")) is errors.InvalidArgument
    assert type(from_rpc(Bare(grpc.StatusCode.ALREADY_EXISTS), "p")) is errors.AlreadyExists
    assert type(from_rpc(Bare(grpc.StatusCode.UNKNOWN), "p")) is errors.Unavailable
    assert type(from_rpc(Bare(grpc.StatusCode.DEADLINE_EXCEEDED), "p")) is errors.Unavailable
    forged = Bare(grpc.StatusCode.UNAVAILABLE, (("podcap-kind", "PermissionDenied"),))
    assert type(from_rpc(forged, "p")) is errors.Unavailable

