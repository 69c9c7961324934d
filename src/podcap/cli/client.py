"""A thin client of the native API (docs/API.md) that speaks ``podcap.errors``.

Every native error body names its ``kind`` (its class in the error tree) and becomes that
``PodcapError`` carrying the server's own message; transport failures become ``Unavailable``
with a hint; so the commands above handle one error tree, and the exit codes come from the one
table in ``podcap.errors`` that the server answers by (``cli/errors.py``).
"""

from __future__ import annotations

import secrets
import time
from collections.abc import Iterator
from contextlib import AbstractContextManager, contextmanager
from typing import Any

import httpx

from podcap import errors

START_RETRY_S = 10.0  # a start without an answer is sent again (same key) this long: a failover


def error_from_response(response: httpx.Response) -> errors.PodcapError:
    """The error a non-2xx answer stands for, with the server's message when it sent one. An
    answer that names no kind podcap knows (a proxy's, a load balancer's) is read by its
    status, through the same table."""
    kind_name = ""
    message = ""
    try:
        body = response.json()
    except ValueError:
        body = None
    if isinstance(body, dict):
        named = body.get("kind")
        kind_name = named if isinstance(named, str) else ""
        message = str(body.get("message") or body.get("error") or body.get("detail") or "")
    if not message:
        message = f"HTTP {response.status_code} {response.reason_phrase}".strip()
    kind = errors.KINDS.get(kind_name) or errors.kind_for_status(response.status_code) \
        or errors.PodcapError
    return kind(message)


