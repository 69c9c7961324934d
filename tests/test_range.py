"""Resumable downloads (HTTP Range, ETag, If-Range) on the native pcap download.

First the ring's ``offset`` on files we write ourselves (every offset, across file boundaries),
then a real server with real captures: a download cut half-way and resumed is byte-identical to
the whole download and to the agent's files; ``curl -C -`` resumes; a wrong ``If-Range`` gets the
whole pcap; a start past the end is 416; a running capture ignores Range; ``podcap capture get``
resumes its partial file.
"""

from __future__ import annotations

import contextlib
import os
import socket
import subprocess
import threading
from pathlib import Path

import httpx
import pytest

from podcap.pcap import ring
from tests.support import PODCAP, Server, WebPair, read_pcap, wait_for, web_pair
from tests.test_ring import write_pcap

PREFIX = "capture.pcap"


# ---- the ring: offsets ---------------------------------------------------------------------

def test_every_offset_is_the_same_bytes_as_a_slice(tmp_path: Path) -> None:
    # A wrapped ring of three files: the merged stream skips the 2nd and 3rd global headers.
    write_pcap(tmp_path / f"{PREFIX}0", [30.0, 31.0], size=50)
    write_pcap(tmp_path / f"{PREFIX}1", [10.0, 11.0, 12.0], size=70)
    write_pcap(tmp_path / f"{PREFIX}2", [20.0], size=90)
    paths = ring.ring_files(tmp_path, PREFIX)
    whole = ring.merged(paths)
    data = b"".join(whole)
    assert data == b"".join(path.read_bytes()[0 if i == 0 else ring.GLOBAL_HEADER:]
                            for i, path in enumerate(paths))
    assert whole.size == len(data)
    for offset in range(len(data) + 3):
        part = ring.merged(paths, offset=offset, chunk=7)
        got = b"".join(part)
        assert got == data[offset:], offset
        assert part.size == len(got), offset


def test_offset_skips_files_without_opening_them(tmp_path: Path, monkeypatch) -> None:
    for i in range(3):
        write_pcap(tmp_path / f"{PREFIX}{i}", [float(i * 10 + k) for k in range(5)], size=100)
    paths = ring.ring_files(tmp_path, PREFIX)
    first_two = os.path.getsize(paths[0]) + os.path.getsize(paths[1]) - ring.GLOBAL_HEADER
    opened: list[str] = []
    real_open = open

    def spy(path, *args, **kwargs):
        opened.append(Path(path).name)
        return real_open(path, *args, **kwargs)

    stream = ring.merged(paths, offset=first_two + 5)  # sizes and magic read here, not after
    monkeypatch.setattr("builtins.open", spy)
    tail = b"".join(stream)
    assert opened == [paths[2].name]
    assert tail == paths[2].read_bytes()[ring.GLOBAL_HEADER + 5:]


def test_a_non_pcap_file_is_left_out_of_the_size_too(tmp_path: Path) -> None:
    write_pcap(tmp_path / f"{PREFIX}0", [1.0, 2.0])
    (tmp_path / f"{PREFIX}1").write_bytes(b"x" * 100)  # not a pcap: the stream skips it
    stream = ring.merged([tmp_path / f"{PREFIX}0", tmp_path / f"{PREFIX}1"])
    assert stream.size == len(b"".join(stream)) == os.path.getsize(tmp_path / f"{PREFIX}0")


def test_live_offset_drops_the_first_bytes(tmp_path: Path) -> None:
    write_pcap(tmp_path / f"{PREFIX}0", [1.0, 2.0, 3.0], size=100)
    whole = b"".join(ring.merged([tmp_path / f"{PREFIX}0"], live=True, chunk=64))
    assert b"".join(ring.merged([tmp_path / f"{PREFIX}0"], live=True, offset=30,
                                chunk=64)) == whole[30:]


# ---- a real server: one wrapped ring, stopped; one capture still running ------------------------

def filled(server: Server, prefix: str, files: int, nbytes: int,
           timeout: float) -> tuple[str, bytes]:
    """A capture of a busy web pair in ``files`` files of 1 MB, stopped once it holds
    ``nbytes``, and its whole download."""
    with web_pair(prefix) as p:
        p.client.exec_run(["sh", "-c", f"while true; do wget -q -O /dev/null "
                           f"http://{p.web_ip}/big.txt; done"], detach=True)
        cid = server.sniff(p.web.id, file_size_mb=1, file_number=files)
        wait_for(lambda: server.sniffer(cid)["stats"]["bytes"] > nbytes, timeout=timeout,
                 what="the ring to fill")
        server.stop_sniffer(cid)
    return cid, server.pcap(cid)


