# shellcheck shell=bash
# Shared helpers for Pier's whole-command benchmarks. Source it from a scenario:
#
#   . "$(dirname "$0")/lib.sh"
#   bench_init my-scenario            # temp dir + cleanup trap
#   bench_compare "$BENCH_TMP/merged.json" label1 'cmd1 args' label2 'cmd2 args'
#   bench_table "$BENCH_TMP/merged.json" crun,runc >"$BENCH_TMP/table.md"
#   bench_write_section my-scenario "$BENCH_TMP/section.md"
#
# The rules the helpers implement (see bench/README.md): all tools run side by side in
# one run, interleaved in rounds after a warm-up; results are medians and ratios; every
# scenario owns one marked section of BENCHMARKS.md that records the command and machine.
#
# Settings (environment):
#   BENCH_RUNS    timed runs per command            (default 30)
#   BENCH_ROUNDS  interleaving rounds                (default 10; capped at BENCH_RUNS)
#   BENCH_WARMUP  warm-up runs per command, round 1  (default 3)
#   BENCH_OUTPUT  file to write sections into        (default <repo>/BENCHMARKS.md)
#   BENCH_RAW_DIR if set, hyperfine's per-round JSON files are copied there
#   BENCH_CGROUP_FIXUP  auto (default), 1 or 0, see bench_cgroup_hybrid_fixup
#   BENCH_NOTE    free text recorded with the results (e.g. what else loaded the machine)

BENCH_DIR=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
BENCH_REPO=$(cd "$BENCH_DIR/.." && pwd)
BENCH_ID_PREFIX=pierbench-
BENCH_PY=${BENCH_PY:-python3}

bench_log() { printf '[bench] %s\n' "$*" >&2; }
bench_die() { printf '[bench] error: %s\n' "$*" >&2; exit 1; }

