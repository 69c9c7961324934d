"""BENCHMARKS.md from one run's results. The hand-written notes section is kept across runs."""

from __future__ import annotations

import json
import math
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

NOTES_START = "<!-- notes:start (hand-written; kept when the file is regenerated) -->"
NOTES_END = "<!-- notes:end -->"
DEFAULT_NOTES = "_No notes yet._"


def num(x: Any, digits: int = 1) -> str:
    if x is None:
        return "–"
    if isinstance(x, bool):
        return "yes" if x else "no"
    if isinstance(x, int):
        return f"{x:,}"
    if isinstance(x, float):
        if math.isnan(x):
            return "–"
        if math.isinf(x):
            return "∞"
        if abs(x) >= 1000:
            return f"{x:,.0f}"
        return f"{x:.{digits}f}"
    return str(x)


def med(s: dict[str, Any], digits: int = 1, spread: str = "minmax") -> str:
    """'median [min–max]' (or [p5–p95])."""
    if not s or not s.get("n"):
        return "–"
    lo, hi = ("min", "max") if spread == "minmax" else ("p5", "p95")
    if s["n"] == 1:
        return num(s["median"], digits)
    return f"{num(s['median'], digits)} [{num(s[lo], digits)}–{num(s[hi], digits)}]"


def met(flag: Any) -> str:
    if flag is None:
        return "–"
    return "**met**" if flag else "**missed**"


def table(header: list[str], rows: list[list[str]]) -> str:
    lines = ["| " + " | ".join(header) + " |", "|" + "|".join(" --- " for _ in header) + "|"]
    lines += ["| " + " | ".join(r) + " |" for r in rows]
    return "\n".join(lines)


def _error(res: dict[str, Any]) -> str | None:
    return f"**Not measured in this run** — the figure failed:\n\n```\n{res['error']}\n```\n" \
        if "error" in res else None


# --------------------------------------------------------------------------------------------


def fidelity_section(res: dict[str, Any], cfg: dict[str, Any]) -> str:
    if (err := _error(res)) is not None:
        return "## 1. Capture fidelity\n\n" + err
    buf = res["buffer_default_kib"]
    out = [
        "## 1. Capture fidelity",
        "",
        f"iperf3 UDP at maximum rate (`-u -b 0 -l <payload>`), {cfg['fid_seconds']} s, from "
        "container B to container A; the capture runs in A's netns. *1 sender* is the issue's "
        "figure; *2 senders* runs two iperf3 clients at once (iperf3 is single-threaded), which "
        "on this machine makes tcpdump compete for CPU — the case where buffer and -U matter. "
        "*sent* is iperf3's sender count; *captured* and *dropped by kernel* are tcpdump's own "
        "counters; *drop %* = dropped ÷ received by filter. "
        f"Median [min–max] over {cfg['fid_repeats']} repeats, variants interleaved. "
        "`podcap` is `POST /v1/sniffer` with defaults; `raw` is `nsenter tcpdump` with tcpdump's "
        f"defaults (2 MiB buffer), `raw -B {buf}` the same with podcap's buffer (both write the "
        "same 5 × 2 MB ring, no `-U`); `neuvector-args` is NeuVector's exact argv (its counters "
        "are read with SIGUSR1 just before the SIGKILL). `no capture` (when present) is iperf3 "
        "alone, 1 run. podcap runs its tcpdump at nice "
        f"{res.get('capture_nice', 0)} (`--capture-priority`; the process and its session's "
        "autogroup, capture/priority.py), the baselines at the workloads' 0; "
        "`podcap --capture-priority 0` (when present) is a second `podcap serve` with its "
        "tcpdump at 0, as before that option.",
        "",
    ]
    if "loadavg_start" in res:
        out += [f"Load average (1 min): {res['loadavg_start'][0]:.2f} at the start, "
                f"{res['loadavg_end'][0]:.2f} at the end.", ""]
    rows = []
    for g in res["groups"]:
        rows.append([g["label"], g["variant"], med(g["sent"], 0), med(g["captured"], 0),
                     med(g["capture_pct"], 2), med(g["dropped"], 0), med(g["drop_pct"], 3)])
    out.append(table(["load", "variant", "sent", "captured", "captured % of sent",
                      "dropped by kernel", "drop %"], rows))
    out += ["", "Targets: podcap's kernel drops ≤ 1/10 of neuvector-args', and no worse than raw "
            f"with the same buffer (podcap's median drop % ≤ the worst `raw -B {buf}` run).", ""]
    trows = [[t["label"], num(t["podcap_vs_nv"], 3), met(t["tenth_of_nv"]),
              met(t["no_worse_than_raw_same_buffer"]),
              num(t["before_vs_nv"], 3) if t.get("before_vs_nv") is not None else "–"]
             for t in res["targets"]]
    out.append(table(["load", "podcap drop % ÷ neuvector-args drop %", "≤ 1/10",
                      "no worse than raw, same buffer",
                      "the same ÷ with --capture-priority 0"], trows))
    if res.get("sweep"):
        loads = ", ".join(g["label"] for g in res["sweep"][:1])
        out += ["", "### Sweep: kernel buffer (-B), snap length (-s), -U and --immediate-mode", "",
                "tcpdump with podcap's exact argv (from `podcap.capture.command.tcpdump_args`) "
                f"varied one axis at a time, load {loads}, {cfg['sweep_seconds']} s per "
                f"run, {cfg['sweep_repeats']} run(s) per point, points interleaved. `no -U` = "
                "podcap's argv; `-U` adds -U (NeuVector's choice); `-U --immediate-mode` adds "
                "both (TPACKET_V2, no 1 s block delay; see figure 3).", ""]
        srows = [[g["label"], g["variant"], med(g["sent"], 0),
                  med(g["capture_pct"], 2), med(g["dropped"], 0), med(g["drop_pct"], 3)]
                 for g in res["sweep"]]
        out.append(table(["load", "tcpdump options", "sent", "captured % of sent",
                          "dropped by kernel", "drop %"], srows))
    return "\n".join(out)