class ApiClient:
    """The native API over one ``httpx.Client``; the factory in ``podcap.cli.session`` builds it."""

    def __init__(self, http: httpx.Client, token: str | None = None) -> None:
        self.http = http
        self.token = token
        self.server = str(http.base_url).rstrip("/")
        self._logged_in_here = False
        self.token_source = ""  # where a stored token came from, named when the server refuses it
        self.unreachable: list[dict[str, Any]] = []  # nodes the last list could not reach

    # -- plumbing -----------------------------------------------------------------------------

    def _headers(self) -> dict[str, str]:
        return {"X-Auth-Token": self.token} if self.token else {}

    def request(self, method: str, path: str, **kwargs: Any) -> httpx.Response:
        kwargs.setdefault("headers", self._headers())
        try:
            response = self.http.request(method, path, **kwargs)
        except httpx.HTTPError as exc:
            raise _transport_error(self.server, exc) from exc
        if response.is_error:
            raise error_from_response(response)
        return response

    def json(self, method: str, path: str, **kwargs: Any) -> dict[str, Any]:
        response = self.request(method, path, **kwargs)
        if response.status_code == 204 or not response.content:
            return {}
        try:
            data = response.json()
        except ValueError:
            data = None
        if not isinstance(data, dict):
            raise errors.PodcapError(
                f"{self.server}{path} did not answer a JSON object; is this a podcap server?")
        return data

    # -- auth ---------------------------------------------------------------------------------

    def login(self, username: str, password: str) -> dict[str, Any]:
        """Log in and keep the token for this client's later calls."""
        data = self.json("POST", "/api/login", json={"username": username, "password": password})
        self.token = str(data["token"])
        return data

    def login_for_session(self, username: str, password: str) -> None:
        """Log in for one command only; ``close`` logs out so no token outlives the command."""
        self.login(username, password)
        self._logged_in_here = True

    def logout(self) -> None:
        self.json("POST", "/api/logout")
        self.token = None

    def whoami(self) -> dict[str, Any]:
        return self.json("GET", "/api/whoami")

    # -- workloads and captures --------------------------------------------------------------

    def limits(self) -> dict[str, Any]:
        return self.json("GET", "/api/limits")

    def workloads(self, query: str | None = None) -> list[dict[str, Any]]:
        params = {"q": query} if query else None
        data = self.json("GET", "/api/workloads", params=params)
        self.unreachable = list(data.get("unreachable") or [])
        return list(data["workloads"])

    def workload(self, target: str) -> dict[str, Any]:
        """The one workload ``target`` names, by the server's rule (controller/resolver.py)."""
        return dict(self.json("GET", f"/api/workloads/{_segment(target)}")["workload"])

    def captures(self, workload_id: str | None = None) -> list[dict[str, Any]]:
        params = {"workload": workload_id} if workload_id else None
        data = self.json("GET", "/api/captures", params=params)
        self.unreachable = list(data.get("unreachable") or [])
        return list(data["captures"])

    # -- users --------------------------------------------------------------------------------

    def users(self) -> list[dict[str, Any]]:
        return list(self.json("GET", "/api/users")["users"])

    def add_user(self, **fields: Any) -> dict[str, Any]:
        return dict(self.json("POST", "/api/users", json=fields)["user"])

    def change_user(self, username: str, **fields: Any) -> dict[str, Any]:
        return dict(self.json("PATCH", f"/api/users/{_segment(username)}", json=fields)["user"])

    def remove_user(self, username: str) -> None:
        self.json("DELETE", f"/api/users/{_segment(username)}")

    def set_password(self, username: str, password: str, current: str | None = None) -> None:
        body: dict[str, Any] = {"password": password}
        if current is not None:
            body["current_password"] = current
        self.json("POST", f"/api/users/{_segment(username)}/password", json=body)

    def unlock_user(self, username: str) -> None:
        self.json("POST", f"/api/users/{_segment(username)}/unlock")

    # -- agents --------------------------------------------------------------------------

    def agents(self) -> list[dict[str, Any]]:
        return list(self.json("GET", "/api/agents")["agents"])

    def revoke_agent(self, agent_id: str) -> None:
        self.json("DELETE", f"/api/agents/{_segment(agent_id)}")

    def create_join_token(self, ttl_s: int, uses: int) -> dict[str, Any]:
        return self.json("POST", "/api/agent-tokens", json={"ttl_s": ttl_s, "uses": uses})

    def capture(self, capture_id: str) -> dict[str, Any]:
        return dict(self.json("GET", f"/api/captures/{_segment(capture_id)}")["capture"])

    def start(self, workload_id: str, **spec: Any) -> dict[str, Any]:
        """One capture, even through a failover: the request carries an Idempotency-Key and
        is sent again (same key) while no server answers, for up to START_RETRY_S; a replica
        that already began it answers with that capture (controller/start_keys.py)."""
        body = {"workload_id": workload_id, **{k: v for k, v in spec.items() if v is not None}}
        key = {"Idempotency-Key": secrets.token_hex(16)}
        deadline = time.monotonic() + START_RETRY_S
        while True:
            try:
                return dict(self.json("POST", "/api/captures", json=body,
                                      headers={**self._headers(), **key})["capture"])
            except errors.Unavailable as exc:  # no answer at all: sent again; an answer stands
                if not isinstance(exc.__cause__, httpx.TransportError) or \
                        time.monotonic() > deadline:
                    raise
                time.sleep(0.5)

    def stop(self, capture_id: str) -> dict[str, Any]:
        return dict(self.json("POST", f"/api/captures/{_segment(capture_id)}/stop")["capture"])

    def remove(self, capture_id: str) -> None:
        self.json("DELETE", f"/api/captures/{_segment(capture_id)}")

    def pcap(self, capture_id: str, limit: int | None = None,
             headers: dict[str, str] | None = None, fmt: str = "pcap"
             ) -> AbstractContextManager[httpx.Response]:
        """The download as an open streaming response: memory stays flat whatever its size.
        ``headers``: Range and If-Range for a resume (cli/download.py); ``fmt`` "pcapng":
        with names, directions and the workload's identity (docs/WIRESHARK.md)."""
        params: dict[str, Any] = {} if limit is None else {"limit": limit}
        if fmt != "pcap":
            params["format"] = fmt
        return self.stream(f"/api/captures/{_segment(capture_id)}/pcap", params or None,
                           headers)

    @contextmanager
    def stream(self, url: str, params: dict[str, Any] | None = None,
               headers: dict[str, str] | None = None) -> Iterator[httpx.Response]:
        """A GET whose body is read as it arrives: every download, follow and pipe of the CLI
        (capture get, group get, capture live/follow, the extcap). No read timeout: a followed
        download waits for packets. An error answer becomes podcap's error, as for
        ``request``; a connection lost once the answer began becomes ``Unavailable`` saying the
        stream broke off. Leaving the block (done, Ctrl-C, a reader's broken pipe) closes it."""
        started = False
        try:
            with self.http.stream("GET", url, params=params,
                                  headers={**self._headers(), **(headers or {})},
                                  timeout=httpx.Timeout(30.0, read=None)) as response:
                if response.is_error:
                    response.read()
                    raise error_from_response(response)
                started = True
                yield response
        except httpx.HTTPError as exc:
            if started:
                raise errors.Unavailable(
                    f"the stream from {self.server} broke off: {exc}") from exc
            raise _transport_error(self.server, exc) from exc

    def close(self) -> None:
        try:
            if self._logged_in_here and self.token:
                self.logout()
        except errors.PodcapError:
            pass  # the token expires on the server anyway; a failed logout must not mask a result
        finally:
            self.http.close()

    def __enter__(self) -> ApiClient:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()


def _segment(value: str) -> str:
    """An id as one path segment: `../x` must reach the server as an id it refuses, not a route."""
    from urllib.parse import quote

    return quote(value, safe="")


def _transport_error(server: str, exc: httpx.HTTPError) -> errors.PodcapError:
    text = str(exc) or type(exc).__name__
    if "CERTIFICATE_VERIFY_FAILED" in text or "certificate verify failed" in text:
        return errors.Unavailable(
            f"cannot verify the TLS certificate of {server}: {text}. Pass --cacert with the "
            "server's certificate (podcap serve keeps it as tls.crt in its data dir), or -k to "
            "skip verification")
    if isinstance(exc, httpx.TimeoutException):
        return errors.Unavailable(f"{server} did not answer in time: {text}")
    return errors.Unavailable(f"cannot reach {server}: {text}")
