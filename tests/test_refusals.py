"""Every refusal: right HTTP status, NeuVector code, a message saying what to change — and
nothing a user types ever runs."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.support import Server, WebPair, remove_container, run_container, unique

CANARY = Path("/tmp/podcap-canary-must-not-exist")

HOSTILE_FILTERS = [
    f"tcp; touch {CANARY}",
    f"tcp && touch {CANARY}",
    f"tcp || touch {CANARY}",
    f"tcp | touch {CANARY}",
    f"$(touch {CANARY})",
    f"tcp $(touch {CANARY})",
    f"`touch {CANARY}`",
    f"tcp `touch {CANARY}`",
    f"tcp\ntouch {CANARY}",
    f"tcp\r\ntouch {CANARY}",
    f"-w {CANARY}",
    "-w /etc/x",
    f"-z /bin/touch -w {CANARY}",
    "-z",
    f"tcp -z touch -w {CANARY}",
    "--help",
    "-V /etc/passwd",
    "-r /etc/shadow",
    f"tcp' ; touch {CANARY} '",
    f'tcp" ; touch {CANARY} "',
    f"tcp > {CANARY}",
    "tcp < /etc/passwd",
    f"tcp & touch {CANARY} &",
    f"${{IFS}}touch${{IFS}}{CANARY}",
    "\x1b[31mtcp",
    "tcp port ８０",
    "host ☃",
    "tcp 'port 80'",
    "\\x74cp",
    "tcp port 99999999",
    "ip host 300.1.1.1",
    "x" * 10_000,
    "(" * 500,
    "tcp port",
]


def sniff(server: Server, params: dict | None, body: object, raw: bytes | None = None):
    with server.client() as c:
        if raw is not None:
            return c.post("/v1/sniffer", params=params, content=raw)
        return c.post("/v1/sniffer", params=params, json=body)


def assert_error(r, status: int, code: int, words: str) -> None:
    assert r.status_code == status, r.text
    body = r.json()
    # /v1 keeps NeuVector's body exactly; the native API also names the error's kind.
    native = not r.request.url.path.startswith("/v1/")
    assert set(body) == {"code", "error", "message"} | ({"kind"} if native else set()), body
    assert body["code"] == code, body
    assert words.lower() in body["message"].lower(), body


@pytest.mark.parametrize("options,reason", [
    ({"network_mode": "host"}, "host network"),
    # Deployments label podcap's container podcap.self=true (its cgroup id is also matched).
    ({"labels": {"podcap.self": "true"}}, "podcap's own container"),
])
def test_uncapturable_running_container(server: Server, options: dict, reason: str) -> None:
    c = run_container(unique("nocap"), ["sleep", "300"], **options)
    try:
        with server.client() as cl:
            wl = cl.get(f"/v1/workload/{c.id}").json()["workload"]
        assert wl["cap_sniff"] is False and wl["cap_sniff_reason"] == reason
        r = sniff(server, {"f_workload": c.id}, {"sniffer": {}})
        assert_error(r, 400, 6, "Unable to capture the container traffic")
        assert reason in r.json()["message"]
    finally:
        remove_container(c)


def test_stopped_container(server: Server) -> None:
    c = run_container(unique("stopped"), ["true"])
    try:
        c.wait(timeout=10)
        assert_error(sniff(server, {"f_workload": c.id}, {"sniffer": {}}), 400, 6,
                     "not running")
    finally:
        remove_container(c)


def test_unknown_workload(server: Server) -> None:
    assert_error(sniff(server, {"f_workload": "f" * 64}, {"sniffer": {}}), 404, 7,
                 "not found")


def test_missing_workload_filter(server: Server) -> None:
    assert_error(sniff(server, None, {"sniffer": {}}), 400, 12,
                 "Enforcer or workload filter must be provided")


def test_body_not_json_or_without_sniffer(server: Server, pair: WebPair) -> None:
    assert_error(sniff(server, {"f_workload": pair.web.id}, None, raw=b"{not json"), 400, 6,
                 "not valid JSON")
    assert_error(sniff(server, {"f_workload": pair.web.id}, {"other": 1}), 400, 6, "sniffer")


@pytest.mark.parametrize("number,words", [(0, "between 1 and 50"),
                                          (51, "Maximum pcap file count is 50"),
                                          ("five", "whole number")])
def test_file_number(server: Server, pair: WebPair, number: object, words: str) -> None:
    assert_error(sniff(server, {"f_workload": pair.web.id}, {"sniffer": {"file_number": number}}),
                 400, 6, words)


def test_disk_budget(server: Server, pair: WebPair) -> None:
    # 3 GB: over the node's 2 GiB budget, under the user's 4 GiB quota (tests/security).
    body = {"sniffer": {"file_number": 30, "file_size_mb": 100}}
    assert_error(sniff(server, {"f_workload": pair.web.id}, body), 400, 6, "disk budget")


def test_hostile_filters_are_refused_and_never_run(server: Server, pair: WebPair) -> None:
    CANARY.unlink(missing_ok=True)
    assert len(HOSTILE_FILTERS) >= 30
    with server.client() as c:
        before = len(c.get("/v1/sniffer").json()["sniffers"])
    for bad in HOSTILE_FILTERS:
        r = sniff(server, {"f_workload": pair.web.id}, {"sniffer": {"filter": bad}})
        assert r.status_code == 400, (bad, r.text)
        body = r.json()
        assert body["code"] == 6 and body["message"], (bad, body)
        assert "filter" in body["message"], (bad, body)
    with server.client() as c:
        after = c.get("/v1/sniffer").json()["sniffers"]
        assert len(after) == before, after  # nothing started
        check = c.post("/api/filter/check", json={"filter": "tcp port"}).json()
    assert check == {"ok": False,
                     "message": "invalid filter: can't parse filter expression: syntax error"}
    assert not CANARY.exists()


CAPTURE_ROUTES = ("GET /v1/sniffer/{}", "PATCH /v1/sniffer/stop/{}", "DELETE /v1/sniffer/{}",
                  "GET /v1/sniffer/{}/pcap", "GET /api/captures/{}", "POST /api/captures/{}/stop",
                  "DELETE /api/captures/{}", "GET /api/captures/{}/pcap")


@pytest.mark.parametrize("bad", ["x" * 1000, "ABC", "0" * 33, "A" * 32, "g" * 32, "..x"])
def test_malformed_capture_ids(server: Server, bad: str) -> None:
    with server.client() as c:
        for route in CAPTURE_ROUTES:
            method, path = route.format(bad).split(" ")
            r = c.request(method, path)
            assert_error(r, 400, 6, "invalid capture id")
            assert "expected 32 lowercase hex characters" in r.json()["message"], route


@pytest.mark.parametrize("bad", ["../x", "..%2F..%2Fetc"])
def test_ids_with_a_path_in_them_reach_no_capture_route(server: Server, bad: str) -> None:
    """httpx resolves "..", the server decodes %2F: either way the path has other segments,
    so no capture route matches (405 where another route has that path)."""
    expected = {"GET": (404, "no such route"), "PATCH": (405, "Method Not Allowed"),
                "DELETE": (405, "Method Not Allowed")}
    with server.client() as c:
        for route in CAPTURE_ROUTES[:5]:
            method, path = route.format(bad).split(" ")
            status, words = expected[method]
            assert_error(c.request(method, path), status, 1, words)


def test_unknown_capture_id(server: Server) -> None:
    with server.client() as c:
        r = c.get("/v1/sniffer/" + "a" * 32)
    assert_error(r, 404, 7, "not found")


def test_malformed_workload_id(server: Server) -> None:
    assert_error(sniff(server, {"f_workload": "x" * 1000}, {"sniffer": {}}), 400, 6,
                 "invalid workload id")
