"""Quotas through a real server with small limits: per user, per namespace, per node; each
refusal is a 429 naming its limit and setting, and GET /api/limits shows them."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.support import Server, remove_container, run_container, running_server, unique

MiB = 1024 * 1024
QUOTAS = {
    "PODCAP_QUOTA_USER_CAPTURES": "2",
    "PODCAP_QUOTA_NAMESPACE_CAPTURES": "3",
    "PODCAP_QUOTA_USER_DISK_BYTES": str(60 * 1_000_000),
    "PODCAP_QUOTA_USER_BUFFER_BYTES": str(48 * MiB),
    "PODCAP_QUOTA_NAMESPACE_BUFFER_BYTES": str(64 * MiB),
    "PODCAP_QUOTA_NAMESPACE_DISK_BYTES": "0",  # off
    "PODCAP_QUOTA_NODE_BUFFER_BYTES": str(80 * MiB),
    "PODCAP_TRUST_NAMESPACE_LABELS": "true",  # namespaces of test containers come from labels
}


@pytest.fixture(scope="module")
def srv(tmp_path_factory) -> Iterator[Server]:
    with running_server(tmp_path_factory.mktemp("quotas"), env=QUOTAS) as server:
        with server.client() as c:
            for name in ("q1", "q2", "q3"):
                assert c.post("/api/users", json={"username": name, "password": "q-password",
                                                  "role": "operator"}).status_code == 201
        yield server


@pytest.fixture(scope="module")
def box() -> Iterator[object]:
    c = run_container(unique("quota"), ["sleep", "3600"])
    yield c
    remove_container(c)


@pytest.fixture(autouse=True)
def clean(srv: Server) -> Iterator[None]:
    yield
    with srv.client() as c:
        for cap in c.get("/api/captures").json()["captures"]:
            c.delete(f"/api/captures/{cap['id']}")


def start(srv: Server, user: str, wid: str, token: str | None = None, **spec: int):
    with srv.client(token or srv.login(user, "q-password")) as c:
        return c.post("/api/captures", json={"workload_id": wid, "buffer_kib": 1024,
                                             "file_size_mb": 1, "file_number": 1, **spec})


def refused(r, setting: str) -> None:
    assert r.status_code == 429, r.text
    body = r.json()
    assert body["message"].startswith("quota reached") and f"quota_{setting}" in \
        body["message"] and f"PODCAP_QUOTA_{setting.upper()}" in body["message"], body


def test_limits_show_the_quotas(srv: Server) -> None:
    with srv.client() as c:
        got = c.get("/api/limits").json()
    assert got["quota_user_captures"] == 2 and got["quota_namespace_disk_bytes"] == 0
    assert got["quota_node_buffer_bytes"] == 80 * MiB
    assert got["file_number_max"] == 50  # the capture limits are still there


def test_running_captures_per_user_and_per_namespace(srv: Server, box) -> None:
    assert start(srv, "q1", box.id).status_code == 201
    assert start(srv, "q1", box.id).status_code == 201
    refused(start(srv, "q1", box.id), "user_captures")
    assert start(srv, "q2", box.id).status_code == 201  # a user of its own, same namespace
    refused(start(srv, "q2", box.id), "namespace_captures")
    with srv.client() as c:  # a stopped capture no longer runs: room again
        first = c.get("/api/captures").json()["captures"][-1]["id"]
        assert c.post(f"/api/captures/{first}/stop").status_code == 200
    assert start(srv, "q3", box.id).status_code == 201


def test_disk_per_user(srv: Server, box) -> None:
    assert start(srv, "q1", box.id, file_size_mb=20, file_number=3).status_code == 201
    refused(start(srv, "q1", box.id, file_size_mb=1, file_number=1), "user_disk_bytes")


def test_kernel_buffer_per_user_namespace_and_node(srv: Server, box) -> None:
    refused(start(srv, "q1", box.id, buffer_kib=49 * 1024), "user_buffer_bytes")
    assert start(srv, "q1", box.id, buffer_kib=40 * 1024).status_code == 201
    refused(start(srv, "q2", box.id, buffer_kib=30 * 1024), "namespace_buffer_bytes")
    assert start(srv, "q2", box.id, buffer_kib=20 * 1024).status_code == 201


def test_node_budget(srv: Server, box) -> None:
    labelled = run_container(unique("quota-ns"), ["sleep", "3600"],
                             labels={"io.kubernetes.pod.namespace": "team-q"})
    try:
        assert start(srv, "q1", box.id, buffer_kib=40 * 1024).status_code == 201
        assert start(srv, "q2", labelled.id, buffer_kib=30 * 1024).status_code == 201
        # Another user, another namespace: only the node's budget (80 MiB) is left to refuse.
        refused(start(srv, "q3", labelled.id, buffer_kib=20 * 1024), "node_buffer_bytes")
    finally:
        remove_container(labelled)


def test_parallel_starts_cannot_overshoot(srv: Server, box) -> None:
    from concurrent.futures import ThreadPoolExecutor
    token = srv.login("q1", "q-password")  # the starts race, not six password hashes
    with ThreadPoolExecutor(6) as pool:
        answers = list(pool.map(lambda _: start(srv, "q1", box.id, token).status_code,
                                range(6)))
    assert sorted(answers) == [201, 201, 429, 429, 429, 429], answers


def test_a_stopped_capture_counts_the_bytes_it_kept() -> None:
    """The rule itself, on hand-made captures: stopped ones hold disk, not a slot or RAM."""
    from podcap.controller.quotas import Held, Quotas
    from podcap.errors import ResourceExhausted
    from podcap.model import CaptureSpec

    quotas = Quotas(user_captures=1, user_disk_bytes=10_000_000, user_buffer_bytes=2 * MiB,
                    namespace_captures=0, namespace_disk_bytes=0, namespace_buffer_bytes=0,
                    node_buffer_bytes=0)
    small = CaptureSpec(file_size_mb=1, file_number=1, buffer_kib=1024)
    stopped = Held("u", "ns", "a1", CaptureSpec(file_size_mb=50, buffer_kib=262144),
                   "stopped", 8_000_000)
    quotas.check("u", "ns", "a1", small, [stopped])  # 8 MB kept + 1 MB ring: fits
    with pytest.raises(ResourceExhausted, match="quota_user_disk_bytes"):
        quotas.check("u", "ns", "a1", small, [stopped, stopped])
    quotas.check("someone-else", "ns", "a1", small, [stopped, stopped])