# bench_require CMD... : fail with an install hint when a tool is missing.
bench_require() {
    local c missing=()
    for c in "$@"; do command -v "$c" >/dev/null 2>&1 || missing+=("$c"); done
    [ ${#missing[@]} -eq 0 ] && return 0
    bench_die "missing: ${missing[*]} (Debian: apt-get install -y hyperfine time busybox-static runc crun python3)"
}

# ---------------------------------------------------------------------------------------
# Temp dir and cleanup
# ---------------------------------------------------------------------------------------

BENCH__CLEANUPS=()

# bench_stop_pid NAME PID : SIGTERM, up to 30 s, then SIGKILL (a process this run started).
bench_stop_pid() {
    local i
    kill -TERM "$2" 2>/dev/null || return 0
    for ((i = 0; i < 300; i++)); do
        kill -0 "$2" 2>/dev/null || break
        sleep 0.1
    done
    if kill -0 "$2" 2>/dev/null; then
        bench_log "$1 (pid $2) ignored SIGTERM for 30s: killing it"
        kill -KILL "$2" 2>/dev/null
    fi
    wait "$2" 2>/dev/null || true
}

# bench_on_exit 'shell code' : run at exit, last registered first.
bench_on_exit() { BENCH__CLEANUPS+=("$1"); }

bench__run_cleanups() {
    local rc=$? i
    trap - EXIT INT TERM
    set +e
    for ((i = ${#BENCH__CLEANUPS[@]} - 1; i >= 0; i--)); do
        eval "${BENCH__CLEANUPS[$i]}"
    done
    BENCH__CLEANUPS=()
    exit "$rc"
}

# bench_init NAME : sets BENCH_NAME, BENCH_TMP and the exit trap; records the command line.
bench_init() {
    BENCH_NAME=$1
    [ "$(id -u)" -eq 0 ] || bench_die "run as root (containers, cgroups, mounts)"
    bench_require hyperfine "$BENCH_PY"
    BENCH_RUNS=${BENCH_RUNS:-30}
    BENCH_ROUNDS=${BENCH_ROUNDS:-10}
    BENCH_WARMUP=${BENCH_WARMUP:-3}
    BENCH_OUTPUT=${BENCH_OUTPUT:-$BENCH_REPO/BENCHMARKS.md}
    BENCH_LOAD_START=$(cut -d' ' -f1-3 /proc/loadavg)
    BENCH_TMP=$(mktemp -d /tmp/pierbench.XXXXXX)
    trap bench__run_cleanups EXIT
    trap 'exit 130' INT
    trap 'exit 143' TERM
    bench_on_exit 'bench__remove_tmp'
}

bench__remove_tmp() {
    [ -n "${BENCH_TMP:-}" ] && [ -d "$BENCH_TMP" ] || return 0
    # Never rm -rf through a mount point: unmount anything left under our temp dir first.
    local m
    while read -r m; do
        bench_log "unmounting leftover $m"
        umount -l "$m"
    done < <(awk -v p="$BENCH_TMP" 'index($5, p) == 1 { print $5 }' /proc/self/mountinfo | sort -r)
    rm -rf -- "$BENCH_TMP"
}

# bench_command_line ARGS... : the command as typed, with the BENCH_* settings that were
# set in the environment, for the record in BENCHMARKS.md. Call with "$0" "$@".
bench_command_line() {
    local v out="" a
    for v in BENCH_RUNS BENCH_ROUNDS BENCH_WARMUP BENCH_CGROUP_FIXUP; do
        # only what the caller exported, not our defaults
        if printenv "$v" >/dev/null; then out+="$v=$(printenv "$v") "; fi
    done
    a=$(realpath --relative-to="$BENCH_REPO" "$1" 2>/dev/null || echo "$1")
    shift
    out+=$a
    for v in "$@"; do out+=" $(printf '%q' "$v")"; done
    printf '%s' "$out"
}

# ---------------------------------------------------------------------------------------
# Bundle
# ---------------------------------------------------------------------------------------

# Release builds of pierd, pier and pier-runtime (built here when one is missing).
bench_engine_binaries() {
    if [ ! -x "$BENCH_REPO/target/release/pierd" ] || [ ! -x "$BENCH_REPO/target/release/pier" ] ||
        [ ! -x "$BENCH_REPO/target/release/pier-runtime" ]; then
        bench_log "building release binaries (cargo build --release -p pierd -p pier-cli -p pier-runtime)"
        (cd "$BENCH_REPO" && cargo build --quiet --release -p pierd -p pier-cli -p pier-runtime) ||
            bench_die "cargo build failed"
    fi
}

# Prints the path of a tar of scripts/busybox-rootfs.sh's rootfs, made in $BENCH_TMP.
bench_busybox_tar() {
    bash "$BENCH_REPO/scripts/busybox-rootfs.sh" "$BENCH_TMP/rootfs" >/dev/null
    tar -C "$BENCH_TMP/rootfs" -cf "$BENCH_TMP/busybox.tar" .
    echo "$BENCH_TMP/busybox.tar"
}

# bench_make_busybox_bundle DIR [ARG...] : OCI bundle in DIR: rootfs holding the static
# busybox plus one symlink per applet (what `busybox --install -s /bin` makes), and a
# config.json from `runc spec` (or `crun spec`) with process.args = ARGS (default
# /bin/true) and terminal = false. Nothing else of the default spec is changed.
bench_make_busybox_bundle() {
    local dir=$1; shift
    local bb a specrt
    bb=$(command -v busybox) || bench_die "busybox not found (apt-get install -y busybox-static)"
    # The rootfs gets no libraries, so the binary must be static (ldd fails on those).
    ! ldd "$bb" >/dev/null 2>&1 || bench_die "$bb is dynamically linked; install busybox-static"
    mkdir -p "$dir/rootfs/bin" "$dir/rootfs/proc" "$dir/rootfs/dev" "$dir/rootfs/sys" \
        "$dir/rootfs/tmp" "$dir/rootfs/etc"
    cp "$bb" "$dir/rootfs/bin/busybox"
    for a in $("$dir/rootfs/bin/busybox" --list); do
        [ -e "$dir/rootfs/bin/$a" ] || ln -s busybox "$dir/rootfs/bin/$a"
    done
    for specrt in runc crun; do command -v "$specrt" >/dev/null 2>&1 && break; specrt=; done
    [ -n "$specrt" ] || bench_die "need runc or crun to generate config.json (\`runc spec\`)"
    (cd "$dir" && rm -f config.json && "$specrt" spec)
    [ $# -gt 0 ] || set -- /bin/true
    "$BENCH_PY" - "$dir/config.json" "$@" <<'PY'
import json, sys
path, args = sys.argv[1], sys.argv[2:]
with open(path) as f:
    c = json.load(f)
c["process"]["args"] = args
c["process"]["terminal"] = False
with open(path, "w") as f:
    json.dump(c, f, indent=2)
PY
    BENCH_SPEC_SOURCE="$specrt spec"
}

# ---------------------------------------------------------------------------------------
# Host set-up: hybrid cgroups
# ---------------------------------------------------------------------------------------

# bench_cgroup_hybrid_fixup : on a hybrid host (v1 controllers under /sys/fs/cgroup/<c>,
# cgroup2 at /sys/fs/cgroup/unified) whose cgroup2 mount owns controllers, crun <= 1.8
# refuses to run ("cgroups in hybrid mode not supported, drop all controllers from
# cgroupv2"). Mount each such controller as a v1 hierarchy for the duration of the run,
# for every runtime alike, and undo it at exit. The scenario passes "needed" when a
# runtime under test needs it (crun); BENCH_CGROUP_FIXUP=1 forces it, =0 disables it.
# A controller whose /sys/fs/cgroup/<c> already exists is left alone. Sets
# BENCH_CGROUP_NOTE for the record.
BENCH_CGROUP_NOTE=""
bench_cgroup_hybrid_fixup() {
    local u=/sys/fs/cgroup/unified c d ctrls=""
    case ${BENCH_CGROUP_FIXUP:-auto} in
        0) BENCH_CGROUP_NOTE="hybrid fix-up disabled (BENCH_CGROUP_FIXUP=0)"; return 0 ;;
        1) ;;
        *) [ "${1:-}" = needed ] || return 0 ;;
    esac
    mountpoint -q "$u" 2>/dev/null || return 0
    read -r ctrls <"$u/cgroup.controllers" || true
    [ -n "$ctrls" ] || return 0
    for c in $ctrls; do
        d=/sys/fs/cgroup/$c
        if [ -e "$d" ]; then
            bench_log "cgroup2 owns '$c' but $d already exists: leaving it alone"
            continue
        fi
        mkdir "$d"
        if ! mount -t cgroup -o "$c" cgroup "$d"; then
            rmdir "$d"
            bench_log "could not mount '$c' as cgroup v1; crun may refuse to run"
            continue
        fi
        bench_log "mounted cgroup v1 '$c' at $d for this run (undone at exit)"
        bench_on_exit "bench__cgroup_v1_undo $c $d"
        BENCH_CGROUP_NOTE+="${BENCH_CGROUP_NOTE:+; }\`$c\` moved from cgroup2 to a v1 hierarchy at $d for the run (crun 1.8 refuses a hybrid host whose cgroup2 owns a controller), restored afterwards"
    done
}

bench__cgroup_hier() { awk -v c="$1" '$1 == c { print $2 }' /proc/cgroups; }
bench__cgroup_count() { awk -v c="$1" '$1 == c { print $3 }' /proc/cgroups; }

# Undo a v1 mount of controller $1 at $2. The kernel only destroys a v1 hierarchy (and
# gives its controller back to cgroup2) if it has no child cgroups when it is unmounted,
# dying ones included; otherwise the hierarchy lingers, unmounted, with the controller
# still bound to it. So: wait for the children to go, unmount, check /proc/cgroups, and if
# the hierarchy lingered, mount it again (which reuses it) and retry.
bench__cgroup_v1_undo() {
    local c=$1 d=$2 try i
    for try in 1 2 3 4 5; do
        # Runtimes keep empty parent cgroups (pier-runtime's /pier, like docker's
        # /docker): remove every empty child, deepest first, so the hierarchy can go.
        find "$d" -mindepth 1 -depth -type d -exec rmdir {} \; 2>/dev/null || true
        for ((i = 0; i < 50; i++)); do
            [ "$(bench__cgroup_count "$c")" = 1 ] && break
            sleep 0.1
        done
        umount "$d" || { bench_log "umount $d failed"; return 1; }
        for ((i = 0; i < 20; i++)); do
            [ "$(bench__cgroup_hier "$c")" = 0 ] && { rmdir "$d"; bench_log "restored '$c' to cgroup2"; return 0; }
            sleep 0.1
        done
        bench_log "v1 '$c' hierarchy lingered after umount (try $try); remounting to retry"
        mount -t cgroup -o "$c" cgroup "$d" || break
    done
    bench_log "WARNING: could not give '$c' back to cgroup2; fix by hand: mount -t cgroup -o $c cgroup $d; (remove child cgroups); umount $d; rmdir $d"
    return 1
}

# bench_cgroup_leftovers : print (and rmdir) cgroup directories named after benchmark
# container ids anywhere under /sys/fs/cgroup. Returns 1 if any were found.
bench_cgroup_leftovers() {
    local found=0 d
    while read -r d; do
        [ -n "$d" ] || continue
        found=1
        bench_log "leftover cgroup $d"
        rmdir "$d" 2>/dev/null || bench_log "  could not remove $d"
    done < <(find /sys/fs/cgroup -mindepth 2 -maxdepth 8 -type d -name "${BENCH_ID_PREFIX}*" 2>/dev/null | sort -r)
    return $found
}

# ---------------------------------------------------------------------------------------
# Where the data goes
# ---------------------------------------------------------------------------------------

# bench_data_dir : sets BENCH_DATA, the directory for the scenario's data roots (image
# stores, dockerd's --data-root): $BENCH_TMP/data. With BENCH_FS=tmpfs it is a tmpfs
# (size BENCH_TMPFS_SIZE, default 12g) mounted for the run and unmounted at exit, to take
# the disk out of the measurement. Sets BENCH_DATA_NOTE for the record.
bench_data_dir() {
    BENCH_DATA=$BENCH_TMP/data
    mkdir -p "$BENCH_DATA"
    case ${BENCH_FS:-} in
        "") ;;
        tmpfs)
            mount -t tmpfs -o "size=${BENCH_TMPFS_SIZE:-12g},mode=0755" pierbench-data "$BENCH_DATA"
            bench_on_exit "umount $(bench_quote "$BENCH_DATA") || umount -l $(bench_quote "$BENCH_DATA")"
            ;;
        *) bench_die "BENCH_FS=$BENCH_FS: only tmpfs (or unset: the temp dir's filesystem)" ;;
    esac
    BENCH_DATA_NOTE="$(findmnt -n -o FSTYPE -T "$BENCH_DATA")$([ -n "${BENCH_FS:-}" ] && echo " (BENCH_FS=$BENCH_FS)") mounted $(findmnt -n -o OPTIONS -T "$BENCH_DATA"), on $(findmnt -n -o SOURCE -T "$BENCH_DATA")"
}

