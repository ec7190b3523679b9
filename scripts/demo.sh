#!/usr/bin/env bash
# The main job: build, ship, run. A busybox base image made with `pier import`; an
# image built on it from a Dockerfile (`pier build`), pushed to a pier-registry the demo
# starts, removed, pulled back and run; then containers, logs and a network.
# pier starts its daemon (pierd) by itself on the first command; pierd runs the
# containers with pier-runtime.
# Everything lives in a temp dir (socket, data root, exec root) and goes at the end.
set -euo pipefail
cd "$(dirname "$0")/.."
[ "$(id -u)" = 0 ] || { echo "demo: run as root" >&2; exit 1; }

scripts/setup.sh
cargo build --release -p pier-cli -p pierd -p pier-runtime -p pier-registry
pier=$PWD/target/release/pier
work=$(mktemp -d /tmp/pier-demo.XXXXXX)
cleanup() {
    if [ -n "${registry_pid:-}" ]; then
        kill "$registry_pid" 2>/dev/null || true
        wait "$registry_pid" 2>/dev/null || true
    fi
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
# Build: a Dockerfile with a build stage and a small final image.
mkdir -p "$work/app"
cat >"$work/app/Dockerfile" <<'DOCKERFILE'
FROM busybox AS build
WORKDIR /src
COPY greeting.txt .
RUN tr a-z A-Z < greeting.txt > loud.txt
FROM busybox
COPY --from=build /src/loud.txt /app/loud.txt
CMD ["cat", "/app/loud.txt"]
DOCKERFILE
echo "hello from an image built by pier" >"$work/app/greeting.txt"
echo "+ pier build -t demo/app:1 app/"
"$pier" build -t demo/app:1 "$work/app"
echo "+ pier build -t demo/app:1 app/      (again: every step from the cache)"
"$pier" build -t demo/app:1 "$work/app"

# Ship: to a pier-registry on loopback, and back.
port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
echo "+ pier-registry --addr 127.0.0.1:$port --root registry/ &"
target/release/pier-registry --addr "127.0.0.1:$port" --root "$work/registry" >"$work/registry.log" 2>&1 &
registry_pid=$!
for _ in $(seq 50); do curl -sf "http://127.0.0.1:$port/v2/" >/dev/null && break; sleep 0.1; done
echo "+ pier tag demo/app:1 127.0.0.1:$port/demo/app:1 && pier push 127.0.0.1:$port/demo/app:1"
"$pier" tag demo/app:1 "127.0.0.1:$port/demo/app:1"
"$pier" push "127.0.0.1:$port/demo/app:1"
echo "+ pier rmi demo/app:1 127.0.0.1:$port/demo/app:1"
"$pier" rmi demo/app:1 "127.0.0.1:$port/demo/app:1"
echo "+ pier pull 127.0.0.1:$port/demo/app:1"
"$pier" pull "127.0.0.1:$port/demo/app:1"

# Run.
echo "+ pier run --rm 127.0.0.1:$port/demo/app:1"
"$pier" run --rm "127.0.0.1:$port/demo/app:1"
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
