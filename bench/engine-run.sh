#!/usr/bin/env bash
# Scenario engine-run: `run --rm busybox true` through each engine, side by side:
# pier (the pier CLI to its pierd), pierd driven by the docker CLI, docker (isolated
# dockerd) and podman (own root). Also: `run -d` + `stop` + `rm`, idle daemon RSS and
# the RSS a running container adds.
#
#   bench/engine-run.sh [TOOL...]        (as root; TOOL: pier, docker-cli-pierd, docker, podman)
#
# Needs release builds of pier, pierd and pier-runtime (built here if missing). Each
# engine gets a busybox image imported from the same rootfs tar (scripts/busybox-rootfs.sh)
# and runs with no network (`--network none`). Writes the <!-- bench:engine-run -->
# section.
set -euo pipefail
# shellcheck source=bench/lib.sh
. "$(dirname "$0")/lib.sh"

SCENARIO=engine-run
CMDLINE=$(bench_command_line "$0" "$@")
: "${BENCH_RUNS:=20}" "${BENCH_ROUNDS:=5}" "${BENCH_WARMUP:=2}"
bench_init "$SCENARIO"
bench_require hyperfine python3

if [ $# -eq 0 ]; then set -- pier docker-cli-pierd docker podman; fi
for t in "$@"; do
    case $t in pier | docker-cli-pierd | docker | podman) ;; *) bench_die "unknown tool '$t'" ;; esac
done
bench_engine_binaries
ROOTFS_TAR=$(bench_busybox_tar)

# ---- pierd -------------------------------------------------------------------------------
P=$BENCH_TMP/pier
mkdir -p "$P"
"$BENCH_REPO/target/release/pierd" -H "unix://$P/pier.sock" --data-root "$P/data" \
    --exec-root "$P/exec" >"$P/pierd.log" 2>&1 &
PIERD_PID=$!
bench_on_exit "kill -TERM $PIERD_PID 2>/dev/null; wait $PIERD_PID 2>/dev/null; true"
bench_on_exit "for i in \$(docker --config '$P/cli' -H 'unix://$P/pier.sock' ps -aq 2>/dev/null); do docker --config '$P/cli' -H 'unix://$P/pier.sock' rm -f \$i >/dev/null 2>&1; done"
for ((i = 0; i < 300; i++)); do
    [ -S "$P/pier.sock" ] && break
    sleep 0.05
done
PIER="$BENCH_REPO/target/release/pier -H unix://$P/pier.sock --data-root $P/data"
DOCKER_PIERD="docker --config $P/cli -H unix://$P/pier.sock"
$DOCKER_PIERD import -c 'CMD ["sh"]' "$ROOTFS_TAR" busybox >/dev/null || bench_die "import into pierd failed"

CMDS=() NOTES=() SKIPPED=()
for t in "$@"; do
    case $t in
        pier)
            CMDS+=(pier "$PIER run --rm --network none busybox true")
            NOTES+=("\`pier\`: pier CLI → pierd $(git -C "$BENCH_REPO" rev-parse --short HEAD) (default runtime pier-runtime; monitor per container)") ;;
        docker-cli-pierd)
            CMDS+=(docker-cli-pierd "$DOCKER_PIERD run --rm --network none busybox true")
            NOTES+=("\`docker-cli-pierd\`: docker CLI $(docker --version | cut -d' ' -f3 | tr -d ,) → pierd") ;;
        docker)
            bench_dockerd_start
            "${BENCH_DOCKER_ARGV[@]}" import -c 'CMD ["sh"]' "$ROOTFS_TAR" busybox >/dev/null
            CMDS+=(docker "$BENCH_DOCKER run --rm --network none busybox true")
            NOTES+=("\`docker\`: dockerd $(dockerd --version | cut -d' ' -f3 | tr -d ,) + containerd + runc, overlay2, isolated (no bridge, no iptables)") ;;
        podman)
            if ! command -v podman >/dev/null; then bench_log "skipping podman: not installed"; continue; fi
            PM=$BENCH_TMP/podman
            mkdir -p "$PM"
            PODMAN="podman --root $PM/root --runroot $PM/run --cgroup-manager cgroupfs --runtime runc --storage-driver overlay --events-backend none"
            $PODMAN import -c 'CMD ["sh"]' "$ROOTFS_TAR" busybox >/dev/null || bench_die "podman import failed"
            bench_on_exit "$PODMAN rm -af >/dev/null 2>&1; umount -R '$PM/root/overlay' 2>/dev/null; true"
            if ! err=$($PODMAN run --rm --network none busybox true 2>&1); then
                bench_log "skipping podman: it cannot run a container here: $err"
                SKIPPED+=("podman $(podman --version | cut -d' ' -f3): cannot run a container on this host (${err%%$'\n'*})")
                continue
            fi
            CMDS+=(podman "$PODMAN run --rm --network none busybox true")
            NOTES+=("\`podman\`: podman $(podman --version | cut -d' ' -f3) (no daemon; runc; own --root)") ;;
    esac
