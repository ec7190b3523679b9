#!/usr/bin/env bash
# Scenario build: a multi-stage Dockerfile of 12 steps through each engine's builder,
# side by side:
#   1. cold: `build --no-cache` (every step runs: 3 RUNs, 3 COPYs, config steps);
#   2. no change: the same build again, every step from the cache;
#   3. one file changed: a source file gets new contents before each run (untimed,
#      hyperfine --prepare), so the steps from its COPY on run again.
#
#   bench/build.sh [TOOL...]     (as root; TOOL: pier, docker-cli-pierd, docker)
#
# `pier`: `pier build` to its pierd; `docker-cli-pierd`: `DOCKER_BUILDKIT=0 docker
# build` to pierd; `docker`: `DOCKER_BUILDKIT=0 docker build` to an isolated dockerd
# (the classic builder). Each engine imports the same busybox image. Needs release
# builds of pier, pierd and pier-runtime (built here if missing). Defaults:
# BENCH_RUNS=10 BENCH_ROUNDS=5 BENCH_WARMUP=1. Writes the <!-- bench:build --> section.
set -euo pipefail
# shellcheck source=bench/lib.sh
. "$(dirname "$0")/lib.sh"

SCENARIO=build
CMDLINE=$(bench_command_line "$0" "$@")
: "${BENCH_RUNS:=10}" "${BENCH_ROUNDS:=5}" "${BENCH_WARMUP:=1}"
bench_init "$SCENARIO"
bench_require hyperfine python3 tar

if [ $# -eq 0 ]; then set -- pier docker-cli-pierd docker; fi
for t in "$@"; do
    case $t in pier | docker-cli-pierd | docker) ;; *) bench_die "unknown tool '$t'" ;; esac
done
bench_engine_binaries
BUSYBOX_TAR=$(bench_busybox_tar)

# ---- the context: 200 source files, a multi-stage Dockerfile ---------------------------
CTX=$BENCH_TMP/ctx
mkdir -p "$CTX/src" "$CTX/assets"
"$BENCH_PY" - "$CTX" <<'PY'
import os, random, sys
ctx = sys.argv[1]
rng = random.Random(11)
for i in range(200):
    with open(f"{ctx}/src/mod{i:03d}.txt", "w") as f:
        f.write("".join(rng.choice("abcdefgh \n") for _ in range(4096)))
for i in range(20):
    with open(f"{ctx}/assets/a{i:02d}.bin", "wb") as f:
        f.write(rng.randbytes(64 * 1024))
