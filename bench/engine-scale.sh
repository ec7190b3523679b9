#!/usr/bin/env bash
# Scenario engine-scale: a detached container's whole life (`run -d` + `stop` + `rm`),
# then 100 containers started at once, and the memory they add, through pier (pier CLI
# → pierd) and docker (isolated dockerd + containerd + runc), side by side.
#
#   bench/engine-scale.sh [TOOL...]        (as root; TOOL: pier, docker)
#
# BENCH_FLEET (default 100) sets how many containers start at once. Needs release
# builds of pier, pierd and pier-runtime (built here if missing). Every engine gets a
# busybox image imported from the same rootfs tar and runs with `--network none`.
# Writes the <!-- bench:engine-scale --> section.
set -euo pipefail
# shellcheck source=bench/lib.sh
. "$(dirname "$0")/lib.sh"

SCENARIO=engine-scale
CMDLINE=$(bench_command_line "$0" "$@")
: "${BENCH_RUNS:=20}" "${BENCH_ROUNDS:=4}" "${BENCH_WARMUP:=2}" "${BENCH_FLEET:=100}"
bench_init "$SCENARIO"
bench_require hyperfine python3 xargs

if [ $# -eq 0 ]; then set -- pier docker; fi
for t in "$@"; do
    case $t in pier | docker) ;; *) bench_die "unknown tool '$t'" ;; esac
done
bench_engine_binaries
ROOTFS_TAR=$(bench_busybox_tar)

rss_kib() { awk '/^VmRSS/ { print $2 }' "/proc/$1/status" 2>/dev/null || echo 0; }
# Private (not shared with other processes) memory: what one more process really adds.
uss_kib() { awk '/^Private_(Clean|Dirty)/ { s += $2 } END { print s + 0 }' "/proc/$1/smaps_rollup" 2>/dev/null || echo 0; }
sum_uss_kib() {
    local total=0 p
    for p in "$@"; do total=$((total + $(uss_kib "$p"))); done
    echo "$total"
}

# The one-container life, and the fleet start (its prepare step removes the last fleet).
LIFE_SCRIPT=$BENCH_TMP/life.sh
cat >"$LIFE_SCRIPT" <<'EOF'
# usage: life.sh DOCKER-COMMAND...  (one run -d, stop, rm)
id=$("$@" run -d --network none busybox sleep 1000) || exit 1
"$@" stop -t 0 "$id" >/dev/null || exit 1
"$@" rm "$id" >/dev/null
EOF
FLEET_SCRIPT=$BENCH_TMP/fleet.sh
cat >"$FLEET_SCRIPT" <<'EOF'
# usage: fleet.sh N DOCKER-COMMAND...  (N detached containers started at once; all must start)
n=$1; shift
seq "$n" | xargs -P "$n" -I{} "$@" run -d --network none busybox sleep 1000 >/dev/null || exit 1
[ "$("$@" ps -q | wc -l)" -eq "$n" ]
EOF
CLEAN_SCRIPT=$BENCH_TMP/clean.sh
cat >"$CLEAN_SCRIPT" <<'EOF'
# usage: clean.sh DOCKER-COMMAND...  (removes every container of that engine)
ids=$("$@" ps -aq)
[ -z "$ids" ] || "$@" rm -f $ids >/dev/null
EOF

LIFE_CMDS=() FLEET_CMDS=() NOTES=() MEM_NOTES=()
declare -A CLI=()
for t in "$@"; do
    case $t in
        pier)
            P=$BENCH_TMP/pier
            mkdir -p "$P"
            "$BENCH_REPO/target/release/pierd" -H "unix://$P/pier.sock" --data-root "$P/data" \
                --exec-root "$P/exec" >"$P/pierd.log" 2>&1 &
            PIERD_PID=$!
            bench_on_exit "kill -TERM $PIERD_PID 2>/dev/null; wait $PIERD_PID 2>/dev/null; true"
            CLI[pier]="$BENCH_REPO/target/release/pier -H unix://$P/pier.sock --data-root $P/data"
            bench_on_exit "sh $CLEAN_SCRIPT ${CLI[pier]} 2>/dev/null; true"
            for ((i = 0; i < 300; i++)); do
                [ -S "$P/pier.sock" ] && break
                sleep 0.05
            done
            docker --config "$P/cli" -H "unix://$P/pier.sock" import -c 'CMD ["sh"]' "$ROOTFS_TAR" busybox >/dev/null ||
                bench_die "import into pierd failed"
            NOTES+=("\`pier\`: pier CLI → pierd $(git -C "$BENCH_REPO" rev-parse --short HEAD) (runtime pier-runtime; one monitor process per container)") ;;
        docker)
            bench_dockerd_start
            "${BENCH_DOCKER_ARGV[@]}" import -c 'CMD ["sh"]' "$ROOTFS_TAR" busybox >/dev/null
            CLI[docker]=$BENCH_DOCKER
            NOTES+=("\`docker\`: docker CLI $(docker --version | cut -d' ' -f3 | tr -d ,) → dockerd $(dockerd --version | cut -d' ' -f3 | tr -d ,) + containerd + runc, overlay2, isolated (no bridge, no iptables)") ;;
    esac
    LIFE_CMDS+=("$t" "sh $LIFE_SCRIPT ${CLI[$t]}")
    FLEET_CMDS+=("$t" "sh $FLEET_SCRIPT $BENCH_FLEET ${CLI[$t]}")
    BENCH_PREPARE[$t]="sh $CLEAN_SCRIPT ${CLI[$t]}"
    sh -c "sh $LIFE_SCRIPT ${CLI[$t]}" || bench_die "$t: first run -d/stop/rm failed"
