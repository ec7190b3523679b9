#!/usr/bin/env bash
# Scenario runtime-run: `RUNTIME run` of busybox /bin/true in the foreground, until it
# exits (the runtime creates, starts, waits and deletes in one command), side by side
# for several OCI runtimes with the runc CLI.
#
#   bench/runtime-run.sh [RUNTIME...]     (as root)
#
# RUNTIME is a path or a name in PATH. Default: target/release/pier-runtime (if built),
# runc and crun (if installed); a missing runtime is skipped with a message, one that
# fails its first run aborts the run. Settings: see bench/lib.sh.
# Writes the <!-- bench:runtime-run --> section of BENCHMARKS.md.
set -euo pipefail
# shellcheck source=bench/lib.sh
. "$(dirname "$0")/lib.sh"

SCENARIO=runtime-run
CMDLINE=$(bench_command_line "$0" "$@")
bench_init "$SCENARIO"

if [ $# -eq 0 ]; then set -- "$BENCH_REPO/target/release/pier-runtime" runc crun; fi
LABELS=() PATHS=() SKIPPED=()
for arg in "$@"; do
    case $arg in
        */*) p=$( [ -x "$arg" ] && realpath "$arg" || true) ;;
        *) p=$(command -v "$arg" || true) ;;
    esac
    label=$(basename "$arg")
    if [ -z "$p" ]; then
        bench_log "skipping $label: $arg not found"
        SKIPPED+=("\`$label\` ($arg not found)")
        continue
    fi
    LABELS+=("$label"); PATHS+=("$p")
done
[ ${#LABELS[@]} -gt 0 ] || bench_die "no runtime to benchmark"

BUNDLE=$BENCH_TMP/bundle
bench_make_busybox_bundle "$BUNDLE" /bin/true
need_fixup=
for p in "${PATHS[@]}"; do case $(basename "$p") in crun*) need_fixup=needed ;; esac; done
bench_cgroup_hybrid_fixup $need_fixup

cleanup_containers() {
    local i root id
    for i in "${!PATHS[@]}"; do
        root=$BENCH_TMP/state/$i
        [ -d "$root" ] || continue
        for id in $(ls "$root"); do
            "${PATHS[$i]}" --root "$root" delete -f "$id" >/dev/null 2>&1 || true
        done
    done
    bench_cgroup_leftovers || true
}
bench_on_exit cleanup_containers

# One iteration: a fresh ID, `run` in the foreground; the exit code must be 0.
ONCE=$BENCH_TMP/run-once.sh
cat >"$ONCE" <<'SH'
rt=$1 root=$2 bundle=$3
read -r uuid </proc/sys/kernel/random/uuid
exec "$rt" --root "$root" run --bundle "$bundle" "pierbench-$uuid" </dev/null
SH

CMDS=()
for i in "${!PATHS[@]}"; do
    mkdir -p "$BENCH_TMP/state/$i"
    CMDS+=("${LABELS[$i]}" "/bin/sh $(bench_quote "$ONCE") $(bench_quote "${PATHS[$i]}") $(bench_quote "$BENCH_TMP/state/$i") $(bench_quote "$BUNDLE")")
    /bin/sh "$ONCE" "${PATHS[$i]}" "$BENCH_TMP/state/$i" "$BUNDLE" >/dev/null ||
        bench_die "${LABELS[$i]} (${PATHS[$i]}) failed a run; not benchmarking a broken runtime"
    [ -z "$(ls "$BENCH_TMP/state/$i")" ] || bench_die "${LABELS[$i]} left state behind after run"
done

bench_compare "$BENCH_TMP/merged.json" "${CMDS[@]}"

bench_table "$BENCH_TMP/merged.json" crun,runc >"$BENCH_TMP/table.md"
{
    echo "## Runtime run: \`RUNTIME run\` of busybox \`/bin/true\`, in the foreground until it exits"
    echo
    echo "Command (as root, repo root): \`$CMDLINE\`"
    echo
    bench_machine_info
    echo "- Runtimes:"
    for i in "${!PATHS[@]}"; do
        ver=$("${PATHS[$i]}" --version 2>&1 | sed '/^$/d' | head -n1 || true)
        echo "  - \`${LABELS[$i]}\`: \`${PATHS[$i]}\`: ${ver:-no --version}"
    done
    [ ${#SKIPPED[@]} -eq 0 ] || echo "- Skipped: ${SKIPPED[*]}"
    [ -z "$BENCH_CGROUP_NOTE" ] || echo "- Cgroups: $BENCH_CGROUP_NOTE"
    echo
    cat "$BENCH_TMP/table.md"
    echo
    echo "One timed iteration is \`sh run-once.sh\`: \`RUNTIME --root STATE run --bundle BUNDLE ID\`"
    echo "with a fresh \`ID\`; the runtime creates, starts, waits for and deletes the container."
    echo "Same bundle as the lifecycle scenario. \"× crun\"/\"× runc\" are ratios of medians."
} >"$BENCH_TMP/section.md"
bench_write_section "$SCENARIO" "$BENCH_TMP/section.md"
cat "$BENCH_TMP/table.md"
