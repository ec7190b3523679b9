#!/usr/bin/env bash
# Scenario network: what container networking costs, pier vs docker, side by side:
#   1. setup: `run --rm busybox true` with `--network none`, the default bridge and a user
#      bridge network; the time the network adds is (bridge − none) per engine;
#   2. TCP throughput through a published port (`-p 127.0.0.1:15001:5001`, a busybox
#      sink) from a client on the daemon's host, in MB/s;
#   3. connection rate through a published port: sequential HTTP/1.0 requests, one TCP
#      connection each, to a busybox httpd, in connections/s.
#
#   bench/network.sh [TOOL...]   (as root; TOOL: pier, docker, docker-dnat, podman)
#
# pier = docker CLI → pierd (nftables DNAT, no userland proxy); docker = docker CLI →
# dockerd 20.10 + containerd + runc with its default bridge and iptables, whose published
# ports on 127.0.0.1 go through docker-proxy; docker-dnat = the same with
# `--userland-proxy=false` (iptables DNAT, like pier). Every daemon runs in a network
# namespace of its own made by this script (pierbench-net<pid>-<tool>), so its bridge,
# firewall rules, sysctls and proxies stay there; the host's links, nftables ruleset and
# iptables are compared before and after, and the run fails if they differ. Clients of
# published ports run in the daemon's namespace against 127.0.0.1.
#
# Settings besides lib.sh's: BENCH_NET_BYTES (bytes per throughput run, default 1 GiB),
# BENCH_NET_CONNS (connections per connection-rate run, default 500), BENCH_HOST_IGNORE
# (see bench_host_net_check in lib.sh). Writes the <!-- bench:network --> section.
set -euo pipefail
# shellcheck source=bench/lib.sh disable=SC1091
. "$(dirname "$0")/lib.sh"

SCENARIO=network
CMDLINE=$(bench_command_line "$0" "$@")
: "${BENCH_RUNS:=20}" "${BENCH_ROUNDS:=5}" "${BENCH_WARMUP:=2}"
: "${BENCH_NET_BYTES:=1073741824}" "${BENCH_NET_CONNS:=500}"
bench_init "$SCENARIO"
bench_require hyperfine python3 nsenter ip nft iptables-save ip6tables-save sysctl ss

if [ $# -eq 0 ]; then set -- pier docker docker-dnat podman; fi
declare -A WANT=()
for t in "$@"; do
    case $t in pier | docker | docker-dnat | podman) WANT[$t]=1 ;; *) bench_die "unknown tool '$t'" ;; esac
done
[ -n "${WANT[docker]:-}${WANT[docker-dnat]:-}" ] && bench_require dockerd docker containerd runc
[ -n "${WANT[pier]:-}" ] && bench_require docker

PORT_SINK=15001 PORT_WEB=18080
NS_PREFIX=${BENCH_ID_PREFIX}net$$
declare -A NS=() CLI=() DPID=()
ENGINES=() NOTES=() SKIPPED=() CHECKS=()

# ---- the host's network, before anything -----------------------------------------------
HOST_BEFORE=$BENCH_TMP/host-net-before
bench_host_net_state "$HOST_BEFORE"
HOST_CHECKED=""
net_host_check_at_exit() {
    [ -z "$HOST_CHECKED" ] || return 0
    bench_host_net_check "$HOST_BEFORE" ||
        bench_log "ERROR: THE HOST NETWORK STATE DIFFERS FROM BEFORE THE RUN (see above): something this run left behind, or another job (BENCH_HOST_IGNORE)"
}
bench_on_exit net_host_check_at_exit

# ---- build, image, client scripts --------------------------------------------------------
PIERD_BIN=$BENCH_REPO/target/release/pierd
if [ -n "${WANT[pier]:-}" ]; then
    bench_engine_binaries
    if ! "$PIERD_BIN" --help | grep -q -- '--bip'; then
        bench_log "target/release/pierd predates container networking: rebuilding"
        (cd "$BENCH_REPO" && cargo build --quiet --release -p pierd -p pier-cli -p pier-runtime) ||
            bench_die "cargo build failed"
    fi
fi
ROOTFS_TAR=$(bench_busybox_tar)

