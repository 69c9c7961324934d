"""Figure 7: live follow — packet → client latency, and what a follower costs the capture.

(a) Latency: the probe sends numbered UDP datagrams from the host to container A at 10 per
second, each carrying its send time; a podcap capture of A (filter on the probe port) is
followed over HTTP (``?follow=true``) and every probe datagram's arrival in the client is
timed: send → arrival at the client (both clocks are this host's). Without a follower nothing
flushes tcpdump's buffer (no ``-U``), so this is what the agent's SIGUSR2 flusher buys (every
250 ms, while the ring stops growing on its own and tcpdump sleeps in poll).

(b) Cost at saturation: iperf3 UDP at full rate into A (payload × senders as in figure 1)
while podcap captures A with default settings, with and without one follower reading the
stream as fast as it can. tcpdump's own counters give drops / received; runs alternate, so
drift hits both alike. Target: drops with a follower ≤ drops without + 0.1 %.

(c) Flush safety (``bench/flush_safety.py``): ring files that still line up after SIGUSR2 at
saturation, sent naively and through the agent's flusher.

Run it alone: ``python -m bench --only live`` (``--smoke`` for tiny sizes).
"""

from __future__ import annotations

import itertools
import os
import struct
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import httpx

from bench import flush_safety
from bench.common import percentile, ratio, summary
from bench.context import Context
from bench.traffic import PROBE_MAGIC, Iperf, Probe, udp_sent_packets

PROBE_PORT = 7002
_ports = itertools.count(5401)

# Sizes (smoke in brackets): seconds of probing, saturation seconds per run, runs per variant.
LATENCY_S, LATENCY_S_SMOKE = 30.0, 1.5
RATE_HZ = 10
SAT_SECONDS, SAT_SECONDS_SMOKE = 8, 1
SAT_REPEATS, SAT_REPEATS_SMOKE = 4, 1
SAT_LOAD = (1400, 2)  # payload bytes, iperf3 senders at once


class _Follower:
    """Reads ``?follow=true`` in a thread; for each record, when it arrived here."""

    def __init__(self, url: str, token: str) -> None:
        self.url, self.token = url, token
        self.records: list[tuple[bytes, float]] = []
        self.nbytes = 0
        self.keep = True
        self.opened = threading.Event()
        self.done = threading.Event()
        self._buf = bytearray()
        self._header_left = 24
        threading.Thread(target=self._run, daemon=True).start()

    def _run(self) -> None:
        # The client stands for Wireshark on another machine: niced, so on this one box it
        # does not take CPU from tcpdump (what is measured is the follower's cost on the node).
        os.setpriority(os.PRIO_PROCESS, threading.get_native_id(), 19)
        try:
            with httpx.Client(timeout=httpx.Timeout(30.0, read=None)) as http, \
                    http.stream("GET", self.url, params={"follow": "true"},
                                headers={"X-Auth-Token": self.token}) as r:
                self.opened.set()
                for chunk in r.iter_raw():
                    self.nbytes += len(chunk)
                    if self.keep:
                        self._parse(chunk, time.time())
        finally:
            self.opened.set()
            self.done.set()

    def _parse(self, chunk: bytes, now: float) -> None:
        buf = self._buf
        buf += chunk
        if self._header_left:
            skip = min(self._header_left, len(buf))
            del buf[:skip]
            self._header_left -= skip
        at = 0
        while at + 16 <= len(buf):
            caplen = struct.unpack_from("<I", buf, at + 8)[0]
            if at + 16 + caplen > len(buf):
                break
            self.records.append((bytes(buf[at + 16:at + 16 + caplen]), now))
            at += 16 + caplen
        del buf[:at]


def _latency(ctx: Context, seconds: float) -> dict[str, Any]:
    srv = ctx.server()
    a, _ = ctx.pair()
    cap = srv.api_start(a.id, filter=f"udp port {PROBE_PORT}")
    cid = str(cap["id"])
    ctx.record("7", f"POST /api/captures {{workload_id: <A>, filter: 'udp port {PROBE_PORT}'}}"
               f" -> agent runs: {cap.get('args', '')}")
    ctx.record("7", f"GET $URL/api/captures/<id>/pcap?follow=true (probe: {RATE_HZ} UDP "
               f"datagrams/s host -> <ip A>:{PROBE_PORT})")
    follower = _Follower(f"{srv.url}/api/captures/{cid}/pcap", srv.token)
    follower.opened.wait(10)
    probe = Probe(a.ip, PROBE_PORT, hz=RATE_HZ).start()
    time.sleep(seconds)
    probe.stop()
    time.sleep(1.0 if ctx.cfg.smoke else 2.0)  # the last datagrams' way through
    srv.api_stop(cid)
    follower.done.wait(15)
    srv.v1_delete(cid)
    sent = {seq: ns for seq, ns in probe.sent}
    lat = []
    for data, arrived in follower.records:
        at = data.find(PROBE_MAGIC)
        if at < 0:
            continue
        seq, sent_ns = struct.unpack_from("!QQ", data, at + len(PROBE_MAGIC))
        if seq in sent:
            lat.append(arrived - sent_ns / 1e9)
    return {"sent": len(sent), "received": len(lat),
            "p50_s": percentile(lat, 50) if lat else None,
            "p95_s": percentile(lat, 95) if lat else None,
            "max_s": max(lat) if lat else None}


