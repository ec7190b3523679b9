#!/usr/bin/env bash
# Scenario registry-server: pier-registry against distribution (Debian's docker-registry)
# under concurrent pulls, side by side, on loopback ports of the run's own.
#
#   bench/registry-server.sh            (as root)
#
# Both servers get the same kind of image pushed (BENCH_LAYERS random layers of
# BENCH_LAYER_MB MiB, uncompressed OCI), then, alternating between the servers each round:
#   - pull: BENCH_CLIENTS clients each pull the image (manifest, config, every layer) over
#     and over on a keep-alive connection for BENCH_SECONDS: MiB/s and requests/s;
#   - manifests: the same clients GET the manifest only: requests/s.
# The load generator is crates/pier-registry/examples/registry_load.rs (std threads,
# release build). The servers' peak RSS (VmHWM) is read at the end. distribution runs
# with Debian's default in-memory blob descriptor cache.
# Settings (besides bench/lib.sh's BENCH_ROUNDS, default 3 here, and BENCH_OUTPUT):
#   BENCH_CLIENTS (50), BENCH_SECONDS (5), BENCH_LAYERS (8), BENCH_LAYER_MB (4)
# Needs a release pier-registry (built here if missing) and /usr/bin/docker-registry.
# Writes the <!-- bench:registry-server --> section.
set -euo pipefail
# shellcheck source=bench/lib.sh
. "$(dirname "$0")/lib.sh"

SCENARIO=registry-server
CMDLINE=$(bench_command_line "$0" "$@")
for v in BENCH_CLIENTS BENCH_SECONDS BENCH_LAYERS BENCH_LAYER_MB; do
    if printenv "$v" >/dev/null; then CMDLINE="$v=$(printenv "$v") $CMDLINE"; fi
done
CLIENTS=${BENCH_CLIENTS:-50}
SECONDS_PER_RUN=${BENCH_SECONDS:-5}
LAYERS=${BENCH_LAYERS:-8}
LAYER_MB=${BENCH_LAYER_MB:-4}
: "${BENCH_ROUNDS:=3}" "${BENCH_RUNS:=$BENCH_ROUNDS}" "${BENCH_WARMUP:=0}"
bench_init "$SCENARIO"
bench_require /usr/bin/docker-registry

TARGET=${CARGO_TARGET_DIR:-$BENCH_REPO/target}
PIER_REGISTRY=$TARGET/release/pier-registry
LOAD=$TARGET/release/examples/registry_load
if [ ! -x "$PIER_REGISTRY" ] || [ ! -x "$LOAD" ]; then
    bench_log "building release pier-registry and its load generator"
    (cd "$BENCH_REPO" && cargo build --quiet --release -p pier-registry --bin pier-registry --example registry_load) ||
        bench_die "cargo build failed"
fi

