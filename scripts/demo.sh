#!/usr/bin/env bash
# The main job: a busybox image made with `pier import`, then containers with `pier run`:
# pier starts its daemon (pierd) by itself on the first command; pierd runs the
# containers with pier-runtime.
# Everything lives in a temp dir (socket, data root, exec root) and goes at the end.
set -euo pipefail
cd "$(dirname "$0")/.."
[ "$(id -u)" = 0 ] || { echo "demo: run as root" >&2; exit 1; }

scripts/setup.sh
cargo build --release -p pier-cli -p pierd -p pier-runtime
pier=$PWD/target/release/pier
work=$(mktemp -d /tmp/pier-demo.XXXXXX)
cleanup() {
    if [ -f "$work/pierd.pid" ]; then
        "$pier" rm -f demo-web >/dev/null 2>&1 || true
        kill "$(cat "$work/pierd.pid")" 2>/dev/null || true
        sleep 1
    fi
    rm -rf "$work"
}
trap cleanup EXIT
# Pier's own socket and roots for the demo; PIER_AUTOSTART lets pier start pierd on a
# socket other than the default /run/pier/pier.sock.
export PIER_HOST=unix://$work/pier.sock PIER_DATA_ROOT=$work/data PIER_AUTOSTART=1

scripts/busybox-rootfs.sh "$work/rootfs"
echo "+ pier import -c 'CMD [\"sh\"]' rootfs busybox     (starts pierd)"
"$pier" import -c 'CMD ["sh"]' "$work/rootfs" busybox
echo "+ pier images"
"$pier" images
echo "+ pier run --rm busybox sh -c '...'"
"$pier" run --rm --hostname pier-demo busybox \
    sh -c 'echo hello from $(hostname), I am pid $$; id; ls /'
echo "+ pier run -d --name demo-web busybox sh -c 'while true; do date; sleep 1; done'"
"$pier" run -d --name demo-web busybox sh -c 'while true; do date; sleep 1; done'
sleep 2
echo "+ pier ps"
"$pier" ps
echo "+ pier logs demo-web"
"$pier" logs demo-web
echo "+ pier stop -t 1 demo-web && pier rm demo-web"
"$pier" stop -t 1 demo-web
"$pier" rm demo-web
