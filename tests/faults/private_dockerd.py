"""A private Docker Engine for tests that restart it: own data root, exec root, pid file, socket,
managed containerd and bridge, no iptables. The shared dockerd (/var/run/docker.sock) is never
touched; the busybox test image is copied over with ``docker save | docker load``.

Never ``--bridge=none``: a dockerd started so deletes the host's ``docker0`` link (moby's
removeDefaultBridgeInterface), cutting the shared dockerd's containers off. The private daemon
gets a bridge of its own, made here and deleted in ``close``, and its containers run with
``--network none`` (loopback only)."""

from __future__ import annotations

import json
import secrets
import shutil
import signal
import subprocess
import tempfile
import time
from pathlib import Path

from tests.support import IMAGE

DOCKERD = "/usr/sbin/dockerd"
DOCKER = "/usr/bin/docker"
IP = "/sbin/ip"


class PrivateDockerd:
    def __init__(self, live_restore: bool = False) -> None:
        # Short paths: containerd's sockets live under the exec root (108-byte limit).
        self.dir = Path(tempfile.mkdtemp(prefix="pd-", dir="/tmp"))
        self.socket = self.dir / "d.sock"
        self.bridge = f"pdbr{secrets.token_hex(3)}"  # at most 15 characters
        self.live_restore = live_restore
        self.proc: subprocess.Popen[bytes] | None = None
        (self.dir / "daemon.json").write_text(json.dumps({}))

    @property
    def url(self) -> str:
        return f"unix://{self.socket}"

    def argv(self) -> list[str]:
        return [DOCKERD, "--config-file", str(self.dir / "daemon.json"),
                "--data-root", str(self.dir / "root"), "--exec-root", str(self.dir / "x"),
                "--pidfile", str(self.dir / "dockerd.pid"), "-H", self.url,
                f"--bridge={self.bridge}", "--iptables=false", "--ip-masq=false",
                "--ip-forward=false", "--userland-proxy=false",
                "--log-level=warn", *(["--live-restore"] if self.live_restore else [])]

    def start(self, timeout: float = 60.0) -> PrivateDockerd:
        if not Path(f"/sys/class/net/{self.bridge}").exists():
            subprocess.run([IP, "link", "add", self.bridge, "type", "bridge"], check=True,
                           timeout=30)
        log = open(self.dir / "dockerd.log", "ab")  # noqa: SIM115 - lives with the process
        self.proc = subprocess.Popen(self.argv(), stdout=log, stderr=subprocess.STDOUT,
                                     stdin=subprocess.DEVNULL, start_new_session=True)
        log.close()
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"private dockerd exited:\n{self.log()}")
            if self.docker("info", check=False, timeout=5).returncode == 0:
                return self
            time.sleep(0.2)
        raise RuntimeError(f"private dockerd did not answer in {timeout}s:\n{self.log()}")

    def stop(self, timeout: float = 60.0) -> None:
        """SIGTERM, as `systemctl restart docker` does; SIGKILL after ``timeout``."""
        if self.proc is None or self.proc.poll() is not None:
            return
        self.proc.send_signal(signal.SIGTERM)
        try:
            self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait(10)

    def restart(self) -> None:
        self.stop()
        self.start()

    def docker(self, *args: str, check: bool = True, timeout: float = 60.0,
               stdin: bytes | None = None) -> subprocess.CompletedProcess[bytes]:
        return subprocess.run([DOCKER, "-H", self.url, *args], capture_output=True,
                              check=check, timeout=timeout, input=stdin)

    def load_busybox(self) -> None:
        saved = subprocess.run([DOCKER, "save", IMAGE], capture_output=True, check=True,
                               timeout=120).stdout
        self.docker("load", stdin=saved, timeout=120)

    def run(self, name: str, *command: str, restart: str = "no") -> str:
        out = self.docker("run", "-d", "--network", "none", "--name", name,
                          "--restart", restart, IMAGE, *command).stdout
        return out.decode().strip()

    def log(self) -> str:
        path = self.dir / "dockerd.log"
        return path.read_text(errors="replace")[-4000:] if path.exists() else ""

    def close(self) -> None:
        """Remove every container, stop the daemon, delete its directories."""
        if self.proc is not None and self.proc.poll() is None:
            ids = self.docker("ps", "-aq", check=False).stdout.decode().split()
            if ids:
                self.docker("rm", "-f", *ids, check=False, timeout=120)
        self.stop()
        subprocess.run(["umount", "-R", str(self.dir / "x")], capture_output=True, check=False)
        subprocess.run(["umount", "-R", str(self.dir / "root")], capture_output=True,
                       check=False)
        shutil.rmtree(self.dir, ignore_errors=True)
        subprocess.run([IP, "link", "del", self.bridge], capture_output=True, check=False,
                       timeout=30)

    @staticmethod
    def name(prefix: str) -> str:
        return f"podcap-t-{prefix}-{secrets.token_hex(3)}"
