"""The recorders' two commands on the wire, agent side (issue 21): ``record`` starts a ring,
``freeze`` freezes one (agent/rings.py). Served through the uplink's one table
(``uplink.OPERATIONS``); here because they are the recorder's, checked field by field as the
other commands are (a controller's message is still input)."""

from __future__ import annotations

from podcap import limits
from podcap.model import Recording
from podcap.transport.base import AgentTransport
from podcap.transport.grpc import checks, codec
from podcap.transport.grpc.agent_proto import agent_pb2 as pb


def record(t: AgentTransport, c: pb.Command) -> pb.Reply:
    start = c.record.start
    capture = t.record(start.workload_id, codec.spec_from_pb(start.spec), start.owner,
                       Recording(checks.text("recorder", c.record.recorder, 32),
                                 checks.count("window", c.record.window,
                                              limits.RECORDER_WINDOW_S_MAX)))
    return pb.Reply(capture=codec.capture_to_pb(capture))


def freeze(t: AgentTransport, c: pb.Command) -> pb.Reply:
    after = checks.finite("after_s", c.freeze.after_s)
    capture = t.freeze(c.freeze.capture_id, checks.text("trigger", c.freeze.trigger),
                       min(max(after, 0.0), float(limits.RECORDER_AFTER_S_MAX)))
    return pb.Reply(capture=codec.capture_to_pb(capture))
