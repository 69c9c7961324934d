"""The benchmarks' ``podcap serve``: the tests' harness (tests/support.Server: the process on
loopback, its log, start and stop), with a logged-in client kept open and calls of its REST API
that raise ``ApiError`` rather than assert."""

from __future__ import annotations

import secrets
import signal
import time
from pathlib import Path
from typing import Any

import httpx

from tests.support import Server, free_port


class ApiError(RuntimeError):
    pass


class Podcap(Server):
    """``podcap serve --insecure-http --listen 127.0.0.1:PORT --data-dir WORKDIR/NAME/data``."""

    def __init__(self, workdir: Path, name: str = "server", extra_args: list[str] | None = None):
        data_dir = workdir / name / "data"
        data_dir.mkdir(parents=True, exist_ok=True)
        super().__init__(data_dir=data_dir, port=free_port(), password=secrets.token_urlsafe(12),
                         extra_args=list(extra_args or []))
        self._http: httpx.Client | None = None

    def start(self, timeout: float = 60.0) -> Podcap:
        self._close_http()
        super().start(timeout)
        try:
            self.token  # noqa: B018 - logs in now: a server that refuses fails here
        except httpx.HTTPError:
            self.stop()
            raise
        return self

    def stop(self, sig: int = signal.SIGTERM, grace: float = 30.0) -> None:
        self._close_http()
        super().stop(sig, grace)

    def _close_http(self) -> None:
        if self._http is not None:
            self._http.close()
            self._http = None

    @property
    def http(self) -> httpx.Client:
        """One client for the server's life, logged in as admin."""
        if self._http is None:
            self._http = httpx.Client(base_url=self.url, timeout=60,
                                      headers={"X-Auth-Token": self.token})
        return self._http

    # NeuVector surface ------------------------------------------------------------------------

    def v1_start(self, workload_id: str, file_number: int = 5, file_size_mb: int = 2,
                 filter_expr: str = "", duration: int = 0) -> str:
        r = self.http.post("/v1/sniffer", params={"f_workload": workload_id}, json={"sniffer": {
            "duration": duration, "file_number": file_number, "file_size_mb": file_size_mb,
            "filter": filter_expr}})
        _check(r)
        return str(r.json()["result"]["id"])

    def v1_stop(self, capture_id: str) -> None:
        _check(self.http.patch(f"/v1/sniffer/stop/{capture_id}"))

    def v1_info(self, capture_id: str) -> dict[str, Any]:
        r = self.http.get(f"/v1/sniffer/{capture_id}")
        _check(r)
        return dict(r.json()["sniffer"])

    def v1_delete(self, capture_id: str) -> None:
        _check(self.http.delete(f"/v1/sniffer/{capture_id}"))

    # Native surface ---------------------------------------------------------------------------

    def api_start(self, workload_id: str, **spec: Any) -> dict[str, Any]:
        r = self.http.post("/api/captures", json={"workload_id": workload_id, **spec})
        _check(r)
        return dict(r.json()["capture"])

    def api_capture(self, capture_id: str) -> dict[str, Any]:
        r = self.http.get(f"/api/captures/{capture_id}")
        _check(r)
        return dict(r.json()["capture"])

    def api_stop(self, capture_id: str) -> dict[str, Any]:
        r = self.http.post(f"/api/captures/{capture_id}/stop")
        _check(r)
        return dict(r.json()["capture"])

    def api_pcap(self, capture_id: str) -> bytes:
        r = self.http.get(f"/api/captures/{capture_id}/pcap")
        _check(r)
        return r.content

    def final_stats(self, capture_id: str, timeout: float = 10.0) -> dict[str, Any]:
        """The capture once it is no longer running (its final tcpdump statistics)."""
        deadline = time.monotonic() + timeout
        while True:
            cap = self.api_capture(capture_id)
            if cap.get("status") != "running" or time.monotonic() > deadline:
                return cap
            time.sleep(0.05)


def _check(r: httpx.Response) -> None:
    if r.status_code >= 400:
        raise ApiError(f"{r.request.method} {r.request.url.path} -> {r.status_code}: "
                       f"{r.text[:500]}")
