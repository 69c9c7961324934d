"""HTTP Range on a stopped capture's pcap (api/ranges.py), without a server: which header gets
which plan and the headers that follow (the body is cut where it is counted: see
tests/test_download_audit.py). tests/test_range.py proves resumes
end to end through the API."""

from __future__ import annotations

import hashlib
import json

import pytest

from podcap.api import ranges
from podcap.api.ranges import Plan
from podcap.model import Capture, CaptureSpec, Stats, Status, Workload
from podcap.streams import PcapRequest, PcapStream

ID = "0123456789abcdef0123456789abcdef"


def stopped(nbytes: int = 1024, files: int = 3, stop_time: float | None = 1234.5,
            status: Status = Status.STOPPED) -> Capture:
    """A capture whose pcap merges to ``nbytes - 24 * (files - 1)`` bytes."""
    return Capture(id=ID, agent_id="agent-1",
                   workload=Workload(id="w" * 12, name="web", runtime="docker", node="n1"),
                   spec=CaptureSpec(), status=status, stats=Stats(bytes=nbytes), files=files,
                   stop_time=stop_time)


CAPTURE = stopped()  # merged size 1024 - 48 = 976
TAG = ranges.etag(CAPTURE)


def test_etag_is_a_strong_digest_of_what_would_change() -> None:
    key = f"{ID}/1234.5/3/1024"
    assert TAG == '"' + hashlib.sha256(key.encode()).hexdigest()[:32] + '"'
    assert len(TAG) == 34
    others = {ranges.etag(stopped(nbytes=1025)), ranges.etag(stopped(files=4)),
              ranges.etag(stopped(stop_time=1234.6))}
    assert TAG not in others and len(others) == 3


def test_a_running_capture_or_one_without_a_stop_time_has_no_etag() -> None:
    assert ranges.etag(stopped(status=Status.RUNNING)) is None
    assert ranges.etag(stopped(stop_time=None)) is None
    assert ranges.etag(stopped(status=Status.FAILED)) is not None


@pytest.mark.parametrize(("nbytes", "files", "size"), [
    (1024, 3, 976), (1024, 1, 1024), (1024, 0, 1024), (24, 2, 0), (10, 5, 0)])
def test_merged_size_drops_every_header_but_the_first(nbytes: int, files: int,
                                                     size: int) -> None:
    assert ranges.merged_size(stopped(nbytes=nbytes, files=files)) == size


@pytest.mark.parametrize(("header", "expected"), [
    ("bytes=0-", Plan(0, None, True)),
    ("bytes=100-", Plan(100, None, True)),
    ("bytes=975-", Plan(975, None, True)),
    ("bytes=0-9", Plan(0, 10, True)),
    ("bytes=10-10", Plan(10, 1, True)),
    ("bytes=100-5000", Plan(100, 4901, True)),  # the last byte is cut to the end by the body
    (" bytes= 5 - 9 ", Plan(5, 5, True)),
    ("bytes=-10", Plan(966, 10, True)),
    ("bytes=-976", Plan(0, 976, True)),
    ("bytes=-5000", Plan(0, 976, True)),
    ("bytes=976-", Plan(unsatisfiable_size=976)),
    ("bytes=5000-6000", Plan(unsatisfiable_size=976)),
    ("bytes=-0", Plan(unsatisfiable_size=976)),
    ("bytes=9-5", ranges.WHOLE),
    ("bytes=-", ranges.WHOLE),
    ("bytes=0-1,5-6", ranges.WHOLE),
    ("items=0-5", ranges.WHOLE),
    ("bytes=a-5", ranges.WHOLE),
    ("", ranges.WHOLE),
    # positions of any length: int() of over 4,300 digits raised (a 500); 18 digits are read,
    # more are past any end; leading zeros count for nothing
    (f"bytes={'0' * 5000}5-9", Plan(5, 5, True)),
    (f"bytes={'9' * 18}-", Plan(unsatisfiable_size=976)),
    (f"bytes={'9' * 5000}-", Plan(unsatisfiable_size=976)),
    (f"bytes=10-{'0' * 17}99", Plan(10, 90, True)),
    (f"bytes=10-{'9' * 18}", Plan(10, 10**18 - 10, True)),
    (f"bytes=10-1{'0' * 18}", Plan(10, 10**18 - 9, True)),  # 19 digits: position 10**18
    (f"bytes=10-{'9' * 5000}", Plan(10, 10**18 - 9, True)),
    (f"bytes=-{'9' * 18}", Plan(0, 976, True)),
    (f"bytes=-{'9' * 5000}", Plan(0, 976, True)),
])
def test_plan(header: str, expected: Plan) -> None:
    assert ranges.plan(CAPTURE, header, None) == expected
    assert ranges.plan(CAPTURE, header, TAG) == expected
    assert ranges.plan(CAPTURE, header, f"  {TAG} ") == expected


