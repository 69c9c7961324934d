"""The agent's end of the wire (``podcap agent``): once joined (``join.py``), keep a session
open.

The uplink serves any ``AgentTransport`` (``transport/base.py``): each command is looked up in
one table, ``OPERATIONS``, that turns it into a call of the transport and its answer into a
reply, so the wire knows the interface, never the agent behind it (containerd's shape: one
service interface, served in-process or over gRPC).

The agent dials the controller, so nodes open no port, and authenticates by its certificate
alone. The session carries commands down and replies and heartbeats up; each download's bytes
go on a data connection of their own (``transport/data/sender.py``), so a large one never
delays a command. When the controller is away
the agent goes on capturing (durations and budgets are enforced here) and dials again every
few seconds.
"""

from __future__ import annotations

import logging
import queue
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor

import grpc

from podcap import limits
from podcap.errors import InvalidArgument, PodcapError
from podcap.streams import PcapStream
from podcap.transport.base import AgentTransport
from podcap.transport.data import sender, wire
from podcap.transport.grpc import codec, recorder_ops
from podcap.transport.grpc.agent_proto import agent_pb2 as pb
from podcap.transport.grpc.agent_proto import agent_pb2_grpc as pb_grpc
from podcap.transport.grpc.errors import from_rpc, to_wire
from podcap.transport.grpc.join import CLIENT_OPTIONS, Identity
from podcap.views import Feed, InventoryUpdate

log = logging.getLogger("podcap.agent.uplink")

# A command's answer: a reply, or a stream that a data connection of its own carries (the
# reply then says only that it began).
Answer = pb.Reply | PcapStream
Handler = Callable[[AgentTransport, pb.Command], Answer]


def _list_workloads(t: AgentTransport, _: pb.Command) -> Answer:
    return pb.Reply(workloads=pb.Workloads(items=[codec.workload_to_pb(w)
                                                  for w in t.list_workloads()]))


def _check_filter(t: AgentTransport, c: pb.Command) -> Answer:
    t.check_filter(c.check_filter)
    return pb.Reply(ok=pb.Empty())


def _start(t: AgentTransport, c: pb.Command) -> Answer:
    capture = t.start(c.start.workload_id, codec.spec_from_pb(c.start.spec), c.start.owner)
    return pb.Reply(capture=codec.capture_to_pb(capture))


def _stop(t: AgentTransport, c: pb.Command) -> Answer:
    return pb.Reply(capture=codec.capture_to_pb(t.stop(c.stop)))


def _remove(t: AgentTransport, c: pb.Command) -> Answer:
    t.remove(c.remove)
    return pb.Reply(ok=pb.Empty())


def _list_captures(t: AgentTransport, _: pb.Command) -> Answer:
    return pb.Reply(captures=pb.Captures(items=[codec.capture_to_pb(c)
                                                for c in t.list_captures()]))


def _get_capture(t: AgentTransport, c: pb.Command) -> Answer:
    return pb.Reply(capture=codec.capture_to_pb(t.get_capture(c.get_capture)))


def _download(t: AgentTransport, c: pb.Command) -> Answer:
    return t.stream_pcap(c.download.capture_id, codec.download_from_pb(c.download))


def _document(t: AgentTransport, c: pb.Command) -> Answer:
    body = t.document(c.document.capture_id, c.document.name, dict(c.document.params))
    return pb.Reply(document=codec.document_to_wire(body))


def _sync(t: AgentTransport, _: pb.Command) -> Answer:
    t.sync()  # the feed's delta is in the outbox before this reply
    return pb.Reply(ok=pb.Empty())


# Every operation of ``Command.op`` in agent.proto (a test keeps the two the same).
OPERATIONS: dict[str, Handler] = {
    "list_workloads": _list_workloads,
    "check_filter": _check_filter,
    "start": _start,
    "record": recorder_ops.record,
    "freeze": recorder_ops.freeze,
    "stop": _stop,
    "remove": _remove,
    "list_captures": _list_captures,
    "get_capture": _get_capture,
    "download": _download,
    "document": _document,
    "sync": _sync,
}


def answer(transport: AgentTransport, command: pb.Command) -> tuple[pb.Reply, PcapStream | None]:
    """One command served by ``transport``: (the reply, the stream to upload if any)."""
    op = command.WhichOneof("op")
    handler = OPERATIONS.get(op or "")
    if handler is None:
        raise InvalidArgument(f"unknown command {op!r}: is the controller newer than "
                              "this agent?")
    result = handler(transport, command)
    if isinstance(result, PcapStream):
        return pb.Reply(ok=pb.Empty()), result
    return result, None


