"""CLI behaviour that a single real Docker host cannot show, against a fake behind httpx.

Duplicate workload names happen only across nodes, and hostile server answers (a path in
Content-Disposition) only from a broken or malicious server; both are faked here through
``httpx.MockTransport``, which is why this file exists. Everything else is proven against a real
`podcap serve` in test_cli.py.
"""

from __future__ import annotations

import io
import json
import stat
import sys
import types

import httpx
import pytest
from typer.testing import CliRunner

from podcap import errors
from podcap.cli import config, live
from podcap.cli.client import ApiClient
from podcap.cli.main import app
from podcap.cli.session import Session
from podcap.controller.resolver import resolve
from podcap.model import Workload

PCAP = bytes.fromhex("d4c3b2a1020004000000000000000000ffff000001000000")


def workload(wid: str, name: str, node: str) -> dict:
    return {"id": wid, "name": name, "node": node, "image": "busybox", "state": "running",
            "ips": ["10.0.0.2"], "cap_sniff": True, "cap_sniff_reason": "", "pod_name": "",
            "namespace": ""}


WORKLOADS = [workload("aaaa1111", "web", "node-a"), workload("bbbb2222", "web", "node-b"),
             workload("cccc3333", "db", "node-a")]


ASKED: list[str] = []  # the workload texts the CLI sent to the server


def lookup(text: str) -> httpx.Response:
    """The server's answer to ``GET /api/workloads/{text}``, by the server's own rule."""
    ASKED.append(text)
    hits = resolve(text, [(Workload(w["id"], w["name"], "docker", w["node"]), w)
                          for w in WORKLOADS])
    if not hits:
        return httpx.Response(404, json={"code": 7, "error": "Object not found",
                                         "message": f"workload {text} not found"})
    if len(hits) > 1:
        nodes = ", ".join(sorted(w["node"] for _, w in hits))
        return httpx.Response(400, json={"code": 6, "error": "invalid",
                                         "message": f"{text} names workloads on several nodes "
                                         f"({nodes}); use the workload id"})
    return httpx.Response(200, json={"workload": hits[0][1]})


def fake(request: httpx.Request) -> httpx.Response:
    path = request.url.path
    if path == "/api/workloads":
        return httpx.Response(200, json={"workloads": WORKLOADS})
    if path.startswith("/api/workloads/"):
        return lookup(path.removeprefix("/api/workloads/"))
    if path == "/api/captures" and request.method == "GET":
        return httpx.Response(200, json={"captures": [{"id": "cap1"}, {"id": "cap2"},
                                                       {"id": "boom"}]})
    if path == "/api/captures" and request.method == "POST":
        body = json.loads(request.content)
        return httpx.Response(201, json={"capture": {"id": "cap1", "status": "running",
                                                     "workload_id": body["workload_id"]}})
    if path == "/api/captures/cap1":
        return httpx.Response(200, json={"capture": {"id": "cap1", "size": len(PCAP)}})
    if path == "/api/captures/cap1/pcap":
        return httpx.Response(200, content=PCAP, headers={
            "content-disposition": 'attachment; filename="../../etc/evil.pcap"'})
    if path == "/api/captures/boom":
        return httpx.Response(503, json={"code": 21, "error": "agent", "message": "agent gone"})
    return httpx.Response(404, json={"code": 7, "error": "Object not found",
                                     "message": f"no such thing: {path}"})


@pytest.fixture
def run(tmp_path, monkeypatch):
    monkeypatch.setenv("PODCAP_CONFIG", str(tmp_path / "cfg" / "config.json"))
    monkeypatch.chdir(tmp_path)

    def invoke(*args: str):
        api = ApiClient(httpx.Client(base_url="http://fake", transport=httpx.MockTransport(fake)),
                        token="t")
        return CliRunner().invoke(app, list(args), obj=Session(api=api))
    return invoke


def test_ambiguous_name_shows_the_servers_nodes(run):
    result = run("capture", "start", "web")
    assert result.exit_code == 2, result.output
    assert "node-a" in result.output and "node-b" in result.output


