#!/usr/bin/env bash
# Idempotent set-up for `make run` / `make test` on a fresh Debian 12 machine, as root:
# Debian packages, a running Docker engine, the venv, the local test images.
set -euo pipefail
cd "$(dirname "$0")/.."

PACKAGES=(tcpdump docker.io busybox-static iperf3 iproute2 util-linux procps openssl
          containerd runc containernetworking-plugins chromium tshark debootstrap
          prometheus-alertmanager haproxy)
# kubectl renders the Kubernetes manifests (tests/k8s); Debian's client when there is none.
command -v kubectl >/dev/null || PACKAGES+=(kubernetes-client)
# PostgreSQL server binaries for the database tests (tests/pg.py), only when there are none:
# on PATH, or where Debian's postgresql puts them (/usr/lib/postgresql/<version>/bin).
if ! command -v initdb >/dev/null || ! command -v pg_ctl >/dev/null; then
  ls /usr/lib/postgresql/*/bin/initdb /usr/lib/postgresql/*/bin/pg_ctl >/dev/null 2>&1 \
    || PACKAGES+=(postgresql)
fi

missing=()
for p in "${PACKAGES[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if [ ${#missing[@]} -gt 0 ]; then
  echo "setup: installing ${missing[*]}"
  apt-get update -q
  DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends "${missing[@]}"
fi

# A Docker engine: use the one that answers, else start Debian's dockerd in the background, in a
# session of its own: in the caller's process group, a Ctrl-C of `make test` (or a tool ending
# the job that ran setup) stopped the engine with it.
if ! docker info >/dev/null 2>&1; then
  echo "setup: starting dockerd (log: /var/log/podcap-dockerd.log)"
  setsid --fork /usr/sbin/dockerd --pidfile /run/podcap-dockerd.pid \
    >>/var/log/podcap-dockerd.log 2>&1 </dev/null
  for _ in $(seq 1 60); do docker info >/dev/null 2>&1 && break; sleep 0.5; done
  docker info >/dev/null 2>&1 || { echo "setup: dockerd did not start"; tail -20 /var/log/podcap-dockerd.log; exit 1; }
fi

# The venv with the package and its test extras.
PY=${PYTHON:-python3}
[ -x .venv/bin/python ] || "$PY" -m venv .venv
stamp=.venv/.podcap-installed
if [ ! -f "$stamp" ] || [ pyproject.toml -nt "$stamp" ]; then
  .venv/bin/pip install -q --upgrade pip
  .venv/bin/pip install -q -e '.[test]'
  touch "$stamp"
fi

# Generated gRPC code for the CRI subset.
make -s proto

# podcap's own bytecode, written once: with PYTHONDONTWRITEBYTECODE set (this machine sets it)
# no import writes it, and each podcap process the tests start (servers, agents, the CLI; over
# 200 a run) compiled the package from source again, 0.2 s of CPU each. A source edited later
# is compiled on import, as ever.
.venv/bin/python -m compileall -q src >/dev/null

# Local test images: no registry here, so build them from busybox-static.
scripts/build-test-image.sh