def latency_section(res: dict[str, Any], cfg: dict[str, Any]) -> str:
    if (err := _error(res)) is not None:
        return "## 2. Start latency\n\n" + err
    p, r = res["podcap"], res["raw"]
    out = [
        "## 2. Start latency",
        "",
        f"Command issued → first packet capturable, over {cfg['start_repeats']} starts each "
        "(alternating). A probe sends a numbered UDP datagram to container A every "
        f"{1000 / res['probe_hz']:g} ms; the first probe in the capture file (kernel timestamp) "
        "marks the first capturable packet. podcap: t0 just before `POST /v1/sniffer`; raw: t0 "
        "just before spawning `nsenter --net=… tcpdump -i any -w …`. *ready* = the POST answered "
        "/ tcpdump printed \"listening on\". Milliseconds, p50 and p95 [min–max].",
        "",
        table(["", "first packet p50", "first packet p95", "first packet min–max", "ready p50",
               "ready p95", "no packet"], [
            [s, num(x["first_packet_ms"]["median"]), num(x["first_packet_ms"]["p95"]),
             f"{num(x['first_packet_ms']['min'])}–{num(x['first_packet_ms']['max'])}",
             num(x["ready_ms"]["median"]), num(x["ready_ms"]["p95"]), num(x["missing"])]
            for s, x in (("podcap", p), ("raw", r))]),
        "",
        f"**Ratio podcap ÷ raw (first packet): p50 {num(res['ratio_p50'], 2)}, p95 "
        f"{num(res['ratio_p95'], 2)}** (target ≤ 2.0: {met(res['target_met'])}); "
        f"ready: p50 {num(res['ready_ratio_p50'], 2)}, p95 {num(res['ready_ratio_p95'], 2)}.",
    ]
    return "\n".join(out)


def stop_section(res: dict[str, Any], cfg: dict[str, Any]) -> str:
    if (err := _error(res)) is not None:
        return "## 3. Stop fidelity\n\n" + err
    w = res["window_ms"]
    out = [
        "## 3. Stop fidelity",
        "",
        f"Probe datagrams (1 per ms, numbered, send time inside) to container A; each capture "
        f"filters on the probe port, runs {cfg['stop_run_s']:g} s plus a random "
        f"0–{cfg['stop_jitter_s']:g} s (so the stop falls at any phase of tcpdump's 1 s "
        "buffer timeout) and is stopped. Of the probes sent in the last "
        f"{w} ms before the stop, how many are in the file — median [min–max] over "
        f"{cfg['stop_repeats']} stops. podcap is stopped with `PATCH /v1/sniffer/stop/<id>` "
        "(SIGINT); neuvector-args with SIGKILL to the group. Two references, plain tcpdump with "
        "podcap's argv, show what a fix would give: `-U --immediate-mode` then SIGINT; and "
        "*drained*: SIGUSR1 until tcpdump's captured + dropped reach the received count at the "
        "stop, then SIGINT. *loaded*: iperf3 UDP 1400 B at max rate B → A at the same time. "
        "*stop* = time until the stop call returned.",
        "",
    ]
    rows = [[g["condition"], g["system"], med(g["window_sent"], 0), med(g["window_in_file"], 0),
             med(g["window_pct"], 1), med(g.get("lost_before_stop", {}), 0),
             med(g["stop_ms"], 0)] for g in res["groups"]]
    out.append(table(["condition", "system", f"sent in last {w} ms", "in file", "% in file",
                      "all sent before the stop: missing", "stop (ms)"], rows))
    lost = res["podcap_received_not_written"]
    out += ["", "*missing*: probes sent after the capture was ready (POST answered / \"listening "
            "on\") and before the stop that are not in the file. Target (podcap loses none "
            "that tcpdump received: missing ≤ "
            f"tcpdump's own kernel drops, every stop): {met(res['target_met'])}. For context, "
            "tcpdump's final counters of podcap's captures: received − dropped − captured = "
            f"{med(lost, 0)} per stop — these include probes that arrived after the stop "
            "request, while podcap drained (the probe keeps sending)."]
    return "\n".join(out)


def download_section(res: dict[str, Any], cfg: dict[str, Any]) -> str:
    if (err := _error(res)) is not None:
        return "## 4. Download\n\n" + err
    out = [
        "## 4. Download",
        "",
        f"A real capture (iperf3 TCP B → A) of {num(res['bytes_on_disk'])} bytes in "
        f"{res['files']} ring files (`file_size_mb` {cfg['download_file_size_mb']}), filled in "
        f"{num(res['fill_s'])} s. Each of {cfg['download_repeats']} repeats: `cat` of the files "
        "to /dev/null; the *HTTP floor* (a minimal HTTP/1.1 server in the bench that sends the "
        "same files with sendfile(2), to the same curl: the least any HTTP download of these "
        "bytes costs here); then `curl -o /dev/null` of podcap's native merged pcap and of "
        "NeuVector's multipart route (limit above the size). Page cache warm for all. RSS "
        "growth = peak (VmHWM, reset before) − RSS before, podcap's processes only.",
        "",
        table(["", "seconds", "÷ cat", "peak RSS growth (MB)", "bytes"], [
            ["cat (floor)", med(res["cat_s"], 3), "1", "–", num(res["bytes_on_disk"])],
            ["HTTP floor: sendfile(2) server → curl", med(res["floor_s"], 3),
             med(res["floor_ratio"], 2), "–", num(res["bytes_on_disk"])],
            ["GET /api/captures/<id>/pcap", med(res["native_s"], 3), med(res["native_ratio"], 2),
             med(res["native_rss_growth_mb"], 1),
             num(res["rows"][0]["native_bytes"]) if res["rows"] else "–"],
            ["GET /v1/sniffer/<id>/pcap", med(res["v1_s"], 3), med(res["v1_ratio"], 2),
             med(res["v1_rss_growth_mb"], 1),
             num(res["rows"][0]["v1_bytes"]) if res["rows"] else "–"],
        ]),
        "",
        f"podcap ÷ HTTP floor: {med(res['native_vs_floor'], 2)}. "
        f"Merged pcap size = files − 23 × 24-byte headers as expected: "
        f"{num(res['native_bytes_ok'])}. Targets: time ≤ 2.0 × cat {met(res['target_time_met'])}"
        f"; RSS growth ≤ 50 MB {met(res['target_rss_met'])}.",
    ]
    return "\n".join(out).replace("23 ×", f"{max(res['files'] - 1, 0)} ×")


