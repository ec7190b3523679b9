#!/usr/bin/env bash
# The main job: build pier-runtime and run a container from a busybox rootfs with it.
set -euo pipefail
cd "$(dirname "$0")/.."
[ "$(id -u)" = 0 ] || { echo "demo: run as root" >&2; exit 1; }

scripts/setup.sh
cargo build --release -p pier-runtime
rt=target/release/pier-runtime
bundle=$(mktemp -d /tmp/pier-demo.XXXXXX)
root=$(mktemp -d /tmp/pier-demo-state.XXXXXX)
trap 'rm -rf "$bundle" "$root"' EXIT

scripts/busybox-rootfs.sh "$bundle/rootfs"
(cd "$bundle" && "$OLDPWD/$rt" spec)
# Not a terminal, and a command that shows it runs inside a container.
sed -i 's/"terminal": true/"terminal": false/' "$bundle/config.json"
python3 - "$bundle/config.json" <<'PY'
import json, sys
p = sys.argv[1]
c = json.load(open(p))
c["process"]["args"] = ["sh", "-c", "echo hello from $(hostname), I am pid $$; id; ls /"]
c["hostname"] = "pier-demo"
json.dump(c, open(p, "w"), indent=2)
PY
echo "+ pier-runtime run --bundle $bundle demo"
"$rt" --root "$root" run --bundle "$bundle" "pier-demo-$$"
