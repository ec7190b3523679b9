#!/usr/bin/env bash
# Scenario runtime-lifecycle: create + start + wait-for-exit + delete of busybox /bin/true,
# side by side for several OCI runtimes with the runc CLI.
#
#   bench/runtime-lifecycle.sh [RUNTIME...]     (as root)
#
# RUNTIME is a path or a name in PATH. Default: target/release/pier-runtime (if built),
# runc and crun (if installed); a missing runtime is skipped with a message. A runtime
# that is present but fails a first lifecycle aborts the run. Settings: see bench/lib.sh
# (BENCH_RUNS, BENCH_ROUNDS, BENCH_WARMUP, ...) and BENCH_RSS_SAMPLES (default 5).
# Writes the <!-- bench:runtime-lifecycle --> section of BENCHMARKS.md.
set -euo pipefail
# shellcheck source=bench/lib.sh
. "$(dirname "$0")/lib.sh"

SCENARIO=runtime-lifecycle
RSS_SAMPLES=${BENCH_RSS_SAMPLES:-5}
CMDLINE=$(bench_command_line "$0" "$@")
bench_init "$SCENARIO"
[ -x /usr/bin/time ] || bench_die "/usr/bin/time missing (apt-get install -y time)"

# ---- which runtimes --------------------------------------------------------------------
if [ $# -eq 0 ]; then set -- "$BENCH_REPO/target/release/pier-runtime" runc crun; fi
LABELS=() PATHS=() SKIPPED=()
for arg in "$@"; do
    case $arg in
        */*) p=$( [ -x "$arg" ] && realpath "$arg" || true) ;;
        *) p=$(command -v "$arg" || true) ;;
    esac
    label=$(basename "$arg")
    if [ -z "$p" ]; then
        bench_log "skipping $label: $arg not found$([ "$label" = pier-runtime ] && echo ' (build it: cargo build --release -p pier-runtime)')"
        SKIPPED+=("\`$label\` ($(realpath -m --relative-to="$BENCH_REPO" "$arg" 2>/dev/null || echo "$arg") not found)")
        continue
    fi
    n=2; base=$label
    while printf '%s\n' "${LABELS[@]}" | grep -qxF -- "$label"; do label="$base#$n"; n=$((n + 1)); done
    LABELS+=("$label"); PATHS+=("$p")
done
[ ${#LABELS[@]} -gt 0 ] || bench_die "no runtime to benchmark"
bench_log "runtimes: ${LABELS[*]}"

# ---- bundle, state roots, host set-up --------------------------------------------------
BUNDLE=$BENCH_TMP/bundle
bench_make_busybox_bundle "$BUNDLE" /bin/true
# crun 1.8 refuses this machine's hybrid cgroups unless cgroup2 is left without controllers
need_fixup=
for p in "${PATHS[@]}"; do case $(basename "$p") in crun*) need_fixup=needed ;; esac; done
bench_cgroup_hybrid_fixup $need_fixup

cleanup_containers() {
    local i rt root id
    for i in "${!PATHS[@]}"; do
        rt=${PATHS[$i]}; root=$BENCH_TMP/state/$i
        [ -d "$root" ] || continue
        # `list -q` where supported, plus whatever state directories are left
        for id in $({ "$rt" --root "$root" list -q 2>/dev/null || true; ls "$root"; } | sort -u); do
            bench_log "deleting leftover container $id (${LABELS[$i]})"
            "$rt" --root "$root" delete -f "$id" >/dev/null 2>&1 || bench_log "  delete -f $id failed"
        done
    done
    bench_cgroup_leftovers || true
}
bench_on_exit cleanup_containers

# One iteration, run by hyperfine through dash: its start-up, like the state polling, is
# in every runtime's time alike. With LC_PROBE=FILE (untimed pass only) it also records
# the peak RSS of `create`, the container process's VmHWM and memory cgroup while
# created, and the number of `state` polls until "stopped".
ONCE=$BENCH_TMP/lifecycle-once.sh
cat >"$ONCE" <<'SH'
rt=$1 root=$2 bundle=$3
read -r uuid </proc/sys/kernel/random/uuid
id=pierbench-$uuid
fail() { echo "lifecycle ($rt): $*" >&2; "$rt" --root "$root" delete -f "$id" >/dev/null 2>&1; exit 1; }
if [ -z "${LC_PROBE:-}" ]; then
    "$rt" --root "$root" create --bundle "$bundle" "$id" || fail "create failed"
else
    /usr/bin/time -f %M -o "$LC_PROBE.rss" "$rt" --root "$root" create --bundle "$bundle" "$id" || fail "create failed"
    pid=$("$rt" --root "$root" state "$id" | sed -n 's/.*"pid": *\([0-9][0-9]*\).*/\1/p')
    hwm=$(awk '/^VmHWM:/ { print $2 }' "/proc/$pid/status")
    cg=$(awk -F: '$2 == "memory" { print $3 }' "/proc/$pid/cgroup" | sed "s/$id/<id>/")
fi
"$rt" --root "$root" start "$id" || fail "start failed"
n=1
while :; do
    s=$("$rt" --root "$root" state "$id") || fail "state failed"
    case $s in *'"stopped"'*) break ;; esac
    n=$((n + 1))
    [ "$n" -le 5000 ] || fail "not stopped after $n state polls"
done
"$rt" --root "$root" delete "$id" || fail "delete failed"
[ -z "${LC_PROBE:-}" ] || echo "$(cat "$LC_PROBE.rss") $hwm $n $cg" >"$LC_PROBE"
SH

