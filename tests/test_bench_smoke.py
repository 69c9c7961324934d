"""The benchmark suite's smoke run: every figure of `python -m bench` still runs end to end.

Tiny sizes (`--smoke`), so this checks that the benchmark code works against the real server,
Docker, tcpdump and iperf3 — it asserts that each figure was produced, never what the numbers are.
The figures run in a few groups, one `python -m bench --smoke --only …` each, so that xdist can
hand the groups to different workers (tests/conftest.py makes each group a unit of its own).
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

ROOT = Path(__file__).resolve().parent.parent
# A group's bound is for a machine several times slower than a quiet one (alone, the longest
# group takes under a minute); past it the run and everything it started are ended.
TIMEOUT_S = 420

Run = dict[str, Any]


def _fidelity(fid: Any, run: Run) -> None:
    assert {g["variant"] for g in fid["groups"]} >= {"podcap", "raw", "neuvector-args"}
    assert fid["sweep"] and fid["targets"]
    assert all(r["sent"] > 0 for r in fid["rows"])


def _latency(lat: Any, run: Run) -> None:
    assert lat["podcap"]["ready_ms"]["n"] >= 1 and lat["raw"]["ready_ms"]["n"] >= 1


def _stop(stop: Any, run: Run) -> None:
    assert {r["system"] for r in stop["rows"]} >= {"podcap (SIGINT)", "neuvector-args (SIGKILL)"}
    assert all(r["window_sent"] > 0 for r in stop["rows"])


def _download(dl: Any, run: Run) -> None:
    assert dl["files"] >= 2 and dl["native_bytes_ok"] and dl["rows"]


def _scale(scale: Any, run: Run) -> None:
    assert scale["tcpdump_processes"] == scale["containers"] == scale["running_reported"]
    assert all(s["n"] > 0 for s in scale["latency_ms"].values())


def _cluster(cl: Any, run: Run) -> None:
    assert cl["download"]["sha_ok"] and cl["download"]["size_ok"] and cl["download"]["rows"]
    assert [p["agents"] for p in cl["scale"]] == [1, 2]
    assert all(not p["unreachable"] and p["start_remote_ms"]["n"] for p in cl["scale"])
    assert cl["idle"]["captures_running"] == cl["idle"]["captures_n"] > 0


def _insight(ins: Any, run: Run) -> None:
    assert ins["throughput"]["runs"][0]["packets"] == run["config"]["insight_packets"]
    assert all(r["captured"] > 0 and r["sent"] > 0 for r in ins["capture"]["rows"])


def _inventory(inv: Any, run: Run) -> None:
    assert inv["workloads"] >= run["config"]["inv_nodes"] * run["config"]["inv_workloads"]
    assert inv["commands_during_lists"] == {} and inv["storm"]["errors"] == []
    assert "figure6_now" in inv  # figure 6's list latencies beside it (same run)


def _start(start: Any, run: Run) -> None:
    assert start["filters"] and all(f["podcap_ms"]["n"] == f["raw_ms"]["n"] == start["starts"]
                                    for f in start["filters"].values())


def _load(load: Any, run: Run) -> None:
    assert load["downloads"] > 0 and load["api_ms"]["n"] > 0 and load["rss_peak_mb"] > 0
    assert load["invalid"] == load["count_mismatches"] == load["errors_5xx"] == 0


def _live(live: Any, run: Run) -> None:
    assert live["latency"]["received"] > 0
    assert {r["follower"] for r in live["saturation"]} == {False, True}
    assert all(r["sent"] > 0 and r["captured"] > 0 for r in live["saturation"])
    assert all(r["followed_bytes"] > 0 for r in live["saturation"] if r["follower"])


def _failover(fo: Any, run: Run) -> None:
    assert fo["rounds"] and all(r["requests"] > 0 and r["new_leader"] != r["killed"]
                                for r in fo["rounds"])
    assert all(fo[arm]["api_ms"]["n"] > 0 and fo[arm]["invalid"] == 0 for arm in ("one", "two"))


def _recorder(rec: Any, run: Run) -> None:
    assert {r["arm"] for r in rec["saturation"]["rows"]} == {
        "capture alone", "capture + recorder", "capture + a second capture", "ring alone"}
    assert all(r["sent"] > 0 and r["received"] > 0 for r in rec["saturation"]["rows"])
    assert rec["idle"]["with"]["tcpdump_processes"] >= rec["idle"]["members"]
    assert rec["window"]["rows"] and all(r["reference_in_window"] > 0 and r["size"] > 24
                                         for r in rec["window"]["rows"])


# Each figure: its check and its report heading.
FIGURES: dict[str, tuple[Callable[[Any, Run], None], str]] = {
    "fidelity": (_fidelity, "## 1. Capture fidelity"),
    "latency": (_latency, "## 2. Start latency"),
    "stop": (_stop, "## 3. Stop fidelity"),
    "download": (_download, "## 4. Download"),
    "scale": (_scale, "## 5. Scale on one node"),
    "cluster": (_cluster, "## 6. Cluster"),
    "live": (_live, "## 7. Live follow"),
    "insight": (_insight, "## 8. Insight (what a capture holds)"),
    "start": (_start, "## 9. Start path"),
    "load": (_load, "## 10. Load"),
    "inventory": (_inventory, "## 11. Inventory at"),
    "failover": (_failover, "## 12. No single point of failure"),
    "recorder": (_recorder, "## 13. Flight recorder"),
}
# Longest first (tests/conftest.py hands them out in this order); inventory reads cluster's
# figure 6 in the same run.
GROUPS = ("failover", "recorder", "cluster,inventory", "fidelity",
          "latency,stop,download,start,insight", "scale,live", "load")


def test_groups_hold_every_figure_once() -> None:
    named = [f for group in GROUPS for f in group.split(",")]
    assert sorted(named) == sorted(FIGURES)


def _bench(args: list[str]) -> subprocess.CompletedProcess[str]:
    """``python -m bench`` in a session of its own: past the bound, the run and whatever it
    started (servers, agents, tcpdump) are ended with it, not left to load the rest of the
    suite. SIGTERM first: bench's cleanup removes its containers."""
    proc = subprocess.Popen([sys.executable, "-m", "bench", *args], cwd=ROOT, text=True,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            start_new_session=True)
    try:
        out, err = proc.communicate(timeout=TIMEOUT_S)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGTERM)
        try:
            out, err = proc.communicate(timeout=30)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            out, err = proc.communicate()
        pytest.fail(f"python -m bench {' '.join(args)} ran past {TIMEOUT_S} s:\n"
                    f"{out[-3000:]}{err[-5000:]}")
    return subprocess.CompletedProcess(proc.args, proc.returncode, out, err)


@pytest.mark.parametrize("group", GROUPS)
def test_bench_smoke_produces_its_figures(group: str, tmp_path: Path) -> None:
    out, raw = tmp_path / "smoke.md", tmp_path / "smoke.json"
    done = _bench(["--smoke", "--only", group, "--out", str(out), "--json", str(raw)])
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-5000:]

    run = json.loads(raw.read_text())
    assert run["machine"]["cores"] and run["machine"]["tcpdump"].startswith("tcpdump")
    assert run["commands"]
    text = out.read_text()
    assert "## Machine" in text and "## Exact commands" in text
    assert "Not measured in this run" not in text
    for fig in group.split(","):
        result = run["results"].get(fig)
        assert result is not None and "error" not in result, (fig, result)
        check, heading = FIGURES[fig]
        check(result, run)
        assert heading in text, heading
