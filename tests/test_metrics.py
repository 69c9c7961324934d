"""/metrics against a real `podcap serve`, real captures of real containers, real tcpdump.

What an operator relies on: the scrape parses as Prometheus text; a capture's series carry its
id and workload and follow its counters; they go when the capture goes; request series are
labelled by route template, never by the ids in paths; only the token (or an admin) reads it;
the separate listener answers alone.
"""

from __future__ import annotations

import json
import re
import secrets
import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families

from tests import support
from tests.support import PODCAP, Server, WebPair, free_port, running_server, wait_for

TOKEN = secrets.token_hex(20)


@pytest.fixture(scope="module")
def metrics_port() -> int:
    return free_port()


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory, metrics_port: int) -> Iterator[Server]:
    """A server with a metrics token and a separate listener (the token applies there too)."""
    with running_server(tmp_path_factory.mktemp("metrics"), extra_args=[
            "--metrics-listen", f"127.0.0.1:{metrics_port}"],
            env={"PODCAP_METRICS_TOKEN": TOKEN}) as srv:
        yield srv


Samples = dict[str, list[tuple[dict[str, str], float]]]


def parse(text: str) -> Samples:
    """Every sample by name (``podcap_x_total``, ``..._bucket``): (labels, value)."""
    found: Samples = {}
    for family in text_string_to_metric_families(text):
        for s in family.samples:
            found.setdefault(s.name, []).append((dict(s.labels), s.value))
    return found


def scrape(server: Server) -> Samples:
    r = httpx.get(server.url + "/metrics", headers={"Authorization": f"Bearer {TOKEN}"},
                  timeout=30)
    assert r.status_code == 200, r.text
    assert r.headers["content-type"].startswith("text/plain; version=0.0.4"), r.headers
    return parse(r.text)


def value(samples: Samples, name: str, **labels: str) -> float | None:
    for have, v in samples.get(name, []):
        if all(have.get(k) == want for k, want in labels.items()):
            return v
    return None


def api_captured(server: Server, cid: str) -> int:
    with server.client() as c:
        r = c.get(f"/api/captures/{cid}")
    assert r.status_code == 200, r.text
    return r.json()["capture"]["stats"]["captured"]


# ---- the scrape ----------------------------------------------------------------------------

def test_scrape_parses_with_podcap_names_and_units(server: Server) -> None:
    samples = scrape(server)
    names = set(samples)
    assert all(n.startswith("podcap_") for n in names), sorted(names)
    for must in ("podcap_build_info", "podcap_captures", "podcap_agents",
                 "podcap_agent_connected", "podcap_tcpdump_start_failures_total",
                 "podcap_disk_budget_bytes", "podcap_disk_reserved_bytes",
                 "podcap_disk_stored_bytes", "podcap_kernel_buffer_bytes",
                 "podcap_kernel_buffer_limit_bytes", "podcap_scrape_unreachable_agents"):
        assert must in names, (must, sorted(names))
    # One in-process agent, connected; the budget is serve's default (2 GiB).
    assert value(samples, "podcap_agents", state="connected") == 1
    assert value(samples, "podcap_agents", state="disconnected") == 0
    assert [v for _, v in samples["podcap_disk_budget_bytes"]] == [2 * 1024**3]
    assert {labels["status"] for labels, _ in samples["podcap_captures"]} >= {
        "running", "stopped", "failed"}
    assert value(samples, "podcap_tcpdump_start_failures_total") == 0


def test_kernel_buffer_gauge_drops_back_when_a_capture_stops() -> None:
    """A stopped capture pins no kernel buffer: the node's gauge (what an operator compares
    with quota_node_buffer_bytes) must fall back, or it only ever grows. The collector reads a
    stand-in service here, so the rule is checked fast; the test below does it for real."""
    from dataclasses import replace
    from types import SimpleNamespace

    from podcap.api.metrics.state import StateCollector
    from podcap.controller.fanout import Listing
    from podcap.controller.inventory import OwnedCapture
    from podcap.model import AgentInfo, Capture, CaptureSpec, Status, Workload
    from podcap.views import NodeView

    agent = AgentInfo(id="a" * 16, node="n1", runtimes=("docker",), version="t", started=0.0)
    capture = Capture(id="c" * 32, agent_id=agent.id, spec=CaptureSpec(buffer_kib=2048),
                      workload=Workload(id="w", name="web", runtime="docker", node="n1"))
    held = [capture]
    service = SimpleNamespace(
        start_failures=0, agent_infos=lambda: [agent],
        captures=lambda who: Listing([OwnedCapture(c, "admin", "") for c in held]),
        agents=SimpleNamespace(transports=lambda: {agent.id: SimpleNamespace(
            info=lambda: agent, view=NodeView)},
            rejects=SimpleNamespace(snapshot=lambda: ({}, {}, {}, {}))),
        audit=SimpleNamespace(suppressed={}), quotas=SimpleNamespace(node_buffer_bytes=0))

    def gauge() -> float | None:
        for family in StateCollector(service).collect():  # type: ignore[arg-type]
            if family.name == "podcap_kernel_buffer_bytes":
                return sum(s.value for s in family.samples)
        return None

    assert gauge() == 2048 * 1024
    held[0] = replace(capture, status=Status.STOPPED, stop_time=1.0)
    assert gauge() == 0