def test_the_typed_workload_goes_to_the_server_as_typed(run):
    """The server's resolver decides (controller/resolver.py); the CLI has no rule of its own:
    a short prefix the server does not take is not found."""
    ASKED.clear()
    for target, wid in (("db", "cccc3333"), ("bbbb2222", "bbbb2222")):
        result = run("capture", "start", target, "-o", "json")
        assert result.exit_code == 0, result.output
        assert json.loads(result.stdout)["capture"]["workload_id"] == wid
    assert run("capture", "start", "aaaa").exit_code == 4
    assert ASKED == ["db", "bbbb2222", "aaaa"]


def test_unknown_workload_and_server_errors_map_to_exit_codes(run):
    assert run("capture", "start", "nope").exit_code == 4
    ambiguous = run("capture", "show", "cap")
    assert ambiguous.exit_code == 2 and "cap1" in ambiguous.output and "cap2" in ambiguous.output
    result = run("capture", "show", "boom")
    assert result.exit_code == 5 and "agent gone" in result.output


def test_download_keeps_a_server_chosen_name_inside_the_directory(run, tmp_path):
    result = run("capture", "get", "cap1")
    assert result.exit_code == 0, result.output
    assert (tmp_path / "evil.pcap").read_bytes() == PCAP
    assert run("capture", "get", "cap1").exit_code == 6  # exists, no --force
    assert run("capture", "get", "cap1", "--force", "-o", str(tmp_path / "x.pcap")).exit_code == 0
    assert (tmp_path / "x.pcap").read_bytes() == PCAP


def test_login_file_is_private_and_atomic(tmp_path, monkeypatch):
    path = tmp_path / "d" / "config.json"
    monkeypatch.setenv("PODCAP_CONFIG", str(path))
    path.parent.mkdir()
    path.write_text("{}")
    path.chmod(0o644)  # a looser file left by someone else is replaced, not reused
    assert config.save(config.LoginFile(server="https://h:1", token="secret")) == path
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert config.load() == config.LoginFile(server="https://h:1", token="secret")
    assert [p.name for p in path.parent.iterdir()] == ["config.json"]


def test_xdg_config_home_is_respected(tmp_path, monkeypatch):
    monkeypatch.delenv("PODCAP_CONFIG", raising=False)
    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path))
    assert config.config_path() == tmp_path / "podcap" / "config.json"


def test_serve_passes_only_given_options(monkeypatch):
    seen = {}
    monkeypatch.setitem(sys.modules, "podcap.server",
                        types.SimpleNamespace(serve=lambda s: seen.setdefault("s", s)))
    env = {"PODCAP_RUNTIME": "cri", "PODCAP_LISTEN": "0.0.0.0:1", "PODCAP_DISK_BUDGET": "7"}
    result = CliRunner().invoke(app, ["serve", "--listen", "127.0.0.1:9", "--insecure-http",
                                      "--data-dir", "/tmp/d"], env=env)
    assert result.exit_code == 0, result.output
    s = seen["s"]
    assert (s.listen, s.runtime, s.disk_budget, str(s.data_dir), s.insecure_http) == (
        "127.0.0.1:9", "cri", 7, "/tmp/d", True)


def test_a_stream_that_breaks_off_says_so_and_keeps_what_came():
    """`ApiClient.stream` (every download and pipe): a connection lost after the answer began
    is the stream breaking off, not a server it cannot reach; the bytes before it were
    written."""
    class Broken(httpx.SyncByteStream):
        def __iter__(self):
            yield PCAP
            raise httpx.ReadError("connection reset by peer")

    def answer(request: httpx.Request) -> httpx.Response:
        return httpx.Response(200, stream=Broken())

    def refuse(request: httpx.Request) -> httpx.Response:
        raise httpx.ConnectError("connection refused", request=request)

    sink = io.BytesIO()
    api = ApiClient(httpx.Client(base_url="http://fake", transport=httpx.MockTransport(answer)))
    with pytest.raises(errors.Unavailable) as broke:
        live.copy_follow(api, "cap1", sink)
    assert broke.value.message == ("the stream from http://fake broke off: connection reset "
                                   "by peer")
    assert sink.getvalue() == PCAP
    api = ApiClient(httpx.Client(base_url="http://fake", transport=httpx.MockTransport(refuse)))
    with pytest.raises(errors.Unavailable) as unreachable:
        live.copy_follow(api, "cap1", sink)
    assert unreachable.value.message == "cannot reach http://fake: connection refused"
