#!/usr/bin/env bash
# Scenario image-load: load a ~1 GiB, 8-layer `docker save` archive into the image store
# and unpack its layers, side by side: `docker load` into an isolated dockerd, `pier load`
# into a pierd of its own (target/release/pierd, own socket and roots) and the
# library-level example `load_unpack` (crates/pier-image/examples).
#
#   bench/image-load.sh [TOOL...]        (as root; TOOL: docker, pier, example)
#
# Default tools: docker, pier (if $PIER_LOAD_CMD is set or target/release/pier exists)
# and example (built here with cargo if needed). A tool that is present but fails its
# first, untimed load aborts the run. Settings (besides bench/lib.sh's; this scenario's
# defaults are BENCH_RUNS=5 BENCH_ROUNDS=5 BENCH_WARMUP=1, one load takes seconds):
#   BENCH_SIZE_MB    image size, MiB of file data (default 1024)
#   BENCH_LAYERS     number of layers (default 8)
#   PIER_LOAD_CMD    pier command prefix (default target/release/pier); the script appends
#                    `-H unix://SOCKET load -i IMAGE.tar`
#   BENCH_FS=tmpfs   data roots (dockerd's and pier's) on a tmpfs: no disk in the numbers
#   PIER_EXAMPLE_BIN the example binary (default: cargo build --release --example
#                    load_unpack, in $CARGO_TARGET_DIR or target/)
# Between runs (untimed, hyperfine --prepare): `rmi` of the image through docker resp.
# pier (their daemons free the layers), removal of the example's data root, then `sync`. Writes the <!-- bench:image-load --> section
# (image-load-tmpfs with BENCH_FS=tmpfs).
set -euo pipefail
# shellcheck source=bench/lib.sh
. "$(dirname "$0")/lib.sh"

SCENARIO=image-load
SECTION=$SCENARIO${BENCH_FS:+-$BENCH_FS}   # BENCH_FS=tmpfs results get a section of their own
CMDLINE=$(bench_command_line "$0" "$@")
for v in PIER_LOAD_CMD BENCH_LAYERS BENCH_SIZE_MB BENCH_FS; do
    if printenv "$v" >/dev/null; then CMDLINE="$v=$(printf '%q' "$(printenv "$v")") $CMDLINE"; fi
done
SIZE_MB=${BENCH_SIZE_MB:-1024}
LAYERS=${BENCH_LAYERS:-8}
IMAGE_NAME=${BENCH_ID_PREFIX}load:latest
: "${BENCH_RUNS:=5}" "${BENCH_ROUNDS:=5}" "${BENCH_WARMUP:=1}"
bench_init "$SCENARIO"
bench_data_dir

# ---- which tools -----------------------------------------------------------------------
PIER_CMD=${PIER_LOAD_CMD:-$BENCH_REPO/target/release/pier}
if [ $# -eq 0 ]; then
    set -- docker
    if [ -n "${PIER_LOAD_CMD:-}" ] || [ -x "$BENCH_REPO/target/release/pier" ]; then set -- "$@" pier; fi
    set -- "$@" example
fi
TOOLS=() SKIPPED=()
for t in "$@"; do
    case $t in
        docker)
            if command -v dockerd >/dev/null && command -v docker >/dev/null; then TOOLS+=(docker)
            else bench_log "skipping docker: dockerd/docker not installed"; SKIPPED+=("\`docker\` (not installed)"); fi ;;
        pier)
            read -r pier_bin _ <<<"$PIER_CMD"
            if command -v "$pier_bin" >/dev/null && [ -x "$BENCH_REPO/target/release/pierd" ]; then TOOLS+=(pier)
            else bench_log "skipping pier: $pier_bin or target/release/pierd not found (cargo build --release -p pier-cli -p pierd -p pier-runtime)"; SKIPPED+=("\`pier\` ($pier_bin or pierd not found)"); fi ;;
        example)
            if [ -z "${PIER_EXAMPLE_BIN:-}" ]; then
                bench_require cargo
                bench_log "building the load_unpack example (cargo build --release -p pier-image --example load_unpack)"
                (cd "$BENCH_REPO" && cargo build --quiet --release -p pier-image --example load_unpack) ||
                    bench_die "cargo build of the load_unpack example failed"
                PIER_EXAMPLE_BIN=${CARGO_TARGET_DIR:-$BENCH_REPO/target}/release/examples/load_unpack
            fi
            [ -x "$PIER_EXAMPLE_BIN" ] || bench_die "$PIER_EXAMPLE_BIN is not executable"
            TOOLS+=(example) ;;
        *) bench_die "unknown tool '$t' (docker, pier, example)" ;;
    esac