def test_running_capture_series_follow_it_and_go_with_it(server: Server, pair: WebPair) -> None:
    name = pair.web.name
    before = scrape(server)
    running_before = value(before, "podcap_captures", status="running") or 0
    cid = server.sniff(name, duration=0, buffer_kib=1024, file_number=2, file_size_mb=3)
    try:
        wait_for(lambda: api_captured(server, cid) > 0, timeout=20, what="packets counted")
        samples = scrape(server)
        ours = {"capture_id": cid, "workload": name}
        for series in ("podcap_capture_packets_captured_total",
                       "podcap_capture_packets_received_total",
                       "podcap_capture_packets_dropped_total", "podcap_capture_file_bytes",
                       "podcap_capture_running", "podcap_capture_start_time_seconds"):
            assert value(samples, series, **ours) is not None, (series, samples.get(series))
        labels = next(lab for lab, _ in samples["podcap_capture_running"]
                      if lab["capture_id"] == cid)
        assert set(labels) == {"capture_id", "workload", "node"}, labels
        assert value(samples, "podcap_capture_running", **ours) == 1
        assert value(samples, "podcap_captures", status="running") == running_before + 1
        # Its ring (2 x 3 MB) and its kernel buffer (1 MiB) count on the node.
        assert (value(samples, "podcap_disk_reserved_bytes") or 0) >= 6_000_000
        assert (value(samples, "podcap_kernel_buffer_bytes") or 0) >= 1024 * 1024

        def agrees() -> bool:
            """The API's count, the scrape's, the API's again: the scrape sits between
            (counters refresh once a second, so a refresh may fall between two reads)."""
            a = api_captured(server, cid)
            m = value(scrape(server), "podcap_capture_packets_captured_total", **ours)
            b = api_captured(server, cid)
            return m is not None and a <= m <= b and (a == m or m == b) and m > 0

        wait_for(agrees, timeout=15, interval=0.05, what="scrape equal to the API's count")
        server.stop_sniffer(cid)
        stopped = scrape(server)  # ended: its series stay, final, until it is deleted
        assert value(stopped, "podcap_capture_running", **ours) == 0
        assert value(stopped, "podcap_capture_packets_captured_total", **ours) == \
            api_captured(server, cid) > 0
    finally:
        with server.client() as c:
            c.delete(f"/v1/sniffer/{cid}")
    gone = scrape(server)
    leftovers = [(n, lab) for n, rows in gone.items() for lab, _ in rows
                 if lab.get("capture_id") == cid]
    assert leftovers == [], leftovers