def test_whole_is_nothing_partial() -> None:
    assert ranges.WHOLE == Plan(0, None, False, None)


def test_if_range_that_does_not_match_or_no_etag_gets_the_whole_pcap() -> None:
    assert ranges.plan(CAPTURE, "bytes=10-", '"other"') is ranges.WHOLE
    assert ranges.plan(CAPTURE, "bytes=10-", "Mon, 07 Dec 2026 10:00:00 GMT") is ranges.WHOLE
    assert ranges.plan(stopped(status=Status.RUNNING), "bytes=10-", None) is ranges.WHOLE
    assert ranges.plan(CAPTURE, None, TAG) is ranges.WHOLE


@pytest.mark.parametrize(("request_", "applies"), [
    (PcapRequest(), True),
    (PcapRequest(offset=10), True),
    (PcapRequest(limit=10), False),
    (PcapRequest(filter="tcp"), False),
    (PcapRequest(follow=True), False),
    (PcapRequest(from_now=True), False),
])
def test_applies_to_the_whole_stored_pcap_only(request_: PcapRequest, applies: bool) -> None:
    assert ranges.applies(request_) is applies


def stream(*blocks: bytes, size: int | None = None) -> PcapStream:
    return PcapStream(iter(blocks), sum(map(len, blocks)) if size is None else size)


def test_headers_of_a_whole_stopped_pcap() -> None:
    assert ranges.headers(CAPTURE, PcapRequest(), ranges.WHOLE, stream(b"x" * 976)) == {
        "ETag": TAG, "Accept-Ranges": "bytes", "Content-Length": "976"}


def test_headers_of_a_range_to_the_end_and_of_a_bounded_range() -> None:
    # The agent skipped the first 100 bytes: the stream is what is left.
    assert ranges.headers(CAPTURE, PcapRequest(offset=100), Plan(100, None, True),
                          stream(size=876)) == {
        "ETag": TAG, "Accept-Ranges": "bytes", "Content-Range": "bytes 100-975/976",
        "Content-Length": "876"}
    assert ranges.headers(CAPTURE, PcapRequest(offset=10), Plan(10, 5, True),
                          stream(size=966)) == {
        "ETag": TAG, "Accept-Ranges": "bytes", "Content-Range": "bytes 10-14/976",
        "Content-Length": "5"}
    # A range past the end is cut to what there is.
    assert ranges.headers(CAPTURE, PcapRequest(offset=970), Plan(970, 100, True),
                          stream(size=6))["Content-Range"] == "bytes 970-975/976"


def test_headers_of_a_running_capture_and_of_a_filtered_view() -> None:
    running = stopped(status=Status.RUNNING)
    assert ranges.headers(running, PcapRequest(), ranges.WHOLE, PcapStream(iter(()), None)) == {
        "Accept-Ranges": "none"}
    assert ranges.headers(running, PcapRequest(), ranges.WHOLE, stream(size=50)) == {
        "Accept-Ranges": "none", "Content-Length": "50"}
    assert ranges.headers(CAPTURE, PcapRequest(filter="tcp"), ranges.WHOLE,
                          PcapStream(iter(()), None)) == {}
    assert ranges.headers(running, PcapRequest(limit=10), ranges.WHOLE, stream(size=10)) == {
        "Content-Length": "10"}


def test_not_satisfiable_names_the_size() -> None:
    answer = ranges.not_satisfiable(976)
    assert answer.status_code == 416
    assert answer.headers["Content-Range"] == "bytes */976"
    body = json.loads(answer.body)
    assert body["message"] == ("the range asked starts at or past the end of the pcap (976 "
                               "bytes); ask for bytes=0- or drop the Range header")
    assert body["error"] == "Range not satisfiable" and body["code"] == 6
    assert body["kind"] == "InvalidArgument"  # what the CLI maps to its exit code
