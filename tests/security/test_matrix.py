"""Every route × every role × own and foreign namespace, against a real server.

The routes come from the app's own route table (route_table.py): a route without a row in
POLICY fails ``test_every_route_has_a_policy``, so a new route cannot escape the matrix. Each
policy says who may do what; the expected answer follows from it and the caller:
2xx allowed, 401 no session, 403 visible but not allowed, 404 not visible (another namespace:
its objects do not exist for the caller).
"""

from __future__ import annotations

import itertools
import secrets
from collections.abc import Iterator
from dataclasses import dataclass, field

import httpx
import pytest

from podcap.api.app import create_app
from tests.security.route_table import api_routes
from tests.support import (
    Server,
    free_port,
    remove_container,
    run_container,
    running_server,
    unique,
    wait_for,
)

ALLOW, UNAUTH, DENY, HIDE = "allow", 401, 403, 404
LOGOUTS = {("DELETE", "/v1/auth"), ("POST", "/api/logout")}

# (method, path) -> policy. Policies: public, login, session, read, write, download, admin,
# self (a user's own record; others are admins' only), hook (a webhook's own bearer token: no
# session opens it; tests/recorders test the token).
POLICY: dict[tuple[str, str], str] = {
    ("GET", "/healthz"): "public",
    ("GET", "/readyz"): "public",  # the database answers (a load balancer and the kubelet ask)
    ("GET", "/openapi.json"): "public",
    ("GET", "/api/limits"): "public",
    ("POST", "/v1/auth"): "login",
    ("POST", "/api/login"): "login",
    ("DELETE", "/v1/auth"): "session",
    ("POST", "/api/logout"): "session",
    ("GET", "/api/whoami"): "session",
    ("GET", "/v1/workload"): "session",
    ("GET", "/v1/enforcer"): "session",
    ("GET", "/v1/sniffer"): "session",
    ("GET", "/api/workloads"): "session",
    ("GET", "/api/captures"): "session",
    ("GET", "/api/agents"): "session",
    ("POST", "/api/filter/check"): "session",
    ("GET", "/v1/workload/{wid}"): "read",
    ("GET", "/api/workloads/{wid}"): "read",
    ("GET", "/v1/sniffer/{cid}"): "read",
    ("GET", "/api/captures/{cid}"): "read",
    ("GET", "/api/captures/{cid}/netstate"): "read",
    ("GET", "/api/captures/{cid}/series"): "read",
    ("GET", "/api/captures/{cid}/follow"): "read",  # follower counts and gaps, no packets
    ("GET", "/api/captures/{cid}/summary"): "download",  # names and addresses from packets
    ("POST", "/api/captures/{cid}/conversations/ticket"): "download",
    ("GET", "/api/captures/{cid}/conversations/pcap"): "download",
    ("GET", "/api/capture-groups"): "session",
    ("GET", "/api/capture-groups/{gid}"): "read",
    ("POST", "/api/capture-groups"): "write",
    ("POST", "/api/capture-groups/{gid}/stop"): "write",
    ("DELETE", "/api/capture-groups/{gid}"): "write",
    ("GET", "/api/capture-groups/{gid}/pcapng"): "download",
    ("POST", "/api/capture-groups/{gid}/ticket"): "download",
    ("POST", "/v1/sniffer"): "write",
    ("POST", "/api/captures"): "write",
    ("PATCH", "/v1/sniffer/stop/{cid}"): "write",
    ("POST", "/api/captures/{cid}/stop"): "write",
    ("DELETE", "/v1/sniffer/{cid}"): "write",
    ("DELETE", "/api/captures/{cid}"): "write",
    ("GET", "/v1/sniffer/{cid}/pcap"): "download",
    ("GET", "/api/captures/{cid}/pcap"): "download",
    ("POST", "/api/captures/{cid}/ticket"): "download",
    ("GET", "/api/users"): "admin",
    ("POST", "/api/users"): "admin",
    ("PATCH", "/api/users/{name}"): "admin",
    ("DELETE", "/api/users/{name}"): "admin",
    ("POST", "/api/users/{name}/unlock"): "admin",
    ("GET", "/api/audit"): "admin",
    ("GET", "/metrics"): "admin",  # or the metrics token (tests/test_metrics.py)
    ("DELETE", "/api/agents/{aid}"): "admin",
    ("POST", "/api/agent-tokens"): "admin",
    ("GET", "/api/users/{name}"): "self",
    ("POST", "/api/users/{name}/password"): "self",
    ("GET", "/api/recorders"): "session",
    ("POST", "/api/recorders"): "write",
    ("GET", "/api/recorders/{rid}"): "read",
    ("GET", "/api/recorders/{rid}/snapshots"): "read",
    ("PATCH", "/api/recorders/{rid}"): "write",
    ("DELETE", "/api/recorders/{rid}"): "write",
    ("POST", "/api/recorders/{rid}/trigger"): "write",
    ("POST", "/api/hooks/alertmanager"): "hook",  # Alertmanager's bearer token, no session
}
HOOK_TOKEN = secrets.token_urlsafe(16)