def scale_section(res: dict[str, Any], cfg: dict[str, Any]) -> str:
    if (err := _error(res)) is not None:
        return "## 5. Scale on one node\n\n" + err
    lat = res["latency_ms"]
    out = [
        "## 5. Scale on one node",
        "",
        f"{res['containers']} containers (busybox `sleep`; {res['containers_on_host']} on the "
        "Docker host in all), a fresh `podcap serve`, one capture per container started one "
        "after another from one client. RSS of podcap's own processes (tcpdump excluded). "
        f"Latency over {cfg['scale_requests']} requests each (alternating, keep-alive).",
        "",
        table(["measure", "value", "target"], [
            ["podcap RSS idle (MB)", num(res["rss_idle_mb"]), ""],
            [f"podcap RSS, {res['containers']} captures running (MB)",
             num(res["rss_running_mb"]), f"≤ 150 {met(res['target_rss_met'])}"],
            ["podcap RSS after the latency requests (MB)", num(res["rss_after_requests_mb"]), ""],
            ["tcpdump processes / captures reported running",
             f"{res['tcpdump_processes']} / {res['running_reported']}", ""],
            [f"time to start all {res['containers']} (s)", num(res["start_all_s"], 2), ""],
            ["one start, p50 [p5–p95] (ms)", med(res["per_start_ms"], 1, "p"), ""],
            [f"time to stop all {res['containers']} (s)", num(res["stop_all_s"], 2), ""],
            *[[f"`GET {path}` p50 / p95 / p99 / max (ms)",
               " / ".join(num(s[k]) for k in ("median", "p95", "p99", "max")),
               f"p99 ≤ 100 {met(s['p99'] <= 100.0)}"] for path, s in lat.items()],
        ]),
    ]
    return "\n".join(out)


def _count_range(p: dict[str, Any]) -> str:
    lo = p.get("workloads_min", p["workloads"])
    return num(p["workloads"]) if lo == p["workloads"] else f"{num(lo)}–{num(p['workloads'])}"


def _first_list_note(points: list[dict[str, Any]]) -> str:
    late = [(p["agents"], u) for p in points for u in [p.get("unreachable_first_list") or []]
            if u]
    return "".join(f" With {n} agents, the first list after they joined missed "
                   f"{len(u)} node(s) ({u[0]['reason']})." for n, u in late)


