"""Figure 8: insight (issue 13): how fast the summary reads a capture, and whether computing
it while a capture runs costs that capture packets.

Throughput: podcap.insight.reader over a synthetic LINUX_SLL2 pcap of ``insight_packets``
packets (a mix like a busy pod: TCP data in ~2,000 conversations, UDP, DNS queries, TLS
ClientHellos, 10 % IPv6), in a child process pinned to one core (``taskset -c 0``); packets per
second of CPU time and of wall time, ``insight_repeats`` times. Target ≥ 200,000 packets/s.

Cost to a capture: podcap captures container A while iperf3 UDP (1400-byte datagrams, at a
fixed ``insight_bitrate`` so both arms send the same packets: at full rate the worker's CPU
slows the sender, and fewer packets mean fewer drops) runs from B for ``insight_seconds``,
alternately with nobody asking for the summary
and with a client asking ``GET /api/captures/{id}/summary`` every 0.5 s (so the low-priority
worker reads the ring all along). Drops are tcpdump's own: dropped by kernel ÷ (captured +
dropped). Target: drops with the summary ≤ drops without + 0.1 percentage points.
"""

from __future__ import annotations

import itertools
import json
import random
import struct
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any

from bench.common import ROOT, summary
from bench.context import Context
from bench.traffic import Iperf, udp_sent_packets

_ports = itertools.count(5501)
TARGET_PPS = 200_000
TARGET_DROP_PP = 0.1