free_port() { "$BENCH_PY" -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
wait_port() {
    local i
    for i in $(seq 100); do
        (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null && return 0
        sleep 0.1
    done
    bench_die "nothing listens on 127.0.0.1:$1"
}

PIER_PORT=$(free_port)
mkdir -p "$BENCH_TMP/pier" "$BENCH_TMP/dist"
"$PIER_REGISTRY" --addr "127.0.0.1:$PIER_PORT" --root "$BENCH_TMP/pier" 2>"$BENCH_TMP/pier.log" &
PIER_PID=$!
bench_on_exit "bench_stop_pid pier-registry $PIER_PID"
DIST_PORT=$(free_port)
cat >"$BENCH_TMP/dist.yml" <<YAML
version: 0.1
log:
  level: error
  accesslog:
    disabled: true
storage:
  cache:
    blobdescriptor: inmemory
  filesystem:
    rootdirectory: $BENCH_TMP/dist
http:
  addr: 127.0.0.1:$DIST_PORT
YAML
/usr/bin/docker-registry serve "$BENCH_TMP/dist.yml" 2>"$BENCH_TMP/dist.log" &
DIST_PID=$!
bench_on_exit "bench_stop_pid docker-registry $DIST_PID"
wait_port "$PIER_PORT"
wait_port "$DIST_PORT"

bench_log "pushing a ${LAYERS}x${LAYER_MB} MiB image to both"
"$LOAD" push "127.0.0.1:$PIER_PORT" bench/img "$LAYERS" "$LAYER_MB"
"$LOAD" push "127.0.0.1:$DIST_PORT" bench/img "$LAYERS" "$LAYER_MB"

RESULTS=$BENCH_TMP/results.jsonl
for round in $(seq "$BENCH_ROUNDS"); do
    order="pier distribution"
    [ $((round % 2)) -eq 0 ] && order="distribution pier"
    for server in $order; do
        port=$PIER_PORT
        [ "$server" = distribution ] && port=$DIST_PORT
        for mode in pull manifests; do
            bench_log "round $round: $server $mode, $CLIENTS clients, ${SECONDS_PER_RUN}s"
            "$LOAD" "$mode" "127.0.0.1:$port" bench/img "$CLIENTS" "$SECONDS_PER_RUN" |
                "$BENCH_PY" -c 'import json,sys; r=json.load(sys.stdin); r.update(server=sys.argv[1], mode=sys.argv[2]); print(json.dumps(r))' "$server" "$mode" >>"$RESULTS"
        done
    done
done
hwm() { awk '/^VmHWM/ { print $2 }' "/proc/$1/status"; }
PIER_HWM=$(hwm "$PIER_PID")
DIST_HWM=$(hwm "$DIST_PID")

SECTION=$BENCH_TMP/section.md
{
    printf '## Registry server: %s concurrent pulls, pier-registry against distribution\n\n' "$CLIENTS"
    printf 'Command (as root, repo root): `%s`\n\n' "$CMDLINE"
    bench_machine_info | grep -v '^- Method\|^- Temp dir'
    printf -- '- Method: %s rounds, servers alternating; each run %s s of %s clients on keep-alive connections; image of %s uncompressed layers of %s MiB; load generator on the same machine; medians over the rounds\n' \
        "$BENCH_ROUNDS" "$SECONDS_PER_RUN" "$CLIENTS" "$LAYERS" "$LAYER_MB"
    printf -- '- Servers: `pier-registry` (%s), `docker-registry` (%s), both on the same disk\n\n' \
        "$PIER_REGISTRY" "$(/usr/bin/docker-registry --version)"
    "$BENCH_PY" - "$RESULTS" "$PIER_HWM" "$DIST_HWM" <<'PY'
import json, statistics, sys
rows = [json.loads(l) for l in open(sys.argv[1])]
hwm = {"pier": int(sys.argv[2]), "distribution": int(sys.argv[3])}
def med(server, mode, f):
    return statistics.median(f(r) for r in rows if r["server"] == server and r["mode"] == mode)
print("| server | pull MiB/s | pull requests/s | manifest requests/s | errors | peak RSS MiB |")
print("|---|---:|---:|---:|---:|---:|")
for s, name in (("pier", "`pier-registry`"), ("distribution", "`docker-registry` (distribution 2.8)")):
    mib = med(s, "pull", lambda r: r["bytes"] / r["seconds"] / 2**20)
    rps = med(s, "pull", lambda r: r["requests"] / r["seconds"])
    mrps = med(s, "manifests", lambda r: r["requests"] / r["seconds"])
    errors = sum(r["errors"] for r in rows if r["server"] == s)
    print(f"| {name} | {mib:.0f} | {rps:.0f} | {mrps:.0f} | {errors} | {hwm[s] / 1024:.0f} |")
p = lambda m, f: med("pier", m, f) / med("distribution", m, f)
print()
print(f"pier-registry / distribution: pull throughput {p('pull', lambda r: r['bytes'] / r['seconds']):.2f}x, "
      f"manifest request rate {p('manifests', lambda r: r['requests'] / r['seconds']):.2f}x, "
      f"peak RSS {hwm['pier'] / hwm['distribution']:.2f}x.")
PY
} >"$SECTION"
cat "$SECTION"
bench_write_section "$SCENARIO" "$SECTION"
