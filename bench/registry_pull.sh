#!/usr/bin/env bash
# Scenario registry: push and pull of a multi-layer image to and from a local
# distribution registry (Debian's docker-registry, on a loopback port of the run's own),
# side by side: `pier` to a pierd of its own, and `docker` to an isolated dockerd.
#
#   bench/registry_pull.sh            (as root)
#
# 1. push: each engine pushes its own copy of the image (loaded from the same
#    `docker save` archive, bench/make-image.py). Between runs (untimed) the registry's
#    storage is wiped, so every run uploads every layer.
# 2. pull: both engines pull the same image, the one docker pushed (gzip layers, as
#    registries usually hold), layers unpacked and ready to run. Between runs (untimed)
#    the image is removed locally (`rmi -f` by ID, then `image prune -af`: dockerd
#    otherwise keeps a dangling copy and skips every layer).
# Settings (besides bench/lib.sh's; defaults BENCH_RUNS=3 BENCH_ROUNDS=3 BENCH_WARMUP=1):
#   BENCH_SIZE_MB   image size, MiB of file data (default 256)
#   BENCH_LAYERS    number of layers (default 8)
# Needs release builds of pier, pierd and pier-runtime (built here if missing) and
# /usr/bin/docker-registry. Writes the <!-- bench:registry --> section.
set -euo pipefail
# shellcheck source=bench/lib.sh
. "$(dirname "$0")/lib.sh"

SCENARIO=registry
CMDLINE=$(bench_command_line "$0" "$@")
for v in BENCH_LAYERS BENCH_SIZE_MB; do
    if printenv "$v" >/dev/null; then CMDLINE="$v=$(printf '%q' "$(printenv "$v")") $CMDLINE"; fi
done
SIZE_MB=${BENCH_SIZE_MB:-256}
LAYERS=${BENCH_LAYERS:-8}
IMAGE_NAME=${BENCH_ID_PREFIX}regsrc:latest
: "${BENCH_RUNS:=3}" "${BENCH_ROUNDS:=3}" "${BENCH_WARMUP:=1}"
bench_init "$SCENARIO"
bench_data_dir
bench_require docker dockerd /usr/bin/docker-registry
bench_engine_binaries
PIER=$BENCH_REPO/target/release/pier

# ---- the image ---------------------------------------------------------------------------
IMAGE=$BENCH_TMP/image.tar
bench_log "generating a ${SIZE_MB} MiB, ${LAYERS}-layer image (bench/make-image.py)"
read -r IMAGE_BYTES IMAGE_FILES < <("$BENCH_PY" "$BENCH_DIR/make-image.py" "$IMAGE" \
    --size-mb "$SIZE_MB" --layers "$LAYERS" --name "$IMAGE_NAME")