def _saturation_once(ctx: Context, follow: bool, seconds: int) -> dict[str, Any]:
    srv = ctx.server()
    a, b = ctx.pair()
    payload, streams = SAT_LOAD
    servers = [Iperf(ctx.procs, a, next(_ports)) for _ in range(streams)]
    follower = None
    try:
        cap = srv.api_start(a.id)
        cid = str(cap["id"])
        if follow:
            follower = _Follower(f"{srv.url}/api/captures/{cid}/pcap", srv.token)
            follower.keep = False  # read everything, keep nothing: a fast reader
            follower.opened.wait(10)
        with ThreadPoolExecutor(streams) as pool:
            results = list(pool.map(
                lambda it: it.run_client(b, seconds, udp=True, payload=payload), servers))
        for it in servers:
            ctx.record("7", "[load] " + " ".join(it.client_argv(b, seconds, True, payload)))
        time.sleep(0.5)
        srv.api_stop(cid)
        final = srv.final_stats(cid)
        if follower is not None:
            follower.done.wait(30)
        srv.v1_delete(cid)
    finally:
        for it in servers:
            it.close()
    stats = final.get("stats") or {}
    received, dropped = int(stats.get("received", 0)), int(stats.get("dropped", 0))
    return {"follower": follow, "sent": sum(udp_sent_packets(r) for r in results),
            "captured": int(stats.get("captured", 0)), "received": received,
            "dropped": dropped, "drop_pct": 100.0 * ratio(dropped, received),
            "followed_bytes": follower.nbytes if follower else 0,
            "size": int(final.get("size") or 0)}


def run(ctx: Context) -> dict[str, Any]:
    smoke = ctx.cfg.smoke
    latency = _latency(ctx, LATENCY_S_SMOKE if smoke else LATENCY_S)
    rows = []
    for _ in range(SAT_REPEATS_SMOKE if smoke else SAT_REPEATS):
        for follow in (False, True):
            rows.append(_saturation_once(ctx, follow, SAT_SECONDS_SMOKE if smoke else
                                         SAT_SECONDS))
    without = [r["drop_pct"] for r in rows if not r["follower"]]
    with_f = [r["drop_pct"] for r in rows if r["follower"]]
    return {"latency": latency, "rate_hz": RATE_HZ, "saturation": rows,
            "flush_safety": flush_safety.run(smoke),
            "load": f"{SAT_LOAD[0]} B × {SAT_LOAD[1]} senders",
            "drop_pct_without": summary(without), "drop_pct_with": summary(with_f)}


def section(res: dict[str, Any], cfg: dict[str, Any]) -> str:
    if "error" in res:
        return f"## 7. Live follow\n\n**Not measured in this run**:\n\n```\n{res['error']}\n```\n"
    lat = res["latency"]

    def s(v: float | None) -> str:
        return "-" if v is None else f"{v:.3f} s"

    lines = ["## 7. Live follow", "",
             f"(a) Probe at {res['rate_hz']} datagrams/s → capture of A → "
             "`GET /api/captures/{id}/pcap?follow=true`: send → arrival in the client. "
             f"{lat['received']} of {lat['sent']} datagrams arrived; latency p50 "
             f"{s(lat['p50_s'])}, **p95 {s(lat['p95_s'])}** (target ≤ 1.5 s), max "
             f"{s(lat['max_s'])}. It is bounded by libpcap's TPACKET_V3 block timeout (1 s) "
             "plus the SIGUSR2 flush period (0.25 s; sent only while the ring stops growing "
             "by itself and tcpdump sleeps in poll) and the follower's poll (0.05 s).", "",
             f"(b) iperf3 UDP at full rate ({res['load']}) into A, podcap with default "
             "settings, without and with one follower reading as fast as it can (runs "
             "alternate; the client runs niced, standing for Wireshark on another machine):",
             "",
             "| follower | sent | received | captured | dropped | drops % | followed MB |",
             "| --- | --- | --- | --- | --- | --- | --- |"]
    for r in res["saturation"]:
        lines.append(f"| {'yes' if r['follower'] else 'no'} | {r['sent']} | {r['received']} | "
                     f"{r['captured']} | {r['dropped']} | {r['drop_pct']:.3f} | "
                     f"{r['followed_bytes'] / 1e6:.1f} |")
    w, wo = res["drop_pct_with"], res["drop_pct_without"]
    lines += ["", f"Median drops: {wo['median']:.3f} % without, {w['median']:.3f} % with a "
              f"follower (target: with ≤ without + 0.1 %).", ""]
    if "flush_safety" in res:
        lines += flush_safety.lines(res["flush_safety"])
    return "\n".join(lines)
