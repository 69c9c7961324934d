"""The load figure's short version (bench/load.py, the same code): 10 captures on 3 busy
containers, 4 download loops and 2 API probe loops for 10 s. Every download is a valid pcap
(capinfos), every final file holds exactly tcpdump's packet count, no 5xx, API p99 and RSS
within the issue's bounds. The full version (50 captures, 20 downloads, 60 s) is
``python -m bench --only load``."""

from __future__ import annotations

import tempfile
from pathlib import Path

import pytest

from bench.load import QUOTAS_OFF, LoadConfig, busy_containers, run_load
from tests.support import docker_client, remove_container, running_server


@pytest.mark.alone  # its API p99 bound is the machine's: seen at 102 ms beside another worker
def test_short_load(tmp_path: Path) -> None:
    cfg = LoadConfig.short()
    boxes: list = []
    try:
        busy_containers(docker_client(), cfg.containers, cfg.ping_interval_s, "podcap-t-load",
                        lifetime_s=300, out=boxes)
        with running_server(tmp_path, env=QUOTAS_OFF) as srv, \
                tempfile.TemporaryDirectory(dir=tmp_path) as work:
            assert srv.proc is not None
            res = run_load(srv.url, srv.token, [b.id for b in boxes], srv.proc.pid, cfg,
                           Path(work))
    finally:
        for box in boxes:
            remove_container(box)
    summary = {k: res[k] for k in ("downloads", "invalid", "count_mismatches", "errors_5xx",
                                   "transport_errors", "rss_peak_mb")}
    summary["api_p99_ms"] = res["api_ms"]["p99"]
    assert res["downloads"] >= cfg.captures and res["invalid"] == 0, summary
    assert res["count_mismatches"] == 0, res["mismatches"]
    assert res["errors_5xx"] == 0 and not res["transport_errors"], summary
    assert res["rss_peak_mb"] <= 300, summary
    assert res["api_ms"]["p99"] <= 100, (summary, res["api_ms_by_route"])
