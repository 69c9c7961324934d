"""Figure 13's section of the report and its rows of the targets table (bench/recorder.py
measures)."""

from __future__ import annotations

from typing import Any

from bench.recorder import ARMS


def _ok(flag: bool) -> str:
    from bench.report import met  # the report's own words (it imports this module lazily)

    return met(flag)


def _med(s: dict[str, Any], digits: int = 3) -> str:
    from bench.report import med

    return med(s, digits)


HEADING = "## 13. Flight recorder"


def _nice(sat: dict[str, Any]) -> str:
    c, r = sat.get("priority") or (0, 0)
    return f"captures' tcpdump at nice {c}, rings' at {r}"


def _saturation(sat: dict[str, Any]) -> list[str]:
    lines = ["| arm | sent | received | captured | dropped | drops % | beside: received / "
             "dropped (drops %) |", "| --- | --- | --- | --- | --- | --- | --- |"]
    for r in sat["rows"]:
        o = r["other"]
        other_txt = (f"{o['received']} / {o['dropped']} ({r['other_drop_pct']:.3f})"
                     if o and r["other_drop_pct"] is not None else "–")
        lines.append(f"| {r['arm']} | {r['sent']} | {r['received']} | {r['captured']} | "
                     f"{r['dropped']} | {r['drop_pct']:.3f} | {other_txt} |")
    d = sat["drop_pct"]
    return lines + ["", "Median drops: " + "; ".join(f"{arm} {_med(d[arm])} %" for arm in ARMS)
                    + ". Target (a capture of A with a recorder on A ≤ without + 0.1 points): "
                    f"{_ok(sat['target_met'])}; the ring alone against a capture alone: "
                    f"{_ok(sat['ring_target_met'])}.", ""]


def section(res: dict[str, Any], cfg: dict[str, Any]) -> str:
    if "error" in res:
        return f"{HEADING}\n\n**Not measured in this run**:\n\n```\n{res['error']}\n```\n"
    sat, others = res["saturation"], res.get("saturation_other", [])
    lines = [HEADING, "",
             "A `podcap controller` with one real `podcap agent` (Docker, this machine; "
             "bench/recorder.py). Load average (1 min; 2 cores shared with other engineers' "
             f"tests): {res['loadavg_start'][0]:.2f} at the start, "
             f"{res['loadavg_end'][0]:.2f} at the end.", "",
             f"(a) *Cost of recording*: iperf3 UDP at full rate ({sat['load']}, "
             f"{res['sizes']['sat_seconds']} s) B → A (figure 1's method), four arms "
             "interleaved: a podcap capture of A with default settings alone; the same capture "
             "while a recorder's ring records A (window 30 s, 20 MB ring, no filter); the same "
             "capture beside a second ordinary capture of A (the control: any second tcpdump); "
             "and the ring alone. *drops %* = dropped ÷ received of the capture (of the ring, "
             "for *ring alone*); *beside* = the ring's or the second capture's own counters "
             f"over the same load. The agent's defaults: {_nice(sat)} (capture/priority.py)"
             + (f"; the same arms ran interleaved on {len(others)} other agent(s) (a bed "
                "each), below." if others else "."), ""]
    lines += _saturation(sat)
    for other in others:
        lines += [f"The same arms, agent with --capture-priority {other['priority'][0]} "
                  f"--ring-priority {other['priority'][1]} ({_nice(other)}):", ""]
        lines += _saturation(other)
    if "idle" in res:
        lines += _idle(res["idle"])
    if "window" in res:
        lines += _window(res["window"])
    return "\n".join(lines)


