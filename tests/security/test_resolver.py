"""Workload identity: the one server-side rule (controller/resolver.py), on hand-made workloads
and through a real server with real containers."""

from __future__ import annotations

import statistics
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from podcap.controller.resolver import resolve
from podcap.model import Workload
from tests.support import Server, remove_container, run_container, running_server, unique


@pytest.fixture(scope="module")
def server(tmp_path_factory) -> Iterator[Server]:
    """Namespaces of these Docker test containers come from their labels: trusted here."""
    with running_server(tmp_path_factory.mktemp("resolver"),
                        extra_args=["--trust-namespace-labels"]) as srv:
        yield srv


def wl(wid: str, name: str) -> tuple[Workload, str]:
    return Workload(id=wid, name=name, runtime="docker", node="n1"), wid[:4]


A = "a1b2c3d4e5f6" + "0" * 52
B = "b" * 64
HEXNAME = "cafe"  # a name that is hex, but shorter than a short id


def names(found: list[tuple[Workload, str]]) -> list[str]:
    return [w.name for w, _ in found]


def test_the_rule() -> None:
    every = [wl(A, "web"), wl(B, A[:12]), wl("c" * 64, HEXNAME), wl("cafe" + "1" * 60, "db")]
    assert names(resolve(A, every)) == ["web"]  # a full id
    assert names(resolve(A[:12], every)) == ["web"]  # a short id, though B is named so
    assert names(resolve(A[:20], every)) == ["web"]
    assert names(resolve("web", every)) == ["web"]
    assert names(resolve(HEXNAME, every)) == [HEXNAME]  # too short to be an id
    assert names(resolve("b" * 11, every)) == []  # no prefix below 12, and no such name
    assert names(resolve("missing", every)) == []
    twice = [wl(A, "web"), wl(B, "web")]
    assert names(resolve("web", twice)) == ["web", "web"]  # ambiguous: the caller refuses


def test_a_full_id_is_exact_whatever_its_shape() -> None:
    """Ids that are not 64 hex characters (other runtimes, tests) are found by equality, and a
    full id is never widened into a prefix of a longer one."""
    odd = [wl("pod-1/ctr", "web"), wl("pod-1/ctr-2", "db")]
    assert names(resolve("pod-1/ctr", odd)) == ["web"]
    longer = [wl(A[:40], "short"), wl(A, "long")]
    assert names(resolve(A[:40], longer)) == ["short"]
    assert names(resolve(A[:39], longer)) == ["short", "long"]


def test_a_name_never_shadows_a_short_id(server: Server) -> None:
    target = run_container(unique("target"), ["sleep", "300"])
    impostor = run_container(target.id[:12], ["sleep", "300"])
    try:
        with server.client() as c:
            for path in (f"/api/workloads/{target.id[:12]}", f"/v1/workload/{target.id[:12]}"):
                r = c.get(path)
                assert r.status_code == 200, r.text
                assert r.json()["workload"]["id"] == target.id, path
            r = c.post("/api/captures", json={"workload_id": target.id[:12], "duration": 1})
            assert r.status_code == 201 and r.json()["capture"]["workload_id"] == target.id
            r = c.get(f"/api/workloads/{target.name}")  # names still work
            assert r.json()["workload"]["id"] == target.id
    finally:
        remove_container(impostor)
        remove_container(target)


def test_hidden_and_missing_look_the_same(server: Server, pair) -> None:
    with server.client() as c:
        assert c.post("/api/users", json={"username": "scoped-r", "password": "scoped-password",
                                          "role": "reader", "namespaces": ["team-r"]}
                      ).status_code == 201
    hidden, missing = pair.web.id, "f" * 64
    with server.client(server.login("scoped-r", "scoped-password")) as c:
        answers = {}
        times: dict[str, list[float]] = {"hidden": [], "missing": []}
        for _ in range(15):
            for kind, wid in (("hidden", hidden), ("missing", missing)):
                t0 = time.perf_counter()
                r = c.get(f"/v1/workload/{wid}")
                times[kind].append(time.perf_counter() - t0)
                answers[kind] = (r.status_code, r.json()["message"].replace(wid, "ID"))
    assert answers["hidden"] == answers["missing"] == (404, "workload ID not found")
    ratio = statistics.median(times["hidden"]) / statistics.median(times["missing"])
    assert 0.6 < ratio < 1.6, times