def cluster_section(res: dict[str, Any], cfg: dict[str, Any]) -> str:
    if (err := _error(res)) is not None:
        return "## 6. Cluster\n\n" + err
    if "scale" not in res:  # cluster_download_only: its numbers are in the JSON, for notes
        return ("## 6. Cluster\n\nDownload part only (`cluster_download_only`): remote ÷ "
                f"in-process {num(res['download']['time_ratio']['median'], 2)}.")
    d, idle, points = res["download"], res["idle"], res["scale"]
    last = points[-1]
    n_agents = last["agents"]
    diff = last["start_diff_p50_ms"]
    lines = [
        "## 6. Cluster",
        "",
        "A `podcap controller` (API on loopback; agent listeners gRPC mutual TLS on "
        "127.0.0.1) and `podcap agent` processes (`--runtime docker`, each its own data dir "
        "and node name), all on this machine, beside the bench's `podcap serve` (in-process "
        f"agent). **All {n_agents} agents use the same Docker engine, so each sees the same "
        f"containers**: {res['containers']} busybox `sleep` containers made for the figure "
        f"({res['containers_on_host']} on the host in all) appear once per agent, "
        f"{last['workloads']:,} workloads in the controller's list. Load average (1 min) of "
        "the machine, shared with other test suites: "
        f"{num(res.get('loadavg_start', [None])[0], 2)} at the start, "
        f"{num(res.get('loadavg_end', [None])[0], 2)} at the end.",
        "",
        f"*Remote download*: one capture of container A on `podcap serve` and one on agent "
        f"{d['node']}, filled at the same time by one iperf3 TCP stream B → A "
        f"({num(d['fill_s'])} s) to {num(d['local_bytes'])} and {num(d['remote_bytes'])} "
        f"bytes (`file_size_mb` {cfg['cluster_file_size_mb']} × `file_number` "
        f"{cfg['cluster_file_number']}: {d['local_files']} and {d['remote_files']} files), "
        "then stopped. Each of "
        f"{cfg['cluster_download_repeats']} repeats (order alternating, page cache warm): "
        "`curl -o /dev/null` of `GET /api/captures/<id>/pcap` from `podcap serve`, and from "
        "the controller, which reads it from the agent's data connection (mutual TLS, 1 MiB "
        "frames, read on the event loop as the client takes them). *time ratio* = remote ÷ "
        "in-process seconds per byte (= in-process MB/s ÷ "
        "remote MB/s). Peak RSS growth: VmRSS of the process sampled every 50 ms during the "
        "download, peak − the sample just before. Median [min–max].",
        "",
        table(["download", "seconds", "MB/s", "peak RSS growth (MB)", "CPU s per GB",
               "bytes"], [
            ["`podcap serve` in-process", med(d["local_s"], 3), med(d["local_mbps"], 0),
             f"serve: {med(d['serve_rss_growth_mb'], 1)}",
             f"serve: {med(d.get('serve_cpu_s_per_gb', {}), 2)}", num(d["local_bytes"])],
            ["remote agent via `podcap controller`", med(d["remote_s"], 3),
             med(d["remote_mbps"], 0),
             f"controller: {med(d['controller_rss_growth_mb'], 1)}; agent: "
             f"{med(d['agent_rss_growth_mb'], 1)}",
             f"controller: {med(d.get('controller_cpu_s_per_gb', {}), 2)}; agent: "
             f"{med(d.get('agent_cpu_s_per_gb', {}), 2)}", num(d["remote_bytes"])],
        ]),
        "",
        f"Check of the remote download: {num(d['remote_download_bytes'])} bytes = the agent's "
        f"{d['remote_files']} files − {max(d['remote_files'] - 1, 0)} × 24-byte headers: "
        f"{num(d['remote_download_bytes'] == d['remote_bytes'])}; sha256 = sha256 of the files "
        f"merged in ring order: {num(d['sha_ok'])} (`{d['remote_sha256_download'][:16]}…`); "
        f"records in the files {num(d['remote_records'])}, tcpdump's captured count "
        f"{num(d['remote_captured'])} ("
        + ("equal: the ring never wrapped" if d["remote_records"] == d["remote_captured"] else
           "the ring wrapped: its oldest files were overwritten") +
        f"); every timed download had the expected size: {num(d['size_ok'])}.",
        "",
        f"*Scale*: `GET /v1/workload` over {cfg['cluster_requests']} requests (one keep-alive "
        "client; *CPU per request* = utime + stime over the requests ÷ their number, in ms, "
        "of the controller, of all agents together and of the Docker engine); capture "
        "start = `POST /api/captures` answered (`\"filter\": "
        f"\"{IDLE_FILTER}\"`, an idle container; deleted after each), "
        f"{cfg['cluster_starts']} on remote agent {d['node']} (`agent_id` given) and "
        f"{cfg['cluster_starts']} on `podcap serve`, alternating. Milliseconds. Before the "
        "requests, lists are repeated until every agent answers within the controller's "
        "fan-out deadline; *workloads* = the answers' sizes over the measured requests."
        + _first_list_note(points),
        "",
        table(["agents", "workloads", "`/v1/workload` p50 / p95 / p99 / max",
               "CPU per request: controller / all agents / dockerd",
               "start remote p50 [p5–p95]", "start in-process p50 [p5–p95]",
               "remote − in-process p50", "CPU of the other agents per remote start (mean)",
               "controller RSS (MB)", "agent RSS (MB)"],
              [[str(p["agents"]), _count_range(p),
                " / ".join(num(p["workload_ms"][k]) for k in ("median", "p95", "p99", "max")),
                " / ".join(num(p.get("workload_cpu_ms", {}).get(k))
                           for k in ("controller", "agents", "dockerd")),
                med(p["start_remote_ms"], 1, "p"), med(p["start_local_ms"], 1, "p"),
                num(p["start_diff_p50_ms"]),
                num(p.get("start_other_agents_cpu_ms")), num(p["controller_rss_mb"]),
                med(p["agents_rss_mb"], 1)] for p in points]
              + [["`podcap serve`", num(res["serve_workloads"]),
                  " / ".join(num(res["serve_workload_ms"][k])
                             for k in ("median", "p95", "p99", "max")),
                  "", "", "", "", "", "", ""]]),
        "",
        f"*Idle agent* ({idle['node']}): RSS sampled every 0.25 s and CPU = utime + stime of "
        f"the agent process ÷ wall time (% of one core) over {num(idle['idle']['seconds'])} "
        f"s; *tcpdump* = its children's CPU. Captures: {idle['captures_n']} filtered "
        f"(`{IDLE_FILTER}`) captures of idle containers, {idle['captures_running']} running.",
        "",
        table(["captures running", "RSS mean (MB)", "RSS max (MB)", "agent CPU %",
               "tcpdump CPU % (children)"],
              [[str(n), num(w["rss_mean_mb"]), num(w["rss_max_mb"]), num(w["cpu_pct"], 2),
                num(w["children_cpu_pct"], 2)]
               for n, w in ((0, idle["idle"]), (idle["captures_n"], idle["captures"]))]),
        "",
        "Targets: remote download time ≤ 1.5 × in-process "
        f"({num(d['time_ratio']['median'], 2)}: {met(d['target_time_met'])}); peak RSS "
        f"growth ≤ 50 MB — controller {num(d['controller_rss_growth_mb']['max'])} MB "
        f"{met(d['target_controller_rss_met'])}, agent {num(d['agent_rss_growth_mb']['max'])} "
        f"MB {met(d['target_agent_rss_met'])}; `/v1/workload` p99 ≤ 150 ms with {n_agents} "
        f"agents ({num(last['workload_ms']['p99'])} ms: {met(res['target_workload_met'])}); "
        f"remote start p50 ≤ in-process p50 + 15 ms (remote − in-process {diff:+.1f} ms: "
        f"{met(res['target_start_met'])}).",
    ]
    return "\n".join(lines)


def insight_section(res: dict[str, Any], cfg: dict[str, Any]) -> str:
    head = ["## 8. Insight (what a capture holds)", ""]
    if (err := _error(res)) is not None:
        return "\n".join(head + [err])
    t = res["throughput"]
    lines = head + [
        f"`podcap.insight.reader` over a synthetic LINUX_SLL2 pcap of {num(t['packets'])} "
        f"packets ({num(t['file_bytes'] / 1e6)} MB: TCP in ~2,000 conversations, UDP, DNS "
        "queries, TLS ClientHellos, 10 % IPv6), in a child pinned to one core (`taskset -c 0`), "
        f"{len(t['runs'])} runs (bench/insight.py).", "",
        table(["packets/s of CPU time", "packets/s of wall time", "target"],
              [[med(t["pps_cpu"], 0), med(t["pps_wall"], 0),
                f"≥ 200,000: {met(t['target_pps_met'])}"]]), ""]
    c = res.get("capture")
    if c:
        lines += [
            "Cost to a running capture: iperf3 UDP (1400-byte datagrams at a fixed "
            f"{cfg.get('insight_bitrate', '0')}bit/s, so both arms carry the same load) into the "
            f"captured container for {cfg.get('insight_seconds')} s, alternately without and "
            "with a client asking for the summary every 0.5 s (the low-priority worker reads "
            "the ring all along). Drops are tcpdump's: dropped ÷ (captured + dropped).", "",
            table(["summary", "drop % (median [min–max])", "datagrams sent", "runs"],
                  [["not asked", med(c["drop_pct_without"], 3), med(c.get("sent_without", {}), 0),
                    num(c["drop_pct_without"]["n"])],
                   ["every 0.5 s", med(c["drop_pct_with"], 3), med(c.get("sent_with", {}), 0),
                    num(c["drop_pct_with"]["n"])]]),
            "", f"Target: with ≤ without + 0.1 points: {met(c['target_drop_met'])}."]
    return "\n".join(lines)


