"""What the controller accepts from an agent (transport/checks.py through codec.py): real
answers pass unchanged, and each kind of lie is an InvalidArgument naming its field."""

from __future__ import annotations

import pytest

from podcap.errors import InvalidArgument
from podcap.model import Capture, CaptureSpec, Status, Workload
from podcap.transport.grpc import codec
from podcap.transport.grpc.agent_proto import agent_pb2 as pb

REAL = Workload(id="a" * 64, name="web", runtime="cri", node="node-1.example", kind="pod",
                image="busybox:1", state="running", pid=4242, pid_start=99, netns=4026532000,
                ips=("10.1.2.3", "fd00::1"), namespace="shop", pod_name="web-0",
                labels={"app": "web", "org.opencontainers.image.description": "two\nlines"},
                created=-62135596800.0, cap_sniff=True,
                interfaces=(("eth0", "10.1.2.3", 16), ("eth0", "fd00::1", 64)))
CAPTURE = Capture(id="b" * 32, agent_id="c" * 16, workload=REAL, spec=CaptureSpec(filter="tcp"),
                  status=Status.STOPPED, reason="error: tcpdump: that; this", files=3,
                  args=["tcpdump", "-i", "any"], start_time=1.0, stop_time=2.0)


def test_real_answers_pass_unchanged() -> None:
    assert codec.workload_from_pb(codec.workload_to_pb(REAL)) == REAL
    assert codec.capture_from_pb(codec.capture_to_pb(CAPTURE)) == CAPTURE


@pytest.mark.parametrize("field,value", [
    ("id", "../etc"), ("name", "a\nb"), ("runtime", "podman"), ("node", "x\ny"),
    ("node", '"quoted"'), ("kind", "vm"), ("state", "s" * 65), ("pid", -1), ("pid", 2**40),
    ("ips", ["not-an-ip"]), ("ips", ["10.0.0.1"] * 65), ("labels", {"k\x00": "v"}),
    ("created", float("nan")), ("namespace", "ns\r"), ("image", "i" * 2000),
    ("interfaces", [pb.Interface(name="eth0", address="10.1.2.3", prefix=33)]),
    ("interfaces", [pb.Interface(name="eth0\n", address="10.1.2.3", prefix=16)]),
    ("interfaces", [pb.Interface(name="eth0", address="eth1", prefix=16)]),
    ("interfaces", [pb.Interface(name="eth0", address="10.1.2.3", prefix=16)] * 65)])
def test_each_lie_about_a_workload_names_its_field(field: str, value: object) -> None:
    m = codec.workload_to_pb(REAL)
    if isinstance(value, list):
        del getattr(m, field)[:]
        getattr(m, field).extend(value)
    elif isinstance(value, dict):
        getattr(m, field).update(value)
    else:
        setattr(m, field, value)
    with pytest.raises(InvalidArgument, match=field.rstrip("s") if field != "ips" else "ips"):
        codec.workload_from_pb(m)


@pytest.mark.parametrize("field,value,says", [
    ("status", "bogus", "status"), ("id", "x" * 32, "capture id"),
    ("agent_id", "../../x", "agent id"), ("files", -3, "files"), ("files", 51, "files"),
    ("start_time", float("inf"), "start_time"), ("stop_time", -1.0, "stop_time"),
    ("reason", "a\nFAKE LOG LINE", "reason"), ("owner", "o" * 65, "owner")])
def test_each_lie_about_a_capture_names_its_field(field: str, value: object, says: str) -> None:
    m = codec.capture_to_pb(CAPTURE)
    setattr(m, field, value)
    with pytest.raises(InvalidArgument, match=says):
        codec.capture_from_pb(m)


def test_counters_specs_and_hellos_are_bounded() -> None:
    m = codec.capture_to_pb(CAPTURE)
    m.stats.captured = -1
    with pytest.raises(InvalidArgument, match="captured"):
        codec.capture_from_pb(m)
    m = codec.capture_to_pb(CAPTURE)
    m.spec.file_number = 10**6
    with pytest.raises(InvalidArgument, match="file count"):
        codec.capture_from_pb(m)
    for hello in (pb.Hello(node="a\nb"), pb.Hello(node="n", runtimes=["x"]),
                  pb.Hello(node="n", reclaim="all"), pb.Hello(node="n", started=float("nan"))):
        with pytest.raises(InvalidArgument):
            codec.hello_from_pb(hello)
    assert codec.hello_from_pb(pb.Hello(node="n", runtimes=["docker", "cri"], reclaim="oldest"))