def synthetic_pcap(path: Path, packets: int, seed: int = 13) -> int:
    """Write the mix described above; return its size in bytes."""
    rnd = random.Random(seed)
    names = [f"svc{i}.ns{i % 7}.svc.cluster.local".encode() for i in range(200)]
    hello = _client_hello(b"api.example.com")
    t = 1_800_000_000
    with open(path, "wb") as fh:
        fh.write(struct.pack("<IHHiIII", 0xA1B2C3D4, 2, 4, 0, 0, 262144, 276))
        out = bytearray()
        for i in range(packets):
            conv = rnd.randrange(2000)
            kind = rnd.random()
            six = conv % 10 == 0
            if kind < 0.05:  # a DNS query
                name = names[conv % len(names)]
                payload = struct.pack(">HHHHHH", i & 0xFFFF, 0x0100, 1, 0, 0, 0) + b"".join(
                    bytes([len(p)]) + p for p in name.split(b".")) + b"\0\0\1\0\1"
                l4 = struct.pack(">HHHH", 30000 + conv, 53, 8 + len(payload), 0) + payload
                proto = 17
            elif kind < 0.06:  # a TLS ClientHello
                l4 = struct.pack(">HHIIBBHHH", 40000 + conv, 443, 0, 0, 0x50, 0x18, 0, 0, 0) + hello
                proto = 6
            elif kind < 0.25:  # other UDP
                payload = bytes(rnd.randrange(20, 1200))
                l4 = struct.pack(">HHHH", 50000 + conv % 1000, 8125, 8 + len(payload), 0) + payload
                proto = 17
            else:  # TCP data or ACKs
                payload = bytes(rnd.choice((0, 0, 100, 1400)))
                l4 = struct.pack(">HHIIBBHHH", 40000 + conv, 8080, 0, 0, 0x50, 0x10, 0, 0, 0) \
                    + payload
                proto = 6
            if six:
                src, dst = b"\xfd" + bytes(14) + bytes([conv % 250 + 1]), b"\xfd" + bytes(15)
                ip = struct.pack(">IHBB16s16s", 0x60000000, len(l4), proto, 64, src, dst)
                ethertype = 0x86DD
            else:
                ip = struct.pack(">BBHHHBBH4s4s", 0x45, 0, 20 + len(l4), 0, 0, 64, proto, 0,
                                 bytes([10, 1, conv // 250, conv % 250 + 1]), b"\x0a\x02\0\x01")
                ethertype = 0x0800
            frame = struct.pack(">HHIHBB8s", ethertype, 0, 2, 1, 0, 6, bytes(8)) + ip + l4
            t_us = i * 5
            out += struct.pack("<IIII", t + t_us // 1_000_000, t_us % 1_000_000, len(frame),
                               len(frame)) + frame
            if len(out) > 4 << 20:
                fh.write(out)
                out.clear()
        fh.write(out)
    return path.stat().st_size


def _client_hello(name: bytes) -> bytes:
    sni = struct.pack(">HBH", len(name) + 3, 0, len(name)) + name
    ext = struct.pack(">HH", 0, len(sni)) + sni
    body = b"\x03\x03" + bytes(32) + b"\x00" + b"\x00\x02\x13\x01" + b"\x01\x00" + \
        struct.pack(">H", len(ext)) + ext
    hs = b"\x01" + len(body).to_bytes(3, "big") + body
    return b"\x16\x03\x01" + struct.pack(">H", len(hs)) + hs


_PROBE = """
import json, sys, time
from pathlib import Path
from podcap.insight import reader
t0, c0 = time.perf_counter(), time.process_time()
part, _ = reader.read(Path(sys.argv[1]))
wall, cpu = time.perf_counter() - t0, time.process_time() - c0
print(json.dumps({"packets": part.packets, "wall_s": wall, "cpu_s": cpu,
                  "conversations": len(part.conversations), "dns": len(part.dns),
                  "tls": len(part.tls)}))
"""


def throughput(ctx: Context) -> dict[str, Any]:
    cfg = ctx.cfg
    path = ctx.sub("insight") / "synthetic.pcap"
    size = synthetic_pcap(path, cfg.insight_packets)
    argv = ["taskset", "-c", "0", sys.executable, "-c", _PROBE, str(path)]
    ctx.record("8", "taskset -c 0 python -c '<reader.read(FILE), timed>' $WORK/insight/"
               "synthetic.pcap")
    runs = []
    for _ in range(cfg.insight_repeats):
        done = subprocess.run(argv, capture_output=True, text=True, check=True, timeout=600,
                              cwd=ROOT)
        runs.append(json.loads(done.stdout))
    pps_cpu = [r["packets"] / r["cpu_s"] for r in runs]
    pps_wall = [r["packets"] / r["wall_s"] for r in runs]
    return {"packets": cfg.insight_packets, "file_bytes": size, "runs": runs,
            "pps_cpu": summary(pps_cpu), "pps_wall": summary(pps_wall),
            "target_pps_met": summary(pps_cpu)["median"] >= TARGET_PPS}


def _capture_once(ctx: Context, with_summary: bool) -> dict[str, Any]:
    cfg = ctx.cfg
    srv = ctx.server()
    a, b = ctx.pair()
    cap = srv.api_start(a.id)
    cid = str(cap["id"])
    iperf = Iperf(ctx.procs, a, next(_ports))
    stop = threading.Event()
    asked = []

    def ask() -> None:
        while not stop.wait(0.5):
            r = srv.http.get(f"/api/captures/{cid}/summary", params={"wait": 0})
            asked.append(r.status_code)

    asker = threading.Thread(target=ask, daemon=True) if with_summary else None
    try:
        if asker:
            asker.start()
        sent = udp_sent_packets(iperf.run_client(b, cfg.insight_seconds, udp=True, payload=1400,
                                                 bitrate=cfg.insight_bitrate))
    finally:
        stop.set()
        if asker:
            asker.join(5)
        iperf.close()
    final = srv.final_stats(srv.api_stop(cid)["id"])
    stats = final.get("stats") or {}
    captured, dropped = int(stats.get("captured", 0)), int(stats.get("dropped", 0))
    srv.v1_delete(cid)
    return {"with_summary": with_summary, "sent": sent, "captured": captured, "dropped": dropped,
            "drop_pct": 100.0 * dropped / max(1, captured + dropped),
            "summary_requests": len(asked), "summary_ok": all(s == 200 for s in asked)}


def capture_cost(ctx: Context) -> dict[str, Any]:
    rows = []
    ctx.record("8", "POST /api/captures {\"workload_id\": <A>} ; iperf3 -u -b "
               f"{ctx.cfg.insight_bitrate} -l 1400 B → A; "
               "[with summary] GET /api/captures/<id>/summary?wait=0 every 0.5 s")
    for _ in range(ctx.cfg.insight_capture_repeats):
        rows.append(_capture_once(ctx, False))
        rows.append(_capture_once(ctx, True))
    without = summary([r["drop_pct"] for r in rows if not r["with_summary"]])
    with_ = summary([r["drop_pct"] for r in rows if r["with_summary"]])
    return {"rows": rows, "drop_pct_without": without, "drop_pct_with": with_,
            "sent_without": summary([r["sent"] for r in rows if not r["with_summary"]]),
            "sent_with": summary([r["sent"] for r in rows if r["with_summary"]]),
            "target_drop_met": with_["median"] <= without["median"] + TARGET_DROP_PP}


def run(ctx: Context) -> dict[str, Any]:
    t = time.monotonic()
    out = {"throughput": throughput(ctx)}
    out["capture"] = capture_cost(ctx)
    out["elapsed_s"] = time.monotonic() - t
    return out
