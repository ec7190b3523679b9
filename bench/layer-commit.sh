#!/usr/bin/env bash
# Scenario layer-commit: a stopped container whose changes touch 10,000 files (8,000
# created, 1,000 rewritten, 1,000 deleted) is committed as a new image layer, side by
# side: `docker commit` on an isolated dockerd, and the library-level example
# `commit_bench` (crates/pier-image/examples) with and without unpacking the new layer.
#
#   bench/layer-commit.sh [TOOL...]      (as root; TOOL: docker, pier, pier-unpack)
#
# A tool that is present but fails its first, untimed commit aborts the run. Settings
# (besides bench/lib.sh's; this scenario's defaults: BENCH_RUNS=10 BENCH_ROUNDS=5
# BENCH_WARMUP=1):
#   BENCH_FS=tmpfs    data roots (dockerd's and pier's) on a tmpfs: no disk in the numbers
#   PIER_EXAMPLE_BIN  the commit_bench binary (default: cargo build --release --example
#                     commit_bench, in $CARGO_TARGET_DIR or target/)
# Between runs (untimed, hyperfine --prepare): the committed image is removed (docker rmi,
# resp. `commit_bench reset`: untag, drop the new snapshot, GC), then `sync` for both.
# Writes the <!-- bench:layer-commit --> section of BENCHMARKS.md (layer-commit-tmpfs
# with BENCH_FS=tmpfs).
set -euo pipefail
# shellcheck source=bench/lib.sh
. "$(dirname "$0")/lib.sh"

SCENARIO=layer-commit
SECTION=$SCENARIO${BENCH_FS:+-$BENCH_FS}   # BENCH_FS=tmpfs results get a section of their own
CMDLINE=$(bench_command_line "$0" "$@")
if printenv BENCH_FS >/dev/null; then CMDLINE="BENCH_FS=$BENCH_FS $CMDLINE"; fi
: "${BENCH_RUNS:=10}" "${BENCH_ROUNDS:=5}" "${BENCH_WARMUP:=1}"
bench_init "$SCENARIO"
bench_require busybox tar
bench_data_dir
BASE_IMAGE=${BENCH_ID_PREFIX}base:latest
COMMITTED=${BENCH_ID_PREFIX}committed:latest
CONTAINER=${BENCH_ID_PREFIX}commit-$$

[ $# -gt 0 ] || set -- docker pier pier-unpack
TOOLS=() SKIPPED=()
for t in "$@"; do
    case $t in
        docker)
            if command -v dockerd >/dev/null && command -v docker >/dev/null; then TOOLS+=(docker)
            else bench_log "skipping docker: dockerd/docker not installed"; SKIPPED+=("\`docker\` (not installed)"); fi ;;
        pier|pier-unpack) TOOLS+=("$t") ;;
        *) bench_die "unknown tool '$t' (docker, pier, pier-unpack)" ;;
    esac
done
if printf '%s\n' "${TOOLS[@]}" | grep -q '^pier' && [ -z "${PIER_EXAMPLE_BIN:-}" ]; then
    bench_require cargo
    bench_log "building the commit_bench example (cargo build --release -p pier-image --example commit_bench)"
    (cd "$BENCH_REPO" && cargo build --quiet --release -p pier-image --example commit_bench) ||
        bench_die "cargo build of the commit_bench example failed"
    PIER_EXAMPLE_BIN=${CARGO_TARGET_DIR:-$BENCH_REPO/target}/release/examples/commit_bench
fi
bench_log "tools: ${TOOLS[*]}"

# ---- base image and change set ---------------------------------------------------------
# Base: the busybox rootfs of scripts/busybox-rootfs.sh plus /data/base/f0000..f2999
# (4 KiB each). Changes (changes.sh, run by busybox sh in the container, resp. on the
# host through the mounted overlay): /data/new/ with 8,000 new files in 80 directories
# (512 B - 256 KiB, mostly small), f0000..f0999 rewritten, f1000..f1999 deleted.
ROOTFS=$BENCH_TMP/rootfs CHANGES=$BENCH_TMP/changeset
"$BENCH_REPO/scripts/busybox-rootfs.sh" "$ROOTFS"
"$BENCH_PY" - "$ROOTFS" "$CHANGES" <<'PY'
import os, random, sys
rootfs, changes = sys.argv[1:3]
rng = random.Random(42)
os.makedirs(f"{rootfs}/data/base")
for i in range(3000):
    with open(f"{rootfs}/data/base/f{i:04d}", "wb") as f:
        f.write(rng.randbytes(4096))