# ---- the registry ------------------------------------------------------------------------
REGDIR=$BENCH_TMP/registry
mkdir -p "$REGDIR"
PORT=$("$BENCH_PY" -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
cat >"$REGDIR/config.yml" <<EOF
version: 0.1
log:
  level: error
storage:
  filesystem:
    rootdirectory: $BENCH_DATA/registry
  delete:
    enabled: true
http:
  addr: 127.0.0.1:$PORT
EOF
/usr/bin/docker-registry serve "$REGDIR/config.yml" >"$REGDIR/registry.log" 2>&1 &
REG_PID=$!
bench_on_exit "bench_stop_pid docker-registry $REG_PID"
for ((i = 0; i < 200; i++)); do
    curl -sf "http://127.0.0.1:$PORT/v2/" >/dev/null && break
    sleep 0.05
done
REG=127.0.0.1:$PORT
WIPE=$BENCH_TMP/wipe.sh
cat >"$WIPE" <<SH
rm -rf -- $(bench_quote "$BENCH_DATA/registry") && sync
SH
RMI=$BENCH_TMP/rmi.sh
cat >"$RMI" <<'SH'
# rmi.sh IMAGE CLI-ARGV... : remove IMAGE by ID, all its names, if present; flush dirty pages
image=$1; shift
if id=$("$@" image inspect -f '{{.Id}}' "$image" 2>/dev/null); then "$@" rmi -f "$id" >/dev/null || exit 1; fi
"$@" image prune -af >/dev/null || exit 1
sync
SH

# ---- engines -----------------------------------------------------------------------------
bench_dockerd_start
P=$BENCH_TMP/pierd
mkdir -p "$P"
"$BENCH_REPO/target/release/pierd" -H "unix://$P/pier.sock" --data-root "$BENCH_DATA/pier" \
    --exec-root "$P/exec" >"$P/pierd.log" 2>&1 &
PIERD_PID=$!
bench_on_exit "bench_stop_pid pierd $PIERD_PID"
for ((i = 0; i < 300; i++)); do [ -S "$P/pier.sock" ] && break; sleep 0.05; done
PIER_CLI="$PIER -H unix://$P/pier.sock"
export DOCKER_CONFIG=$P/cli

$PIER_CLI load -i "$IMAGE" >/dev/null
"${BENCH_DOCKER_ARGV[@]}" load -q -i "$IMAGE" >/dev/null
$PIER_CLI tag "$IMAGE_NAME" "$REG/bench/pier:1"
"${BENCH_DOCKER_ARGV[@]}" tag "$IMAGE_NAME" "$REG/bench/docker:1"

# ---- push --------------------------------------------------------------------------------
BENCH_PREPARE=()
BENCH_PREPARE[pier]="/bin/sh $(bench_quote "$WIPE")"
BENCH_PREPARE[docker]="/bin/sh $(bench_quote "$WIPE")"
bench_compare "$BENCH_TMP/push.json" \
    pier "$PIER_CLI push -q $REG/bench/pier:1" \
    docker "$BENCH_DOCKER push -q $REG/bench/docker:1"

# ---- pull --------------------------------------------------------------------------------
"${BENCH_DOCKER_ARGV[@]}" push -q "$REG/bench/docker:1" >/dev/null
for cli in "$PIER_CLI" "$BENCH_DOCKER"; do
    # Only the pulled name is left, so `rmi` frees the layers.
    # shellcheck disable=SC2086 # a command prefix
    $cli rmi "$IMAGE_NAME" "$REG/bench/pier:1" >/dev/null 2>&1 || true
done
"${BENCH_DOCKER_ARGV[@]}" rmi "$REG/bench/docker:1" >/dev/null
BENCH_PREPARE=()
BENCH_PREPARE[pier]="/bin/sh $(bench_quote "$RMI") $REG/bench/docker:1 $PIER_CLI"
BENCH_PREPARE[docker]="/bin/sh $(bench_quote "$RMI") $REG/bench/docker:1 $BENCH_DOCKER"
# One untimed round first, checked: both really download and unpack every layer.
for cli in "$PIER_CLI" "$BENCH_DOCKER"; do
    eval "/bin/sh $(bench_quote "$RMI") $REG/bench/docker:1 $cli"
    bench_log "${cli%% *}: images before the untimed pull: $(eval "$cli images -a -q" | wc -l)"
    out=$(eval "$cli pull $REG/bench/docker:1")
    n=$(grep -c "Pull complete" <<<"$out" || true)
    bench_log "${cli%% *}: untimed pull: $n layers pulled"
    [ "$n" -eq "$LAYERS" ] || bench_die "${cli%% *} pulled $n layers, expected $LAYERS: $out"
done
bench_compare "$BENCH_TMP/pull.json" \
    pier "$PIER_CLI pull -q $REG/bench/docker:1" \
    docker "$BENCH_DOCKER pull -q $REG/bench/docker:1"
PIER_ID=$($PIER_CLI image inspect -f '{{.Id}}' "$REG/bench/docker:1")
DOCKER_ID=$("${BENCH_DOCKER_ARGV[@]}" image inspect -f '{{.Id}}' "$REG/bench/docker:1")
[ "$PIER_ID" = "$DOCKER_ID" ] || bench_die "pulled image IDs differ: pier $PIER_ID, docker $DOCKER_ID"

# ---- record ------------------------------------------------------------------------------
throughput() {
    "$BENCH_PY" - "$1" "$IMAGE_BYTES" <<'PY'
import json, sys
m = json.load(open(sys.argv[1]))
mib = int(sys.argv[2]) / 2**20
rows = {l: [f"{mib / r['median']:.0f}"] for l, r in m["results"].items()}
print(json.dumps({"columns": ["MiB/s (median)"], "rows": rows}))
PY
}
throughput "$BENCH_TMP/push.json" >"$BENCH_TMP/push-extra.json"
throughput "$BENCH_TMP/pull.json" >"$BENCH_TMP/pull-extra.json"
bench_table "$BENCH_TMP/push.json" docker "$BENCH_TMP/push-extra.json" |
    sed '1s/^| runtime |/| tool |/' >"$BENCH_TMP/push.md"
bench_table "$BENCH_TMP/pull.json" docker "$BENCH_TMP/pull-extra.json" |
    sed '1s/^| runtime |/| tool |/' >"$BENCH_TMP/pull.md"
{
    echo "## Registry: push and pull of a $((IMAGE_BYTES / 1048576)) MiB, $LAYERS-layer image, local distribution registry"
    echo
    echo "Command (as root, repo root): \`$CMDLINE\`"
    echo
    bench_machine_info
    echo "- Registry: Debian's docker-registry (distribution $(/usr/bin/docker-registry --version 2>/dev/null | awk '{print $3}')), filesystem storage in the data dir, plain HTTP on loopback"
    echo "- Data dirs: $BENCH_DATA_NOTE"
    echo "- Tools: \`pier\` (release pier → pierd), \`docker\` (CLI $(docker --version | cut -d' ' -f3 | tr -d ,) → isolated dockerd $(dockerd --version | cut -d' ' -f3 | tr -d ,), overlay2)"
    echo
    echo "### Push (every layer uploaded: the registry's storage is wiped between runs)"
    echo
    cat "$BENCH_TMP/push.md"
    echo
    echo "### Pull (the same gzip image for both, layers unpacked; \`rmi -f\` by ID and \`image prune -af\` between runs)"
    echo
    cat "$BENCH_TMP/pull.md"
    echo
    cat <<'EOF2'
Each engine pushes its own copy of the image loaded from the same archive: dockerd
gzip-compresses every layer while pushing; pier pushes the blobs it holds as they are
(`load` keeps the archive's uncompressed layer tars), so its push moves more bytes but
spends no CPU on compression. Both then pull the image docker pushed (gzip layers), and
the pulled image IDs are checked to be equal. MiB/s is the image's uncompressed size over
the run's time; "× docker" is the ratio of medians (below 1: faster than docker).
EOF2
} >"$BENCH_TMP/section.md"
bench_write_section "$SCENARIO" "$BENCH_TMP/section.md"
cat "$BENCH_TMP/push.md" "$BENCH_TMP/pull.md"
