"""The benchmark suite's smoke run: every figure of `python -m bench` still runs end to end.

Tiny sizes (`--smoke`), so this checks that the benchmark code works against the real server,
Docker, tcpdump and iperf3 — it asserts that each figure was produced, never what the numbers are.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
FIGURES = ("fidelity", "latency", "stop", "download", "scale", "cluster", "insight", "start",
           "load", "live", "inventory", "failover", "recorder")
HEADINGS = ("## 1. Capture fidelity", "## 2. Start latency", "## 3. Stop fidelity",
            "## 4. Download", "## 5. Scale on one node", "## 6. Cluster", "## 7. Live follow",
            "## 8. Insight (what a capture holds)", "## 9. Start path", "## 10. Load",
            "## 11. Inventory at", "## 12. No single point of failure", "## 13. Flight recorder",
            "## Machine", "## Exact commands")


def test_bench_smoke_produces_every_figure(tmp_path: Path) -> None:
    out, raw = tmp_path / "smoke.md", tmp_path / "smoke.json"
    done = subprocess.run(
        [sys.executable, "-m", "bench", "--smoke", "--out", str(out), "--json", str(raw)],
        cwd=ROOT, capture_output=True, text=True, timeout=240,
    )
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-5000:]

    run = json.loads(raw.read_text())
    assert run["machine"]["cores"] and run["machine"]["tcpdump"].startswith("tcpdump")
    results = run["results"]
    for fig in FIGURES:
        assert fig in results and "error" not in results[fig], (fig, results.get(fig))
    fid = results["fidelity"]
    assert {g["variant"] for g in fid["groups"]} >= {"podcap", "raw", "neuvector-args"}
    assert fid["sweep"] and fid["targets"]
    assert all(r["sent"] > 0 for r in fid["rows"])
    lat = results["latency"]
    assert lat["podcap"]["ready_ms"]["n"] >= 1 and lat["raw"]["ready_ms"]["n"] >= 1
    stop = results["stop"]
    assert {r["system"] for r in stop["rows"]} >= {"podcap (SIGINT)", "neuvector-args (SIGKILL)"}
    assert all(r["window_sent"] > 0 for r in stop["rows"])
    dl = results["download"]
    assert dl["files"] >= 2 and dl["native_bytes_ok"] and dl["rows"]
    scale = results["scale"]
    assert scale["tcpdump_processes"] == scale["containers"] == scale["running_reported"]
    assert all(s["n"] > 0 for s in scale["latency_ms"].values())
    cl = results["cluster"]
    assert cl["download"]["sha_ok"] and cl["download"]["size_ok"] and cl["download"]["rows"]
    assert [p["agents"] for p in cl["scale"]] == [1, 2]
    assert all(not p["unreachable"] and p["start_remote_ms"]["n"] for p in cl["scale"])
    assert cl["idle"]["captures_running"] == cl["idle"]["captures_n"] > 0
    ins = results["insight"]
    assert ins["throughput"]["runs"][0]["packets"] == run["config"]["insight_packets"]
    assert all(r["captured"] > 0 and r["sent"] > 0 for r in ins["capture"]["rows"])
    inv = results["inventory"]
    assert inv["workloads"] >= run["config"]["inv_nodes"] * run["config"]["inv_workloads"]
    assert inv["commands_during_lists"] == {} and inv["storm"]["errors"] == []
    start = results["start"]
    assert start["filters"] and all(f["podcap_ms"]["n"] == f["raw_ms"]["n"] == start["starts"]
                                    for f in start["filters"].values())
    load = results["load"]
    assert load["downloads"] > 0 and load["api_ms"]["n"] > 0 and load["rss_peak_mb"] > 0
    assert load["invalid"] == load["count_mismatches"] == load["errors_5xx"] == 0
    live = results["live"]
    assert live["latency"]["received"] > 0
    assert {r["follower"] for r in live["saturation"]} == {False, True}
    assert all(r["sent"] > 0 and r["captured"] > 0 for r in live["saturation"])
    assert all(r["followed_bytes"] > 0 for r in live["saturation"] if r["follower"])
    fo = results["failover"]
    assert fo["rounds"] and all(r["requests"] > 0 and r["new_leader"] != r["killed"]
                                for r in fo["rounds"])
    assert all(fo[arm]["api_ms"]["n"] > 0 and fo[arm]["invalid"] == 0 for arm in ("one", "two"))
    rec = results["recorder"]
    assert {r["arm"] for r in rec["saturation"]["rows"]} == {
        "capture alone", "capture + recorder", "capture + a second capture", "ring alone"}
    assert all(r["sent"] > 0 and r["received"] > 0 for r in rec["saturation"]["rows"])
    assert rec["idle"]["with"]["tcpdump_processes"] >= rec["idle"]["members"]
    assert rec["window"]["rows"] and all(r["reference_in_window"] > 0 and r["size"] > 24
                                         for r in rec["window"]["rows"])
    assert run["commands"]

    text = out.read_text()
    for heading in HEADINGS:
        assert heading in text, heading
    assert "Not measured in this run" not in text
