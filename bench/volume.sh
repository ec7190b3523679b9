#!/usr/bin/env bash
# Scenario volume: named volumes through each engine, side by side:
#   1. lifecycle: `volume create V` + `run --rm -v V:/data busybox true` + `volume rm V`;
#   2. copy-up: `run --rm -v V:/data manyfiles true` where V does not exist yet and the
#      image's /data holds 10,000 files (100 directories of 100 files, 1 KiB each): the
#      engine creates V and copies the 10,000 files into it before the container starts.
#      Between runs (untimed, hyperfine --prepare) V is removed.
#
#   bench/volume.sh [TOOL...]     (as root; TOOL: pier, docker-cli-pierd, docker)
#
# `pier`: the pier CLI to its pierd; `docker-cli-pierd`: the docker CLI to pierd;
# `docker`: the docker CLI to an isolated dockerd. Each engine imports the same two image
# tars (busybox rootfs from scripts/busybox-rootfs.sh, and that rootfs plus /data). Needs
# release builds of pier, pierd and pier-runtime (built here if missing). Defaults:
# BENCH_RUNS=20 BENCH_ROUNDS=5 BENCH_WARMUP=2. Writes the <!-- bench:volume --> section.
set -euo pipefail
# shellcheck source=bench/lib.sh
. "$(dirname "$0")/lib.sh"

SCENARIO=volume
CMDLINE=$(bench_command_line "$0" "$@")
: "${BENCH_RUNS:=20}" "${BENCH_ROUNDS:=5}" "${BENCH_WARMUP:=2}"
bench_init "$SCENARIO"
bench_require hyperfine python3 tar

if [ $# -eq 0 ]; then set -- pier docker-cli-pierd docker; fi
for t in "$@"; do
    case $t in pier | docker-cli-pierd | docker) ;; *) bench_die "unknown tool '$t'" ;; esac
done
bench_engine_binaries
VOLUME=${BENCH_ID_PREFIX}vol-$$

# ---- images: busybox, and busybox with /data holding 10,000 files ----------------------
ROOTFS=$BENCH_TMP/rootfs
"$BENCH_REPO/scripts/busybox-rootfs.sh" "$ROOTFS" >/dev/null
tar -C "$ROOTFS" -cf "$BENCH_TMP/busybox.tar" .
"$BENCH_PY" - "$ROOTFS" <<'PY'
import os, random, sys
rootfs = sys.argv[1]
rng = random.Random(7)
for d in range(100):
    os.makedirs(f"{rootfs}/data/d{d:02d}")
    for f in range(100):
        with open(f"{rootfs}/data/d{d:02d}/f{f:02d}", "wb") as out:
            out.write(rng.randbytes(1024))
PY
tar -C "$ROOTFS" -cf "$BENCH_TMP/manyfiles.tar" .
FILES=$(find "$ROOTFS/data" -type f | wc -l)
[ "$FILES" -eq 10000 ] || bench_die "the image's /data has $FILES files, not 10000"

# ---- pierd -------------------------------------------------------------------------------
P=$BENCH_TMP/pier
mkdir -p "$P"
"$BENCH_REPO/target/release/pierd" -H "unix://$P/pier.sock" --data-root "$P/data" \
    --exec-root "$P/exec" >"$P/pierd.log" 2>&1 &
PIERD_PID=$!
bench_on_exit "kill -TERM $PIERD_PID 2>/dev/null; wait $PIERD_PID 2>/dev/null; true"
bench_on_exit "for i in \$(docker --config '$P/cli' -H 'unix://$P/pier.sock' ps -aq 2>/dev/null); do docker --config '$P/cli' -H 'unix://$P/pier.sock' rm -f \$i >/dev/null 2>&1; done; docker --config '$P/cli' -H 'unix://$P/pier.sock' volume rm -f $VOLUME >/dev/null 2>&1; true"
for ((i = 0; i < 300; i++)); do
    [ -S "$P/pier.sock" ] && break
    sleep 0.05
done
PIER="$BENCH_REPO/target/release/pier -H unix://$P/pier.sock --data-root $P/data"
DOCKER_PIERD="docker --config $P/cli -H unix://$P/pier.sock"
$DOCKER_PIERD import -c 'CMD ["sh"]' "$BENCH_TMP/busybox.tar" busybox >/dev/null || bench_die "import into pierd failed"
$DOCKER_PIERD import -c 'CMD ["sh"]' "$BENCH_TMP/manyfiles.tar" manyfiles >/dev/null || bench_die "import into pierd failed"

