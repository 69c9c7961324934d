#!/usr/bin/env bash
# Builds podcap:<version> (deploy/image/Dockerfile) with no registry to pull from and no network
# inside `docker build`:
#   1. podcap-base:<hash>: a Debian 12 root filesystem made here with debootstrap (minbase) from
#      Debian's packages, stripped of apt's cache and lists, docs, man pages and locales, and
#      `docker import`ed. Remade only when its recipe (suite, package list) changes.
#   2. the podcap wheel and its pinned dependencies, built here (cp311, as Debian 12's python3);
#   3. `docker build` installs them into a venv (/opt/podcap) on that base.
# The image carries its recipe's hash in the label podcap.recipe (the Dockerfile, this script,
# pyproject.toml and every file under src/): when it matches, nothing is done.
# Usage: scripts/build-image.sh [--print-tag]     (env: PODCAP_IMAGE, PODCAP_DEBIAN_MIRROR)
set -euo pipefail
cd "$(dirname "$0")/.."

VERSION=$(python3 -c 'import tomllib; print(tomllib.load(open("pyproject.toml", "rb"))["project"]["version"])')
IMAGE=${PODCAP_IMAGE:-podcap:$VERSION}
if [ "${1:-}" = "--print-tag" ]; then echo "$IMAGE"; exit 0; fi

SUITE=bookworm
PACKAGES=python3,python3-venv,tcpdump,iproute2,util-linux,ca-certificates
# What the base is made of; bump BASE_RECIPE when the stripping below changes.
BASE_RECIPE="2 minbase $SUITE $PACKAGES"
BASE=podcap-base:$(printf '%s' "$BASE_RECIPE" | sha256sum | cut -c1-16)

# One build at a time on this engine (make image and the image test may race).
exec 9>/tmp/podcap-build-image.lock
flock 9

make -s proto   # the generated gRPC modules must be inside the wheel
recipe=$( { printf '%s\n' "$BASE" "$VERSION"; cat deploy/image/* "$0" pyproject.toml;
            find src -type f ! -name '*.pyc' ! -path '*/__pycache__/*' ! -path '*.egg-info/*' \
              -print0 | sort -z | xargs -0 sha256sum; } | sha256sum | cut -c1-32)
have=$(docker image inspect -f '{{ index .Config.Labels "podcap.recipe" }}' "$IMAGE" 2>/dev/null || true)
[ "$have" = "$recipe" ] && exit 0

work=$(mktemp -d /tmp/podcap-image.XXXXXX)
trap 'rm -rf "$work"' EXIT

if ! docker image inspect "$BASE" >/dev/null 2>&1; then
  mirror=${PODCAP_DEBIAN_MIRROR:-}
  if [ -z "$mirror" ]; then   # the host's own Debian mirror (deb822 or one-line sources)
    mirror=$({ cat /etc/apt/sources.list.d/*.sources /etc/apt/sources.list 2>/dev/null || true; } \
      | awk '/^URIs:/ && $2 !~ /security/ {print $2; exit}
             /^deb / && $3 ~ /^bookworm$/ {print $2; exit}')
  fi
  mirror=${mirror:-http://deb.debian.org/debian}
  echo "build-image: debootstrap $SUITE from $mirror"
  debootstrap --variant=minbase --include="$PACKAGES" "$SUITE" "$work/rootfs" "$mirror" \
    >"$work/debootstrap.log" 2>&1 || { tail -20 "$work/debootstrap.log"; exit 1; }
  r=$work/rootfs
  rm -rf "$r"/var/cache/apt/* "$r"/var/lib/apt/lists/* "$r"/usr/share/doc/* \
         "$r"/usr/share/man/* "$r"/usr/share/info/* "$r"/usr/share/locale/* \
         "$r"/usr/share/lintian "$r"/var/log/* "$r"/var/cache/debconf/*-old \
         "$r"/var/lib/dpkg/*-old "$r"/dev/* "$r"/tmp/* "$r"/etc/hostname "$r"/etc/resolv.conf \
         "$r"/usr/lib/*-linux-gnu/gconv   # iconv's extra charsets: nothing here uses them
  find "$r"/usr/lib/python3* -name __pycache__ -prune -exec rm -rf {} +
  # Keep dpkg from putting them back, should anyone install a package in a derived image.
  printf '%s\n' 'path-exclude /usr/share/doc/*' 'path-exclude /usr/share/man/*' \
    'path-exclude /usr/share/info/*' 'path-exclude /usr/share/locale/*' \
    >"$r"/etc/dpkg/dpkg.cfg.d/podcap-nodoc
  tar -C "$r" --numeric-owner -c . | docker import -c 'CMD ["/bin/bash"]' - "$BASE" >/dev/null
  rm -rf "$r"
  echo "build-image: built $BASE"
  # Bases of older recipes are of no further use (images built on them keep their layers).
  docker images --format '{{.Repository}}:{{.Tag}}' podcap-base | grep -vxF "$BASE" \
    | xargs -r docker rmi >/dev/null 2>&1 || true
fi

# The wheels: podcap from a copy of the sources (no build/ left in the tree), then its deps.
mkdir -p "$work/src" "$work/context/wheels"
tar -c --exclude='__pycache__' --exclude='*.egg-info' pyproject.toml README.md src \
  | tar -C "$work/src" -x
.venv/bin/pip wheel -q --disable-pip-version-check --wheel-dir "$work/context/wheels" "$work/src" \
  2> >(grep -v "^WARNING: Location" >&2)
python3 - "$work/context/wheels" <<'PY'
import pathlib, sys, zipfile
wheel = next(pathlib.Path(sys.argv[1]).glob("podcap-*.whl"))
names = zipfile.ZipFile(wheel).namelist()
for module in ("podcap/transport/grpc/agent_proto/agent_pb2.py",
               "podcap/runtime/cri_proto/api_pb2_grpc.py"):
    if module not in names:
        sys.exit(f"build-image: {module} is missing from {wheel.name} (run make proto)")
PY
cp deploy/image/Dockerfile deploy/image/podcap-probe "$work/context/"

old=$(docker image inspect -f '{{.Id}}' "$IMAGE" 2>/dev/null || true)
docker build -q --build-arg BASE="$BASE" --build-arg VERSION="$VERSION" \
  --build-arg RECIPE="$recipe" -t "$IMAGE" "$work/context" >/dev/null \
  2> >(grep -Ev "DEPRECATED: The legacy builder|buildx|docs.docker.com/go/buildx|^$" >&2)
new=$(docker image inspect -f '{{.Id}}' "$IMAGE")
# The image this one replaces, and the build's intermediate stage, are of no further use.
[ -n "$old" ] && [ "$old" != "$new" ] && docker rmi "$old" >/dev/null 2>&1 || true
docker image prune -f --filter label=podcap.stage=install >/dev/null
size=$(docker image inspect -f '{{.Size}}' "$IMAGE")
echo "build-image: built $IMAGE ($((size / 1000000)) MB)"
