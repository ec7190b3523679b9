#!/usr/bin/env bash
# The test command: set up, lint, build, and run every test as root on the real kernel.
set -euo pipefail
cd "$(dirname "$0")/.."
[ "$(id -u)" = 0 ] || { echo "test: run as root (namespaces, cgroups, mounts)" >&2; exit 1; }

scripts/setup.sh
echo "== fmt"; cargo fmt --all --check
echo "== clippy"; cargo clippy --workspace --all-targets --locked -- -D warnings
echo "== build"; cargo build --workspace --all-targets --locked
echo "== tests"
# Container tests change process-wide state (mounts, cgroups): one test at a time.
log=$(mktemp /tmp/pier-test.XXXXXX)
trap 'rm -f "$log"' EXIT
set +e
cargo test --workspace --all-targets --locked --no-fail-fast -- --test-threads=1 2>&1 | tee "$log"
rc=${PIPESTATUS[0]}
set -e
# One closing line for the whole run.
awk '/^test result:/ { p += $4; f += $6; s += $8 } END { printf "tests: %d passed, %d failed, %d skipped\n", p, f, s }' "$log"
exit "$rc"