class Uplink:
    """Keeps one session with the controller open for as long as the agent runs, serving
    ``transport`` (one whose streams read ``UPLOAD_CHUNK_BYTES`` at a time: a download's frames
    are then its blocks as read)."""

    def __init__(self, transport: AgentTransport, address: str, identity: Identity,
                 feed: Feed | None = None) -> None:
        self.transport = transport
        self.feed = feed  # the inventory each session pushes (None: a stand-in pushes none)
        # Test hooks. ``drop_deltas``: this many of the next deltas are lost on the way out
        # (counted as sent: the controller must see the gap and ask for a snapshot).
        # ``hold``: updates wait here, as on a slow link, until ``release()``.
        self.drop_deltas = 0
        self.hold = False
        self._held: list[InventoryUpdate] = []
        self._hold_lock = threading.RLock()
        self._sent_seq = 0  # the last update sent: what heartbeats say
        self._push: Callable[[InventoryUpdate], None] | None = None
        self.handled: Counter[str] = Counter()  # commands served, by operation (tests, bench)
        self.address = address
        self.identity = identity
        self._stop = threading.Event()
        self._call: grpc.Future | None = None
        self._commands = ThreadPoolExecutor(16, thread_name_prefix="podcap-cmd")
        self._uploads = ThreadPoolExecutor(32, thread_name_prefix="podcap-upload")
        # Downloads go to the data port of the host this session dials (transport/data/).
        self._host = address.rpartition(":")[0].strip("[]")
        self._data_tls = wire.client_context(identity.key_pem, identity.cert_pem,
                                             identity.ca_pem)

    def run(self) -> None:
        """Until ``stop()``: dial, serve the session, and dial again when it ends."""
        while not self._stop.is_set():
            began = time.monotonic()
            try:
                self._session()
            except grpc.RpcError as exc:
                error = from_rpc(exc, f"controller {self.address}")
                log.warning("session ended: %s", error.message)
            except Exception:
                log.exception("session failed")
            if time.monotonic() - began < 1.0:
                self._stop.wait(limits.RECONNECT_MAX_S)
            else:
                self._stop.wait(0.2)

    def release(self) -> None:
        """Ends ``hold``: what was held goes now, in order."""
        with self._hold_lock:
            self.hold = False
            held, self._held = self._held, []
            if self._push is not None:
                for update in held:
                    self._push(update)

    def stop(self) -> None:
        self._stop.set()
        call = self._call
        if call is not None:
            call.cancel()
        self._commands.shutdown(wait=False, cancel_futures=True)
        self._uploads.shutdown(wait=False, cancel_futures=True)

    # ---- one session ------------------------------------------------------------------

    def _session(self) -> None:
        outbox: queue.Queue[pb.AgentMessage] = queue.Queue()
        done = threading.Event()
        unsubscribe: Callable[[], None] | None = None

        def push(update: InventoryUpdate) -> None:
            with self._hold_lock:
                if self.hold:
                    self._held.append(update)
                    return
                self._sent_seq = update.seq
                if not update.snapshot and self.drop_deltas > 0:
                    self.drop_deltas -= 1
                    return
                outbox.put(pb.AgentMessage(inventory=codec.inventory_to_pb(update)))

        self._push = push

        with grpc.secure_channel(self.address, self.identity.credentials(),
                                 options=CLIENT_OPTIONS) as channel:
            stub = pb_grpc.AgentGatewayStub(channel)
            call = stub.Session(self._upward(outbox, done))
            self._call = call
            try:
                for message in call:
                    kind = message.WhichOneof("msg")
                    if kind == "welcome":
                        log.info("connected to controller %s as agent %s", self.address,
                                 message.welcome.agent_id)
                        if self.feed is not None:  # the snapshot follows the Hello
                            unsubscribe = self.feed.subscribe(push)
                        else:  # nothing to push: an empty inventory, said once
                            push(InventoryUpdate(0, True))
                    elif kind == "command":
                        self._commands.submit(self._execute, message.command, outbox)
                    elif kind == "resync" and self.feed is not None:
                        log.info("controller asked for a snapshot of the inventory")
                        self.feed.resync(push)
            finally:
                done.set()
                self._call = None
                if unsubscribe is not None:
                    unsubscribe()

    def _upward(self, outbox: queue.Queue[pb.AgentMessage],
                done: threading.Event) -> Iterator[pb.AgentMessage]:
        yield pb.AgentMessage(hello=codec.hello_to_pb(self.transport.info()))
        while not done.is_set() and not self._stop.is_set():
            try:
                yield outbox.get(timeout=limits.HEARTBEAT_INTERVAL_S)
            except queue.Empty:
                yield pb.AgentMessage(heartbeat=pb.Heartbeat(
                    sent=time.time(), inventory_seq=self._sent_seq))

    # ---- commands ---------------------------------------------------------------------

    def _execute(self, command: pb.Command, outbox: queue.Queue[pb.AgentMessage]) -> None:
        op = command.WhichOneof("op")
        self.handled[op or ""] += 1
        if command.deadline and time.time() > command.deadline + 1.0:
            log.warning("dropped %s command %d: its deadline passed before it arrived", op,
                        command.seq)
            return
        stream: PcapStream | None = None
        try:
            reply, stream = answer(self.transport, command)
        except PodcapError as exc:
            reply = pb.Reply(error=to_wire(exc))
        except Exception as exc:  # never let one command take the session down
            log.exception("%s command failed", op)
            reply = pb.Reply(error=pb.Error(kind="PodcapError", message=f"agent error: {exc}"))
        reply.seq = command.seq
        outbox.put(pb.AgentMessage(reply=reply))
        if stream is not None:
            self._uploads.submit(sender.send, self._data_tls, self._host,
                                 command.download.data_port, command.download.download_id,
                                 stream)