done
[ ${#TOOLS[@]} -gt 0 ] || bench_die "no tool to benchmark"
bench_log "tools: ${TOOLS[*]}"

# ---- the image -------------------------------------------------------------------------
IMAGE=$BENCH_TMP/image.tar
bench_log "generating a ${SIZE_MB} MiB, ${LAYERS}-layer image (bench/make-image.py)"
read -r IMAGE_BYTES IMAGE_FILES < <("$BENCH_PY" "$BENCH_DIR/make-image.py" "$IMAGE" \
    --size-mb "$SIZE_MB" --layers "$LAYERS" --name "$IMAGE_NAME")
IMAGE_SHA=$(sha256sum "$IMAGE" | cut -c1-12)
bench_log "image: $IMAGE_BYTES bytes of layer tars, $IMAGE_FILES files, archive $(stat -c %s "$IMAGE") bytes (sha256 $IMAGE_SHA…)"

# ---- commands --------------------------------------------------------------------------
DOCKER_RESET=$BENCH_TMP/docker-reset.sh
cat >"$DOCKER_RESET" <<'SH'
# docker-reset.sh IMAGE DOCKER-ARGV... : remove IMAGE if present, then flush dirty pages
image=$1; shift
if "$@" image inspect "$image" >/dev/null 2>&1; then "$@" rmi "$image" >/dev/null || exit 1; fi
sync
SH
DIR_RESET=$BENCH_TMP/dir-reset.sh
cat >"$DIR_RESET" <<'SH'
# dir-reset.sh DIR : remove a data root, then flush dirty pages
rm -rf -- "$1" && sync
SH

CMDS=() NOTES=()
for t in "${TOOLS[@]}"; do
    case $t in
        docker)
            bench_dockerd_start
            cmd="$BENCH_DOCKER load -q -i $(bench_quote "$IMAGE")"
            BENCH_PREPARE[docker]="/bin/sh $(bench_quote "$DOCKER_RESET") $(bench_quote "$IMAGE_NAME") $BENCH_DOCKER"
            "${BENCH_DOCKER_ARGV[@]}" load -q -i "$IMAGE" >/dev/null || bench_die "docker load failed"
            n=$("${BENCH_DOCKER_ARGV[@]}" image inspect -f '{{len .RootFS.Layers}}' "$IMAGE_NAME") ||
                bench_die "docker: image not found after load"
            [ "$n" -eq "$LAYERS" ] || bench_die "docker: $n layers after load, expected $LAYERS"
            NOTES+=("\`docker\`: dockerd $(dockerd --version | cut -d' ' -f3 | tr -d ,) (storage driver $("${BENCH_DOCKER_ARGV[@]}" info -f '{{.Driver}}')), CLI $(docker --version | cut -d' ' -f3 | tr -d ,)")
            ;;
        pier)
            # As docker: `pier load` into a running pierd (its own socket and roots);
            # between runs the image is removed through the daemon.
            root=$BENCH_DATA/root-pier
            sock=$BENCH_TMP/pierd/pier.sock
            mkdir -p "$BENCH_TMP/pierd"
            "$BENCH_REPO/target/release/pierd" -H "unix://$sock" --data-root "$root" \
                --exec-root "$BENCH_TMP/pierd/exec" >"$BENCH_TMP/pierd/pierd.log" 2>&1 &
            bench_on_exit "kill -TERM $! 2>/dev/null; wait $! 2>/dev/null; true"
            for ((i = 0; i < 300; i++)); do [ -S "$sock" ] && break; sleep 0.05; done
            cmd="$PIER_CMD -H unix://$sock load -i $(bench_quote "$IMAGE")"
            BENCH_PREPARE[pier]="/bin/sh $(bench_quote "$DOCKER_RESET") $(bench_quote "$IMAGE_NAME") $PIER_CMD -H unix://$sock"
            # shellcheck disable=SC2086 # a command prefix, split like hyperfine does
            $PIER_CMD -H "unix://$sock" load -i "$IMAGE" >/dev/null || bench_die "pier load failed"
            NOTES+=("\`pier\`: \`$PIER_CMD\` → pierd ($($PIER_CMD --version 2>/dev/null | head -n1 || echo 'no --version'))")
            ;;
        example)
            root=$BENCH_DATA/root-$t
            cmd="$(bench_quote "$PIER_EXAMPLE_BIN") --data-root $(bench_quote "$root") load -i $(bench_quote "$IMAGE")"
            BENCH_PREPARE[$t]="/bin/sh $(bench_quote "$DIR_RESET") $(bench_quote "$root")"
            phases=$("$PIER_EXAMPLE_BIN" --data-root "$root" load -i "$IMAGE" -v 2>&1 >/dev/null) ||
                bench_die "load_unpack failed: $phases"
            NOTES+=("\`example\`: \`crates/pier-image/examples/load_unpack.rs\` (release build); untimed first run: ${phases##*$'\n'}")
            ;;
    esac
    CMDS+=("$t" "$cmd")
