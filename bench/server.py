"""A real ``podcap serve`` process on loopback and a thin client of its REST API."""

from __future__ import annotations

import os
import secrets
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import httpx

PODCAP = str(Path(sys.executable).parent / "podcap")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class ApiError(RuntimeError):
    pass


class Podcap:
    """``podcap serve --insecure-http --listen 127.0.0.1:PORT --data-dir DIR``."""

    def __init__(self, workdir: Path, name: str = "server", extra_args: list[str] | None = None):
        self.data_dir = workdir / name / "data"
        self.data_dir.mkdir(parents=True, exist_ok=True)
        self.log_path = workdir / name / "serve.log"
        self.port = free_port()
        self.password = secrets.token_urlsafe(12)
        self.argv = [PODCAP, "serve", "--insecure-http", "--listen", f"127.0.0.1:{self.port}",
                     "--data-dir", str(self.data_dir), *(extra_args or [])]
        self.proc: subprocess.Popen[bytes] | None = None
        self._client: httpx.Client | None = None
        self.token = ""

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def pid(self) -> int:
        assert self.proc is not None
        return self.proc.pid

    def start(self, timeout: float = 60.0) -> Podcap:
        env = dict(os.environ, PODCAP_ADMIN_PASSWORD=self.password)
        with open(self.log_path, "ab") as log:
            self.proc = subprocess.Popen(self.argv, stdout=log, stderr=subprocess.STDOUT,
                                         stdin=subprocess.DEVNULL, env=env)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"podcap serve exited early:\n{self.log()[-3000:]}")
            try:
                if httpx.get(self.url + "/healthz", timeout=1).status_code == 200:
                    self.login()
                    return self
            except httpx.HTTPError:
                pass
            time.sleep(0.1)
        self.stop()
        raise RuntimeError(f"podcap serve did not answer in {timeout}s:\n{self.log()[-3000:]}")

    def log(self) -> str:
        return self.log_path.read_text(errors="replace") if self.log_path.exists() else ""

    def stop(self) -> None:
        if self._client is not None:
            self._client.close()
            self._client = None
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(30)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(5)

    def login(self) -> str:
        r = httpx.post(self.url + "/v1/auth", timeout=30, json={
            "password": {"username": "admin", "password": self.password}})
        _check(r)
        self.token = r.json()["token"]["token"]
        if self._client is not None:
            self._client.close()
        self._client = httpx.Client(base_url=self.url, timeout=60,
                                    headers={"X-Auth-Token": self.token})
        return self.token

    @property
    def http(self) -> httpx.Client:
        assert self._client is not None, "not logged in"
        return self._client

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