def test_a_hidden_name_is_not_ambiguous(server: Server, pair) -> None:
    """A name shared with a workload the caller cannot see resolves to the one it can."""
    twin = run_container(unique("twin"), ["sleep", "300"],
                         labels={"io.kubernetes.pod.namespace": "team-t"})
    try:
        with server.client() as c:
            assert c.post("/api/users", json={"username": "team-t-op", "password":
                                              "team-t-password", "role": "operator",
                                              "namespaces": ["team-t"]}).status_code == 201
        with server.client(server.login("team-t-op", "team-t-password")) as c:
            r = c.get(f"/api/workloads/{twin.name}")
            assert r.status_code == 200 and r.json()["workload"]["id"] == twin.id
            assert c.get(f"/api/workloads/{pair.web.name}").status_code == 404
    finally:
        remove_container(twin)
    assert httpx.get(server.url + "/healthz").status_code == 200


def test_docker_namespace_labels_are_not_trusted_by_default(tmp_path: Path) -> None:
    """Anyone allowed to `docker run` can write io.kubernetes.pod.namespace: without
    --trust-namespace-labels such a container is in no namespace, so a user scoped to the
    namespace it claims cannot see it, and a capture of it is recorded in no namespace."""
    claimed = run_container(unique("claims-ns"), ["sleep", "300"],
                            labels={"io.kubernetes.pod.namespace": "team-c"})
    try:
        with running_server(tmp_path) as plain:
            with plain.client() as c:
                assert c.get(f"/api/workloads/{claimed.id}").json()["workload"][
                    "namespace"] == ""
                assert c.post("/api/users", json={
                    "username": "team-c-op", "password": "team-c-password", "role": "operator",
                    "namespaces": ["team-c"]}).status_code == 201
                cid = c.post("/api/captures", json={"workload_id": claimed.id,
                                                    "duration": 1}).json()["capture"]["id"]
                assert c.get(f"/api/captures/{cid}").json()["capture"]["namespace"] == ""
            with plain.client(plain.login("team-c-op", "team-c-password")) as c:
                assert c.get(f"/api/workloads/{claimed.id}").status_code == 404
                assert c.get(f"/api/captures/{cid}").status_code == 404
                assert c.get("/api/workloads").json()["workloads"] == []
    finally:
        remove_container(claimed)


def test_a_named_node_is_asked_alone(tmp_path: Path) -> None:
    """With the node named (f_enforcer / agent_id), a slow other node costs nothing; a name on
    another node is refused as not that node's; hidden and missing are one NotFound."""
    from podcap.controller.principal import Principal
    from podcap.errors import InvalidArgument, NotFound
    from tests.test_fanout import ADMIN, FakeAgent, _service

    fast, slow = FakeAgent("a" * 16, "node-a"), FakeAgent("b" * 16, "node-b", delay=5.0)
    svc = _service(tmp_path, fast, slow)
    began = time.monotonic()
    assert svc.workload(ADMIN, "web-node-a", "a" * 16).workload.id == fast.workload.id
    assert time.monotonic() - began < 0.5
    fast2 = FakeAgent("c" * 16, "node-c")
    (tmp_path / "2").mkdir()
    svc = _service(tmp_path / "2", fast, fast2)
    with pytest.raises(InvalidArgument, match="is not the node"):
        svc.workload(ADMIN, "web-node-c", "a" * 16)
    scoped = Principal("s", "reader", frozenset({"team-x"}))
    for wid in ("web-node-a", "missing"):
        with pytest.raises(NotFound, match=f"workload {wid} not found"):
            svc.workload(scoped, wid, "a" * 16)