def test_requests_are_labelled_by_route_template(server: Server, pair: WebPair) -> None:
    cid = server.sniff(pair.web.name, duration=0)
    try:
        with server.client() as c:
            for _ in range(3):
                assert c.get(f"/api/captures/{cid}").status_code == 200
            assert c.get(f"/v1/sniffer/{cid}").status_code == 200
            assert c.get("/api/captures/0123456789abcdef0123456789abcdef").status_code == 404
            assert c.get("/no/such/route/" + secrets.token_hex(4)).status_code == 404
            assert c.get("/").status_code == 200  # the UI's files
            assert c.get("/", headers={"Host": "evil.example"}).status_code == 400  # the edge
        samples = scrape(server)
    finally:
        with server.client() as c:
            c.delete(f"/api/captures/{cid}")
    routes = {lab["route"] for lab, _ in samples["podcap_http_requests_total"]}
    assert "/api/captures/{cid}" in routes and "/v1/sniffer/{cid}" in routes, routes
    assert value(samples, "podcap_http_requests_total", method="GET", route="/{path}",
                 status="404") == 1  # unknown paths fall to the UI's files: one series
    assert value(samples, "podcap_http_requests_total", method="GET", route="(unmatched)",
                 status="400") == 1  # refused before any route
    assert not any(cid in r or "0123456789abcdef" in r or "/no/such" in r for r in routes), routes
    ok = value(samples, "podcap_http_requests_total", method="GET",
               route="/api/captures/{cid}", status="200")
    assert ok is not None and ok >= 3
    assert value(samples, "podcap_http_requests_total", method="GET",
                 route="/api/captures/{cid}", status="404") == 1
    # The histogram: cumulative buckets up to +Inf, whose count equals the counter's.
    count = value(samples, "podcap_http_request_duration_seconds_count", method="GET",
                  route="/api/captures/{cid}", status="200")
    inf = value(samples, "podcap_http_request_duration_seconds_bucket", method="GET",
                route="/api/captures/{cid}", status="200", le="+Inf")
    assert count == inf == ok
    buckets = sorted((float(lab["le"]), v) for lab, v in
                     samples["podcap_http_request_duration_seconds_bucket"]
                     if lab["route"] == "/api/captures/{cid}" and lab["status"] == "200")
    assert [v for _, v in buckets] == sorted(v for _, v in buckets)
    assert (value(samples, "podcap_http_request_duration_seconds_sum", method="GET",
                  route="/api/captures/{cid}", status="200") or 0) > 0


# ---- who may read it -----------------------------------------------------------------------

def test_access_needs_the_token_or_an_admin(server: Server) -> None:
    url = server.url + "/metrics"
    assert httpx.get(url).status_code == 401
    assert httpx.get(url, headers={"Authorization": "Bearer " + "x" * 40}).status_code == 401
    assert httpx.get(url, headers={"Authorization": f"Basic {TOKEN}"}).status_code == 401
    assert httpx.get(url, headers={"Authorization": f"Bearer {TOKEN}"}).status_code == 200
    assert httpx.get(url, headers={"X-Auth-Token": server.token}).status_code == 200
    password = secrets.token_urlsafe(12)
    with server.client() as c:
        r = c.post("/api/users", json={"username": "metrics-reader", "password": password,
                                       "role": "reader"})
        assert r.status_code == 201, r.text
    reader = server.login("metrics-reader", password)
    r = httpx.get(url, headers={"X-Auth-Token": reader})
    assert r.status_code == 403, r.text  # it names every namespace's workloads


def test_separate_listener_answers_metrics_alone(server: Server, metrics_port: int) -> None:
    base = f"http://127.0.0.1:{metrics_port}"
    r = httpx.get(base + "/metrics", headers={"Authorization": f"Bearer {TOKEN}"})
    assert r.status_code == 200 and "podcap_captures" in r.text
    assert parse(r.text)["podcap_agents"]
    assert httpx.get(base + "/metrics").status_code == 401  # the token applies here too
    assert httpx.get(base + "/api/captures",
                     headers={"Authorization": f"Bearer {TOKEN}"}).status_code == 404


def test_loopback_listener_without_token(tmp_path) -> None:
    port = free_port()
    with running_server(tmp_path, extra_args=["--metrics-listen", f"127.0.0.1:{port}"]) as srv:
        base = f"http://127.0.0.1:{port}"
        r = httpx.get(base + "/metrics")
        assert r.status_code == 200 and "podcap_build_info" in r.text
        # A DNS name rebound to 127.0.0.1 reaches nothing.
        assert httpx.get(base + "/metrics", headers={"Host": "evil.example"}).status_code == 400
        assert httpx.get(srv.url + "/metrics").status_code == 401  # the API port still asks


def test_open_listener_without_token_is_refused(tmp_path) -> None:
    for args, says in ((["--metrics-listen", "0.0.0.0:9464"], "--metrics-token"),
                       (["--metrics-token", "short"], "at least 16")):
        done = subprocess.run([PODCAP, "serve", "--insecure-http", "--listen",
                               f"127.0.0.1:{free_port()}", "--data-dir", str(tmp_path / "d"),
                               *args], capture_output=True, text=True, timeout=60,
                              env={"PODCAP_ADMIN_PASSWORD": "x" * 12, "PATH": "/usr/bin:/bin"})
        assert done.returncode != 0
        assert says in done.stderr, done.stderr


