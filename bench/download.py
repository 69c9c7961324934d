"""Figure 4: download of a ~1 GiB capture spread over ring files, through the REST API.

The capture is real: podcap captures container A (``file_size_mb`` 100 × 11 files) while iperf3
TCP runs from B to A, until the ring holds ``download_bytes``. Then, alternating, in each repeat:
``cat`` of the ring files to /dev/null (the floor), ``curl`` of ``GET /api/captures/<id>/pcap``
(the merged pcap) and ``curl`` of NeuVector's ``GET /v1/sniffer/<id>/pcap?limit=`` (multipart),
both to /dev/null. The podcap process's peak RSS growth is VmHWM after the download minus VmRSS
before it (VmHWM reset through /proc/<pid>/clear_refs), summed over podcap's processes (tcpdump
excluded).
"""

from __future__ import annotations

import itertools
import shlex
import socket
import subprocess
import threading
import time
from pathlib import Path
from typing import Any

from bench.common import (
    CURL,
    comm,
    hwm_bytes,
    process_tree,
    ratio,
    reset_hwm,
    rss_bytes,
    summary,
    wait_until,
)
from bench.common import run as run_cmd
from bench.context import Context
from bench.server import Podcap
from bench.traffic import Iperf
from podcap.pcap.format import GLOBAL_HEADER

_ports = itertools.count(5401)
PCAP_GLOBAL_HEADER = GLOBAL_HEADER


def podcap_pids(srv: Podcap) -> list[int]:
    return [p for p in process_tree(srv.pid) if comm(p) not in ("tcpdump", "nsenter")]


def ring_files(srv: Podcap, capture_id: str) -> list[Path]:
    files = [p for p in srv.data_dir.rglob("*") if p.is_file() and capture_id in str(p)
             and p.name.rstrip("0123456789") != p.name and p.suffix != ".log"]
    pcaps = [p for p in files if p.read_bytes()[:4] in (b"\xd4\xc3\xb2\xa1", b"\xa1\xb2\xc3\xd4",
                                                        b"\x4d\x3c\xb2\xa1", b"\xa1\xb2\x3c\x4d")]
    return sorted(pcaps)


def _curl(ctx: Context, srv: Podcap, path: str) -> dict[str, Any]:
    argv = [CURL, "-sS", "-o", "/dev/null", "-w", "%{http_code} %{size_download}",
            "-H", f"X-Auth-Token: {srv.token}", srv.url + path]
    ctx.record("4", shlex.join(argv).replace(srv.token, "$TOKEN"))
    pids = podcap_pids(srv)
    for p in pids:
        reset_hwm(p)
    before = sum(rss_bytes(p) for p in pids)
    t = time.perf_counter()
    done = run_cmd(argv, timeout=600)
    elapsed = time.perf_counter() - t
    peak = sum(hwm_bytes(p) for p in pids)
    code, size = (done.stdout.split() + ["0", "0"])[:2]
    if code != "200":
        raise RuntimeError(f"{path} -> HTTP {code}: {done.stderr}")
    return {"seconds": elapsed, "bytes": int(size), "rss_growth_mb": (peak - before) / 1e6,
            "rss_before_mb": before / 1e6}


class FloorServer:
    """The HTTP floor: a minimal HTTP/1.1 server that sends the ring files with sendfile(2)
    (zero copy, no pcap merging, headers of every file included). What any HTTP download of
    these bytes over loopback to curl costs on this machine."""

    def __init__(self, files: list[Path]) -> None:
        self.files = files
        self.sock = socket.socket()
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(8)
        self.sock.settimeout(1.0)
        self.url = f"http://127.0.0.1:{self.sock.getsockname()[1]}/floor"
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._serve, daemon=True)
        self._thread.start()

    def _serve(self) -> None:
        deadline = time.monotonic() + 3600
        while not self._stop.is_set() and time.monotonic() < deadline:
            try:
                conn, _ = self.sock.accept()
            except TimeoutError:
                continue
            except OSError:
                return
            with conn:
                conn.settimeout(60)
                conn.recv(65536)
                total = sum(p.stat().st_size for p in self.files)
                conn.sendall(f"HTTP/1.1 200 OK\r\nContent-Length: {total}\r\nContent-Type: "
                             "application/octet-stream\r\nConnection: close\r\n\r\n".encode())
                for p in self.files:
                    with open(p, "rb") as fh:
                        conn.sendfile(fh)

    def close(self) -> None:
        self._stop.set()
        self.sock.close()
        self._thread.join(5)


def _curl_floor(url: str) -> float:
    t = time.perf_counter()
    done = run_cmd([CURL, "-sS", "-o", "/dev/null", "-w", "%{http_code}", url], timeout=600)
    elapsed = time.perf_counter() - t
    if done.stdout.strip() != "200":
        raise RuntimeError(f"floor server: {done.stdout} {done.stderr}")
    return elapsed


