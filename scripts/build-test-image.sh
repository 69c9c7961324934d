#!/usr/bin/env bash
# Builds podcap-test/busybox:1 from Debian's busybox-static with `docker import` (no registry).
set -euo pipefail
IMAGE=${1:-podcap-test/busybox:1}
# Bump when the contents change: an image left by an older script is rebuilt, not reused.
RECIPE=2
have=$(docker image inspect -f '{{ index .Config.Labels "podcap.recipe" }}' "$IMAGE" 2>/dev/null || true)
[ "$have" = "$RECIPE" ] && exit 0
root=$(mktemp -d)
trap 'rm -rf "$root"' EXIT
mkdir -p "$root/bin" "$root/www" "$root/tmp" "$root/etc"
cp /bin/busybox "$root/bin/busybox"
for applet in $("$root/bin/busybox" --list); do
  [ "$applet" = busybox ] || ln -sf busybox "$root/bin/$applet"
done
echo "hello from podcap" > "$root/www/index.html"
head -c 200000 /dev/zero | tr '\0' 'x' > "$root/www/big.txt"
echo "root:x:0:0:root:/:/bin/sh" > "$root/etc/passwd"
tar -C "$root" -c . | docker import -c 'CMD ["/bin/sh"]' -c "LABEL podcap.recipe=$RECIPE" - "$IMAGE" >/dev/null
echo "setup: built $IMAGE"