@pytest.fixture(scope="module")
def stopped(server: Server) -> tuple[str, bytes]:
    """A stopped capture whose ring wrapped (3 files of 1 MB), and its whole download."""
    return filled(server, "range", 3, 2_500_000, 30)


@pytest.fixture(scope="module")
def big(server: Server) -> tuple[str, bytes]:
    """A stopped capture of over 7.5 MB in 1 MB files, and its whole download: more than
    loopback's buffers and one chunk in flight can hold (see CUT), so a cut download is cut
    for the server too."""
    return filled(server, "range-big", 8, 7_500_000, 90)


def agent_files(server: Server, cid: str) -> bytes:
    """The pcap as the agent's own files make it, read here: the oldest file whole, then the
    others without their 24-byte global header."""
    paths = ring.ring_files(server.data_dir / "captures" / cid / "files", PREFIX)
    assert len(paths) == 3
    return b"".join(p.read_bytes()[0 if i == 0 else 24:] for i, p in enumerate(paths))


def get(server: Server, cid: str, **headers: str) -> httpx.Response:
    with server.client() as c:
        return c.get(f"/api/captures/{cid}/pcap", headers=headers)


def test_cut_half_way_and_resumed_is_byte_identical(server: Server, stopped) -> None:
    cid, whole = stopped
    assert whole == agent_files(server, cid)
    assert len(read_pcap(whole)[1]) > 100
    first = get(server, cid)
    tag = first.headers["etag"]
    assert first.headers["accept-ranges"] == "bytes" and tag.startswith('"')
    # Cut: read about half, then drop the connection.
    half = bytearray()
    with server.client() as c, c.stream("GET", f"/api/captures/{cid}/pcap") as r:
        assert r.headers["etag"] == tag
        for block in r.iter_raw(65536):
            half += block
            if len(half) >= len(whole) // 2:
                break
    assert 0 < len(half) < len(whole)
    rest = get(server, cid, Range=f"bytes={len(half)}-", **{"If-Range": tag})
    assert rest.status_code == 206
    assert rest.headers["content-range"] == f"bytes {len(half)}-{len(whole) - 1}/{len(whole)}"
    assert int(rest.headers["content-length"]) == len(rest.content) == len(whole) - len(half)
    resumed = bytes(half) + rest.content
    assert resumed == whole
    done = subprocess.run(["capinfos", "-c", "-M", "/dev/stdin"], input=resumed,
                          capture_output=True, timeout=60)
    assert done.returncode == 0 and b"Number of packets" in done.stdout


def test_every_boundary_of_the_ring_resumes_exactly(server: Server, stopped) -> None:
    cid, whole = stopped
    paths = ring.ring_files(server.data_dir / "captures" / cid / "files", PREFIX)
    first = paths[0].stat().st_size
    second = first + paths[1].stat().st_size - ring.GLOBAL_HEADER
    for start in (0, 1, 23, 24, 25, first - 1, first, first + 1, second, len(whole) - 1):
        r = get(server, cid, Range=f"bytes={start}-")
        assert r.status_code == 206 and r.content == whole[start:], start
    r = get(server, cid, Range=f"bytes={first - 10}-{first + 9}")
    assert r.status_code == 206 and r.content == whole[first - 10:first + 10]
    assert r.headers["content-range"] == f"bytes {first - 10}-{first + 9}/{len(whole)}"
    r = get(server, cid, Range="bytes=-100")
    assert r.status_code == 206 and r.content == whole[-100:]
    r = get(server, cid, Range=f"bytes=5-{len(whole) * 2}")  # an end past the size: clipped
    assert r.status_code == 206 and r.content == whole[5:]