for i in range(8000):
    d = f"{changes}/new/d{i // 100:02d}"
    os.makedirs(d, exist_ok=True)
    r = rng.random()
    n = rng.randint(512, 8192) if r < 0.75 else rng.randint(8192, 32768) if r < 0.97 else rng.randint(65536, 262144)
    with open(f"{d}/f{i:04d}", "wb") as f:
        f.write(rng.randbytes(n))
os.makedirs(f"{changes}/mod")
for i in range(1000):
    with open(f"{changes}/mod/f{i:04d}", "wb") as f:
        f.write(rng.randbytes(4096))
with open(f"{changes}/delete.list", "w") as f:
    f.write("\n".join(f"f{i:04d}" for i in range(1000, 2000)) + "\n")
with open(f"{changes}/changes.sh", "w") as f:
    f.write('''set -e
root=$1 src=$2
cp -a "$src/new" "$root/data/new"
cp "$src"/mod/* "$root/data/base/"
cd "$root/data/base"
rm $(cat "$src/delete.list")
''')
PY
# fixed mtimes, so that both sides start from the same bytes
find "$ROOTFS" "$CHANGES" -exec touch -h -d @1700000000 {} +
tar -C "$ROOTFS" --numeric-owner --sort=name -cf "$BENCH_TMP/base.tar" .
CHANGE_MIB=$(du -sm "$CHANGES" | cut -f1)

DOCKER_RESET=$BENCH_TMP/docker-reset.sh
cat >"$DOCKER_RESET" <<'SH'
# docker-reset.sh IMAGE DOCKER-ARGV... : remove IMAGE if present, then flush dirty pages
image=$1; shift
if "$@" image inspect "$image" >/dev/null 2>&1; then "$@" rmi "$image" >/dev/null || exit 1; fi
sync
SH
PIER_RESET=$BENCH_TMP/pier-reset.sh
cat >"$PIER_RESET" <<'SH'
# pier-reset.sh BIN DIR : undo commit_bench commit, then flush dirty pages
"$1" reset --data-root "$2" && sync
SH

# The top layer's tar entries and bytes of a `docker save` archive
layer_stats() {
    "$BENCH_PY" - "$1" <<'PY'
import json, sys, tarfile
with tarfile.open(sys.argv[1]) as t:
    m = json.load(t.extractfile("manifest.json"))
    layer = t.getmember(m[0]["Layers"][-1])
    with tarfile.open(fileobj=t.extractfile(layer)) as l:
        print(len(l.getmembers()), layer.size)
PY
}

