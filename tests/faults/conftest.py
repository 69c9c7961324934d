"""Fault suite: real tcpdump, real Docker/containerd daemons (private ones when a test restarts
them), real file systems that fill. Every test ends what it started, by PID or exact id."""

from __future__ import annotations

import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent))  # tests/support.py
sys.path.insert(0, str(HERE.parent.parent))  # bench/ (the load test shares its code)