# ---------------------------------------------------------------------------------------
# An isolated dockerd
# ---------------------------------------------------------------------------------------

# bench_dockerd_start : starts a dockerd of the run's own, all its files under
# $BENCH_TMP/docker (socket, --exec-root, --pidfile, a config file of its
# own that also keeps the trust key out of /etc/docker; --data-root under $BENCH_DATA if
# set, see bench_data_dir), with --bridge=none, no
# iptables, cgroupfs cgroups under /pierbench-dockerd-$$, and stops it at exit (SIGTERM,
# up to 30s, then SIGKILL; then any containerd it managed). Sets BENCH_DOCKER, the docker
# CLI command line for it (its own --config dir, so ~/.docker stays out), as a string
# for hyperfine and as the array BENCH_DOCKER_ARGV. Refuses to start when a system
# containerd answers at /run/containerd/containerd.sock (dockerd would use it).
bench_dockerd_start() {
    bench_require dockerd docker
    local d=$BENCH_TMP/docker i data=${BENCH_DATA:-$BENCH_TMP/docker}
    [ ! -S /run/containerd/containerd.sock ] ||
        bench_die "a system containerd is running (/run/containerd/containerd.sock): an isolated dockerd would use it"
    mkdir -p "$d/cli"
    printf '{"deprecated-key-path": "%s"}\n' "$d/key.json" >"$d/daemon.json"
    BENCH__DOCKERD_HOST_PATHS=()
    for i in /run/docker /run/docker/plugins /opt/containerd; do
        [ -e "$i" ] || BENCH__DOCKERD_HOST_PATHS+=("$i")
    done
    dockerd --host "unix://$d/docker.sock" --data-root "$data/dockerd" --exec-root "$d/exec" \
        --pidfile "$d/docker.pid" --config-file "$d/daemon.json" \
        --bridge=none --iptables=false --ip6tables=false \
        --exec-opt native.cgroupdriver=cgroupfs --cgroup-parent "/${BENCH_ID_PREFIX}dockerd-$$" \
        --log-level warn >"$d/dockerd.log" 2>&1 &
    BENCH__DOCKERD_PID=$!
    bench_on_exit bench__dockerd_stop
    BENCH_DOCKER_ARGV=(docker --config "$d/cli" --host "unix://$d/docker.sock")
    BENCH_DOCKER="docker --config $(bench_quote "$d/cli") --host $(bench_quote "unix://$d/docker.sock")"
    for ((i = 0; i < 600; i++)); do
        kill -0 "$BENCH__DOCKERD_PID" 2>/dev/null ||
            bench_die "dockerd exited at start: $(tail -n 5 "$d/dockerd.log")"
        if [ -S "$d/docker.sock" ] && "${BENCH_DOCKER_ARGV[@]}" version >/dev/null 2>&1; then
            bench_log "dockerd $(dockerd --version | cut -d' ' -f3 | tr -d ,) running (pid $BENCH__DOCKERD_PID, $d)"
            return 0
        fi
        sleep 0.1
    done
    bench_die "dockerd did not answer within 60s: $(tail -n 5 "$d/dockerd.log")"
}