# Throughput client: one connection, BYTES sent, then half-close and wait for the sink
# to close (the sink has read everything by then). Appends its own seconds to OUT.
cat >"$BENCH_TMP/tput.py" <<'EOF'
import socket, sys, time
host, port, total, out = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), sys.argv[4]
buf = memoryview(bytearray(1 << 20))
t0 = time.perf_counter()
s = socket.create_connection((host, port))
left = total
while left > 0:
    left -= s.send(buf[:min(left, len(buf))])
s.shutdown(socket.SHUT_WR)
while s.recv(1 << 16):
    pass
t = time.perf_counter() - t0
s.close()
with open(out, "a") as f:
    f.write(f"{t:.6f}\n")
EOF
# Connection-rate client: N sequential HTTP/1.0 GETs, a new TCP connection each, every
# answer read to the end and checked. Appends its own seconds for all N to OUT.
cat >"$BENCH_TMP/conn.py" <<'EOF'
import socket, sys, time
host, port, n, out = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), sys.argv[4]
req = b"GET /group HTTP/1.0\r\n\r\n"
t0 = time.perf_counter()
for _ in range(n):
    s = socket.create_connection((host, port))
    s.sendall(req)
    data = b""
    while True:
        b = s.recv(65536)
        if not b:
            break
        data += b
    s.close()
    if b" 200 " not in data.split(b"\r\n", 1)[0]:
        sys.exit(f"bad answer from {host}:{port}: {data[:80]!r}")
t = time.perf_counter() - t0
with open(out, "a") as f:
    f.write(f"{t:.6f}\n")
EOF

# ---- daemons, each in a network namespace of its own --------------------------------------
net_ns() { # net_ns TOOL : make the tool's namespace
    NS[$1]=${NS_PREFIX}-$1
    bench_netns_add "${NS[$1]}"
}
in_ns() { printf 'nsenter --net=/run/netns/%s' "${NS[$1]}"; }

net_wait_cli() { # net_wait_cli TOOL PID LOG
    local i
    for ((i = 0; i < 600; i++)); do
        kill -0 "$2" 2>/dev/null || bench_die "$1: daemon exited at start: $(tail -n 5 "$3")"
        # shellcheck disable=SC2086
        ${CLI[$1]} version >/dev/null 2>&1 && return 0
        sleep 0.1
    done
    bench_die "$1: daemon did not answer within 60s: $(tail -n 5 "$3")"
}

net_rm_all() { # net_rm_all TOOL : remove the tool's containers and user networks
    local ids
    # shellcheck disable=SC2086
    ids=$(${CLI[$1]} ps -aq 2>/dev/null) || return 0
    # shellcheck disable=SC2086
    [ -z "$ids" ] || ${CLI[$1]} rm -f $ids >/dev/null 2>&1 || bench_log "$1: rm -f failed"
    # shellcheck disable=SC2086
    ${CLI[$1]} network rm pierbench-net >/dev/null 2>&1 || true
}


net_pierd_start() {
    local p=$BENCH_TMP/pier
    mkdir -p "$p/cli"
    net_ns pier
    # shellcheck disable=SC2046
    $(in_ns pier) "$PIERD_BIN" -H "unix://$p/pier.sock" --data-root "$p/data" --exec-root "$p/exec" \
        --bridge pierbench0 --bip 10.201.0.1/24 >"$p/pierd.log" 2>&1 &
    DPID[pier]=$!
    bench_on_exit "net_daemon_stop pier"
    CLI[pier]="docker --config $p/cli -H unix://$p/pier.sock"
    net_wait_cli pier "${DPID[pier]}" "$p/pierd.log"
    bench_log "pierd running in netns ${NS[pier]} (pid ${DPID[pier]})"
}

# dockerd's managed containerd keeps its pid here; for a dockerd that did not stop.
net_dockerd_start() { # net_dockerd_start TOOL BIP [DOCKERD-ARG...]
    local t=$1 bip=$2 d=$BENCH_TMP/$1
    shift 2
    mkdir -p "$d/cli"
    printf '{"deprecated-key-path": "%s"}\n' "$d/key.json" >"$d/daemon.json"
    net_ns "$t"
    # shellcheck disable=SC2046
    $(in_ns "$t") dockerd --host "unix://$d/docker.sock" --data-root "$d/data" --exec-root "$d/exec" \
        --pidfile "$d/docker.pid" --config-file "$d/daemon.json" --bip "$bip" "$@" \
        --exec-opt native.cgroupdriver=cgroupfs --cgroup-parent "/${BENCH_ID_PREFIX}dockerd-$$-$t" \
        --log-level warn >"$d/dockerd.log" 2>&1 &
    DPID[$t]=$!
    bench_on_exit "net_daemon_stop $t"
    CLI[$t]="docker --config $d/cli --host unix://$d/docker.sock"
    net_wait_cli "$t" "${DPID[$t]}" "$d/dockerd.log"
    bench_log "dockerd ($t${*:+, $*}) running in netns ${NS[$t]} (pid ${DPID[$t]})"
}