def _cat(files: list[Path]) -> float:
    t = time.perf_counter()
    subprocess.run(["cat", *map(str, files)], stdout=subprocess.DEVNULL, timeout=600, check=True)
    return time.perf_counter() - t


def run_figure(ctx: Context) -> dict[str, Any]:
    cfg = ctx.cfg
    srv = ctx.server()
    a, b = ctx.pair()
    cap = srv.api_start(a.id, file_size_mb=cfg.download_file_size_mb,
                        file_number=cfg.download_file_number)
    cid = str(cap["id"])
    ctx.record("4", "[fill] POST /api/captures {\"workload_id\": <A>, \"file_size_mb\": "
               f"{cfg.download_file_size_mb}, \"file_number\": {cfg.download_file_number}}} "
               f"-> agent runs: {cap.get('args', '')}")
    iperf = Iperf(ctx.procs, a, next(_ports))
    t_fill = time.perf_counter()
    load = iperf.start_client(b, cfg.download_fill_timeout_s, udp=False, payload=None)
    ctx.record("4", "[fill server] " + " ".join(iperf.server_argv))
    ctx.record("4", "[fill] " + " ".join(iperf.client_argv(b, cfg.download_fill_timeout_s,
                                                            False, None)))
    try:
        wait_until(lambda: int(srv.api_capture(cid).get("size") or 0) >= cfg.download_bytes,
                   cfg.download_fill_timeout_s, interval=0.2, what="ring to fill")
    finally:
        ctx.procs.end(load)
        iperf.close()
    fill_s = time.perf_counter() - t_fill
    final = srv.api_stop(cid)
    files = ring_files(srv, cid)
    on_disk = sum(p.stat().st_size for p in files)
    expected = on_disk - PCAP_GLOBAL_HEADER * (len(files) - 1)
    ctx.record("4", "[floor] cat <the ring files> > /dev/null")
    ctx.record("4", "[http floor] curl -sS -o /dev/null http://127.0.0.1:<port>/floor  "
               "(bench's minimal HTTP/1.1 server: the ring files with sendfile(2))")
    rows: list[dict[str, Any]] = []
    floor = FloorServer(files)
    try:
        _cat(files)  # warm the page cache for everyone
        _curl_floor(floor.url)
        limit = on_disk + 1
        for i in range(cfg.download_repeats):
            cat_s = _cat(files)
            floor_s = _curl_floor(floor.url)
            native = _curl(ctx, srv, f"/api/captures/{cid}/pcap")
            v1 = _curl(ctx, srv, f"/v1/sniffer/{cid}/pcap?limit={limit}")
            rows.append({"repeat": i, "cat_s": cat_s, "floor_s": floor_s,
                         "floor_ratio": ratio(floor_s, cat_s),
                         "native_vs_floor": ratio(native["seconds"], floor_s),
                         "native_s": native["seconds"],
                         "native_bytes": native["bytes"],
                         "native_rss_growth_mb": native["rss_growth_mb"],
                         "v1_s": v1["seconds"], "v1_bytes": v1["bytes"],
                         "v1_rss_growth_mb": v1["rss_growth_mb"],
                         "rss_before_mb": native["rss_before_mb"],
                         "native_ratio": ratio(native["seconds"], cat_s),
                         "v1_ratio": ratio(v1["seconds"], cat_s)})
    finally:
        floor.close()
        srv.v1_delete(cid)
    out: dict[str, Any] = {
        "rows": rows, "files": len(files), "bytes_on_disk": on_disk,
        "expected_native_bytes": expected, "fill_s": fill_s,
        "capture_stats": final.get("stats"),
        "native_bytes_ok": all(r["native_bytes"] == expected for r in rows),
        "cat_s": summary([r["cat_s"] for r in rows]),
        "native_s": summary([r["native_s"] for r in rows]),
        "v1_s": summary([r["v1_s"] for r in rows]),
        "floor_s": summary([r["floor_s"] for r in rows]),
        "floor_ratio": summary([r["floor_ratio"] for r in rows]),
        "native_vs_floor": summary([r["native_vs_floor"] for r in rows]),
        "native_ratio": summary([r["native_ratio"] for r in rows]),
        "v1_ratio": summary([r["v1_ratio"] for r in rows]),
        "native_rss_growth_mb": summary([r["native_rss_growth_mb"] for r in rows]),
        "v1_rss_growth_mb": summary([r["v1_rss_growth_mb"] for r in rows]),
    }
    out["target_time_met"] = summary([r["native_ratio"] for r in rows])["median"] <= 2.0
    out["target_rss_met"] = max(r["native_rss_growth_mb"] for r in rows) <= 50.0
    return out


run = run_figure