def start_section(res: dict[str, Any], cfg: dict[str, Any]) -> str:
    head = ["## 9. Start path: podcap ÷ raw tcpdump", ""]
    if (err := _error(res)) is not None:
        return "\n".join(head + [err])
    lines = head + [
        f"`POST /v1/sniffer` → 200 against raw `nsenter --net=/proc/<pid>/ns/net tcpdump -i "
        f"any -n -Z root -w FILE` → \"listening on\", {res['starts']} starts of each per row, "
        "alternating; each podcap start is divided by the raw start beside it and the ratios' "
        "p50/p95 are shown (bench/start_latency.py). Milliseconds.", "",
        table(["filter", "podcap p50", "podcap p95", "raw p50", "raw p95",
               "ratio p50", "ratio p95", "target p50 ≤ 1.5"],
              [[f"`{name}`" if name != "(none)" else name, num(r["podcap_ms"]["median"]),
                num(r["podcap_ms"]["p95"]), num(r["raw_ms"]["median"]), num(r["raw_ms"]["p95"]),
                num(r["ratio"]["median"], 2), num(r["ratio"]["p95"], 2), met(r["target_met"])]
               for name, r in res["filters"].items()])]
    return "\n".join(lines)


def load_section(res: dict[str, Any], cfg: dict[str, Any]) -> str:
    head = ["## 10. Load", ""]
    if (err := _error(res)) is not None:
        return "\n".join(head + [err])
    lat = res["api_ms"]
    lines = head + [
        f"{res['captures']} captures on {res['containers']} busy containers (each pings its "
        f"own loopback), {res['downloaders']} parallel download loops and "
        f"{res['probers']} API probe loops for {num(res['seconds'], 0)} s; then every capture "
        "is stopped and downloaded once more (bench/load.py).", "",
        table(["check", "result", "target", ""], [
            ["downloads (all `capinfos`-valid)", f"{res['downloads']} ({res['invalid']} invalid)",
             "all valid", met(res["invalid"] == 0)],
            ["final packet counts = tcpdump's", f"{res['count_mismatches']} mismatches of "
             f"{res['captures']}", "0", met(res["count_mismatches"] == 0)],
            ["HTTP 5xx", num(res["errors_5xx"], 0), "0", met(res["errors_5xx"] == 0)],
            ["API probe latency" + (", download loops at nice "
                                    f"{res['generators_nice']}" if res.get("generators_nice")
                                    else ""),
             f"p50 {num(lat['median'])}, p99 {num(lat['p99'])} ms ({lat['n']} requests; load "
             f"average at the end {num(res.get('loadavg_end', [math.nan])[0], 1)})",
             "p99 ≤ 100 ms", met(res["target_latency_met"])],
            *([["API probe latency, download loops at nice 0", f"p50 "
                f"{num(res['as_is']['api_ms']['median'])}, p99 "
                f"{num(res['as_is']['api_ms']['p99'])} ms ({res['as_is']['api_ms']['n']} "
                f"requests; {res['as_is']['downloads']} downloads)", "(for comparison)", ""]]
              if "as_is" in res else []),
            ["server RSS", f"peak {num(res['rss_peak_mb'])} MB", "≤ 300 MB",
             met(res["target_rss_met"])],
        ])]
    return "\n".join(lines)


IDLE_FILTER = "udp port 9"

def inventory_section(res: dict[str, Any], cfg: dict[str, Any]) -> str:
    from bench.inventory import section  # figure 11 renders itself (bench/inventory.py)

    return section(res, cfg)


def failover_section(res: dict[str, Any], cfg: dict[str, Any]) -> str:
    from bench.failover import section  # figure 12 renders itself (bench/failover.py)

    return section(res, cfg)


def live_section(res: dict[str, Any], cfg: dict[str, Any]) -> str:
    from bench.live import section  # figure 7 renders itself (bench/live.py)

    return section(res, cfg)


def recorder_section(res: dict[str, Any], cfg: dict[str, Any]) -> str:
    from bench.recorder_report import section  # figure 13 renders itself

    return section(res, cfg)


SECTIONS = {"fidelity": fidelity_section, "latency": latency_section, "stop": stop_section,
            "download": download_section, "scale": scale_section, "cluster": cluster_section,
            "live": live_section, "insight": insight_section, "start": start_section,
            "load": load_section, "inventory": inventory_section,
            "failover": failover_section, "recorder": recorder_section}
HEADINGS = {"fidelity": "## 1. Capture fidelity", "latency": "## 2. Start latency",
            "stop": "## 3. Stop fidelity", "download": "## 4. Download",
            "scale": "## 5. Scale on one node", "cluster": "## 6. Cluster",
            "insight": "## 8. Insight (what a capture holds)",
            "start": "## 9. Start path: podcap ÷ raw tcpdump", "load": "## 10. Load",
            "live": "## 7. Live follow", "inventory": "## 11. Inventory at 500 nodes",
            "failover": "## 12. No single point of failure",
            "recorder": "## 13. Flight recorder"}
NUMBERS = {"fidelity": "1", "latency": "2", "stop": "3", "download": "4", "scale": "5",
           "cluster": "6", "insight": "8", "start": "9", "load": "10",
           "live": "7", "inventory": "11", "failover": "12", "recorder": "13"}
# Configuration fields of each figure, by name prefix (the rest, e.g. "smoke", is shared).
CONFIG_PREFIXES = {"fidelity": ("fid_", "sweep"), "latency": ("start_", "probe_"),
                   "stop": ("stop_",), "download": ("download_",), "scale": ("scale_",),
                   "cluster": ("cluster_",), "insight": ("insight_",), "start": ("start_",),
                   "load": ("load_",), "live": ("live_",), "inventory": ("inv_",),
                   "failover": ("failover_",), "recorder": ("rec_",)}


TARGETS_HEADER = ["figure", "result (median)", "target", ""]


def targets_table(results: dict[str, Any]) -> str:
    return table(TARGETS_HEADER, targets_rows(results))


