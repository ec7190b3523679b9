#!/usr/bin/env bash
# Scenario compose: a 20-service project (one network, 5 volumes, a healthchecked
# root, a dependency chain) through pier compose and docker compose v2, side by side:
#   1. `up -d` from nothing (`down -v` before each run, untimed);
#   2. `up -d` again with nothing changed (nothing recreated);
#   3. `down -v` (`up -d` before each run, untimed).
#
#   bench/compose.sh [TOOL...]     (as root; TOOL: pier, docker-compose-pierd, docker-compose)
#
# `pier`: `pier compose` → pierd; `docker-compose-pierd`: docker compose 2.29.7 (the CLI
# plugin) → the same pierd; `docker-compose`: docker compose → an isolated dockerd.
# Release builds of pier, pierd and pier-runtime (built if missing). Defaults:
# BENCH_RUNS=10 BENCH_ROUNDS=5 BENCH_WARMUP=1. Writes the <!-- bench:compose --> section.
set -euo pipefail
# shellcheck source=bench/lib.sh
. "$(dirname "$0")/lib.sh"

SCENARIO=compose
CMDLINE=$(bench_command_line "$0" "$@")
: "${BENCH_RUNS:=10}" "${BENCH_ROUNDS:=5}" "${BENCH_WARMUP:=1}"
bench_init "$SCENARIO"
bench_require hyperfine python3 tar docker
[ -x /usr/local/lib/docker/cli-plugins/docker-compose ] ||
    bench_die "docker compose v2 is missing (scripts/setup.sh installs it)"

if [ $# -eq 0 ]; then set -- pier docker-compose-pierd docker-compose; fi
for t in "$@"; do
    case $t in pier | docker-compose-pierd | docker-compose) ;; *) bench_die "unknown tool '$t'" ;; esac
done
bench_engine_binaries
BUSYBOX_TAR=$(bench_busybox_tar)

# ---- the project ---------------------------------------------------------------------------
PROJ=$BENCH_TMP/project
mkdir -p "$PROJ"
"$BENCH_PY" - "$PROJ/compose.yaml" <<'PY'
import sys
idle = '["sh", "-c", "trap \'exit 0\' TERM; while :; do sleep 1; done"]'
out = ["services:",
       "  db:",
       "    image: busybox",
       "    pull_policy: never",
       f"    command: {idle}",
       "    networks: [app]",
       "    healthcheck: {test: [\"CMD\", \"true\"], interval: 200ms, retries: 3}"]
for i in range(1, 20):
    prev = "db" if i == 1 else f"s{i-1:02d}"
    cond = "service_healthy" if i == 1 else "service_started"
    out += [f"  s{i:02d}:",
            "    image: busybox",
            "    pull_policy: never",
            f"    command: {idle}",
            "    networks: [app]",
            f"    environment: {{INDEX: \"{i}\"}}",
            f"    depends_on: {{{prev}: {{condition: {cond}}}}}",
            "    healthcheck: {test: [\"CMD\", \"true\"], interval: 5s}"]
    if i <= 5:
        out.append(f"    volumes: [\"v{i}:/data\"]")
out += ["networks:", "  app: {}", "volumes:"] + [f"  v{i}: {{}}" for i in range(1, 6)]
open(sys.argv[1], "w").write("\n".join(out) + "\n")
PY

# ---- pierd ---------------------------------------------------------------------------------
P=$BENCH_TMP/pier
mkdir -p "$P"
"$BENCH_REPO/target/release/pierd" -H "unix://$P/pier.sock" --data-root "$P/data" \
    --exec-root "$P/exec" --bridge "pbr-bench$$" >"$P/pierd.log" 2>&1 &
PIERD_PID=$!
bench_on_exit "kill -TERM $PIERD_PID 2>/dev/null; wait $PIERD_PID 2>/dev/null; true"
for ((i = 0; i < 300; i++)); do
    [ -S "$P/pier.sock" ] && break
    sleep 0.05
done
DOCKER_PIERD="docker --config $P/cli -H unix://$P/pier.sock"
$DOCKER_PIERD import -c 'CMD ["sh"]' "$BUSYBOX_TAR" busybox >/dev/null || bench_die "import into pierd failed"

