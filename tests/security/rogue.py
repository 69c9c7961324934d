"""A compromised node for tests: it joins with a real token and speaks the real protocol
(the generated agent proto), then answers the controller's commands with whatever a test
makes it say, and pushes as its inventory what it would answer to a list (a snapshot twice a
second, as an agent's feed would after a resync). Nothing here is mocked on the controller's
side."""

from __future__ import annotations

import queue
import random
import string
import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field

import grpc

from podcap.transport.grpc.agent_proto import agent_pb2 as pb  # noqa: E402
from podcap.transport.grpc.agent_proto import agent_pb2_grpc as pb_grpc  # noqa: E402
from podcap.transport.grpc.join import CLIENT_OPTIONS, Identity, join  # noqa: E402
from tests.cluster.cluster_support import Cluster

Answer = Callable[[pb.Command], pb.Reply | None]  # None: never answer


def honest_nothing(command: pb.Command) -> pb.Reply | None:
    """An empty node: no workloads, no captures, every capture unknown."""
    op = command.WhichOneof("op")
    if op == "list_workloads":
        return pb.Reply(workloads=pb.Workloads())
    if op == "list_captures":
        return pb.Reply(captures=pb.Captures())
    if op == "check_filter":
        return pb.Reply(ok=pb.Empty())
    return pb.Reply(error=pb.Error(kind="NotFound", message="no such capture"))


@dataclass
class Rogue:
    """``Rogue(cluster, node).start(answer)``; ``close()`` ends its session."""

    cluster: Cluster
    node: str
    identity: Identity | None = None
    commands: list[pb.Command] = field(default_factory=list)
    _outbox: queue.Queue = field(default_factory=queue.Queue)
    _channel: grpc.Channel | None = None
    _call: object = None
    _answer: Answer = honest_nothing
    _seq: int = 0

    def __post_init__(self) -> None:
        if self.identity is None:
            self.identity = join(self.cluster.join_address, self.cluster.join_token(), self.node)

    @property
    def agent_id(self) -> str:
        assert self.identity is not None
        return self.identity.agent_id

    def channel(self) -> grpc.Channel:
        assert self.identity is not None
        return grpc.secure_channel(self.cluster.agent_address, self.identity.credentials(),
                                   options=CLIENT_OPTIONS)

    def start(self, answer: Answer = honest_nothing, hello: pb.Hello | None = None,
              wait: bool = True) -> Rogue:
        hello = hello or pb.Hello(node=self.node, version="rogue", runtimes=["docker"])
        self._answer = answer
        self._channel = self.channel()
        call = pb_grpc.AgentGatewayStub(self._channel).Session(self._upward(hello))
        self._call = call

        def serve() -> None:
            try:
                for message in call:
                    if message.WhichOneof("msg") != "command":
                        continue
                    self.commands.append(message.command)
                    try:
                        reply = answer(message.command)
                    except Exception:  # noqa: BLE001 - a test's liar must not stop lying
                        reply = None
                    if reply is not None:
                        reply.seq = message.command.seq
                        self._outbox.put(pb.AgentMessage(reply=reply))
            except grpc.RpcError:
                pass

        threading.Thread(target=serve, daemon=True).start()
        if wait:
            self.cluster.wait_connected(self.node)
        return self

    def _upward(self, hello: pb.Hello) -> Iterator[pb.AgentMessage]:
        yield pb.AgentMessage(hello=hello)
        while True:
            try:
                message = self._outbox.get(timeout=0.5)
            except queue.Empty:
                message = self.inventory() or pb.AgentMessage(heartbeat=pb.Heartbeat())
            if message is None:
                return
            yield message

    def inventory(self) -> pb.AgentMessage | None:
        """A snapshot of what it would answer to the two lists (None: it would not)."""
        try:
            listed = [self._answer(pb.Command(list_workloads=pb.Empty())),
                      self._answer(pb.Command(list_captures=pb.Empty()))]
        except Exception:  # noqa: BLE001 - a test's liar must not stop lying
            return None
        w, c = listed
        if w is None or c is None or not w.HasField("workloads") or not c.HasField("captures"):
            return None
        self._seq += 1
        return pb.AgentMessage(inventory=pb.Inventory(
            seq=self._seq, snapshot=True, workloads=w.workloads.items,
            captures=c.captures.items))

    def close(self) -> None:
        self._outbox.put(None)
        if self._call is not None:
            self._call.cancel()  # type: ignore[attr-defined]
        if self._channel is not None:
            self._channel.close()


