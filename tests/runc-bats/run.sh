#!/usr/bin/env bash
# Run runc's own bats integration suite (from Debian's runc source package)
# against an arbitrary OCI runtime binary.
#
#   tests/runc-bats/run.sh [RUNTIME_PATH] [bats args...]
#
#   RUNTIME_PATH  runtime to test (absolute/relative path or a name in $PATH);
#                 default: `runc` from $PATH (apt-installs Debian's runc if
#                 missing).  May be omitted when the first argument looks like
#                 a bats argument (starts with '-' or ends in '.bats').
#   bats args     passed to bats, e.g.  -f 'runc exec'   or   exec.bats tty.bats
#                 Bare *.bats names are resolved inside the suite directory.
#                 With no *.bats/directory argument, the whole suite runs.
#
# Everything fetched or built lives in $PIER_RUNC_BATS_CACHE
# (default /var/cache/pier-runc-bats), never in this repository.
#
# Environment knobs:
#   PIER_RUNC_BATS_CACHE     cache dir (default /var/cache/pier-runc-bats)
#   PIER_RUNC_BATS_MIRROR    Debian mirror for deb-src + debian image
#                            (default http://deb.debian.org/debian)
#   PIER_RUNC_BATS_REFRESH=1 re-fetch the runc source and rebuild helpers/images
#   PIER_RUNC_BATS_TIMEOUT   per-test timeout in seconds (default 180, 0 = none)
#   PIER_RUNC_BATS_NO_TTY=1  do not run bats under script(1) (no controlling tty)
#   PIER_RUNC_BATS_NO_ENV_FIXES=1  run the suite exactly as shipped (see README,
#                            "Environment fixes")
#   PIER_RUNC_BATS_KNOWN_FAILURES  known-failures file (default: known-failures.txt
#                            next to this script, if it exists)
#   RUNC_USE_SYSTEMD, ROOTLESS_FEATURES, ...  passed through to the suite.
#
# Exit status: 0 if every test that ran passed (failures listed in the
# known-failures file are tolerated but still counted and reported),
# 1 on test failures, 2 on setup errors.
set -Eeuo pipefail