net_daemon_stop() { # net_daemon_stop TOOL : containers, networks, then the daemon (by PID)
    local t=$1 pid cpid p
    pid=${DPID[$t]:-}
    [ -n "$pid" ] || return 0
    DPID[$t]=""
    kill -0 "$pid" 2>/dev/null && net_rm_all "$t"
    cpid=$(cat "$BENCH_TMP/$t/exec/containerd/containerd.pid" 2>/dev/null || true)
    bench_stop_pid "$t" "$pid"
    if [ -n "$cpid" ] && kill -0 "$cpid" 2>/dev/null &&
        [ "$(readlink "/proc/$cpid/exe" 2>/dev/null)" = "$(command -v containerd)" ]; then
        bench_log "$t: dockerd's containerd (pid $cpid) outlived it: killing it"
        kill -KILL "$cpid" 2>/dev/null
    fi
    find /sys/fs/cgroup -mindepth 1 -maxdepth 8 -type d -path "*/${BENCH_ID_PREFIX}dockerd-$$-$t*" 2>/dev/null |
        sort -r | while read -r p; do rmdir "$p" 2>/dev/null || bench_log "could not remove cgroup $p"; done
}

# Host paths dockerd makes whatever its roots (as bench_dockerd_start): removed at the end
# if they did not exist before.
HOST_PATHS=()
for p in /run/docker /run/docker/plugins /opt/containerd; do [ -e "$p" ] || HOST_PATHS+=("$p"); done
net_host_paths_cleanup() {
    local i p
    for ((i = ${#HOST_PATHS[@]} - 1; i >= 0; i--)); do
        p=${HOST_PATHS[$i]}
        [ ! -d "$p" ] || rmdir "$p" 2>/dev/null || bench_log "dockerd left $p (not empty)"
    done
    HOST_PATHS=()
}
bench_on_exit net_host_paths_cleanup

for t in "$@"; do
    case $t in
        pier)
            net_pierd_start
            NOTES+=("\`pier\`: docker CLI $(docker --version | cut -d' ' -f3 | tr -d ,) → pierd $(git -C "$BENCH_REPO" rev-parse --short HEAD)$(git -C "$BENCH_REPO" diff --quiet HEAD -- crates 2>/dev/null || echo ' (+ uncommitted changes)') (runtime pier-runtime), \`--bridge pierbench0 --bip 10.201.0.1/24\`: nftables table \`pier_pierbench0\`, published ports by DNAT, no userland proxy") ;;
        docker)
            [ ! -S /run/containerd/containerd.sock ] ||
                bench_die "a system containerd is running (/run/containerd/containerd.sock): an isolated dockerd would use it"
            net_dockerd_start docker 10.200.0.1/24
            NOTES+=("\`docker\`: docker CLI → dockerd $(dockerd --version | cut -d' ' -f3 | tr -d ,) + containerd $(containerd --version | cut -d' ' -f3) + runc $(runc --version | awk 'NR == 1 { print $3 }'), overlay2, default bridge (\`--bip 10.200.0.1/24\`) with iptables ($(iptables --version | cut -d' ' -f2-)), userland proxy on (default): a published port on 127.0.0.1 is served by docker-proxy") ;;
        docker-dnat)
            [ ! -S /run/containerd/containerd.sock ] ||
                bench_die "a system containerd is running (/run/containerd/containerd.sock): an isolated dockerd would use it"
            net_dockerd_start docker-dnat 10.202.0.1/24 --userland-proxy=false
            NOTES+=("\`docker-dnat\`: the same dockerd with \`--userland-proxy=false\` (\`--bip 10.202.0.1/24\`): published ports by iptables DNAT only, as pier (route_localnet on docker0 for 127.0.0.1)") ;;
        podman)
            if ! command -v podman >/dev/null; then SKIPPED+=("podman: not installed"); continue; fi
            PM=$BENCH_TMP/podman
            mkdir -p "$PM"
            net_ns podman
            PODMAN="$(in_ns podman) podman --root $PM/root --runroot $PM/run --cgroup-manager cgroupfs --runtime runc --storage-driver overlay --events-backend none"
            bench_on_exit "$PODMAN rm -af >/dev/null 2>&1; umount -R '$PM/root/overlay' 2>/dev/null; true"
            $PODMAN import -c 'CMD ["sh"]' "$ROOTFS_TAR" busybox >/dev/null || bench_die "podman import failed"
            if ! err=$($PODMAN run --rm --network none busybox true 2>&1); then
                bench_log "skipping podman: it cannot run a container here: $err"
                SKIPPED+=("podman $(podman --version | cut -d' ' -f3): cannot run a container on this host (${err%%$'\n'*})")
            else
                SKIPPED+=("podman $(podman --version | cut -d' ' -f3): runs containers here, but this scenario does not drive its networking (netavark) yet")
            fi
            continue ;;
    esac
    ENGINES+=("$t")
