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
        "$pier" rm -f demo-web demo-site >/dev/null 2>&1 || true
        "$pier" network rm demo-net >/dev/null 2>&1 || true
        kill "$(cat "$work/pierd.pid")" 2>/dev/null || true
        sleep 1
    fi
    rm -rf "$work"
}
trap cleanup EXIT
# Pier's own socket and roots for the demo; PIER_AUTOSTART lets pier start pierd on a
# socket other than the default /run/pier/pier.sock.
export PIER_HOST=unix://$work/pier.sock PIER_DATA_ROOT=$work/data PIER_AUTOSTART=1
# Its own default bridge too (a pierd of the machine may own pier0); pierd removes it
# and its firewall table when it stops with nothing running.
export PIERD_FLAGS="--bridge pierdemo0"

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
echo "+ pier network create demo-net"
"$pier" network create demo-net
echo "+ pier run -d --name demo-site --network demo-net -p 127.0.0.1::80 busybox httpd ..."
"$pier" run -d --name demo-site --network demo-net -p 127.0.0.1::80 busybox \
    sh -c 'echo "hello from demo-site" > /tmp/index.html; exec httpd -f -p 80 -h /tmp'
echo "+ pier port demo-site"
"$pier" port demo-site
port=$("$pier" port demo-site 80/tcp | head -1 | sed 's/.*://')
echo "+ curl http://127.0.0.1:$port/      (published port, from the host)"
curl -s "http://127.0.0.1:$port/"
echo "+ pier run --rm --network demo-net busybox wget -qO- http://demo-site/      (by name)"
"$pier" run --rm --network demo-net busybox wget -qO- http://demo-site/
echo "+ pier rm -f demo-site && pier network rm demo-net"
"$pier" rm -f demo-site
"$pier" network rm demo-net