# Everything lives in main(), so bash has parsed the whole script before it
# runs: editing this file while a run is in progress cannot break that run.
main() {
	SCRIPT_DIR=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
	CACHE=${PIER_RUNC_BATS_CACHE:-/var/cache/pier-runc-bats}
	MIRROR=${PIER_RUNC_BATS_MIRROR:-http://deb.debian.org/debian}
	TIMEOUT=${PIER_RUNC_BATS_TIMEOUT:-180}
	KNOWN_FAILURES=${PIER_RUNC_BATS_KNOWN_FAILURES:-$SCRIPT_DIR/known-failures.txt}
	APT=(apt-get -o DPkg::Lock::Timeout=600 -o APT::Sandbox::User=root)
	export DEBIAN_FRONTEND=noninteractive

	log() { printf 'runc-bats: %s\n' "$*" >&2; }
	die() {
		log "ERROR: $*"
		exit 2
	}

	[ "$(id -u)" -eq 0 ] || die "must run as root (the suite creates containers, cgroups and mounts)"

	# ---------------------------------------------------------------- arguments
	RUNTIME=
	if [ $# -gt 0 ] && [[ "$1" != -* && "$1" != *.bats ]]; then
		RUNTIME=$1
		shift
	fi
	BATS_ARGS=("$@")

	mkdir -p "$CACHE" /run/lock
	# One run at a time on this host (whatever the cache dir): concurrent runs
	# would share the suite's fixed parent cgroup (/runc-cgroups-integration-test).
	exec 9>/run/lock/pier-runc-bats.lock
	if ! flock -n 9; then
		log "another run holds /run/lock/pier-runc-bats.lock; waiting..."
		flock 9
	fi

	# ------------------------------------------------------------ apt packages
	APT_UPDATED=
	apt_update() {
		[ -n "$APT_UPDATED" ] && return 0
		local i
		for i in 1 2 3 4 5; do
			if "${APT[@]}" update -qq >&2; then
				APT_UPDATED=1
				return 0
			fi
			log "apt-get update failed (attempt $i), retrying in 15s"
			sleep 15
		done
		die "apt-get update failed"
	}

	apt_install() {
		local missing=() p
		for p in "$@"; do
			dpkg-query -W -f='${Status}\n' "$p" 2>/dev/null | grep -q '^install ok installed$' || missing+=("$p")
		done
		[ ${#missing[@]} -eq 0 ] && return 0
		log "installing: ${missing[*]}"
		apt_update
		"${APT[@]}" install -y -qq --no-install-recommends "${missing[@]}" >&2
	}

	# bats: the runner; jq/gawk/gcc/libc6-dev/util-linux/iproute2: used by the
	# tests themselves (gawk by helpers.bash for cgroup v1 paths, gcc -static for
	# the seccomp and device tests); busybox-static/mmdebstrap/xz-utils: images;
	# dpkg-dev: dpkg-source/dpkg-checkbuilddeps; golang-go: helpers and
	# get-images.sh (`go env GOARCH`).
	# golang-github-{opencontainers-specs,xeipuuv-gojsonschema}-dev: OCI schema
	# and validator for spec.bats's "spec validator" (offline, see env fixes).
	apt_install bats jq gawk gcc libc6-dev util-linux iproute2 procps \
		busybox-static mmdebstrap xz-utils dpkg-dev golang-go ca-certificates \
		golang-github-opencontainers-specs-dev golang-github-xeipuuv-gojsonschema-dev
	OCI_SCHEMA=/usr/share/gocode/src/github.com/opencontainers/runtime-spec/schema/config-schema.json

	# ----------------------------------------------------------------- runtime
	if [ -z "$RUNTIME" ]; then
		if ! command -v runc >/dev/null 2>&1 && [ ! -x /usr/sbin/runc ]; then
			# No recommends: runc recommends criu, which adds the checkpoint tests.
			apt_install runc
		fi
		RUNTIME=$(command -v runc 2>/dev/null || echo /usr/sbin/runc)
	fi
	if [[ "$RUNTIME" != */* ]]; then
		RUNTIME=$(command -v "$RUNTIME") || die "runtime '$RUNTIME' not found in PATH"
	fi
	RUNTIME=$(readlink -f "$RUNTIME")
	[ -x "$RUNTIME" ] || die "runtime '$RUNTIME' is not an executable file"

	# ------------------------------------------------- runc source (Debian)
	ensure_deb_src() {
		if [ -n "$(apt-cache showsrc runc 2>/dev/null | sed -n 's/^Version: //p' | head -1)" ]; then
			return 0
		fi
		local codename
		codename=$(. /etc/os-release && echo "${VERSION_CODENAME:-bookworm}")
		log "adding deb-src for $codename main (/etc/apt/sources.list.d/pier-runc-bats-src.sources)"
		cat >/etc/apt/sources.list.d/pier-runc-bats-src.sources <<-EOF
			# Added by pier tests/runc-bats/run.sh: source packages (runc's bats suite).
			Types: deb-src
			URIs: $MIRROR
			Suites: $codename
			Components: main
			Signed-By: /usr/share/keyrings/debian-archive-keyring.gpg
		EOF
		APT_UPDATED=
		apt_update
		[ -n "$(apt-cache showsrc runc 2>/dev/null | sed -n 's/^Version: //p' | head -1)" ] ||
			die "runc source package still not available after adding deb-src"
	}

	SRC_LINK="$CACHE/src"
	if [ -n "${PIER_RUNC_BATS_REFRESH:-}" ] || [ ! -f "$SRC_LINK/tests/integration/helpers.bash" ]; then
		ensure_deb_src
		dl="$CACHE/download"
		rm -rf "$dl"
		mkdir -p "$dl"
		log "fetching runc source package"
		(cd "$dl" && "${APT[@]}" source --download-only -qq runc >&2)
		dscs=("$dl"/runc_*.dsc)
		dsc=${dscs[0]}
		[ -f "$dsc" ] || die "apt-get source runc did not produce a .dsc"
		ver=$(sed -n 's/^Version: //p' "$dsc" | head -1)
		[ -n "$ver" ] || die "cannot read version from $dsc"
		dest="$CACHE/runc-$ver"
		rm -rf "$dest.tmp" "$dest"
		dpkg-source --no-check -x "$dsc" "$dest.tmp" >/dev/null
		mv "$dest.tmp" "$dest"
		ln -sfn "runc-$ver" "$SRC_LINK"
		rm -rf "$dl" "$CACHE"/runc_*.orig.tar.* # dpkg-source leaves a copy of the orig tarball
		rm -f "$CACHE/.helpers-built" "$CACHE/.env-fixes"
		[ -n "${PIER_RUNC_BATS_REFRESH:-}" ] && rm -rf "$CACHE/images"
	fi
	SRC=$(readlink -f "$SRC_LINK")
	SUITE="$SRC/tests/integration"
	SRC_VERSION=${SRC##*/runc-}

	# --------------------------------------------------------------- helpers
	# recvtty, sd-helper, seccompagent (contrib/cmd), built against Debian's
	# packaged Go libraries in GOPATH mode (the +ds source has no vendor/).
	HELPERS=(recvtty sd-helper seccompagent)
	helpers_ok() {
		local h
		[ -f "$CACHE/.helpers-built" ] || return 1
		for h in "${HELPERS[@]}"; do [ -x "$SRC/contrib/cmd/$h/$h" ] || return 1; done
	}
	if ! helpers_ok; then
		if ! (cd "$SRC" && dpkg-checkbuilddeps >/dev/null 2>&1); then
			ensure_deb_src
			apt_update
			log "installing runc build dependencies (apt-get build-dep runc)"
			"${APT[@]}" build-dep -y -qq --no-install-recommends runc >&2
		fi
		gopath="$CACHE/gopath"
		mkdir -p "$gopath/src/github.com/opencontainers"
		ln -sfn "$SRC" "$gopath/src/github.com/opencontainers/runc"
		for h in "${HELPERS[@]}"; do
			log "building $h"
			(cd "$gopath/src/github.com/opencontainers/runc" &&
				GO111MODULE=off GOPROXY=off GOFLAGS='' GOPATH="$gopath:/usr/share/gocode" \
					GOCACHE="$CACHE/go-build" nice go build -p 2 -tags seccomp \
					-o "contrib/cmd/$h/$h" "./contrib/cmd/$h") >&2 || die "building $h failed"
		done
		touch "$CACHE/.helpers-built"
	fi

	# Offline stand-in for runtime-spec's schema/validate.go (spec.bats).
	VALIDATOR="$CACHE/bin/oci-spec-validate"
	if [ ! -x "$VALIDATOR" ]; then
		log "building oci-spec-validate"
		vdir="$CACHE/validator"
		mkdir -p "$vdir" "$CACHE/bin"
		cat >"$vdir/main.go" <<-'EOF'
			// oci-spec-validate: validate a JSON document against a JSON schema file.
			package main

			import (
				"fmt"
				"os"
				"path/filepath"

				"github.com/xeipuuv/gojsonschema"
			)

			func fileURI(p string) string {
				abs, err := filepath.Abs(p)
				if err != nil {
					fmt.Println(err)
					os.Exit(1)
				}
				return "file://" + abs
			}

			func main() {
				if len(os.Args) != 3 {
					fmt.Printf("usage: %s <schema.json> <document.json>\n", os.Args[0])
					os.Exit(1)
				}
				res, err := gojsonschema.Validate(
					gojsonschema.NewReferenceLoader(fileURI(os.Args[1])),
					gojsonschema.NewReferenceLoader(fileURI(os.Args[2])))
				if err != nil {
					fmt.Println(err)
					os.Exit(1)
				}
				if !res.Valid() {
					fmt.Println("The document is not valid. see errors :")
					for _, e := range res.Errors() {
						fmt.Printf("- %s\n", e)
					}
					os.Exit(1)
				}
				fmt.Println("The document is valid")
			}
		EOF
		(cd "$vdir" && GO111MODULE=off GOPROXY=off GOFLAGS='' GOPATH=/usr/share/gocode \
			GOCACHE="$CACHE/go-build" nice go build -p 2 -o "$VALIDATOR" main.go) >&2 ||
			die "building oci-spec-validate failed"
	fi

	# ---------------------------------------------------------------- images
	# get-images.sh (called by helpers.bash) skips its download when
	# testdata/{busybox,debian}-$GOARCH.tar.xz exist, so we build those locally.
	ARCH=$(go env GOARCH)
	IMAGES="$CACHE/images"
	mkdir -p "$IMAGES"

	# Bump when an image recipe changes, to rebuild cached images.
	BUSYBOX_RECIPE=2
	DEBIAN_RECIPE=1
	image_current() { # <file> <recipe>
		[ -s "$1" ] && [ "$(cat "$1.recipe" 2>/dev/null)" = "$2" ]
	}

	build_busybox_image() {
		local out="$IMAGES/busybox-$ARCH.tar.xz" r
		image_current "$out" "$BUSYBOX_RECIPE" && return 0
		log "building busybox rootfs from busybox-static"
		r=$(mktemp -d "$CACHE/busybox-rootfs.XXXXXX")
		# Same layout as docker-library's busybox image (minus glibc libs, not
		# needed by a static busybox): applets as hard links in /bin.
		mkdir -p "$r"/{bin,dev,etc/network,home,root,tmp,usr/sbin,var/spool/mail,var/www}
		chmod 755 "$r" # mktemp made it 0700; tar stores "." and non-root users need x
		chmod 1777 "$r/tmp"
		chmod 700 "$r/root"
		cp /bin/busybox "$r/bin/busybox"
		local a
		for a in $("$r/bin/busybox" --list); do
			[ "$a" = busybox ] || ln -f "$r/bin/busybox" "$r/bin/$a"
		done
		cat >"$r/etc/passwd" <<-'EOF'
			root:x:0:0:root:/root:/bin/sh
			daemon:x:1:1:daemon:/usr/sbin:/bin/false
			bin:x:2:2:bin:/bin:/bin/false
			sys:x:3:3:sys:/dev:/bin/false
			sync:x:4:100:sync:/bin:/bin/sync
			mail:x:8:8:mail:/var/spool/mail:/bin/false
			www-data:x:33:33:www-data:/var/www:/bin/false
			operator:x:37:37:Operator:/var:/bin/false
			nobody:x:65534:65534:nobody:/home:/bin/false
		EOF
		cat >"$r/etc/group" <<-'EOF'
			root:x:0:
			daemon:x:1:
			bin:x:2:
			sys:x:3:
			adm:x:4:
			tty:x:5:
			disk:x:6:
			lp:x:7:
			mail:x:8:
			kmem:x:9:
			wheel:x:10:root
			cdrom:x:11:
			dialout:x:18:
			floppy:x:19:
			video:x:28:
			audio:x:29:
			tape:x:32:
			www-data:x:33:
			operator:x:37:
			utmp:x:43:
			plugdev:x:46:
			staff:x:50:
			lock:x:54:
			netdev:x:82:
			users:x:100:
			nogroup:x:65534:
		EOF
		sed 's/:.*/:!::0:::::/' "$r/etc/passwd" >"$r/etc/shadow"
		chmod 600 "$r/etc/shadow"
		printf 'hosts: files dns\n' >"$r/etc/nsswitch.conf"
		tar --numeric-owner --owner=0 --group=0 --sort=name -C "$r" -cf - . |
			xz -T1 -6 >"$out.tmp"
		mv "$out.tmp" "$out"
		echo "$BUSYBOX_RECIPE" >"$out.recipe"
		rm -rf "$r"
	}

	build_debian_image() {
		local out="$IMAGES/debian-$ARCH.tar.xz" codename
		image_current "$out" "$DEBIAN_RECIPE" && return 0
		# Only hooks.bats uses it (needs glibc's ldconfig, sh, mount, touch).
		codename=$(. /etc/os-release && echo "${VERSION_CODENAME:-bookworm}")
		rm -rf "$IMAGES/debian.tmp.tar"
		log "building $codename minbase rootfs with mmdebstrap from $MIRROR (~1-2 min)"
		nice mmdebstrap --quiet --variant=minbase --mode=root \
			--dpkgopt='path-exclude=/usr/share/man/*' \
			--dpkgopt='path-exclude=/usr/share/doc/*' \
			--dpkgopt='path-include=/usr/share/doc/*/copyright' \
			--dpkgopt='path-exclude=/usr/share/locale/*' \
			--dpkgopt='path-exclude=/usr/share/info/*' \
			"$codename" "$IMAGES/debian.tmp.tar" "$MIRROR" >&2 || die "mmdebstrap failed"
		nice xz -T2 -6 -c "$IMAGES/debian.tmp.tar" >"$out.tmp"
		rm -f "$IMAGES/debian.tmp.tar"
		mv "$out.tmp" "$out"
		echo "$DEBIAN_RECIPE" >"$out.recipe"
	}

	build_busybox_image
	build_debian_image
	for img in busybox debian; do
		ln -sfn "$IMAGES/$img-$ARCH.tar.xz" "$SUITE/testdata/$img-$ARCH.tar.xz"
	done

	# ------------------------------------------------------ environment fixes
	# Minimal, documented adjustments to the cached copy of the suite (see
	# README, "Environment fixes"). Originals are kept as *.orig and every fix is
	# re-applied from them, so the fixes can change without refetching.
	ENV_FIXES_VERSION=3
	PATCHED_FILES=(helpers.bash events.bats spec.bats)
	restore_originals() {
		local f
		for f in "${PATCHED_FILES[@]}"; do
			if [ -f "$SUITE/$f.orig" ]; then
				cp -f "$SUITE/$f.orig" "$SUITE/$f"
			fi
		done
		rm -f "$CACHE/.env-fixes"
	}
	apply_env_fixes() {
		[ "$(cat "$CACHE/.env-fixes" 2>/dev/null)" = "$ENV_FIXES_VERSION" ] && return 0
		local f
		restore_originals
		for f in "${PATCHED_FILES[@]}"; do
			cp -n "$SUITE/$f" "$SUITE/$f.orig"
		done
		# 1. criu: Debian's runc recommends criu, but `criu check` fails on recent
		#    kernels ("Failed to fill self vdso symtable"), while have_criu only
		#    tests `command -v criu`: every checkpoint.bats test would fail for
		#    every runtime. Require a working `criu check` (else: skip "requires criu").
		# 3. spec.bats "spec validator" git-clones runtime-spec from GitHub and
		#    `go get`s gojsonschema: impossible offline. Validate the runtime's
		#    `spec` output against Debian's packaged OCI schema instead
		#    (golang-github-opencontainers-specs-dev) with a gojsonschema-based
		#    validator equivalent to runtime-spec's schema/validate.go.
		# 2. bats' per-test timeout (BATS_TEST_TIMEOUT) runs its watchdog as a
		#    background job of the test shell, so the bare `wait` in events.bats
		#    would block until the timeout. Wait for the test's own jobs only.
		cat >>"$SUITE/helpers.bash" <<-'EOF'

			# pier-env-fixes (added by pier tests/runc-bats/run.sh; originals: *.orig)
			function have_criu() {
				command -v criu &>/dev/null || return 1
				criu check &>/dev/null
			}

			# Like a bare `wait`, but ignores the bats timeout watchdog job.
			function pier_wait_jobs() {
				local p
				for p in $(jobs -p); do
					[ "$p" = "${BATS_killer_pid:-}" ] || wait "$p" || true
				done
			}
		EOF
		sed -i 's/^\twait # /\tpier_wait_jobs # /' "$SUITE/events.bats"
		[ "$(grep -c '^	pier_wait_jobs # ' "$SUITE/events.bats")" = 2 ] ||
			die "could not patch the bare wait calls in events.bats"
		local from=$'\tgit clone https://github.com/opencontainers/runtime-spec.git'
		local to=$'\t./validate "$SCHEMA" config.json'
		[ "$(grep -cFx -e "$from" -e "$to" "$SUITE/spec.bats")" = 2 ] ||
			die "spec.bats: 'spec validator' body not as expected"
		awk -v from="$from" -v to="$to" -v schema="$OCI_SCHEMA" -v validator="$VALIDATOR" '
			$0 == from {
				skip = 1
				print "\t# pier-env-fixes: offline schema check (original: spec.bats.orig)"
				print "\tSCHEMA=\"" schema "\""
				print "\t[ -e \"$SCHEMA\" ]"
				print "\t\"" validator "\" \"$SCHEMA\" config.json"
				next
			}
			skip && $0 == to { skip = 0; next }
			!skip' "$SUITE/spec.bats.orig" >"$SUITE/spec.bats"
		echo "$ENV_FIXES_VERSION" >"$CACHE/.env-fixes"
	}
	if [ -n "${PIER_RUNC_BATS_NO_ENV_FIXES:-}" ]; then
		restore_originals
	else
		apply_env_fixes
	fi

	# ---------------------------------------------------------------- run
	have_target=
	RESOLVED=()
	for a in "${BATS_ARGS[@]+"${BATS_ARGS[@]}"}"; do
		if [[ "$a" == *.bats ]]; then
			have_target=1
			if [ ! -e "$a" ] && [ -e "$SUITE/$a" ]; then
				a="$SUITE/$a"
			elif [ -e "$a" ]; then
				a=$(readlink -f "$a")
			fi
		elif [ -d "$a" ]; then
			have_target=1
			a=$(readlink -f "$a")
		fi
		RESOLVED+=("$a")
	done
	[ -n "$have_target" ] || RESOLVED+=("$SUITE")

	LOGDIR="$CACHE/logs"
	mkdir -p "$LOGDIR"
	TAP="$LOGDIR/$(date +%Y%m%d-%H%M%S)-$(basename "$RUNTIME").tap"

	if [ "$TIMEOUT" != 0 ]; then
		export BATS_TEST_TIMEOUT="$TIMEOUT"
	fi
	export RUNC="$RUNTIME"

	log "suite: runc $SRC_VERSION ($SUITE)"
	log "runtime: $RUNTIME ($("$RUNTIME" --version 2>/dev/null | head -1 || echo 'no --version'))"
	log "tap log: $TAP"
	snapshot() {
		# cgroups named like the suite's (its parent cgroup, or a container id
		# used as default cgroup path) and mounts under bats' temp dirs: to report
		# what a (buggy) runtime left behind. Other activity on the host is ignored.
		find /sys/fs/cgroup -mindepth 1 -maxdepth 3 -type d \
			\( -name 'runc-cgroups-integration-test' -o -name 'test*' -o -name 'ct[0-9]' \) \
			-prune -print 2>/dev/null | sort
		awk '$5 ~ /bats-run-/ {print "mount " $5}' /proc/self/mountinfo | sort
	}
	before=$(snapshot)
	start=$(date +%s)
	set +e
	BATS_CMD=(bats --tap --timing "${RESOLVED[@]}")
	if [ -z "${PIER_RUNC_BATS_NO_TTY:-}" ]; then
		# Several tests run `runc run` in the foreground with "terminal": true
		# and no console socket, so the runtime needs a controlling terminal
		# (/dev/tty). runc's own CI runs the suite under script(1) for this.
		printf -v cmd '%q ' "${BATS_CMD[@]}"
		BATS_CMD=(script -q -e -c "$cmd" /dev/null)
	fi

	# Every process started by this run inherits PIER_RUNC_BATS_MARK (container
	# processes do not: their environment comes from config.json). Used to find
	# processes a hung runtime leaves behind: bats' per-test timeout only kills
	# the test's direct children, and an orphaned grandchild (e.g. a hung
	# `runtime events` started in a `( ... ) &` subshell) keeps bats' output pipe
	# open, so bats would wait for it forever.
	MARK="$$-$RANDOM$RANDOM"
	WATCHLOG="$TAP.watchdog"
	: >"$WATCHLOG"
	ppid_of() { sed -E 's/^.*\) [A-Za-z] ([0-9]+) .*$/\1/' "/proc/$1/stat" 2>/dev/null; }
	marked() { grep -qzx "PIER_RUNC_BATS_MARK=$MARK" "/proc/$1/environ" 2>/dev/null; }
	orphans() { # marked processes whose parent is neither marked nor run.sh('s subshell)
		local p pp
		for p in /proc/[0-9]*; do
			p=${p#/proc/}
			marked "$p" || continue
			pp=$(ppid_of "$p") || continue
			[ -n "$pp" ] || continue
			marked "$pp" && continue
			[ "$pp" = "$$" ] || [ "$(ppid_of "$pp")" = "$$" ] && continue
			echo "$p"
		done
	}
	kill_orphans() { # <why>
		local p
		for p in $(orphans); do
			printf '%s: killed orphaned pid %s: %s\n' "$1" "$p" \
				"$(tr '\0' ' ' <"/proc/$p/cmdline" 2>/dev/null)" >>"$WATCHLOG"
			kill -KILL "$p" 2>/dev/null || true
		done
	}
	watchdog() { # no TAP output for longer than a test may take: kill orphans
		local stall=$((TIMEOUT + 60)) size last_size=-1 last_change now
		last_change=$(date +%s)
		while sleep 15; do
			size=$(stat -c %s "$TAP" 2>/dev/null || echo 0)
			now=$(date +%s)
			if [ "$size" != "$last_size" ]; then
				last_size=$size
				last_change=$now
			elif [ $((now - last_change)) -gt "$stall" ]; then
				kill_orphans "no test output for ${stall}s"
				last_change=$now
			fi
		done
	}
	watchdog_pid=
	if [ "$TIMEOUT" != 0 ]; then
		watchdog 9>&- &
		watchdog_pid=$!
	fi
	# 9>&-: the lock fd must not leak into containers/daemons the run leaves behind
	(cd "$SUITE" && PIER_RUNC_BATS_MARK=$MARK "${BATS_CMD[@]}" 9>&-) 2>&1 | tr -d '\r' | tee "$TAP"
	bats_rc=${PIPESTATUS[0]}
	[ -n "$watchdog_pid" ] && kill "$watchdog_pid" 2>/dev/null
	wait 2>/dev/null
	kill_orphans "still running after the suite ended"
	set -e
	elapsed=$(($(date +%s) - start))

	# ---------------------------------------------------------------- report
	declare -gA known=()
	if [ -f "$KNOWN_FAILURES" ]; then
		while IFS= read -r line || [ -n "$line" ]; do
			line="${line%%#*}"
			line="${line#"${line%%[![:space:]]*}"}"
			line="${line%"${line##*[![:space:]]}"}"
			[ -n "$line" ] && known["$line"]=1
		done <"$KNOWN_FAILURES"
	fi

	passed=0 failed=0 skipped=0 planned=0 known_failed=0
	failed_names=() known_names=() unexpected_names=() fixed_names=()
	re_skip='^ok [0-9]+ (.*) in [0-9]+ms # skip( (.*))?$'
	re_ok='^ok [0-9]+ (.*) in [0-9]+ms$'
	re_fail='^not ok [0-9]+ (.*) in [0-9]+ms( # .*)?$'
	re_fail_nt='^not ok [0-9]+ (.*)$'
	while IFS= read -r line; do
		if [[ "$line" =~ ^1\.\.([0-9]+)$ ]]; then
			planned=${BASH_REMATCH[1]}
		elif [[ "$line" =~ $re_skip ]]; then
			skipped=$((skipped + 1))
		elif [[ "$line" =~ $re_ok ]]; then
			passed=$((passed + 1))
			[ -n "${known[${BASH_REMATCH[1]}]+x}" ] && fixed_names+=("${BASH_REMATCH[1]}")
		elif [[ "$line" =~ $re_fail ]] || [[ "$line" =~ $re_fail_nt ]]; then
			failed=$((failed + 1))
			name=${BASH_REMATCH[1]}
			failed_names+=("$line")
			if [ -n "${known[$name]+x}" ]; then
				known_failed=$((known_failed + 1))
				known_names+=("$name")
			else
				unexpected_names+=("$name")
			fi
		fi
	done <"$TAP"
	total=$((passed + failed + skipped))
	not_run=$((planned - total))

	# The suite's parent cgroup (fixed name). On a hybrid host helpers.bash's
	# remove_parent() does not rmdir it in the cgroup2 ("unified") hierarchy,
	# where runc creates it too; remove any empty leftovers (rmdir only succeeds
	# on cgroups without processes).
	for d in /sys/fs/cgroup/runc-cgroups-integration-test /sys/fs/cgroup/*/runc-cgroups-integration-test; do
		if [ -d "$d" ]; then find "$d" -depth -type d -exec rmdir {} + 2>/dev/null || true; fi
	done
	# Leak check: cgroups/mounts that appeared during the run and are still there.
	mapfile -t leaks < <(comm -13 <(printf '%s\n' "$before") <(snapshot))

	echo
	log "runtime $RUNTIME, suite runc $SRC_VERSION, ${elapsed}s"
	if [ ${#failed_names[@]} -gt 0 ]; then
		log "failed tests:"
		printf '    %s\n' "${failed_names[@]}" >&2
	fi
	if [ ${#known_names[@]} -gt 0 ]; then
		log "$known_failed of the failures are listed in $KNOWN_FAILURES"
	fi
	if [ ${#fixed_names[@]} -gt 0 ]; then
		log "listed as known failures but passed (remove them from the list):"
		printf '    %s\n' "${fixed_names[@]}" >&2
	fi
	[ "$not_run" -gt 0 ] && log "WARNING: $not_run of $planned planned tests produced no result (bats aborted?)"
	if [ ${#leaks[@]} -gt 0 ]; then
		log "WARNING: cgroups/mounts created during the run and still present:"
		printf '    %s\n' "${leaks[@]}" >&2
	fi
	if [ -s "$WATCHLOG" ]; then
		log "WARNING: processes left behind by the run were killed:"
		sed 's/^/    /' "$WATCHLOG" >&2
	else
		rm -f "$WATCHLOG"
	fi
	log "tap log: $TAP"
	echo "runc-bats: $passed passed, $failed failed, $skipped skipped"

	if [ ${#unexpected_names[@]} -gt 0 ] || [ "$not_run" -gt 0 ]; then
		exit 1
	fi
	if [ "$bats_rc" -ne 0 ] && [ "$failed" -eq 0 ]; then
		log "bats exited with $bats_rc"
		exit 1
	fi
	exit 0
}

main "$@"
# shellcheck disable=SC2317 # not reached; keeps bash from reading further
exit $?