done
bench_log "tools: $*"

saved_prepare=$(declare -p BENCH_PREPARE)
BENCH_PREPARE=()
bench_compare "$BENCH_TMP/life.json" "${LIFE_CMDS[@]}"
bench_table "$BENCH_TMP/life.json" docker | sed '1s/^| runtime |/| tool |/' >"$BENCH_TMP/life.md"

eval "$saved_prepare"
BENCH_RUNS=${BENCH_FLEET_RUNS:-5} BENCH_ROUNDS=1 BENCH_WARMUP=1 \
    bench_compare "$BENCH_TMP/fleet.json" "${FLEET_CMDS[@]}"
bench_table "$BENCH_TMP/fleet.json" docker | sed '1s/^| runtime |/| tool |/' >"$BENCH_TMP/fleet.md"

# ---- memory with a full fleet running ------------------------------------------------------
for t in "$@"; do
    sh -c "sh $CLEAN_SCRIPT ${CLI[$t]}"
    case $t in
        pier)
            idle=$(rss_kib "$PIERD_PID")
            sh -c "sh $FLEET_SCRIPT $BENCH_FLEET ${CLI[pier]}" || bench_die "pier fleet failed"
            sleep 1
            mapfile -t mons < <(pgrep -f "monitor $BENCH_TMP/pier/exec" || true)
            busy=$(rss_kib "$PIERD_PID")
            total=$(sum_uss_kib "${mons[@]}")
            MEM_NOTES+=("pier, $BENCH_FLEET running: ${#mons[@]} monitors, private memory $total KiB in all = $((total / BENCH_FLEET)) KiB per container; pierd RSS $idle KiB before the fleet → $busy KiB (+$(((busy - idle) / BENCH_FLEET)) KiB per container)") ;;
        docker)
            c_pid=$(cat "$BENCH_TMP/docker/exec/containerd/containerd.pid" 2>/dev/null || echo 0)
            idle=$(($(rss_kib "$BENCH__DOCKERD_PID") + $(rss_kib "$c_pid")))
            sh -c "sh $FLEET_SCRIPT $BENCH_FLEET ${CLI[docker]}" || bench_die "docker fleet failed"
            sleep 1
            mapfile -t shims < <(pgrep -f "containerd-shim-runc-v2 .*-address $BENCH_TMP/docker" || true)
            busy=$(($(rss_kib "$BENCH__DOCKERD_PID") + $(rss_kib "$c_pid")))
            total=$(sum_uss_kib "${shims[@]}")
            MEM_NOTES+=("docker, $BENCH_FLEET running: ${#shims[@]} shims, private memory $total KiB in all = $((total / BENCH_FLEET)) KiB per container; dockerd + containerd RSS $idle KiB before the fleet → $busy KiB (+$(((busy - idle) / BENCH_FLEET)) KiB per container)") ;;
    esac
    sh -c "sh $CLEAN_SCRIPT ${CLI[$t]}"
done

{
    echo "## Engine at scale: \`run -d\` + \`stop\` + \`rm\`; $BENCH_FLEET containers started at once"
    echo
    echo "Command (as root, repo root): \`$CMDLINE\`"
    echo
    bench_machine_info
    echo "- Tools:"
    for n in "${NOTES[@]}"; do echo "  - $n"; done
    echo "- Memory with $BENCH_FLEET containers running (private = Private_Clean + Private_Dirty of smaps_rollup):"
    for n in "${MEM_NOTES[@]}"; do echo "  - $n"; done
    echo
    echo "One detached container's life: \`run -d --network none busybox sleep 1000\`, \`stop -t 0\`, \`rm\`:"
    echo
    cat "$BENCH_TMP/life.md"
    echo
    echo "$BENCH_FLEET containers started at once (\`xargs -P $BENCH_FLEET ... run -d\`, until all run; removed untimed between runs):"
    echo
    cat "$BENCH_TMP/fleet.md"
    echo
    echo "\"× docker\" is the ratio of medians (below 1: faster than docker)."
} >"$BENCH_TMP/section.md"
bench_write_section "$SCENARIO" "$BENCH_TMP/section.md"
cat "$BENCH_TMP/life.md" "$BENCH_TMP/fleet.md"
printf '%s\n' "${MEM_NOTES[@]}"