PY
cat >"$CTX/Dockerfile" <<'DOCKERFILE'
FROM busybox AS builder
ARG VERSION=1
WORKDIR /build
COPY src/ ./src/
RUN cat src/*.txt | sort > sorted.txt && wc -l sorted.txt > lines.txt
RUN sha256sum sorted.txt > digest.txt && mkdir -p /out && cp lines.txt digest.txt /out/
FROM busybox
ENV APP_HOME=/app MODE=production
COPY assets/ /app/assets/
COPY --from=builder /out/ /app/
RUN echo 'app:x:1000:1000::/app:/bin/sh' >> /etc/passwd && chown -R 1000 /app
USER app
CMD ["cat", "/app/digest.txt"]
DOCKERFILE
echo "*.tmp" >"$CTX/.dockerignore"
CHANGE_SCRIPT=$BENCH_TMP/change.sh
printf '#!/bin/sh\ndate +%%s%%N >> %s/src/mod000.txt\n' "$CTX" >"$CHANGE_SCRIPT"
chmod +x "$CHANGE_SCRIPT"

# ---- pierd -------------------------------------------------------------------------------
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
PIER="$BENCH_REPO/target/release/pier -H unix://$P/pier.sock --data-root $P/data"
DOCKER_PIERD="docker --config $P/cli -H unix://$P/pier.sock"
$DOCKER_PIERD import -c 'CMD ["sh"]' "$BUSYBOX_TAR" busybox >/dev/null || bench_die "import into pierd failed"

COLD_CMDS=() WARM_CMDS=() CHANGE_CMDS=() NOTES=()
declare -A CLI=()
for t in "$@"; do
    case $t in
        pier)
            CLI[pier]="$PIER build"
            NOTES+=("\`pier\`: \`pier build\` → pierd $(git -C "$BENCH_REPO" rev-parse --short HEAD)") ;;
        docker-cli-pierd)
            CLI[docker-cli-pierd]="env DOCKER_BUILDKIT=0 $DOCKER_PIERD build"
            NOTES+=("\`docker-cli-pierd\`: \`DOCKER_BUILDKIT=0 docker build\` (docker CLI $(docker --version | cut -d' ' -f3 | tr -d ,)) → pierd") ;;
        docker)
            bench_dockerd_start
            "${BENCH_DOCKER_ARGV[@]}" import -c 'CMD ["sh"]' "$BUSYBOX_TAR" busybox >/dev/null
            CLI[docker]="env DOCKER_BUILDKIT=0 $BENCH_DOCKER build"
            NOTES+=("\`docker\`: \`DOCKER_BUILDKIT=0 docker build\` → dockerd $(dockerd --version | cut -d' ' -f3 | tr -d ,) classic builder, overlay2, isolated (no bridge: RUN on the host network)") ;;
    esac
    tag="${BENCH_ID_PREFIX}built-$t"
    COLD_CMDS+=("$t" "${CLI[$t]} -q --no-cache -t $tag $CTX")
    WARM_CMDS+=("$t" "${CLI[$t]} -q -t $tag $CTX")
    CHANGE_CMDS+=("$t" "${CLI[$t]} -q -t $tag $CTX")
    # First, untimed: each tool must build it and the image must run.
    sh -c "${CLI[$t]} -q -t $tag $CTX" >/dev/null || bench_die "$t: the first build failed"
done
bench_log "tools: $*"

bench_compare "$BENCH_TMP/cold.json" "${COLD_CMDS[@]}"
bench_table "$BENCH_TMP/cold.json" docker | sed '1s/^| runtime |/| tool |/' >"$BENCH_TMP/cold.md"
bench_compare "$BENCH_TMP/warm.json" "${WARM_CMDS[@]}"
bench_table "$BENCH_TMP/warm.json" docker | sed '1s/^| runtime |/| tool |/' >"$BENCH_TMP/warm.md"
for t in "$@"; do BENCH_PREPARE[$t]="$CHANGE_SCRIPT"; done
bench_compare "$BENCH_TMP/change.json" "${CHANGE_CMDS[@]}"
bench_table "$BENCH_TMP/change.json" docker | sed '1s/^| runtime |/| tool |/' >"$BENCH_TMP/change.md"

{
    echo "## Build: a 12-step multi-stage Dockerfile, cold, unchanged and after one change"
    echo
    echo "Command (as root, repo root): \`$CMDLINE\`"
    echo
    bench_machine_info
    echo "- Tools:"
    for n in "${NOTES[@]}"; do echo "  - $n"; done
    echo
    echo "The context: 200 text sources (4 KiB each) and 20 binary assets (64 KiB each);"
    echo "two stages (3 RUNs, 3 COPYs, one COPY --from). Cold (\`--no-cache\`):"
    echo
    cat "$BENCH_TMP/cold.md"
    echo
    echo "Unchanged rebuild (every step from the cache):"
    echo
    cat "$BENCH_TMP/warm.md"
    echo
    echo "After one source file changed (untimed, before each run): the builder stage's"
    echo "COPY and RUNs, and the final stage's COPY --from and RUN, run again:"
    echo
    cat "$BENCH_TMP/change.md"
    echo
    echo "\"× docker\" is the ratio of medians (below 1: faster than docker)."
} >"$BENCH_TMP/section.md"
bench_write_section "$SCENARIO" "$BENCH_TMP/section.md"
cat "$BENCH_TMP/cold.md" "$BENCH_TMP/warm.md" "$BENCH_TMP/change.md"
