"""Facts about the machine a run measured: cores, CPU, memory, kernel, tool versions."""

from __future__ import annotations

import os
import platform
import sys
from pathlib import Path
from typing import Any

from bench.common import IPERF3, TCPDUMP, run


def _first(text: str) -> str:
    return text.strip().splitlines()[0].strip() if text.strip() else ""


def _cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


def _mem_total_gib() -> float:
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemTotal:"):
                return round(int(line.split()[1]) / 1024**2, 1)
    except OSError:
        pass
    return 0.0


def facts() -> dict[str, Any]:
    td = run([TCPDUMP, "--version"])
    td_lines = (td.stdout + td.stderr).strip().splitlines()
    iperf = run([IPERF3, "--version"])
    docker_v = run(["docker", "version", "--format", "{{.Server.Version}}"])
    return {
        "cores": os.cpu_count(),
        "cpu": _cpu_model(),
        "memory_gib": _mem_total_gib(),
        "kernel": platform.release(),
        "os": _first(Path("/etc/os-release").read_text().split("PRETTY_NAME=")[1]).strip('"')
        if Path("/etc/os-release").exists() else platform.platform(),
        "tcpdump": td_lines[0] if td_lines else "unknown",
        "libpcap": td_lines[1] if len(td_lines) > 1 else "unknown",
        "iperf3": _first(iperf.stdout),
        "docker": _first(docker_v.stdout) or "unknown",
        "python": sys.version.split()[0],
    }