UP_CMDS=() WARM_CMDS=() DOWN_CMDS=() NOTES=()
declare -A CLI=()
for t in "$@"; do
    case $t in
        pier)
            CLI[pier]="env DOCKER_HOST=unix://$P/pier.sock $BENCH_REPO/target/release/pier compose"
            NOTES+=("\`pier\`: \`pier compose\` → pierd $(git -C "$BENCH_REPO" rev-parse --short HEAD)") ;;
        docker-compose-pierd)
            CLI[docker-compose-pierd]="$DOCKER_PIERD compose"
            NOTES+=("\`docker-compose-pierd\`: docker compose $(docker compose version --short) → the same pierd") ;;
        docker-compose)
            bench_dockerd_start
            "${BENCH_DOCKER_ARGV[@]}" import -c 'CMD ["sh"]' "$BUSYBOX_TAR" busybox >/dev/null
            CLI[docker-compose]="$BENCH_DOCKER compose"
            NOTES+=("\`docker-compose\`: docker compose $(docker compose version --short) → dockerd $(dockerd --version | cut -d' ' -f3 | tr -d ,), overlay2, isolated") ;;
    esac
    c="${CLI[$t]} -f $PROJ/compose.yaml -p ${BENCH_ID_PREFIX}${t}"
    UP_CMDS+=("$t" "$c up -d")
    WARM_CMDS+=("$t" "$c up -d")
    DOWN_CMDS+=("$t" "$c down -v -t 1")
    # First, untimed: each tool must bring the project up and down.
    sh -c "$c up -d --wait" >/dev/null 2>&1 || bench_die "$t: up failed"
    sh -c "$c down -v -t 1" >/dev/null 2>&1 || bench_die "$t: down failed"
    bench_on_exit "sh -c '$c down -v -t 1' >/dev/null 2>&1; true"
done
bench_log "tools: $*"

for t in "$@"; do BENCH_PREPARE[$t]="${CLI[$t]} -f $PROJ/compose.yaml -p ${BENCH_ID_PREFIX}${t} down -v -t 1"; done
bench_compare "$BENCH_TMP/up.json" "${UP_CMDS[@]}"
BENCH_PREPARE=()
base=docker-compose-pierd
bench_table "$BENCH_TMP/up.json" "$base" | sed '1s/^| runtime |/| tool |/' >"$BENCH_TMP/up.md"
bench_compare "$BENCH_TMP/warm.json" "${WARM_CMDS[@]}"
bench_table "$BENCH_TMP/warm.json" "$base" | sed '1s/^| runtime |/| tool |/' >"$BENCH_TMP/warm.md"
for t in "$@"; do BENCH_PREPARE[$t]="${CLI[$t]} -f $PROJ/compose.yaml -p ${BENCH_ID_PREFIX}${t} up -d"; done
bench_compare "$BENCH_TMP/down.json" "${DOWN_CMDS[@]}"
bench_table "$BENCH_TMP/down.json" "$base" | sed '1s/^| runtime |/| tool |/' >"$BENCH_TMP/down.md"

{
    echo "## Compose: up -d, no-change up -d and down -v of a 20-service project"
    echo
    echo "Command (as root, repo root): \`$CMDLINE\`"
    echo
    bench_machine_info
    echo "- Tools:"
    for n in "${NOTES[@]}"; do echo "  - $n"; done
    echo
    echo "The project: 20 busybox services on one network, 5 named volumes, every service"
    echo "healthchecked, a chain s19 → … → s01 (started) → db (healthy). \`up -d\` from nothing"
    echo "(\`down -v\` untimed before each run):"
    echo
    cat "$BENCH_TMP/up.md"
    echo
    echo "\`up -d\` with nothing changed (nothing recreated):"
    echo
    cat "$BENCH_TMP/warm.md"
    echo
    echo "\`down -v -t 1\` (\`up -d\` untimed before each run):"
    echo
    cat "$BENCH_TMP/down.md"
    echo
    echo "\"× $base\" is the ratio of medians to docker compose on the same pierd."
} >"$BENCH_TMP/section.md"
bench_write_section "$SCENARIO" "$BENCH_TMP/section.md"
cat "$BENCH_TMP/up.md" "$BENCH_TMP/warm.md" "$BENCH_TMP/down.md"