done
[ ${#ENGINES[@]} -gt 0 ] || bench_die "no engine to measure"

# ---- image, user network, servers ---------------------------------------------------------
declare -A SUBNET=([pier]=10.211.0.0/24 [docker]=10.210.0.0/24 [docker-dnat]=10.212.0.0/24)
declare -A ADDR=()
for t in "${ENGINES[@]}"; do
    c=${CLI[$t]}
    $c import -c 'CMD ["sh"]' "$ROOTFS_TAR" busybox >/dev/null || bench_die "$t: import failed"
    $c network create --subnet "${SUBNET[$t]}" pierbench-net >/dev/null || bench_die "$t: network create failed"
    # the sink: a persistent server, one `dd` per connection reading 1 MiB at a time
    $c run -d --name pierbench-sink -p "127.0.0.1:$PORT_SINK:5001" busybox \
        nc -ll -p 5001 -e dd of=/dev/null bs=1M >/dev/null || bench_die "$t: sink container failed"
    $c run -d --name pierbench-web -p "127.0.0.1:$PORT_WEB:80" busybox \
        httpd -f -p 80 -h /etc >/dev/null || bench_die "$t: httpd container failed"
    ADDR[$t-sink]=$($c inspect -f '{{range .NetworkSettings.Networks}}{{.IPAddress}}{{end}}' pierbench-sink)
    ADDR[$t-web]=$($c inspect -f '{{range .NetworkSettings.Networks}}{{.IPAddress}}{{end}}' pierbench-web)
    if [ -z "${ADDR[$t-sink]}" ] || [ -z "${ADDR[$t-web]}" ]; then bench_die "$t: containers have no IPAddress"; fi
done
bench_log "engines: ${ENGINES[*]}"

# ---- 1. setup -------------------------------------------------------------------------------
SETUP_CMDS=()
for t in "${ENGINES[@]}"; do
    [ "$t" = docker-dnat ] && continue # no published port: the same as docker
    SETUP_CMDS+=("$t-none" "${CLI[$t]} run --rm --network none busybox true"
        "$t-bridge" "${CLI[$t]} run --rm busybox true"
        "$t-usernet" "${CLI[$t]} run --rm --network pierbench-net busybox true")
done
for ((i = 0; i < ${#SETUP_CMDS[@]}; i += 2)); do
    sh -c "${SETUP_CMDS[$((i + 1))]}" >/dev/null || bench_die "${SETUP_CMDS[$i]}: first run failed"
done
# the container on the default bridge really has a network
for t in "${ENGINES[@]}"; do
    ${CLI[$t]} run --rm busybox sh -c 'ip -4 -o addr show eth0 | grep -q inet' ||
        bench_die "$t: a container on the default bridge has no IPv4 address on eth0"
done

# ---- 2./3. throughput and connection rate: commands -----------------------------------------
TPUT_CMDS=() CONN_CMDS=()
for t in "${ENGINES[@]}"; do
    TPUT_CMDS+=("$t" "$(in_ns "$t") python3 $BENCH_TMP/tput.py 127.0.0.1 $PORT_SINK $BENCH_NET_BYTES $BENCH_TMP/tput-$t.txt")
    CONN_CMDS+=("$t" "$(in_ns "$t") python3 $BENCH_TMP/conn.py 127.0.0.1 $PORT_WEB $BENCH_NET_CONNS $BENCH_TMP/conn-$t.txt")
done
# Without the published port: the client straight to the container's address on the bridge,
# for scale (docker-dnat's would be the same as docker's).
for t in pier docker; do
    [ -n "${CLI[$t]:-}" ] || continue
    TPUT_CMDS+=("$t-direct" "$(in_ns "$t") python3 $BENCH_TMP/tput.py ${ADDR[$t-sink]} 5001 $BENCH_NET_BYTES $BENCH_TMP/tput-$t-direct.txt")
    CONN_CMDS+=("$t-direct" "$(in_ns "$t") python3 $BENCH_TMP/conn.py ${ADDR[$t-web]} 80 $BENCH_NET_CONNS $BENCH_TMP/conn-$t-direct.txt")
done
for ((i = 0; i < ${#TPUT_CMDS[@]}; i += 2)); do
    # untimed first runs, their client times not kept (the .txt files are written below)
    sh -c "${TPUT_CMDS[$((i + 1))]%.txt}.first" || bench_die "throughput ${TPUT_CMDS[$i]}: first run failed"
    sh -c "${CONN_CMDS[$((i + 1))]%.txt}.first" || bench_die "connections ${CONN_CMDS[$i]}: first run failed"
done
if [ -n "${CLI[docker]:-}" ]; then
    pgrep -f "docker-proxy -proto tcp -host-ip 127.0.0.1 -host-port $PORT_SINK" >/dev/null ||
        bench_die "docker: no docker-proxy for port $PORT_SINK (the userland proxy was expected)"
fi
if [ -n "${CLI[docker-dnat]:-}" ]; then
    ! ip netns pids "${NS[docker-dnat]}" | xargs -r -I{} cat /proc/{}/cmdline 2>/dev/null | tr '\0' ' ' |
        grep -q docker-proxy || bench_die "docker-dnat: a docker-proxy runs despite --userland-proxy=false"
fi

# ---- timing --------------------------------------------------------------------------------
bench_compare "$BENCH_TMP/setup.json" "${SETUP_CMDS[@]}"
bench_compare "$BENCH_TMP/tput.json" "${TPUT_CMDS[@]}"
bench_compare "$BENCH_TMP/conn.json" "${CONN_CMDS[@]}"

# ---- checks after the timing: what pierd and dockerd leave once the containers are gone -----
for t in "${ENGINES[@]}"; do
    # every throughput run must have been served by the sink container: one busybox dd
    # summary ("F+P records in", on the container's stderr) per connection. (That the
    # bytes all arrived, the client knows: the sink closes only after reading to EOF.)
    got=$(${CLI[$t]} logs pierbench-sink 2>&1 | grep -c "records in" || true)
    want=$((BENCH_RUNS + BENCH_WARMUP + 1))
    [[ $t == docker-dnat ]] || want=$((2 * want)) # and the -direct runs
    [ "$got" -eq "$want" ] ||
        bench_die "$t: the sink's dd ran $got times, expected $want (one per throughput run)"
    CHECKS+=("$t: the sink container's dd ran once per throughput run ($got)")
    ${CLI[$t]} rm -f pierbench-sink pierbench-web >/dev/null || bench_log "$t: rm -f of the servers failed"
    ${CLI[$t]} network rm pierbench-net >/dev/null || bench_log "$t: network rm failed"
    sleep 0.5
    links=$(ip -n "${NS[$t]}" -o link | awk '{ n = $2; sub(/:$/, "", n); sub(/@.*/, "", n); print n }' |
        grep -Ev '^(lo|pierbench0|docker0)$' | tr '\n' ' ' || true)
    listen=$($(in_ns "$t") ss -Htln | awk '{ print $4 }' | tr '\n' ' ' || true)
    if [ -n "$links$listen" ]; then
        CHECKS+=("$t: after removing all containers and the user network, left in its netns: links [${links% }], TCP listeners [${listen% }]")
        bench_log "${CHECKS[-1]}"
    else
        CHECKS+=("$t: no interfaces or TCP listeners left in its netns after removing all containers and the user network")
    fi
done

# ---- results --------------------------------------------------------------------------------
python3 - "$BENCH_TMP" "$BENCH_WARMUP" "$BENCH_NET_BYTES" "$BENCH_NET_CONNS" <<'PY'
import json, os, sys
tmp, warm, nbytes, nconns = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), int(sys.argv[4])

def median(xs):
    xs = sorted(xs)
    m = len(xs) // 2
    return xs[m] if len(xs) % 2 else (xs[m - 1] + xs[m]) / 2

def quantile(xs, q):
    xs = sorted(xs)
    pos = (len(xs) - 1) * q
    lo = int(pos)
    hi = min(lo + 1, len(xs) - 1)
    return xs[lo] + (xs[hi] - xs[lo]) * (pos - lo)

summary = {}
# setup: medians and differences
s = json.load(open(f"{tmp}/setup.json"))["results"]
rows, diff = [], {}
for e in ("pier", "docker"):
    if f"{e}-none" not in s:
        continue
    none, br, un = (s[f"{e}-{k}"]["median"] * 1000 for k in ("none", "bridge", "usernet"))
    diff[e] = (br - none, un - none)
    rows.append(f"| `{e}` | {none:.0f} | {br:.0f} | {un:.0f} | {br - none:+.0f} | {un - none:+.0f} |")
lines = ["| engine | `--network none` ms | default bridge ms | user network ms | bridge − none ms | user network − none ms |",
         "|---|---:|---:|---:|---:|---:|"] + rows
if "pier" in diff and "docker" in diff:
    r = [p / d if d > 0 else float("nan") for p, d in zip(diff["pier"], diff["docker"])]
    summary["setup_ratio"] = r
    lines.append(f"| pier / docker | | | | {r[0]:.2f} | {r[1]:.2f} |")
open(f"{tmp}/setup-summary.md", "w").write("\n".join(lines) + "\n")

# throughput and connections: the clients' own times (warm-up runs dropped)
for kind, unit in (("tput", "MB/s"), ("conn", "conn/s")):
    merged = json.load(open(f"{tmp}/{kind}.json"))
    rates = {}
    for label in merged["labels"]:
        t = [float(x) for x in open(f"{tmp}/{kind}-{label}.txt").read().split()][warm:]
        rates[label] = [(nbytes / 1e6 if kind == "tput" else nconns) / x for x in t]
    cols = [f"client {unit} median", f"client {unit} p10"] + [f"× {b}" for b in ("docker", "docker-dnat") if b in rates]
    extra = {"columns": cols, "rows": {}}
    for label, r in rates.items():
        row = [f"{median(r):.0f}", f"{quantile(r, 0.1):.0f}"]
        row += [f"{median(r) / median(rates[b]):.2f}" for b in ("docker", "docker-dnat") if b in rates]
        extra["rows"][label] = row
        summary[f"{kind}_{label}"] = median(r)
    json.dump(extra, open(f"{tmp}/{kind}-extra.json", "w"))
json.dump(summary, open(f"{tmp}/summary.json", "w"), indent=1)
PY
bench_table "$BENCH_TMP/setup.json" "" | sed '1s/^| runtime |/| command |/' >"$BENCH_TMP/setup.md"
bench_table "$BENCH_TMP/tput.json" "" "$BENCH_TMP/tput-extra.json" | sed '1s/^| runtime |/| tool |/; 1s/median ms/wall median ms/' >"$BENCH_TMP/tput.md"
bench_table "$BENCH_TMP/conn.json" "" "$BENCH_TMP/conn-extra.json" | sed '1s/^| runtime |/| tool |/; 1s/median ms/wall median ms/' >"$BENCH_TMP/conn.md"
TARGETS=$(python3 - "$BENCH_TMP/summary.json" <<'PY'
import json, sys
s = json.load(open(sys.argv[1]))
out = []
if "setup_ratio" in s:
    r = s["setup_ratio"][0]
    out.append(f"setup (bridge − none) pier/docker = {r:.2f} (target ≤ 0.5: {'met' if r <= 0.5 else 'NOT met'})")
for kind, what in (("tput", "throughput"), ("conn", "connection rate")):
    for b in ("docker", "docker-dnat"):
        if f"{kind}_pier" in s and f"{kind}_{b}" in s:
            r = s[f"{kind}_pier"] / s[f"{kind}_{b}"]
            tgt = f" (target ≥ 1: {'met' if r >= 1 else 'NOT met'})" if kind == "tput" else ""
            out.append(f"{what} pier/{b} = {r:.2f}{tgt}")
print("; ".join(out))
PY
)

# ---- tear down, then the host must be as before ----------------------------------------------
for t in "${ENGINES[@]}"; do net_daemon_stop "$t"; done
for t in "${!NS[@]}"; do bench_netns_delete "${NS[$t]}"; done
net_host_paths_cleanup
bench_host_net_check "$HOST_BEFORE" || bench_die "the host's network state changed during the run (see above)"
HOST_CHECKED=1
HOST_NOTE="unchanged (\`ip -o link\`, \`nft list ruleset\`, \`iptables-save\`, \`ip6tables-save\` and the forwarding sysctls compared before and after the run$([ -z "${BENCH_HOST_IGNORE:-}" ] || echo "; other jobs' objects matching \`$BENCH_HOST_IGNORE\` left out"))"

{
    echo "## Networking: setup cost, published-port throughput and connection rate, side by side"
    echo
    echo "Command (as root, repo root): \`$CMDLINE\`"
    echo
    bench_machine_info
    echo "- Tools:"
    for n in "${NOTES[@]}"; do echo "  - $n"; done
    [ ${#SKIPPED[@]} -eq 0 ] || echo "- Skipped: ${SKIPPED[*]}"
    echo "- Isolation: each daemon ran in a network namespace of its own (\`ip netns add\`, daemon started with \`nsenter --net\`), with its bridge, firewall rules, sysctls and docker-proxy inside it; clients ran in the daemon's namespace. Host network afterwards: $HOST_NOTE"
    echo "- Result: $TARGETS"
    echo "- Checks:"
    for n in "${CHECKS[@]}"; do echo "  - $n"; done
    echo
    echo "### Setup: \`run --rm busybox true\` per network mode"
    echo
    cat "$BENCH_TMP/setup-summary.md"
    echo
    cat "$BENCH_TMP/setup.md"
    echo
    echo "One run: create, start, wait, remove, with \`--network none\`, the default bridge, or"
    echo "\`--network pierbench-net\` (a user bridge network: embedded DNS). The time networking adds"
    echo "is the difference of medians against \`--network none\` on the same engine."
    echo
    echo "### TCP throughput through a published port ($((BENCH_NET_BYTES / 1048576)) MiB per run)"
    echo
    cat "$BENCH_TMP/tput.md"
    echo
    echo "The server: \`run -d -p 127.0.0.1:$PORT_SINK:5001 busybox nc -ll -p 5001 -e dd of=/dev/null bs=1M\`."
    echo "One run: a Python client in the daemon's namespace connects to 127.0.0.1:$PORT_SINK, sends"
    echo "the bytes, half-closes and waits for the server to close; MB/s (10⁶ bytes/s) from the"
    echo "client's own clock (connect to close), wall time from hyperfine (includes nsenter and"
    echo "Python start-up). \`-direct\`: the same client to the container's bridge address, no"
    echo "published port. \"× docker\": ratio of median MB/s (above 1: faster than docker)."
    echo
    echo "### Connection rate through a published port ($BENCH_NET_CONNS connections per run)"
    echo
    cat "$BENCH_TMP/conn.md"
    echo
    echo "The server: \`run -d -p 127.0.0.1:$PORT_WEB:80 busybox httpd -f -p 80 -h /etc\` (forks per"
    echo "connection). One run: $BENCH_NET_CONNS sequential \`GET /group HTTP/1.0\` from a Python client,"
    echo "a new TCP connection each, every answer read to the end and checked; connections/s"
    echo "from the client's clock. \"× docker\": ratio of medians (above 1: more connections/s)."
} >"$BENCH_TMP/section.md"
bench_write_section "$SCENARIO" "$BENCH_TMP/section.md"
cat "$BENCH_TMP/setup-summary.md" "$BENCH_TMP/tput.md" "$BENCH_TMP/conn.md"
bench_log "$TARGETS"
for n in "${CHECKS[@]}"; do bench_log "$n"; done