def _idle(idle: dict[str, Any]) -> list[str]:
    lines: list[str] = []
    w, wo = idle["with"], idle["without"]
    lines += [f"(b) *Idle members*: {idle['members']} idle busybox containers, one recorder "
              "(2 MB rings, no filter; the controller's per-user and per-namespace quotas off: "
              "rings count against their owner's, 32 captures by default) recording all of them "
              f"(all joined {idle['joined_s']:.1f} s after the recorder was created). CPU = "
              f"utime + stime ÷ wall over {w['seconds']:.0f} s, % of one core.", "",
              "| | agent CPU % | tcpdump CPU % (all) | controller CPU % | agent RSS (MB) |",
              "| --- | --- | --- | --- | --- |",
              f"| no recorder | {wo['cpu_pct']:.2f} | {wo['children_cpu_pct']:.2f} | "
              f"{wo['controller_cpu_pct']:.2f} | {wo['rss_mean_mb']:.0f} |",
              f"| {idle['members']} members | {w['cpu_pct']:.2f} | {w['children_cpu_pct']:.2f}"
              f" | {w['controller_cpu_pct']:.2f} | {w['rss_mean_mb']:.0f} |", "",
              f"Target: the agent ≤ 2 % of a core with the members: {_ok(idle['target_met'])} "
              f"({w['tcpdump_processes']} tcpdump processes under the agent).", ""]
    return lines


def _window(win: dict[str, Any]) -> list[str]:
    lines = [f"(c, d) *Triggers*: a probe sends {win['probe_hz']} numbered UDP datagrams/s to "
              f"A; a recorder (filter on the probe port, window {win['window_s']} s, after "
              f"{win['after_s']} s, 2 MB ring) records A, and a plain tcpdump with the same "
              "filter in A's netns is the reference. Each trigger waits until the ring has "
              "recorded a whole window. *ready* = trigger sent → `GET /api/captures/{id}/pcap` "
              "of the snapshot returned, minus the after period; *window* = the reference's "
              "probe datagrams from (trigger answered − window) to (trigger sent + after) that "
              "are in the snapshot (read back with dpkt).", "",
              "| trigger | ready − after (s) | stopped − after (s) | sent in window | reference "
              "in window | in snapshot | window % | snapshot bytes |",
              "| --- | --- | --- | --- | --- | --- | --- | --- |"]
    for i, r in enumerate(win["rows"], 1):
        lines.append(f"| {i} | {r['downloadable_s']:.3f} | {r['stopped_s']:.3f} | "
                     f"{r['sent_in_window']} | {r['reference_in_window']} | {r['in_snapshot']} "
                     f"| {r['window_pct']:.2f} | {r['size']:,} |")
    ref = win["reference"]
    lines += ["", f"Targets: ready − after ≤ 2 s (max {win['downloadable_s']['max']:.3f} s): "
              f"{_ok(win['target_ready_met'])}; 100 % of the window in every snapshot "
              f"(min {win['window_pct']['min']:.2f} %): {_ok(win['target_window_met'])}. The "
              f"reference tcpdump: {ref['captured']} captured, {ref['dropped']} dropped by "
              "kernel.", ""]
    return lines


def target_rows(res: dict[str, Any]) -> list[list[str]]:
    if "saturation" not in res:
        return []
    sat, idle, win = res["saturation"], res.get("idle"), res.get("window")
    d = {arm: s["median"] for arm, s in sat["drop_pct"].items()}
    rows = [["13 recorder cost", f"a capture's drops {d['capture + recorder']:.3f} % with a "
             f"recorder on the container vs {d['capture alone']:.3f} % without (beside a "
             f"second capture: {d['capture + a second capture']:.3f} %); a ring alone "
             f"{d['ring alone']:.3f} % ({_nice(sat)})", "≤ without + 0.1",
             f"{_ok(sat['target_met'])} / ring alone {_ok(sat['ring_target_met'])}"]]
    if idle:
        rows.append(["13 recorder idle", f"agent {idle['with']['cpu_pct']:.2f} % CPU with "
                     f"{idle['members']} members", "≤ 2 % of a core", _ok(idle["target_met"])])
    if win:
        rows += [["13 recorder trigger", f"snapshot downloadable after-period + "
                  f"{win['downloadable_s']['median']:.3f} s (max "
                  f"{win['downloadable_s']['max']:.3f})", "≤ 2 s",
                  _ok(win["target_ready_met"])],
                 ["13 recorder window", f"{win['window_pct']['min']:.2f} % (min) of the "
                  "window's packets in the snapshot", "100 %", _ok(win["target_window_met"])]]
    return rows