def test_tcpdump_start_failures_are_counted(tmp_path, pair: WebPair,
                                            monkeypatch: pytest.MonkeyPatch) -> None:
    """A real server whose /usr/bin/tcpdump, in a mount namespace of its own (nothing else on
    the machine sees it), refuses to capture the way tcpdump does; filter compiles (``-d``)
    still reach the real one."""
    real = tmp_path / "tcpdump.real"
    shutil.copy2("/usr/bin/tcpdump", real)
    fake = tmp_path / "tcpdump.fake"
    fake.write_text(f"""#!/bin/sh
for a in "$@"; do [ "$a" = "-d" ] && exec {real} "$@"; done
echo "tcpdump: any: You don't have permission to capture on that device (injected)" >&2
exit 1
""")
    wrapper = tmp_path / "podcap-in-ns"
    wrapper.write_text(f"""#!/bin/sh
exec unshare --mount --propagation private /bin/sh -c \\
  'mount --bind {fake} /usr/bin/tcpdump && exec {PODCAP} "$@"' sh "$@"
""")
    for script in (fake, wrapper):
        script.chmod(0o755)
    monkeypatch.setattr(support, "PODCAP", str(wrapper))
    with running_server(tmp_path, env={"PODCAP_METRICS_TOKEN": TOKEN}) as srv:
        for n in (1, 2):
            with srv.client() as c:
                r = c.post("/v1/sniffer", params={"f_workload": pair.web.name},
                           json={"sniffer": {"filter": "tcp port 80"}})
            assert r.status_code == 500 and "tcpdump failed to start" in r.text, r.text
            samples = scrape(srv)
            assert value(samples, "podcap_tcpdump_start_failures_total") == n
            assert value(samples, "podcap_captures", status="failed") == n
            assert value(samples, "podcap_captures", status="running") == 0
    assert shutil.which("tcpdump") and subprocess.run(  # the machine's tcpdump is untouched
        ["/usr/bin/tcpdump", "--version"], capture_output=True).returncode == 0


def test_controller_counts_remote_agents_and_their_captures(tmp_path, pair: WebPair) -> None:
    """`podcap controller` with one real `podcap agent` dialling it over loopback (mutual TLS):
    the agent shows connected, its capture carries its node, and it shows disconnected once it
    is gone. The agent tells its disk budget when it connects."""
    from tests.cluster.cluster_support import AgentProc, running_cluster

    with running_cluster(tmp_path, env={"PODCAP_METRICS_TOKEN": TOKEN}) as cluster:
        srv = cluster.server
        assert value(scrape(srv), "podcap_agents", state="connected") == 0
        agent = AgentProc(cluster, "metrics-node", tmp_path / "agent")
        try:
            agent.start(cluster.join_token())
            samples = scrape(srv)
            assert value(samples, "podcap_agents", state="connected") == 1
            assert value(samples, "podcap_agent_connected", node="metrics-node") == 1
            assert value(samples, "podcap_disk_budget_bytes", node="metrics-node") == 2 * 1024**3
            cid = srv.sniff(pair.web.name, duration=0)
            ours = {"capture_id": cid, "workload": pair.web.name, "node": "metrics-node"}
            assert value(scrape(srv), "podcap_capture_running", **ours) == 1
            with srv.client() as c:
                assert c.delete(f"/api/captures/{cid}").status_code == 204
            assert value(scrape(srv), "podcap_capture_running", **ours) is None
        finally:
            agent.stop()
        wait_for(lambda: value(scrape(srv), "podcap_agents", state="disconnected") == 1,
                 timeout=20, what="the agent counted as disconnected")
        assert value(scrape(srv), "podcap_agent_connected", node="metrics-node") == 0


def test_grafana_dashboard_asks_for_series_podcap_serves(server: Server) -> None:
    """docs/grafana-dashboard.json names no metric that a real scrape does not define."""
    dashboard = json.loads((Path(__file__).resolve().parent.parent / "docs" /
                            "grafana-dashboard.json").read_text())
    exprs = [t["expr"] for p in dashboard["panels"] for t in p.get("targets", [])]
    exprs += [v["definition"] for v in dashboard["templating"]["list"] if "definition" in v]
    used = {name for e in exprs for name in re.findall(r"\bpodcap_[a-z_]+", e)}
    r = httpx.get(server.url + "/metrics", headers={"Authorization": f"Bearer {TOKEN}"})
    served = set()
    for name, kind in re.findall(r"^# TYPE (\S+) (\S+)$", r.text, re.M):
        served |= {name} if kind != "histogram" else {f"{name}_{s}" for s in
                                                      ("bucket", "sum", "count")}
    assert len(used) >= 12 and used <= served, sorted(used - served)