done
bench_log "tools: $*"
for ((i = 0; i < ${#CMDS[@]}; i += 2)); do
    sh -c "${CMDS[$((i + 1))]}" >/dev/null || bench_die "${CMDS[$i]}: first run failed"
done

bench_compare "$BENCH_TMP/merged.json" "${CMDS[@]}"
bench_table "$BENCH_TMP/merged.json" docker | sed '1s/^| runtime |/| tool |/' >"$BENCH_TMP/table.md"

# ---- memory ------------------------------------------------------------------------------
rss_kib() { awk '/^VmRSS/ { print $2 }' "/proc/$1/status" 2>/dev/null || echo 0; }
# Private (not shared with other processes) memory: what one more process really adds.
uss_kib() { awk '/^Private_(Clean|Dirty)/ { s += $2 } END { print s + 0 }' "/proc/$1/smaps_rollup" 2>/dev/null || echo 0; }
PIERD_RSS=$(rss_kib "$PIERD_PID")
MEM_NOTES=("pierd idle: $PIERD_RSS KiB")
if [ -n "${BENCH__DOCKERD_PID:-}" ]; then
    d_rss=$(rss_kib "$BENCH__DOCKERD_PID")
    c_pid=$(cat "$BENCH_TMP/docker/exec/containerd/containerd.pid" 2>/dev/null || echo 0)
    c_rss=$(rss_kib "$c_pid")
    MEM_NOTES+=("dockerd + containerd idle: $d_rss + $c_rss = $((d_rss + c_rss)) KiB (pierd is $(python3 -c "print(f'{$PIERD_RSS/($d_rss+$c_rss):.2f}')")×)")
fi
# What one running container adds: its monitor (pier) vs its shim (docker).
$DOCKER_PIERD run -d --name rss --network none busybox sleep 1000 >/dev/null
sleep 0.5
mon=$(pgrep -f "monitor $P/exec" | head -n 1 || true)
[ -z "$mon" ] || MEM_NOTES+=("pier per running container: monitor RSS $(rss_kib "$mon") KiB, private $(uss_kib "$mon") KiB (plus the container's own processes)")
$DOCKER_PIERD rm -f rss >/dev/null
if [ -n "${BENCH__DOCKERD_PID:-}" ]; then
    "${BENCH_DOCKER_ARGV[@]}" run -d --name rss --network none busybox sleep 1000 >/dev/null
    shim=$(pgrep -f "containerd-shim-runc-v2 .*-address $BENCH_TMP/docker" | head -n 1 || pgrep -n containerd-shim || true)
    [ -z "$shim" ] || MEM_NOTES+=("docker per running container: containerd-shim-runc-v2 RSS $(rss_kib "$shim") KiB, private $(uss_kib "$shim") KiB")
    "${BENCH_DOCKER_ARGV[@]}" rm -f rss >/dev/null
fi

{
    echo "## Engine: \`run --rm busybox true\`, side by side"
    echo
    echo "Command (as root, repo root): \`$CMDLINE\`"
    echo
    bench_machine_info
    echo "- Tools:"
    for n in "${NOTES[@]}"; do echo "  - $n"; done
    [ ${#SKIPPED[@]} -eq 0 ] || echo "- Skipped: ${SKIPPED[*]}"
    echo "- Memory (VmRSS):"
    for n in "${MEM_NOTES[@]}"; do echo "  - $n"; done
    echo
    cat "$BENCH_TMP/table.md"
    echo
    echo "One run: create, attach, start, wait for exit, remove, through the CLI named. \"× docker\""
    echo "is the ratio of medians (below 1: faster than docker)."
} >"$BENCH_TMP/section.md"
bench_write_section "$SCENARIO" "$BENCH_TMP/section.md"
cat "$BENCH_TMP/table.md"
printf '%s\n' "${MEM_NOTES[@]}"