CMDS=()
for i in "${!PATHS[@]}"; do
    mkdir -p "$BENCH_TMP/state/$i"
    CMDS+=("${LABELS[$i]}" "/bin/sh $(bench_quote "$ONCE") $(bench_quote "${PATHS[$i]}") $(bench_quote "$BENCH_TMP/state/$i") $(bench_quote "$BUNDLE")")
    # sanity: one visible lifecycle before timing anything
    /bin/sh "$ONCE" "${PATHS[$i]}" "$BENCH_TMP/state/$i" "$BUNDLE" </dev/null >/dev/null ||
        bench_die "${LABELS[$i]} (${PATHS[$i]}) failed a lifecycle; not benchmarking a broken runtime"
done

# ---- timing ----------------------------------------------------------------------------
bench_compare "$BENCH_TMP/merged.json" "${CMDS[@]}"

# ---- memory (untimed, runtimes alternating) --------------------------------------------
for ((s = 0; s < RSS_SAMPLES; s++)); do
    for i in "${!PATHS[@]}"; do
        LC_PROBE=$BENCH_TMP/probe-$i-$s /bin/sh "$ONCE" "${PATHS[$i]}" "$BENCH_TMP/state/$i" "$BUNDLE" </dev/null >/dev/null ||
            bench_die "${LABELS[$i]}: probe lifecycle failed"
    done
done
"$BENCH_PY" - "$BENCH_TMP" "$RSS_SAMPLES" "${LABELS[@]}" >"$BENCH_TMP/extra.json" <<'PY'
import json, statistics, sys
tmp, samples, labels = sys.argv[1], int(sys.argv[2]), sys.argv[3:]
rows, cgroups = {}, {}
for i, l in enumerate(labels):
    probes = [open(f"{tmp}/probe-{i}-{s}").read().split(" ", 3) for s in range(samples)]
    med = lambda k: int(statistics.median(int(p[k]) for p in probes))
    rows[l] = [med(0), med(1), med(2)]
    cgroups[l] = sorted({p[3].strip() for p in probes})
print(json.dumps({"columns": ["`create` peak RSS KiB", "init VmHWM KiB (created)", "state polls"],
                  "rows": rows, "cgroups": cgroups}))
PY

# ---- record ----------------------------------------------------------------------------
bench_table "$BENCH_TMP/merged.json" crun,runc "$BENCH_TMP/extra.json" >"$BENCH_TMP/table.md"
{
    echo "## Runtime lifecycle: create + start + wait + delete of busybox \`/bin/true\`"
    echo
    echo "Command (as root, repo root): \`$CMDLINE\`"
    echo
    bench_machine_info
    echo "- Runtimes:"
    for i in "${!PATHS[@]}"; do
        ver=$("${PATHS[$i]}" --version 2>&1 | sed '/^$/d' | paste -sd';' | sed 's/;/; /g' || true)
        pkg=$(dpkg -S "${PATHS[$i]}" 2>/dev/null | cut -d: -f1 | head -n1 || true)
        [ -z "$pkg" ] || pkg=" (Debian package $(dpkg-query -W -f '${Package} ${Version}' "$pkg"))"
        echo "  - \`${LABELS[$i]}\`: \`${PATHS[$i]}\`$pkg: ${ver:-no --version}"
    done
    [ ${#SKIPPED[@]} -eq 0 ] || echo "- Skipped: ${SKIPPED[*]}"
    [ -z "$BENCH_CGROUP_NOTE" ] || echo "- Cgroups: $BENCH_CGROUP_NOTE"
    echo
    cat "$BENCH_TMP/table.md"
    echo
    self_cg=$(awk -F: '$3 != "/" { printf "%s`%s:%s`", n++ ? ", " : "", $2, $3 }' /proc/self/cgroup)
    sed -e "s/@SPEC@/$BENCH_SPEC_SOURCE/" -e "s/@RSS_SAMPLES@/$RSS_SAMPLES/" -e "s|@SELF_CG@|${self_cg:-none}|" <<'EOF'
One timed iteration is `sh lifecycle-once.sh`: `RUNTIME --root STATE create --bundle BUNDLE ID`,
`start ID`, then `state ID` polled without sleeping until its status is "stopped", then
`delete ID`, with a fresh `ID` (`pierbench-<uuid>`) each time and one `--root` per runtime.
The bundle is the static busybox with applet symlinks and the unmodified `@SPEC@`
config except `args ["/bin/true"]` and `terminal: false` (so no `cgroupsPath`). The dash
start-up and the state polls are in every runtime's time; "× crun"/"× runc" are ratios of medians.
The last three columns come from a separate untimed pass (@RSS_SAMPLES@ lifecycles per runtime,
alternating; medians): `create` peak RSS is GNU time's `%M` for `RUNTIME create` (the process
and the children it reaped; not the container process, which outlives `create`); init VmHWM is
the container process's peak RSS while the container is "created" (for runc, `runc init`);
state polls is how many `state` calls it took after `start` to see "stopped".

Default cgroup placement (memory controller, read from the created container's `/proc/PID/cgroup`;
the benchmark's own cgroups other than `/`: @SELF_CG@):
EOF
    "$BENCH_PY" -c 'import json,sys; d=json.load(open(sys.argv[1]))
for l, c in d["cgroups"].items(): print(f"- `{l}`: " + ", ".join(f"`{x}`" for x in c))' "$BENCH_TMP/extra.json"
} >"$BENCH_TMP/section.md"
bench_write_section "$SCENARIO" "$BENCH_TMP/section.md"
cat "$BENCH_TMP/table.md"