def test_curl_continues_a_broken_download(server: Server, stopped, tmp_path: Path) -> None:
    cid, whole = stopped
    out = tmp_path / "curl.pcap"
    out.write_bytes(whole[:len(whole) // 3])
    done = subprocess.run(["curl", "-sS", "-f", "-C", "-", "-o", str(out), "-H",
                           f"X-Auth-Token: {server.token}",
                           f"{server.url}/api/captures/{cid}/pcap"],
                          capture_output=True, timeout=60)
    assert done.returncode == 0, done.stderr
    assert out.read_bytes() == whole


def test_if_range_that_does_not_match_gets_the_whole_pcap(server: Server, stopped) -> None:
    cid, whole = stopped
    tag = get(server, cid, Range="bytes=0-0").headers["etag"]
    for other in ('"0123456789abcdef0123456789abcdef"', "W/" + tag,
                  "Wed, 21 Oct 2015 07:28:00 GMT"):
        r = get(server, cid, Range="bytes=100-", **{"If-Range": other})
        assert r.status_code == 200 and r.content == whole, other
        assert "content-range" not in r.headers
        assert int(r.headers["content-length"]) == len(whole)


def test_a_range_past_the_end_is_416(server: Server, stopped) -> None:
    cid, whole = stopped
    for asked in (f"bytes={len(whole)}-", f"bytes={len(whole) + 1000}-", "bytes=-0"):
        r = get(server, cid, Range=asked)
        assert r.status_code == 416, asked
        assert r.headers["content-range"] == f"bytes */{len(whole)}"
        assert "bytes=0-" in r.json()["message"]
    for ignored in ("bytes=0-1,5-6", "items=0-5", "bytes=9-3", "bytes=x-"):
        r = get(server, cid, Range=ignored)
        assert r.status_code == 200 and r.content == whole, ignored


def downloads(server: Server, cid: str) -> list[dict]:
    """The capture's ``download`` audit entries, newest first."""
    with server.client() as c:
        r = c.get("/api/audit", params={"event": "download", "capture_id": cid, "limit": 500})
    assert r.status_code == 200, r.text
    return r.json()["events"]


def next_download(server: Server, cid: str, after: int) -> dict:
    """The first entry newer than id ``after`` (a cut download's lands once the server has
    seen the client go)."""
    def new() -> dict | None:
        fresh = [e for e in downloads(server, cid) if e["id"] > after]
        return fresh[-1] if fresh else None
    return wait_for(new, timeout=15, what=f"a download entry of {cid} after {after}")


def test_full_ranged_and_cut_downloads_are_audited_with_the_bytes_sent(server: Server,
                                                                       big) -> None:
    """The audit says what the client was sent: a range is its own bytes and a success (it
    was once every chunk pulled from the agent, and a failure), a cut download is a failure
    with at least what the client got and less than the pcap."""
    cid, whole = big
    seen = max((e["id"] for e in downloads(server, cid)), default=0)
    assert get(server, cid).content == whole
    full = next_download(server, cid, seen)
    assert (full["bytes"], full["ok"]) == (len(whole), True)
    for asked, size in (("bytes=0-9", 10), (f"bytes={len(whole) - 7}-", 7),
                        ("bytes=1000-1999999", 1_999_000), ("bytes=-100", 100)):
        r = get(server, cid, Range=asked)
        assert r.status_code == 206 and len(r.content) == size, asked
        ranged = next_download(server, cid, full["id"])
        assert (ranged["bytes"], ranged["ok"]) == (size, True), (asked, ranged)
        full = ranged
    got = 0
    proxy = CuttingProxy(server.port, cut=CUT)
    try:
        with httpx.Client(base_url=f"http://127.0.0.1:{proxy.port}", timeout=30,
                          headers={"X-Auth-Token": server.token}) as c, \
                c.stream("GET", f"/api/captures/{cid}/pcap") as r:
            for block in r.iter_raw(65536):
                got += len(block)
    except httpx.HTTPError:
        pass  # the body ended early: that is the cut
    finally:
        proxy.close()
    cut = next_download(server, cid, full["id"])
    assert 0 < got < CUT and cut["ok"] is False and got <= cut["bytes"] < len(whole), (got, cut)


def test_a_number_of_thousands_of_digits_is_no_500(server: Server, stopped) -> None:
    """Python's int() refuses more than 4,300 digits: such a Range answered 500 (issue 24)."""
    cid, whole = stopped
    huge = "9" * 5000
    r = get(server, cid, Range=f"bytes={huge}-")
    assert r.status_code == 416 and r.headers["content-range"] == f"bytes */{len(whole)}"
    r = get(server, cid, Range=f"bytes={'0' * 5000}1-")  # leading zeros: still byte 1
    assert r.status_code == 206 and r.content == whole[1:]
    r = get(server, cid, Range=f"bytes=7-{huge}")  # an end past the size: clipped
    assert r.status_code == 206 and r.content == whole[7:]
    r = get(server, cid, Range=f"bytes=-{huge}")  # more than all: all (RFC 9110 14.1.2)
    assert r.status_code == 206 and r.content == whole


def test_a_running_capture_ignores_range(server: Server, pair: WebPair) -> None:
    cid = server.sniff(pair.web.id)
    try:
        wait_for(lambda: server.sniffer(cid)["stats"]["captured"] > 5, what="packets")
        r = get(server, cid, Range="bytes=100-", **{"If-Range": '"x"'})
        assert r.status_code == 200 and r.content[:4] == b"\xd4\xc3\xb2\xa1"
        assert r.headers["accept-ranges"] == "none"
        assert "etag" not in r.headers and "content-range" not in r.headers
        read_pcap(r.content)
    finally:
        server.stop_sniffer(cid)
    # Once stopped it is resumable; its ETag is stable.
    tags = {get(server, cid, Range="bytes=0-9").headers["etag"] for _ in range(2)}
    assert len(tags) == 1
    # A limited download is another view: no ETag, Range ignored.
    with server.client() as c:
        r = c.get(f"/api/captures/{cid}/pcap", params={"limit": 100},
                  headers={"Range": "bytes=10-"})
    assert r.status_code == 200 and "etag" not in r.headers


def test_a_ring_of_one_file_has_no_number(tmp_path: Path) -> None:
    # tcpdump -C 1 -W 1 writes "capture.pcap" itself, without a number.
    write_pcap(tmp_path / PREFIX, [1.0, 2.0])
    paths = ring.ring_files(tmp_path, PREFIX)
    assert paths == [tmp_path / PREFIX]
    assert b"".join(ring.merged(paths)) == (tmp_path / PREFIX).read_bytes()


# ---- the CLI: `podcap capture get` resumes what a cut connection left ---------------------------

# Where CuttingProxy cuts the pcap downloads whose audit is checked. The server counts a
# chunk (one ring file here, 1 MB) as sent once it is handed on, and what it hands on past the
# cut is buffered, not lost: loopback's 64 KiB MSS lets the kernel's send buffer grow to its
# 4 MiB maximum (tcp_wmem) and the proxy's receive buffer adds its own. `big` holds over
# 7.5 MB, so the server is still writing when the client goes, and the audit is a failure, as
# it is for a client on a real network (measured with a 2 MB pcap: 1 in 8 was all buffered).
CUT = 100_000


class CuttingProxy:
    """A loopback TCP relay to the server that cuts the answer to a pcap download after
    ``cut`` bytes (other requests pass whole): a broken download, for real.

    Its side of the server's connection has a small receive buffer (see CUT): loopback's can
    grow to 32 MiB (tcp_rmem) and take the whole pcap before the cut."""

    def __init__(self, upstream: int, cut: int) -> None:
        self.upstream, self.cut = upstream, cut
        self.sock = socket.create_server(("127.0.0.1", 0))
        self.port = self.sock.getsockname()[1]
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self) -> None:
        while True:
            try:
                client, _ = self.sock.accept()
            except OSError:
                return
            threading.Thread(target=self._relay, args=(client,), daemon=True).start()

    def _relay(self, client: socket.socket) -> None:
        server = socket.socket()
        server.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 65536)  # before connect
        server.connect(("127.0.0.1", self.upstream))
        state = {"pcap": False}

        def up() -> None:
            while data := client.recv(65536):
                if b"/pcap" in data:
                    state["pcap"] = True
                server.sendall(data)

        threading.Thread(target=up, daemon=True).start()
        sent = 0
        try:
            while data := server.recv(65536):
                if state["pcap"]:
                    data = data[:self.cut - sent]
                    sent += len(data)
                client.sendall(data)
                if state["pcap"] and sent >= self.cut:
                    break
        except OSError:
            pass
        for s in (client, server):  # shutdown first: the other thread is blocked in recv
            with contextlib.suppress(OSError):
                s.shutdown(socket.SHUT_RDWR)
            s.close()

    def close(self) -> None:
        self.sock.close()