@dataclass
class Caller:
    name: str
    role: str = ""
    namespaces: list[str] = field(default_factory=list)
    download: bool = False
    password: str = ""

    @property
    def anonymous(self) -> bool:
        return not self.role

    def sees(self, namespace: str) -> bool:
        return not self.namespaces or namespace in self.namespaces


CALLERS = [
    Caller("anonymous"),
    Caller("m-reader", "reader"),
    Caller("m-reader-dl", "reader", download=True),
    Caller("m-operator", "operator"),
    Caller("m-operator-a", "operator", ["team-a"], download=True),
    Caller("m-admin", "admin"),
]
OWN, FOREIGN = "team-a", ""  # the scoped operator's namespace, and plain Docker's (none)


def expected(policy: str, caller: Caller, namespace: str, target_self: bool) -> object:
    if policy == "public":
        return ALLOW
    if caller.anonymous or policy == "hook":
        return UNAUTH
    if policy in ("login", "session"):
        return ALLOW
    if policy == "admin":
        return ALLOW if caller.role == "admin" else DENY
    if policy == "self":
        return ALLOW if target_self or caller.role == "admin" else HIDE
    if not caller.sees(namespace):
        return HIDE
    if policy == "read":
        return ALLOW
    if policy == "write":
        return ALLOW if caller.role in ("admin", "operator") else DENY
    if policy == "download":
        return ALLOW if caller.role == "admin" or caller.download else DENY
    raise AssertionError(f"unknown policy {policy}")


def routes() -> list[tuple[str, str]]:
    app = create_app(service=None, auth=None)  # type: ignore[arg-type]
    return sorted({(r.method, r.path) for r in api_routes(app)})


def test_every_route_has_a_policy() -> None:
    found = set(routes())
    assert found - set(POLICY) == set(), "routes without a policy: add them to POLICY"
    assert set(POLICY) - found == set(), "policies for routes that no longer exist"