def targets_rows(results: dict[str, Any]) -> list[list[str]]:
    rows: list[list[str]] = []
    lv = results.get("live", {})
    if "latency" in lv and lv["latency"].get("p95_s") is not None:
        p95, w, wo = lv["latency"]["p95_s"], lv["drop_pct_with"], lv["drop_pct_without"]
        rows.append(["7 live follow latency", f"p95 {num(p95, 3)} s at {lv['rate_hz']} pkt/s",
                     "≤ 1.5 s", met(p95 <= 1.5)])
        rows.append(["7 live follow cost", f"drops {num(w['median'], 3)} % with a follower, "
                     f"{num(wo['median'], 3)} % without", "≤ without + 0.1 %",
                     met(w["median"] <= wo["median"] + 0.1)])
    f = results.get("fidelity", {})
    if "targets" in f:
        for t in f["targets"]:
            rows.append([f"1 fidelity, {t['label']}",
                         f"podcap drop % ÷ neuvector-args: {num(t['podcap_vs_nv'], 3)}",
                         "≤ 0.1; ≤ raw same buffer",
                         f"{met(t['tenth_of_nv'])} / {met(t['no_worse_than_raw_same_buffer'])}"])
    lat = results.get("latency", {})
    if "ratio_p50" in lat:
        rows.append(["2 start latency", f"podcap ÷ raw p50 {num(lat['ratio_p50'], 2)}, p95 "
                     f"{num(lat['ratio_p95'], 2)}", "≤ 2.0", met(lat["target_met"])])
    st = results.get("stop", {})
    if "groups" in st:
        pc = [g for g in st["groups"] if g["system"] == "podcap (SIGINT)"]
        nv = [g for g in st["groups"] if g["system"] == "neuvector-args (SIGKILL)"]
        txt = "; ".join(f"{g['condition']}: podcap {num(g['window_pct']['median'])} % vs "
                        f"neuvector-args {num(n['window_pct']['median'])} %"
                        for g, n in zip(pc, nv, strict=False))
        rows.append(["3 stop fidelity", f"last {st['window_ms']} ms in file — {txt}",
                     "none lost", met(st["target_met"])])
    d = results.get("download", {})
    if "native_ratio" in d:
        rows.append(["4 download time", f"÷ cat {num(d['native_ratio']['median'], 2)}", "≤ 2.0",
                     met(d["target_time_met"])])
        rows.append(["4 download memory",
                     f"RSS growth {num(d['native_rss_growth_mb']['max'])} MB (max)",
                     "≤ 50 MB", met(d["target_rss_met"])])
    s = results.get("scale", {})
    if "rss_running_mb" in s:
        rows.append(["5 scale memory", f"{num(s['rss_running_mb'])} MB with "
                     f"{s['containers']} captures", "≤ 150 MB", met(s["target_rss_met"])])
        rows.append(["5 scale latency", ", ".join(
            f"{p} p99 {num(v['p99'])} ms" for p, v in s["latency_ms"].items()), "≤ 100 ms",
            met(s["target_latency_met"])])
    c = results.get("cluster", {})
    if "download" in c and "scale" in c:  # not a download-only run (cluster_download_only)
        d, last = c["download"], c["scale"][-1]
        rows.append(["6 cluster download time", f"remote ÷ in-process (per byte) "
                     f"{num(d['time_ratio']['median'], 2)}; {num(d['remote_mbps']['median'], 0)}"
                     f" vs {num(d['local_mbps']['median'], 0)} MB/s", "≤ 1.5",
                     met(d["target_time_met"])])
        rows.append(["6 cluster download memory", f"peak RSS growth: controller "
                     f"{num(d['controller_rss_growth_mb']['max'])} MB, agent "
                     f"{num(d['agent_rss_growth_mb']['max'])} MB (max)", "≤ 50 MB each",
                     f"{met(d['target_controller_rss_met'])} / {met(d['target_agent_rss_met'])}"])
        rows.append(["6 cluster workload list", f"`/v1/workload` p99 "
                     f"{num(last['workload_ms']['p99'])} ms, {last['agents']} agents, "
                     f"{num(last['workloads'])} workloads", "≤ 150 ms",
                     met(c["target_workload_met"])])
        rows.append(["6 cluster start latency", f"remote p50 "
                     f"{num(last['start_remote_ms']['median'])} ms vs in-process "
                     f"{num(last['start_local_ms']['median'])} ms "
                     f"({last['start_diff_p50_ms']:+.1f})", "≤ in-process + 15 ms",
                     met(c["target_start_met"])])
    ins = results.get("insight", {})
    if "throughput" in ins:
        rows.append(["8 insight throughput", f"{num(ins['throughput']['pps_cpu']['median'], 0)}"
                     " packets/s on one core", "≥ 200,000", met(ins["throughput"]
                                                                ["target_pps_met"])])
    if "capture" in ins:
        c = ins["capture"]
        rows.append(["8 insight cost to a capture", f"drops {num(c['drop_pct_with']['median'], 3)}"
                     f" % with summary vs {num(c['drop_pct_without']['median'], 3)} % without",
                     "≤ without + 0.1", met(c["target_drop_met"])])
    sp = results.get("start", {})
    if "ratio_p50" in sp:
        rows.append(["9 start path (no filter)", f"podcap ÷ raw p50 {num(sp['ratio_p50'], 2)}, "
                     f"p95 {num(sp['ratio_p95'], 2)}", "p50 ≤ 1.5", met(sp["target_met"])])
    ld = results.get("load", {})
    if "api_ms" in ld:
        rows.append(["10 load", f"API p99 {num(ld['api_ms']['p99'])} ms, RSS "
                     f"{num(ld['rss_peak_mb'])} MB, 5xx {ld['errors_5xx']}, invalid pcaps "
                     f"{ld['invalid']}, count mismatches {ld['count_mismatches']}",
                     "≤ 100 ms, ≤ 300 MB, 0, 0, 0", met(ld["target_met"])])
    from bench.inventory import target_rows as inventory_rows
    rows += inventory_rows(results.get("inventory", {}))
    from bench.failover import target_rows as failover_rows
    rows += failover_rows(results.get("failover", {}))
    from bench.recorder_report import target_rows as recorder_rows
    rows += recorder_rows(results.get("recorder", {}))
    for name, res in results.items():
        if "error" in res:
            rows.append([name, "failed: " + res["error"].strip().splitlines()[-1][:120], "", "–"])
    return rows