bench__dockerd_stop() {
    local d=$BENCH_TMP/docker i pid p
    [ -n "${BENCH__DOCKERD_PID:-}" ] || return 0
    # containers first (dockerd would otherwise leave them to its shims on SIGKILL)
    if kill -0 "$BENCH__DOCKERD_PID" 2>/dev/null; then
        for i in $("${BENCH_DOCKER_ARGV[@]}" ps -aq 2>/dev/null); do
            "${BENCH_DOCKER_ARGV[@]}" rm -f "$i" >/dev/null 2>&1 || bench_log "docker rm -f $i failed"
        done
    fi
    # dockerd's managed containerd, to stop should it outlive dockerd
    pid=$(cat "$d/exec/containerd/containerd.pid" 2>/dev/null || true)
    bench_stop_pid dockerd "$BENCH__DOCKERD_PID"
    if [ -n "$pid" ] && kill -0 "$pid" 2>/dev/null &&
        [ "$(readlink "/proc/$pid/exe" 2>/dev/null)" = "$(command -v containerd)" ]; then
        bench_log "dockerd's containerd (pid $pid) outlived it: killing it"
        kill -KILL "$pid" 2>/dev/null
    fi
    BENCH__DOCKERD_PID=
    for ((i = ${#BENCH__DOCKERD_HOST_PATHS[@]} - 1; i >= 0; i--)); do
        p=${BENCH__DOCKERD_HOST_PATHS[$i]}
        [ ! -d "$p" ] || rmdir "$p" 2>/dev/null || bench_log "dockerd left $p (not empty)"
    done
    find /sys/fs/cgroup -mindepth 1 -maxdepth 8 -type d -path "*/${BENCH_ID_PREFIX}dockerd-$$*" 2>/dev/null |
        sort -r | while read -r p; do rmdir "$p" 2>/dev/null || bench_log "could not remove cgroup $p"; done
}

# ---------------------------------------------------------------------------------------
# Side-by-side timing
# ---------------------------------------------------------------------------------------

# bench_quote WORD : quote for hyperfine's own command-line splitting (POSIX shell words).
bench_quote() { printf "'%s'" "${1//\'/\'\\\'\'}"; }

# bench_compare OUT_JSON LABEL CMD [LABEL CMD...]
#
# Times each CMD (a command line, run without a shell: hyperfine -N) BENCH_RUNS times.
# hyperfine runs all runs of one command before the next, so on a shared, noisy machine
# a load spike would land on one tool only. Instead the runs are split into BENCH_ROUNDS
# hyperfine invocations; each round runs every command, in an order rotated by one per
# round, so the tools alternate over the whole run. Round 1 starts with BENCH_WARMUP
# untimed runs per command. The per-run times of all rounds are merged into OUT_JSON:
#   {"labels": [...], "results": {LABEL: {"times": [s...], "median": s, "p90": s, ...}}}
# A failing command aborts the run (no --ignore-failure).
#
# BENCH_PREPARE[LABEL]='command line' (optional) is run, untimed, before every run of
# LABEL's command, warm-up runs included (hyperfine --prepare, also without a shell): for
# clean-up between runs such as removing what the previous run created. Labels without an
# entry get `true`.
declare -A BENCH_PREPARE=()
bench_compare() {
    local out=$1; shift
    [ $# -ge 2 ] && [ $(($# % 2)) -eq 0 ] || bench_die "bench_compare OUT LABEL CMD [LABEL CMD...]"
    local labels=() cmds=()
    while [ $# -gt 0 ]; do labels+=("$1"); cmds+=("$2"); shift 2; done
    local n=${#labels[@]} runs=$BENCH_RUNS rounds=$BENCH_ROUNDS
    [ "$rounds" -le "$runs" ] || rounds=$runs
    local rawdir="$BENCH_TMP/hyperfine-$BENCH_NAME" r k j idx warm done_runs=0
    mkdir -p "$rawdir"
    local jsons=()
    for ((r = 0; r < rounds; r++)); do
        # spread runs evenly: rounds get floor or ceil of runs/rounds, total exactly runs
        k=$(((runs * (r + 1)) / rounds - done_runs))
        done_runs=$((done_runs + k))
        warm=0; [ "$r" -eq 0 ] && warm=$BENCH_WARMUP
        local args=(-N --style none --output null --runs "$k" --warmup "$warm"
            --export-json "$rawdir/round-$r.json")
        for ((j = 0; j < n; j++)); do
            idx=$(((j + r) % n))
            args+=(--command-name "${labels[$idx]}" "${cmds[$idx]}")
        done
        if [ ${#BENCH_PREPARE[@]} -gt 0 ]; then
            for ((j = 0; j < n; j++)); do
                idx=$(((j + r) % n))
                args+=(--prepare "${BENCH_PREPARE[${labels[$idx]}]:-true}")
            done
        fi
        bench_log "round $((r + 1))/$rounds: $k timed run(s) per command$([ "$warm" -gt 0 ] && echo ", after $warm warm-up run(s)")"
        hyperfine "${args[@]}" || bench_die "hyperfine failed in round $((r + 1))"
        jsons+=("$rawdir/round-$r.json")
    done
    if [ -n "${BENCH_RAW_DIR:-}" ]; then mkdir -p "$BENCH_RAW_DIR" && cp "${jsons[@]}" "$BENCH_RAW_DIR/"; fi
    "$BENCH_PY" - "$out" "$n" "${labels[@]}" "${jsons[@]}" <<'PY'
import json, sys
out, n = sys.argv[1], int(sys.argv[2])
labels, files = sys.argv[3:3 + n], sys.argv[3 + n:]

def quantile(xs, q):
    # linear interpolation between closest ranks (numpy's default)
    xs = sorted(xs)
    pos = (len(xs) - 1) * q
    lo = int(pos)
    hi = min(lo + 1, len(xs) - 1)
    return xs[lo] + (xs[hi] - xs[lo]) * (pos - lo)

times = {l: [] for l in labels}
for f in files:
    for r in json.load(open(f))["results"]:
        times[r["command"]].extend(r["times"])
res = {}
for l, t in times.items():
    res[l] = {"times": t, "n": len(t), "median": quantile(t, 0.5), "p90": quantile(t, 0.9),
              "min": min(t), "max": max(t), "mean": sum(t) / len(t)}
json.dump({"labels": labels, "results": res}, open(out, "w"), indent=1)
PY
}

# bench_table MERGED_JSON BASELINES [EXTRA_JSON]
# Markdown table: one row per label with runs, median, p90 (ms) and "× BASELINE" (median
# ratio) for each comma-separated baseline label present. EXTRA_JSON adds columns:
#   {"columns": ["peak RSS KiB", ...], "rows": {LABEL: [value, ...]}}
bench_table() {
    "$BENCH_PY" - "$1" "$2" "${3:-}" <<'PY'
import json, sys
merged = json.load(open(sys.argv[1]))
res, labels = merged["results"], merged["labels"]
bases = [b for b in sys.argv[2].split(",") if b and b in res]
extra = json.load(open(sys.argv[3])) if sys.argv[3] else {"columns": [], "rows": {}}
head = ["runtime", "runs", "median ms", "p90 ms", "min ms"] + [f"× {b}" for b in bases] + extra["columns"]
print("| " + " | ".join(head) + " |")
print("|" + "|".join(["---"] + ["---:"] * (len(head) - 1)) + "|")
for l in labels:
    r = res[l]
    row = [f"`{l}`", str(r["n"])] + [f"{r[k] * 1000:.1f}" for k in ("median", "p90", "min")]
    row += [f"{r['median'] / res[b]['median']:.2f}" for b in bases]
    row += [str(v) for v in extra["rows"].get(l, [""] * len(extra["columns"]))]
    print("| " + " | ".join(row) + " |")
PY
}

# ---------------------------------------------------------------------------------------
# Record
# ---------------------------------------------------------------------------------------

# bench_machine_info : markdown bullet lines describing the machine and the run.
bench_machine_info() {
    local cpu mem fs
    cpu=$(awk -F': ' '/^model name/ { print $2; exit }' /proc/cpuinfo)
    mem=$(awk '/^MemTotal/ { printf "%.1f GiB", $2 / 1048576 }' /proc/meminfo)
    fs=$(findmnt -n -o FSTYPE -T "$BENCH_TMP" 2>/dev/null || echo '?')
    printf -- '- Date: %s\n' "$(date -u '+%Y-%m-%d %H:%M UTC')"
    printf -- '- Machine: %s CPUs (%s), %s RAM, Linux %s, %s\n' "$(nproc)" "$cpu" "$mem" \
        "$(uname -r)" "$(. /etc/os-release && echo "$PRETTY_NAME")"
    printf -- '- Load average (1/5/15 min) at start: %s; at end: %s\n' "$BENCH_LOAD_START" \
        "$(cut -d' ' -f1-3 /proc/loadavg)"
    printf -- '- Temp dir (bundle, state roots) on %s; %s\n' "$fs" "$(hyperfine --version)"
    printf -- '- Method: %s timed runs per command in %s interleaved rounds (order rotated each round), %s warm-up runs per command first; median/p90 over all runs\n' \
        "$BENCH_RUNS" "$([ "$BENCH_ROUNDS" -le "$BENCH_RUNS" ] && echo "$BENCH_ROUNDS" || echo "$BENCH_RUNS")" "$BENCH_WARMUP"
    [ -z "${BENCH_NOTE:-}" ] || printf -- '- Note: %s\n' "$BENCH_NOTE"
}

# bench_write_section NAME CONTENT_FILE : put CONTENT_FILE between
# <!-- bench:NAME --> and <!-- /bench:NAME --> in BENCH_OUTPUT, replacing that section if
# present, appending it otherwise; other sections are left as they are.
bench_write_section() {
    "$BENCH_PY" - "$BENCH_OUTPUT" "$1" "$2" <<'PY'
import os, sys
path, name, content_file = sys.argv[1:4]
begin, end = f"<!-- bench:{name} -->", f"<!-- /bench:{name} -->"
body = open(content_file).read().strip("\n")
block = f"{begin}\n{body}\n{end}"
if os.path.exists(path):
    text = open(path).read()
else:
    text = ("# Benchmarks\n\n"
            "Whole-command comparisons run side by side by the scripts in `bench/` "
            "(see `bench/README.md`). Each section is written by one scenario between its "
            "`<!-- bench:NAME -->` markers; re-running a scenario replaces only its own "
            "section.\n")
b, e = text.find(begin), text.find(end)
if b >= 0 and e > b:
    text = text[:b] + block + text[e + len(end):]
else:
    text = text.rstrip("\n") + "\n\n" + block + "\n"
tmp = path + ".tmp"
open(tmp, "w").write(text)
os.replace(tmp, path)
PY
    bench_log "wrote section '$1' to $BENCH_OUTPUT"
}

# ---------------------------------------------------------------------------------------
# Network namespaces and the host's network state
# ---------------------------------------------------------------------------------------

# bench_netns_add NAME : a network namespace of the run's own (`ip netns add NAME`, lo up),
# deleted at exit. Processes still inside it at exit (they would keep it alive after the
# `ip netns delete`) are named in the log and killed by PID. Run a command inside with
# `nsenter --net=/run/netns/NAME CMD`: unlike `ip netns exec`, nsenter keeps the mount
# namespace, so /sys/fs/cgroup stays visible (`ip netns exec` remounts /sys, which hides the
# cgroup mounts daemons need); /sys/class/net then still shows the host's interfaces.
bench_netns_add() {
    local ns=$1
    case $ns in "$BENCH_ID_PREFIX"*) ;; *) bench_die "netns name must start with $BENCH_ID_PREFIX: $ns" ;; esac
    ! ip netns list | grep -qw -- "$ns" || bench_die "netns $ns exists already"
    ip netns add "$ns" || bench_die "ip netns add $ns failed"
    bench_on_exit "bench_netns_delete $(bench_quote "$ns")"
    ip -n "$ns" link set lo up
}

# bench_netns_delete NAME : kill (by PID) what still runs inside, then delete it.
bench_netns_delete() {
    local ns=$1 ino p i left
    [ -e "/run/netns/$ns" ] || return 0
    ino=$(stat -L -c %i "/run/netns/$ns")
    for ((i = 0; i < 2; i++)); do
        left=()
        for p in /proc/[0-9]*; do
            [ "$(stat -L -c %i "$p/ns/net" 2>/dev/null)" = "$ino" ] && left+=("${p#/proc/}")
        done
        [ ${#left[@]} -gt 0 ] || break
        for p in "${left[@]}"; do
            bench_log "netns $ns: pid $p still inside ($(tr '\0' ' ' <"/proc/$p/cmdline" 2>/dev/null | cut -c1-100)): killing it"
            kill -KILL "$p" 2>/dev/null
        done
        sleep 0.5
    done
    ip netns delete "$ns" || bench_log "ip netns delete $ns failed"
}

# bench_host_net_state FILE : the host's network state, one "KEY<TAB>LINE" per line: its
# links (`ip -o link`, key "link NAME master MASTER"), its nftables tables (key "nft FAMILY
# NAME"; counters and set-element timeouts blanked), `iptables-save` / `ip6tables-save`
# (comments dropped, counters blanked) and a few forwarding sysctls. Compare two with
# bench_host_net_check.
bench_host_net_state() {
    local out=$1 fam name
    {
        ip -o link | awk '{ n = $2; sub(/:$/, "", n); sub(/@.*/, "", n); m = "-"
            for (i = 3; i < NF; i++) if ($i == "master") m = $(i + 1)
            printf "link %s master %s\t%s\n", n, m, $0 }'
        nft list tables 2>/dev/null | while read -r _ fam name; do
            nft list table "$fam" "$name" 2>/dev/null |
                sed -E 's/counter packets [0-9]+ bytes [0-9]+/counter/g; s/ expires [0-9a-z.]+//g' |
                sed "s/^/nft $fam $name\t/"
        done
        { iptables-save 2>/dev/null || true; } | sed -E '/^#/d; s/\[[0-9]+:[0-9]+\]/[0:0]/' | sed 's/^/iptables\t/'
        { ip6tables-save 2>/dev/null || true; } | sed -E '/^#/d; s/\[[0-9]+:[0-9]+\]/[0:0]/' | sed 's/^/ip6tables\t/'
        sysctl net.ipv4.ip_forward net.ipv4.conf.all.route_localnet net.ipv6.conf.all.forwarding \
            net.bridge.bridge-nf-call-iptables net.bridge.bridge-nf-call-ip6tables 2>/dev/null |
            sed 's/^/sysctl\t/'
    } >"$out"
}

# bench_host_net_check BEFORE_FILE : takes the state again and compares it with BEFORE_FILE
# (from bench_host_net_state). Prints the difference and returns 1 if they differ.
# BENCH_HOST_IGNORE (an extended regex, unset by default) leaves out lines whose key
# matches: for a shared machine where other jobs (say, test suites making bridges
# pt<hex> and nftables tables pier_pt<hex>) change the host's network while the
# benchmark runs. Whatever it leaves out is printed as well.
bench_host_net_check() {
    local before=$1 now d
    now=$(mktemp /tmp/pierbench-hostnet.XXXXXX)
    bench_host_net_state "$now"
    if d=$(diff <(bench__host_net_filter <"$before") <(bench__host_net_filter <"$now")); then
        if [ -n "${BENCH_HOST_IGNORE:-}" ] && ! cmp -s "$before" "$now"; then
            bench_log "host network changed only in what BENCH_HOST_IGNORE='$BENCH_HOST_IGNORE' leaves out (other jobs):"
            diff "$before" "$now" | grep -E '^[<>]' | cut -f1 | sort -u | sed 's/^/[bench]     /' >&2
        fi
        rm -f "$now"
        return 0
    fi
    printf '[bench] ERROR: the host network state differs from before the run:\n%s\n' "$d" >&2
    rm -f "$now"
    return 1
}

bench__host_net_filter() {
    if [ -n "${BENCH_HOST_IGNORE:-}" ]; then
        awk -F '\t' -v re="$BENCH_HOST_IGNORE" '$1 !~ re'
    else
        cat
    fi
}