@dataclass
class Bed:
    server: Server
    workloads: dict[str, str]  # namespace -> workload id
    tokens: dict[str, str] = field(default_factory=dict)
    captures: dict[str, str] = field(default_factory=dict)  # namespace -> a capture
    groups: dict[str, str] = field(default_factory=dict)  # namespace -> a capture group
    recorders: dict[str, str] = field(default_factory=dict)  # namespace -> a recorder

    def token(self, caller: Caller) -> str | None:
        if caller.anonymous:
            return None
        if caller.name not in self.tokens:
            self.tokens[caller.name] = self.server.login(caller.name, caller.password)
        return self.tokens[caller.name]

    def capture(self, namespace: str) -> str:
        """A capture in ``namespace`` (admin's), made anew once a cell has deleted it."""
        if namespace not in self.captures:
            self.captures[namespace] = self.server.sniff(self.workloads[namespace],
                                                         duration=120)
        return self.captures[namespace]

    def group(self, namespace: str) -> str:
        """A capture group of the namespace's workload (admin's), made anew once deleted."""
        if namespace not in self.groups:
            with self.server.client() as c:
                r = c.post("/api/capture-groups", json={"workloads": [self.workloads[namespace]],
                                                        "duration": 120})
            assert r.status_code == 201, r.text
            self.groups[namespace] = r.json()["group"]["id"]
        return self.groups[namespace]

    def recorder(self, namespace: str) -> str:
        """A recorder of the namespace's workload (admin's), made anew once deleted."""
        if namespace not in self.recorders:
            with self.server.client() as c:
                r = c.post("/api/recorders", json=recorder_body(self.workloads[namespace],
                                                                namespace))
                assert r.status_code == 201, r.text
                rid = r.json()["recorder"]["id"]
                wait_for(lambda: c.get(f"/api/recorders/{rid}").json()["recorder"]["members"],
                         timeout=30, what="the recorder's ring")  # a trigger needs one
            self.recorders[namespace] = rid
        return self.recorders[namespace]

    def user(self) -> str:
        name = f"m-target-{secrets.token_hex(3)}"
        with self.server.client() as c:
            assert c.post("/api/users", json={"username": name, "password": "target-password",
                                              "role": "reader"}).status_code == 201
        return name


@pytest.fixture(scope="module")
def bed(tmp_path_factory) -> Iterator[Bed]:
    ports = (free_port(), free_port())
    own = run_container(unique("matrix-a"), ["sleep", "3600"],
                        labels={"io.kubernetes.pod.namespace": OWN})
    foreign = run_container(unique("matrix-x"), ["sleep", "3600"])
    try:
        with running_server(tmp_path_factory.mktemp("matrix"), extra_args=[
                "--trust-namespace-labels", "--agent-listen", f"127.0.0.1:{ports[0]}",
                "--join-listen", f"127.0.0.1:{ports[1]}", "--data-listen",
                f"127.0.0.1:{free_port()}", "--alertmanager-token", HOOK_TOKEN]
                ) as server:
            with server.client() as c:
                for caller in CALLERS[1:]:
                    caller.password = f"{caller.name}-password"
                    r = c.post("/api/users", json={
                        "username": caller.name, "password": caller.password,
                        "role": caller.role, "namespaces": caller.namespaces,
                        "download": caller.download})
                    assert r.status_code == 201, r.text
                assert c.get(f"/api/workloads/{own.id}").json()["workload"]["namespace"] == OWN
            yield Bed(server, {OWN: own.id, FOREIGN: foreign.id})
    finally:
        remove_container(own)
        remove_container(foreign)


def recorder_body(wid: str, namespace: str) -> dict:
    return {"name": f"m-rec-{secrets.token_hex(4)}", "workloads": [wid], "namespace": namespace,
            "window_s": 5, "bytes_mb": 2, "after_s": 0, "cooldown_s": 0}