_VARYING = [
    (re.compile(r"(iperf3 .*?-p )\d+"), r"\g<1><port>"),
    (re.compile(r"\b[0-9a-f]{64}\b"), "<container id>"),
    (re.compile(r"\b(bench-(?:sat|win|idle)-|podcap-bench-rec=)[0-9a-f]{6,8}\b"), r"\g<1><tag>"),
    (re.compile(r"\b[0-9a-f]{32}\b"), "<id>"),
    (re.compile(r"\$WORK/(fid|lat|stop)-\d+"), r"$WORK/\g<1>-<n>"),
    (re.compile(r"limit=\d+"), "limit=<size + 1>"),
]


def commands(cmds: list[str]) -> list[str]:
    """The run's commands with per-run values (ports, ids, directories) as placeholders, once."""
    out: list[str] = []
    for cmd in cmds:
        for pattern, repl in _VARYING:
            cmd = pattern.sub(repl, cmd)
        if cmd not in out:
            out.append(cmd)
    return out


def keep_notes(path: Path) -> str:
    if path.exists():
        text = path.read_text()
        if NOTES_START in text and NOTES_END in text:
            return text.split(NOTES_START, 1)[1].split(NOTES_END, 1)[0].strip("\n")
    return DEFAULT_NOTES


# --------------------------------------------------------------------------------------------
# Regenerating some figures only (`--only`): the other figures' sections are kept from the file


RUNS_MARK = "<!-- bench:runs "  # JSON: figure -> the run it comes from; kept across rewrites


@dataclass
class Previous:
    """What the existing report holds, so a run of some figures keeps the others as they were."""

    sections: dict[str, str] = field(default_factory=dict)  # figure -> its section, verbatim
    runs: dict[str, str] = field(default_factory=dict)  # figure -> "`command` on date (n min)"
    targets: list[list[str]] = field(default_factory=list)  # rows of the targets table
    machine: list[str] = field(default_factory=list)  # data rows of the machine table
    commands: dict[str, list[str]] = field(default_factory=dict)  # "1-sweep" -> lines
    configs: list[tuple[str, str]] = field(default_factory=list)  # (label, JSON)


def _split_h2(text: str) -> dict[str, str]:
    """Level-2 sections by heading line (code blocks never start a line with '## ' here)."""
    out: dict[str, str] = {}
    current: list[str] | None = None
    for line in text.splitlines():
        if line.startswith("## "):
            current = out.setdefault(line.strip(), [])  # type: ignore[assignment]
        if current is not None:
            current.append(line)  # type: ignore[union-attr]
    return {k: "\n".join(v).rstrip("\n") for k, v in out.items()}  # type: ignore[arg-type]


def read_previous(path: Path) -> Previous:
    prev = Previous()
    if not path.exists():
        return prev
    text = path.read_text()
    if NOTES_START in text and NOTES_END in text:  # hand-written text is not parsed
        head, _, rest = text.partition(NOTES_START)
        text = head + rest.partition(NOTES_END)[2]
    h2 = _split_h2(text)
    for fig, heading in HEADINGS.items():
        for line, body in h2.items():
            if line == heading or line.startswith(heading + " "):
                prev.sections[fig] = body
    if RUNS_MARK in text:
        prev.runs = json.loads(text.split(RUNS_MARK, 1)[1].split(" -->", 1)[0])
    else:  # a report from one run: every figure in it comes from that run
        m = re.search(r"Generated by (`[^`]+` on [^(]+\([\d.]+ min)", text)
        if m:
            prev.runs = dict.fromkeys(prev.sections, m.group(1).strip() + ")")
    prev.machine = [line for line in h2.get("## Machine", "").splitlines()
                    if line.startswith("| ") and not line.startswith(("| cores", "| run |"))]
    for line in h2.get("## Targets", "").splitlines():
        cells = [c.strip() for c in line.strip().strip("|").split("|")]
        if line.startswith("| ") and cells != TARGETS_HEADER and len(cells) == 4:
            prev.targets.append(cells)
    cmds = h2.get("## Exact commands", "")
    for key, body in re.findall(r"^Figure (\S+):\n\n```\n(.*?)\n```", cmds, re.S | re.M):
        prev.commands[key] = body.splitlines()
    for label, body in re.findall(r"^(Configuration of [^\n]*):\n\n```json\n(.*?)\n```", cmds,
                                  re.S | re.M):
        if label == "Configuration of this run":
            run = prev.runs.get(next(iter(prev.sections), ""), "an earlier run")
            label = f"Configuration of {run} ({_figures_label(list(prev.sections))})"
        prev.configs.append((label, body))
    return prev


def _figures_label(figs: list[str]) -> str:
    nums = [NUMBERS[f] for f in HEADINGS if f in figs]
    return ("figure " if len(nums) == 1 else "figures ") + ", ".join(nums)


def _figure_of_row(first_cell: str) -> str | None:
    num_ = first_cell.split(" ", 1)[0]
    return next((f for f, n in NUMBERS.items() if n == num_), None)


def _row_order(row: list[str]) -> int:
    first = row[0].split(" ", 1)[0]
    return int(first) if first.isdigit() else 99


def _config_for(cfg: dict[str, Any], figs: list[str]) -> dict[str, Any]:
    """The whole configuration when every figure ran, else the shared fields and theirs."""
    if set(figs) >= set(SECTIONS):
        return cfg
    mine = tuple(p for f in figs for p in CONFIG_PREFIXES[f])
    others = tuple(p for f, ps in CONFIG_PREFIXES.items() if f not in figs for p in ps)
    return {k: v for k, v in cfg.items() if k.startswith(mine) or not k.startswith(others)}


MACHINE_HEADER = ["cores", "CPU", "memory", "kernel", "OS", "tcpdump", "libpcap", "iperf3",
                  "Docker", "Python"]