done
for t in pier example; do
    [ -z "${BENCH_PREPARE[$t]:-}" ] && continue
    root=$BENCH_DATA/root-$t
    [ -d "$root" ] || continue
    du_s=$(du -sm "$root" | cut -f1)
    bench_log "$t data root after one load: ${du_s} MiB"
done

# ---- timing ----------------------------------------------------------------------------
bench_compare "$BENCH_TMP/merged.json" "${CMDS[@]}"

# ---- record ----------------------------------------------------------------------------
"$BENCH_PY" - "$BENCH_TMP/merged.json" "$IMAGE_BYTES" >"$BENCH_TMP/extra.json" <<'PY'
import json, sys
m = json.load(open(sys.argv[1]))
mib = int(sys.argv[2]) / 2**20
rows = {l: [f"{mib / r['median']:.0f}", f"{mib / r['min']:.0f}"] for l, r in m["results"].items()}
print(json.dumps({"columns": ["MiB/s (median)", "MiB/s (best)"], "rows": rows}))
PY
bench_table "$BENCH_TMP/merged.json" docker "$BENCH_TMP/extra.json" |
    sed '1s/^| runtime |/| tool |/' >"$BENCH_TMP/table.md"
{
    echo "## Image load: \`docker load\` of a $((IMAGE_BYTES / 1048576)) MiB, $LAYERS-layer archive, layers unpacked${BENCH_FS:+, data on $BENCH_FS}"
    echo
    echo "Command (as root, repo root): \`$CMDLINE\`"
    echo
    bench_machine_info
    echo "- Image: \`bench/make-image.py --size-mb $SIZE_MB --layers $LAYERS --seed 1\`: $IMAGE_BYTES bytes of uncompressed layer tars ($((IMAGE_BYTES / 1048576)) MiB, the MiB/s basis), $IMAGE_FILES files; archive sha256 \`$IMAGE_SHA…\`"
    echo "- Data roots (dockerd's and pier's): $BENCH_DATA_NOTE; the archive is read from the page cache"
    echo "- Tools:"
    for n in "${NOTES[@]}"; do echo "  - $n"; done
    [ ${#SKIPPED[@]} -eq 0 ] || echo "- Skipped: ${SKIPPED[*]}"
    echo
    cat "$BENCH_TMP/table.md"
    echo
    cat <<'EOF2'
One timed run loads the archive (from the page cache: it was just written) and leaves the
image ready to run: every layer unpacked. `docker load -q -i` goes to a dockerd of the
run's own (overlay2; data root, exec root and socket in the temp dir; no bridge, no
iptables): it extracts the archive to a temp dir under its data root, then applies each
layer into an overlay2 layer dir, verifying the diffIDs, and keeps tar-split metadata, not
the layer tars. `pier load -i` (streamed to a pierd of the run's own, as docker to its
dockerd) and the example `load_unpack` (`--data-root DIR load -i`, no daemon) both stream
the archive into the content store with `archive::load_archive` (blobs
fsynced and kept) and tag the image, then unpack every layer, verified against its digest
and diffID, into a committed overlay snapshot named by its ChainID. `pier`
(`service::ImageService::load`) extracts the layers in parallel (up to
`available_parallelism` threads) into parentless snapshots and chains them afterwards;
the example extracts them one after the other, each prepared on its parent.
Before every run, untimed (hyperfine `--prepare`): `docker rmi` of the image, resp. `rm -rf`
of the data root, then `sync` for both, so that no run pays for the previous run's
writeback. MiB/s is the image's uncompressed size over the run's time; "× docker" is the
ratio of medians (below 1: faster than docker).
EOF2
} >"$BENCH_TMP/section.md"
bench_write_section "$SECTION" "$BENCH_TMP/section.md"
cat "$BENCH_TMP/table.md"