# ---- lies -----------------------------------------------------------------------------------


def workload(wid: str, node: str, **fields: object) -> pb.Workload:
    base = dict(id=wid, name=f"w-{wid[:8]}", runtime="docker", node=node, kind="container",
                state="running", pid=1, cap_sniff=True)
    return pb.Workload(**{**base, **fields})  # type: ignore[arg-type]


def capture(cid: str, agent_id: str, node: str, status: str = "running",
            **spec: int) -> pb.Capture:
    return pb.Capture(id=cid, agent_id=agent_id, workload=workload("f" * 64, node),
                      spec=pb.CaptureSpec(duration=0, file_number=spec.get("file_number", 5),
                                          file_size_mb=spec.get("file_size_mb", 2),
                                          buffer_kib=spec.get("buffer_kib", 8192)),
                      status=status, stats=pb.Stats(captured=10**9, bytes=10**9),
                      start_time=1.0)


_TEXT = string.printable + "\x00\x1b\u2028é☃\ud7ff"


def fuzz_value(rng: random.Random, kind: int) -> object:
    """A random value of protobuf field type ``kind`` (FieldDescriptor.TYPE_*), biased to
    edges: empty, huge, negative, control characters, NaN."""
    from google.protobuf.descriptor import FieldDescriptor as F

    if kind == F.TYPE_STRING:
        n = rng.choice([0, 1, 8, 32, 64, 300, 2000])
        return "".join(rng.choice(_TEXT) for _ in range(n))
    if kind == F.TYPE_BYTES:
        return rng.randbytes(rng.choice([0, 5, 100]))
    if kind == F.TYPE_BOOL:
        return rng.random() < 0.5
    if kind == F.TYPE_DOUBLE:
        return rng.choice([0.0, -1.0, 1e300, float("nan"), float("inf"), rng.random() * 2e9])
    if kind in (F.TYPE_UINT64, F.TYPE_UINT32):
        return rng.choice([0, 1, 2**32, 2**64 - 1, rng.randrange(2**20)])
    return rng.choice([0, 1, -1, 2**31, -(2**63), 2**63 - 1, rng.randrange(-100, 10**6)])


def fuzz_message(rng: random.Random, cls: type, depth: int = 0, valid: pb.Capture | None = None
                 ) -> object:
    """A ``cls`` message with random values in a random subset of its fields (from its
    descriptor, so every field of the real proto is reached), nested messages too."""
    from google.protobuf.descriptor import FieldDescriptor as F
    from google.protobuf.message_factory import GetMessageClass

    message = cls()
    if valid is not None:
        message.CopyFrom(valid)
    for f in cls.DESCRIPTOR.fields:
        if rng.random() < 0.5:
            continue
        if f.type == F.TYPE_MESSAGE:
            if f.message_type.GetOptions().map_entry:
                key_f, value_f = f.message_type.fields
                for _ in range(rng.choice([0, 1, 3, 300])):
                    getattr(message, f.name)[str(fuzz_value(rng, key_f.type))] = str(
                        fuzz_value(rng, value_f.type))
            elif depth < 3:
                sub = fuzz_message(rng, GetMessageClass(f.message_type), depth + 1)
                target = getattr(message, f.name)
                if f.is_repeated:
                    target.add().CopyFrom(sub)
                else:
                    target.CopyFrom(sub)
            continue
        value = fuzz_value(rng, f.type)
        try:
            if f.is_repeated:
                getattr(message, f.name).extend([value] * rng.choice([1, 2, 100]))
            else:
                setattr(message, f.name, value)
        except (ValueError, TypeError):
            pass  # protobuf itself refuses it (e.g. a surrogate in a string): not sendable
    return message