def request_for(bed: Bed, caller: Caller, method: str, path: str, namespace: str,
                target_self: bool) -> tuple[str, dict]:
    """The concrete URL and request arguments for one cell."""
    wid = bed.workloads[namespace]
    kwargs: dict = {}
    url = path
    if "{cid}" in path:
        url = url.replace("{cid}", bed.capture(namespace))
    if "{gid}" in path:
        url = url.replace("{gid}", bed.group(namespace))
    if "{rid}" in path:
        url = url.replace("{rid}", bed.recorder(namespace))
    url = url.replace("{wid}", wid).replace("{aid}", "0123456789abcdef")
    if "{name}" in path:
        if path.endswith("/password") or method == "GET":
            name = caller.name if target_self and not caller.anonymous else "m-admin"
            if caller.role == "admin" and not target_self:
                name = bed.user()  # a change to another user: a fresh one each time
        else:
            name = bed.user()
        url = url.replace("{name}", name)
    bodies = {
        ("POST", "/v1/sniffer"): {"sniffer": {"duration": 1}},
        ("POST", "/api/captures"): {"workload_id": wid, "duration": 1},
        ("POST", "/api/capture-groups"): {"workloads": [wid], "duration": 1},
        ("POST", "/api/filter/check"): {"filter": "tcp"},
        ("POST", "/api/recorders"): recorder_body(wid, namespace),
        ("PATCH", "/api/recorders/{rid}"): {"after_s": 0},
        ("POST", "/api/recorders/{rid}/trigger"): {},
        ("POST", "/api/hooks/alertmanager"): {"alerts": []},
        ("POST", "/api/users"): {"username": f"m-new-{secrets.token_hex(3)}",
                                 "password": "new-user-password"},
        ("PATCH", "/api/users/{name}"): {"download": False},
        ("POST", "/api/users/{name}/password"): {"password": "changed-password-1",
                                                 "current_password": caller.password},
        ("POST", "/api/agent-tokens"): {},
        ("POST", "/v1/auth"): {"password": {"username": caller.name,
                                            "password": caller.password or "wrong-password"}},
        ("POST", "/api/login"): {"username": caller.name,
                                 "password": caller.password or "wrong-password"},
    }
    if (method, path) in bodies:
        kwargs["json"] = bodies[(method, path)]
    if (method, path) == ("POST", "/v1/sniffer"):
        kwargs["params"] = {"f_workload": wid}
    conversation = {"proto": "tcp", "a": "10.0.0.1", "a_port": 1, "b": "10.0.0.2", "b_port": 2}
    if (method, path) == ("POST", "/api/captures/{cid}/conversations/ticket"):
        kwargs["json"] = conversation
    if (method, path) == ("GET", "/api/captures/{cid}/conversations/pcap"):
        kwargs["params"] = conversation
    return url, kwargs


CELLS = [(m, p, c, ns, me) for (m, p), c, ns, me in itertools.product(
    sorted(POLICY), CALLERS, (OWN, FOREIGN), (True, False))
    if (ns == OWN or any(k in p for k in ("{cid}", "{wid}", "{gid}", "{rid}"))
        or p in ("/v1/sniffer", "/api/captures") and m == "POST")
    and (me or "{name}" in p)]


@pytest.mark.parametrize("method,path,caller,namespace,target_self", CELLS,
                         ids=[f"{m} {p} {c.name} ns={ns or '-'}{' self' if me else ''}"
                              for m, p, c, ns, me in CELLS])
def test_matrix(bed: Bed, method: str, path: str, caller: Caller, namespace: str,
                target_self: bool) -> None:
    policy = POLICY[(method, path)]
    want = expected(policy, caller, namespace, target_self)
    url, kwargs = request_for(bed, caller, method, path, namespace, target_self)
    token = bed.token(caller)
    if (method, path) in LOGOUTS:  # a logout ends the session it is given: a spare one
        token = None if caller.anonymous else bed.server.login(caller.name, caller.password)
    headers = {"X-Auth-Token": token} if token else {}
    r = httpx.request(method, bed.server.url + url, headers=headers, timeout=30, **kwargs)
    if want == ALLOW:
        ok = 200 <= r.status_code < 300 or (path == "/api/agents/{aid}" and r.status_code == 404)
        assert ok, (want, r.status_code, r.text)
    else:
        assert r.status_code == want, (want, r.status_code, r.text)
    if "{cid}" in path and method == "DELETE" and 200 <= r.status_code < 300:
        bed.captures.pop(namespace)
    if "{gid}" in path and method == "DELETE" and 200 <= r.status_code < 300:
        bed.groups.pop(namespace)
    if "{rid}" in path and method == "DELETE" and 200 <= r.status_code < 300:
        bed.recorders.pop(namespace)
    if path.endswith("/password") and r.status_code == 204 and target_self:
        bed.tokens.pop(caller.name)  # its sessions ended; back to the known password
        with bed.server.client() as c:
            assert c.post(f"/api/users/{caller.name}/password",
                          json={"password": caller.password}).status_code == 204