# One lifecycle, as one command line for hyperfine (-N runs no shell).
LIFE_SCRIPT=$BENCH_TMP/lifecycle.sh
cat >"$LIFE_SCRIPT" <<'SH'
# lifecycle.sh VOLUME CLI... : volume create + run --rm -v + volume rm
v=$1; shift
"$@" volume create "$v" >/dev/null &&
    "$@" run --rm --network none -v "$v:/data" busybox true &&
    "$@" volume rm "$v" >/dev/null
SH

LIFE_CMDS=() COPY_CMDS=() NOTES=()
declare -A CLI=()
for t in "$@"; do
    case $t in
        pier)
            CLI[pier]=$PIER
            NOTES+=("\`pier\`: pier CLI → pierd $(git -C "$BENCH_REPO" rev-parse --short HEAD) (default runtime pier-runtime)") ;;
        docker-cli-pierd)
            CLI[docker-cli-pierd]=$DOCKER_PIERD
            NOTES+=("\`docker-cli-pierd\`: docker CLI $(docker --version | cut -d' ' -f3 | tr -d ,) → pierd") ;;
        docker)
            bench_dockerd_start
            "${BENCH_DOCKER_ARGV[@]}" import -c 'CMD ["sh"]' "$BENCH_TMP/busybox.tar" busybox >/dev/null
            "${BENCH_DOCKER_ARGV[@]}" import -c 'CMD ["sh"]' "$BENCH_TMP/manyfiles.tar" manyfiles >/dev/null
            bench_on_exit "${BENCH_DOCKER} volume rm -f $VOLUME >/dev/null 2>&1; true"
            CLI[docker]=$BENCH_DOCKER
            NOTES+=("\`docker\`: docker CLI → dockerd $(dockerd --version | cut -d' ' -f3 | tr -d ,) + containerd + runc, overlay2, local volume driver, isolated (no bridge, no iptables)") ;;
    esac
    LIFE_CMDS+=("$t" "sh $LIFE_SCRIPT $VOLUME ${CLI[$t]}")
    COPY_CMDS+=("$t" "${CLI[$t]} run --rm --network none -v $VOLUME:/data manyfiles true")
    BENCH_PREPARE[$t]="${CLI[$t]} volume rm -f $VOLUME"
    # First, untimed: each tool must do it, and copy-up must really copy. (The command
    # lines are quoted for hyperfine's splitting, which is the shell's: hence sh -c.)
    sh -c "sh $LIFE_SCRIPT $VOLUME ${CLI[$t]}" || bench_die "$t: first volume lifecycle failed"
    sh -c "${CLI[$t]} volume rm -f $VOLUME" >/dev/null 2>&1 || true
    n=$(sh -c "${CLI[$t]} run --rm --network none -v $VOLUME:/data manyfiles sh -c 'find /data -type f | wc -l'") ||
        bench_die "$t: first copy-up run failed"
    [ "$n" -eq 10000 ] || bench_die "$t: the new volume holds $n files after copy-up, not 10000"
    sh -c "${CLI[$t]} volume rm -f $VOLUME" >/dev/null
done
bench_log "tools: $*"

saved_prepare=$(declare -p BENCH_PREPARE)
BENCH_PREPARE=()
bench_compare "$BENCH_TMP/life.json" "${LIFE_CMDS[@]}"
bench_table "$BENCH_TMP/life.json" docker | sed '1s/^| runtime |/| tool |/' >"$BENCH_TMP/life.md"
eval "$saved_prepare"
bench_compare "$BENCH_TMP/copy.json" "${COPY_CMDS[@]}"
bench_table "$BENCH_TMP/copy.json" docker | sed '1s/^| runtime |/| tool |/' >"$BENCH_TMP/copy.md"

{
    echo "## Volumes: create + run -v + rm, and copy-up of 10,000 files, side by side"
    echo
    echo "Command (as root, repo root): \`$CMDLINE\`"
    echo
    bench_machine_info
    echo "- Tools:"
    for n in "${NOTES[@]}"; do echo "  - $n"; done
    echo
    echo "Lifecycle: \`volume create V\` + \`run --rm --network none -v V:/data busybox true\` +"
    echo "\`volume rm V\` (three CLI calls, through \`sh\`):"
    echo
    cat "$BENCH_TMP/life.md"
    echo
    echo "Copy-up: \`run --rm --network none -v V:/data manyfiles true\`, V new each run (removed"
    echo "untimed between runs), the image's /data holding 10,000 files of 1 KiB in 100"
    echo "directories, all copied into V before the container starts:"
    echo
    cat "$BENCH_TMP/copy.md"
    echo
    echo "\"× docker\" is the ratio of medians (below 1: faster than docker)."
} >"$BENCH_TMP/section.md"
bench_write_section "$SCENARIO" "$BENCH_TMP/section.md"
cat "$BENCH_TMP/life.md" "$BENCH_TMP/copy.md"