def podcap_get(server: Server, url: str, *args: str, cwd: Path) -> subprocess.CompletedProcess:
    env = {**os.environ, "PODCAP_CONFIG": str(cwd / "none.json"), "PODCAP_SERVER": url,
           "PODCAP_TOKEN": server.token}
    env.pop("PODCAP_USER", None)
    return subprocess.run([PODCAP, "capture", "get", *args], env=env, cwd=cwd,
                          capture_output=True, text=True, timeout=60)


def test_cli_get_resumes_a_cut_download(server: Server, big, tmp_path: Path) -> None:
    cid, whole = big
    seen = max((e["id"] for e in downloads(server, cid)), default=0)
    proxy = CuttingProxy(server.port, cut=CUT)
    try:
        broken = podcap_get(server, f"http://127.0.0.1:{proxy.port}", cid, "-o", "out.pcap",
                            cwd=tmp_path)
    finally:
        proxy.close()
    assert broken.returncode != 0
    [part] = tmp_path.glob(f".podcap-{cid}-*.part")
    kept = part.read_bytes()
    assert 0 < len(kept) < len(whole) // 2 and whole.startswith(kept)
    first = next_download(server, cid, seen)  # the broken run is audited as a failure
    assert first["ok"] is False and len(kept) <= first["bytes"] < len(whole), first
    assert (part.stat().st_mode & 0o777) == 0o600
    assert not (tmp_path / "out.pcap").exists() and "resume" in broken.stderr

    done = podcap_get(server, server.url, cid, "-o", "out.pcap", cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    assert "Resuming" in done.stderr
    assert (tmp_path / "out.pcap").read_bytes() == whole
    assert not list(tmp_path.glob("*.part"))
    last = next_download(server, cid, first["id"])  # the rest (and one byte again), whole
    assert (last["bytes"], last["ok"]) == (len(whole) - len(kept) + 1, True)


def test_cli_never_splices_onto_another_pcap(server: Server, stopped, tmp_path: Path) -> None:
    cid, whole = stopped
    # A partial file under another ETag (the pcap it came from is not this one): If-Range
    # misses, the whole pcap comes, the old part is dropped.
    (tmp_path / f".podcap-{cid}-0123abcd.part").write_bytes(b"not this pcap" * 100)
    done = podcap_get(server, server.url, cid, "-o", "a.pcap", cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    assert "Resuming" not in done.stderr
    assert (tmp_path / "a.pcap").read_bytes() == whole and not list(tmp_path.glob("*.part"))
    # The right ETag but bytes that are not this pcap's: the overlap byte differs, refused.
    tag = get(server, cid, Range="bytes=0-0").headers["etag"].strip('"')
    bad = bytearray(whole[:5000])
    bad[-1] ^= 0xFF
    (tmp_path / f".podcap-{cid}-{tag}.part").write_bytes(bytes(bad))
    refused = podcap_get(server, server.url, cid, "-o", "b.pcap", cwd=tmp_path)
    assert refused.returncode != 0 and "does not end as" in refused.stderr
    assert not (tmp_path / "b.pcap").exists() and not list(tmp_path.glob("*.part"))
    # --no-resume starts over from a good part.
    (tmp_path / f".podcap-{cid}-{tag}.part").write_bytes(whole[:5000])
    fresh = podcap_get(server, server.url, cid, "-o", "c.pcap", "--no-resume", cwd=tmp_path)
    assert fresh.returncode == 0 and "Resuming" not in fresh.stderr
    assert (tmp_path / "c.pcap").read_bytes() == whole


def test_range_needs_the_download_right_like_the_download(server: Server, stopped) -> None:
    cid, whole = stopped
    with server.client() as c:
        r = c.post("/api/users", json={"username": "rangereader", "password": "range-pw-12345",
                                       "role": "reader"})
        assert r.status_code == 201, r.text
    token = server.login("rangereader", "range-pw-12345")
    for asked in ("bytes=0-", f"bytes={len(whole) + 10}-"):  # never a 206, nor a 416
        with server.client(token) as c:
            r = c.get(f"/api/captures/{cid}/pcap", headers={"Range": asked})
        assert r.status_code == 403, (asked, r.status_code)