CMDS=() NOTES=()
for t in "${TOOLS[@]}"; do
    case $t in
        docker)
            bench_dockerd_start
            "${BENCH_DOCKER_ARGV[@]}" import "$BENCH_TMP/base.tar" "$BASE_IMAGE" >/dev/null
            "${BENCH_DOCKER_ARGV[@]}" run --network none --name "$CONTAINER" \
                -v "$CHANGES:/src:ro" "$BASE_IMAGE" /bin/sh /src/changes.sh "" /src ||
                bench_die "docker: the container making the changes failed"
            # untimed first commit: works, and what it wrote
            "${BENCH_DOCKER_ARGV[@]}" commit "$CONTAINER" "$COMMITTED" >/dev/null || bench_die "docker commit failed"
            "${BENCH_DOCKER_ARGV[@]}" save -o "$BENCH_TMP/committed.tar" "$COMMITTED"
            read -r entries bytes < <(layer_stats "$BENCH_TMP/committed.tar")
            rm -f "$BENCH_TMP/committed.tar"
            NOTES+=("\`docker\`: dockerd $(dockerd --version | cut -d' ' -f3 | tr -d ,) (storage driver $("${BENCH_DOCKER_ARGV[@]}" info -f '{{.Driver}}')), CLI $(docker --version | cut -d' ' -f3 | tr -d ,); the layer (from \`docker save\`): $entries tar entries, $bytes bytes")
            CMDS+=(docker "$BENCH_DOCKER commit $(bench_quote "$CONTAINER") $(bench_quote "$COMMITTED")")
            BENCH_PREPARE[docker]="/bin/sh $(bench_quote "$DOCKER_RESET") $(bench_quote "$COMMITTED") $BENCH_DOCKER"
            ;;
        pier|pier-unpack)
            root=$BENCH_DATA/root-$t mnt=$BENCH_TMP/mnt-$t
            mkdir -p "$mnt"
            "$PIER_EXAMPLE_BIN" setup --data-root "$root" --rootfs-tar "$BENCH_TMP/base.tar" --mount "$mnt" ||
                bench_die "commit_bench setup failed"
            busybox sh "$CHANGES/changes.sh" "$mnt" "$CHANGES" || bench_die "$t: making the changes failed"
            umount "$mnt"
            flag=; [ "$t" = pier ] || flag=--unpack
            out=$("$PIER_EXAMPLE_BIN" commit --data-root "$root" $flag -v 2>&1) || bench_die "commit_bench commit failed: $out"
            NOTES+=("\`$t\`: \`crates/pier-image/examples/commit_bench.rs\` \`commit${flag:+ $flag}\` (release build); untimed first run: $out")
            CMDS+=("$t" "$(bench_quote "$PIER_EXAMPLE_BIN") commit --data-root $(bench_quote "$root")${flag:+ $flag}")
            BENCH_PREPARE[$t]="/bin/sh $(bench_quote "$PIER_RESET") $(bench_quote "$PIER_EXAMPLE_BIN") $(bench_quote "$root")"
            ;;
    esac
done

# ---- timing ----------------------------------------------------------------------------
bench_compare "$BENCH_TMP/merged.json" "${CMDS[@]}"

# ---- record ----------------------------------------------------------------------------
bench_table "$BENCH_TMP/merged.json" docker | sed '1s/^| runtime |/| tool |/' >"$BENCH_TMP/table.md"
{
    echo "## Layer commit: a container's 10,000 changed files become an image layer${BENCH_FS:+, data on $BENCH_FS}"
    echo
    echo "Command (as root, repo root): \`$CMDLINE\`"
    echo
    bench_machine_info
    echo "- Data roots (dockerd's and pier's): $BENCH_DATA_NOTE"
    echo "- Changes: 8,000 new files in 80 new directories, 1,000 files rewritten, 1,000 deleted (whiteouts); $CHANGE_MIB MiB of change set, random bytes"
    echo "- Tools:"
    for n in "${NOTES[@]}"; do echo "  - $n"; done
    [ ${#SKIPPED[@]} -eq 0 ] || echo "- Skipped: ${SKIPPED[*]}"
    echo
    cat "$BENCH_TMP/table.md"
    echo
    cat <<'EOF2'
The base image is the busybox rootfs of `scripts/busybox-rootfs.sh` plus 3,000 files of
4 KiB under `/data/base`, imported by `docker import` resp. `diff::import_rootfs` from the
same tar. The same busybox `sh changes.sh` makes the changes, untimed, through overlayfs:
for docker in a `docker run --network none` container (the change set bind-mounted at
`/src`, which adds that mount point to its upper dir), for pier through the container
snapshot mounted on the host, then unmounted. One timed run:
- `docker`: `docker commit CONTAINER pierbench-committed:latest` (stopped container): the
  overlay2 upper dir as a tar, applied into a new overlay2 layer dir (diffID computed,
  tar-split metadata kept, no tar blob kept), image config written and tagged.
- `pier`: `commit_bench commit`: `diff::diff_upper` of the upper dir streamed into a
  content-store blob (sha256 on the way, fsynced; the diffID, as the layer is
  uncompressed), config and OCI manifest stored, tagged. No layer dir is created: a
  container of the new image would need the layer unpacked first.
- `pier-unpack`: the same, then the blob applied (`layer::apply_layer`) into a committed
  snapshot on the base's: the work docker's commit does, plus keeping the tar blob.
Before every run, untimed: `docker rmi` of the committed image, resp. `commit_bench reset`
(untag, remove the new snapshot, content GC), then `sync` for both. "× docker" is the
ratio of medians.
EOF2
} >"$BENCH_TMP/section.md"
bench_write_section "$SECTION" "$BENCH_TMP/section.md"
cat "$BENCH_TMP/table.md"
