"""BENCHMARKS.md from one run's results. The hand-written notes section is kept across runs."""

from __future__ import annotations

import json
import math
import re
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
        "alone, 1 run.",
        "",
    ]
    rows = []
    for g in res["groups"]:
        rows.append([g["label"], g["variant"], med(g["sent"], 0), med(g["captured"], 0),
                     med(g["capture_pct"], 2), med(g["dropped"], 0), med(g["drop_pct"], 3)])
    out.append(table(["load", "variant", "sent", "captured", "captured % of sent",
                      "dropped by kernel", "drop %"], rows))
    out += ["", "Targets: podcap's kernel drops ≤ 1/10 of neuvector-args', and no worse than raw "
            f"with the same buffer (podcap's median drop % ≤ the worst `raw -B {buf}` run).", ""]
    trows = [[t["label"], num(t["podcap_vs_nv"], 3), met(t["tenth_of_nv"]),
              met(t["no_worse_than_raw_same_buffer"])] for t in res["targets"]]
    out.append(table(["load", "podcap drop % ÷ neuvector-args drop %", "≤ 1/10",
                      "no worse than raw, same buffer"], trows))
    if res.get("sweep"):
        loads = ", ".join(g["label"] for g in res["sweep"][:1])
        out += ["", "### Sweep: kernel buffer (-B), snap length (-s), -U and --immediate-mode", "",
                "tcpdump with podcap's exact argv (from `podcap.capture.tcpdump.tcpdump_args`) "
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


SECTIONS = {"fidelity": fidelity_section, "latency": latency_section, "stop": stop_section,
            "download": download_section, "scale": scale_section}


def targets_table(results: dict[str, Any]) -> str:
    rows: list[list[str]] = []
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
    for name, res in results.items():
        if "error" in res:
            rows.append([name, "failed: " + res["error"].strip().splitlines()[-1][:120], "", "–"])
    return table(["figure", "result (median)", "target", ""], rows)


_VARYING = [
    (re.compile(r"(iperf3 .*?-p )\d+"), r"\g<1><port>"),
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


def render(run_info: dict[str, Any], path: Path) -> str:
    m = run_info["machine"]
    cfg = run_info["config"]
    results = run_info["results"]
    parts = [
        "# podcap benchmarks",
        "",
        f"Generated by `{run_info['command']}` on {run_info['started']} "
        f"({num(run_info['elapsed_s'] / 60)} min"
        f"{', SMOKE sizes — not a measurement' if cfg['smoke'] else ''}). Every figure was "
        "measured in this one run, on this one machine, podcap side by side with its baselines: "
        "**raw** (`nsenter --net=/proc/<pid>/ns/net tcpdump …` by hand) and **neuvector-args** "
        "(tcpdump with NeuVector's exact argv, stopped with SIGKILL). Ratios are what count; "
        "absolute numbers are context. Median [min–max] over repeats unless marked.",
        "",
        "## Machine",
        "",
        table(["cores", "CPU", "memory", "kernel", "OS", "tcpdump", "libpcap", "iperf3", "Docker",
               "Python"],
              [[num(m["cores"]), m["cpu"], f"{m['memory_gib']} GiB", m["kernel"], m["os"],
                m["tcpdump"], m["libpcap"], m["iperf3"], m["docker"], m["python"]]]),
        "",
        "## Targets",
        "",
        targets_table(results),
        "",
    ]
    for key, fn in SECTIONS.items():
        if key in results:
            parts += [fn(results[key], cfg), ""]
    parts += ["## Notes: findings, recommendations, before/after", "", NOTES_START,
              keep_notes(path), NOTES_END, "", "## Exact commands", "",
              f"Run: `{run_info['command']}` (sizes: `python -m bench --help`; the smoke suite is "
              "`python -m bench --smoke`, run by `tests/test_bench_smoke.py`). `$WORK` is the "
              "run's temporary directory, `$DATA` the data dir of `podcap serve --insecure-http "
              "--listen 127.0.0.1:<port> --data-dir $DATA`, `$URL` its address.", ""]
    for fig, cmds in sorted(run_info["commands"].items()):
        parts += [f"Figure {fig}:", "", "```"] + commands(cmds) + ["```", ""]
    parts += ["Configuration of this run:", "", "```json", json.dumps(cfg, indent=1), "```", ""]
    return "\n".join(parts)
