"""Fault suite: real tcpdump, real Docker/containerd daemons (private ones when a test restarts
them), real file systems that fill. Every test ends what it started, by PID or exact id."""