def machine_table(m: dict[str, Any], previous_rows: list[str], ran: str, kept: str) -> str:
    """This run's machine; when kept figures were measured on machines that differ (a newer
    kernel, say), a row for each, each saying which figures it measured (kept figures measured
    on this run's machine join its row)."""
    row = [num(m["cores"]), m["cpu"], f"{m['memory_gib']} GiB", m["kernel"], m["os"],
           m["tcpdump"], m["libpcap"], m["iperf3"], m["docker"], m["python"]]
    kept_nums = set(re.findall(r"\d+", kept))
    same: set[str] = set()
    differ: list[tuple[set[str], list[str]]] = []
    for line in previous_rows:
        cells = [c.strip() for c in line.strip().strip("|").split("|")]
        if set(cells) == {"---"} or len(cells) < len(MACHINE_HEADER):
            continue
        label = cells[0] if len(cells) > len(MACHINE_HEADER) else ""
        nums = kept_nums & set(re.findall(r"\d+", label)) if label else set(kept_nums)
        if not nums:
            continue
        if cells[-len(MACHINE_HEADER):] == row:
            same |= nums
        else:
            differ.append((nums, cells[-len(MACHINE_HEADER):]))
    if not differ:
        return table(MACHINE_HEADER, [row])
    return table(["run", *MACHINE_HEADER], [[_numbers_label(set(re.findall(r"\d+", ran)) |
                                                            same), *row]] +
                 [[_numbers_label(nums), *cells] for nums, cells in differ])


def _numbers_label(nums: set[str]) -> str:
    ordered = sorted(nums, key=int)
    return ("figure " if len(ordered) == 1 else "figures ") + ", ".join(ordered)


def render(run_info: dict[str, Any], path: Path) -> str:
    """The report of this run. Figures it did not run (``--only``) but the existing file has
    are kept from the file as they were, with the run they came from."""
    m = run_info["machine"]
    cfg = run_info["config"]
    results = run_info["results"]
    prev = read_previous(path)
    ran = [f for f in SECTIONS if f in results]
    kept = [f for f in SECTIONS if f not in results and f in prev.sections]
    this_run = f"`{run_info['command']}` on {run_info['started']} " \
        f"({num(run_info['elapsed_s'] / 60)} min" \
        f"{', SMOKE sizes — not a measurement' if cfg['smoke'] else ''})"
    runs = {f: this_run for f in ran}
    runs.update({f: prev.runs.get(f, "an earlier run") for f in kept})
    if kept:
        by_run: dict[str, list[str]] = {}
        for f in SECTIONS:
            if f in runs:
                by_run.setdefault(runs[f], []).append(f)
        generated = "Generated by " + "; ".join(
            f"{r}: {_figures_label(figs)}" for r, figs in by_run.items()) + \
            ". A run of some figures (`--only`) keeps the others' sections from the previous " \
            "file. Within each run, on this one machine, podcap was measured side by side with "
    else:
        generated = f"Generated by {this_run}. Every figure was measured in this one run, on " \
            "this one machine, podcap side by side with "
    rows = targets_rows(results) + [r for r in prev.targets
                                    if _figure_of_row(r[0]) in kept]
    rows.sort(key=_row_order)
    parts = [
        "# podcap benchmarks",
        "",
        generated + "its baselines: **raw** (`nsenter --net=/proc/<pid>/ns/net tcpdump …` by "
        "hand) and **neuvector-args** (tcpdump with NeuVector's exact argv, stopped with "
        "SIGKILL). Ratios are what count; absolute numbers are context. Median [min–max] over "
        "repeats unless marked.",
        "",
        f"{RUNS_MARK}{json.dumps(runs, ensure_ascii=False)} -->",
        "",
        "## Machine",
        "",
        machine_table(m, prev.machine if kept else [], _figures_label(ran),
                      _figures_label(kept)),
        "",
        "## Targets",
        "",
        table(TARGETS_HEADER, rows),
        "",
    ]
    for key, fn in SECTIONS.items():
        if key in results:
            parts += [fn(results[key], cfg), ""]
        elif key in prev.sections:
            parts += [prev.sections[key], ""]
    parts += ["## Notes: findings, recommendations, before/after", "", NOTES_START,
              keep_notes(path), NOTES_END, "", "## Exact commands", "",
              f"Run: `{run_info['command']}` (sizes: `python -m bench --help`; the smoke suite is "
              "`python -m bench --smoke`, run by `tests/test_bench_smoke.py`). `$WORK` is the "
              "run's temporary directory, `$DATA` the data dir of `podcap serve --insecure-http "
              "--listen 127.0.0.1:<port> --data-dir $DATA`, `$URL` its address, `$CONTROLLER` "
              "the address of `podcap controller`.", ""]
    kept_nums = {NUMBERS[f] for f in kept}
    cmds = {k: commands(v) for k, v in run_info["commands"].items()}
    cmds.update({k: v for k, v in prev.commands.items()
                 if k.split("-", 1)[0] in kept_nums and k not in cmds})
    for fig in sorted(cmds):
        parts += [f"Figure {fig}:", "", "```"] + cmds[fig] + ["```", ""]
    if kept:
        parts += [f"Configuration of {this_run} ({_figures_label(ran)}):", "", "```json",
                  json.dumps(_config_for(cfg, ran), indent=1), "```", ""]
        for label, body in prev.configs:
            nums = re.findall(r"\d+", label.rsplit("(", 1)[-1]) if "(" in label else []
            if any(n in kept_nums for n in nums):
                parts += [f"{label}:", "", "```json", body, "```", ""]
    else:
        parts += ["Configuration of this run:", "", "```json", json.dumps(cfg, indent=1), "```",
                  ""]
    return "\n".join(parts + _manual_sections(path, parts))


def _manual_sections(path: Path, parts: list[str]) -> list[str]:
    """Sections written by hand or by other tools (the image size, the API under load): kept
    as they are, after the generated ones."""
    if not path.exists():
        return []
    produced = {line.strip() for part in parts for line in part.splitlines()
                if line.startswith("## ")}
    return [body + "\n" for heading, body in _split_h2(path.read_text()).items()
            if heading not in produced]
