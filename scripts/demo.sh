#!/usr/bin/env bash
# The main job: make a busybox image with `pier import`, list it, and run a container
# from its overlay snapshot with pier-runtime.
set -euo pipefail
cd "$(dirname "$0")/.."
[ "$(id -u)" = 0 ] || { echo "demo: run as root" >&2; exit 1; }

scripts/setup.sh
cargo build --release -p pier-runtime -p pier-cli
rt=$PWD/target/release/pier-runtime
pier=$PWD/target/release/pier
work=$(mktemp -d /tmp/pier-demo.XXXXXX)
bundle=$work/bundle
cleanup() {
    umount "$bundle/rootfs" 2>/dev/null || true
    rm -rf "$work"
}
trap cleanup EXIT
export PIER_DATA_ROOT=$work/data

# An image from the host's busybox-static, through Pier's image store.
scripts/busybox-rootfs.sh "$work/rootfs"
echo "+ pier import -c 'CMD [\"sh\"]' rootfs busybox"
"$pier" import -c 'CMD ["sh"]' "$work/rootfs" busybox
echo "+ pier images"
"$pier" images

# The container's root: an overlay of the image's layer and a fresh upper dir.
layer=$("$pier" image inspect -f '{{.GraphDriver.Data.UpperDir}}' busybox)
mkdir -p "$bundle/rootfs" "$work/upper" "$work/overlay-work"
mount -t overlay overlay \
    -o "lowerdir=$layer,upperdir=$work/upper,workdir=$work/overlay-work" "$bundle/rootfs"
(cd "$bundle" && "$rt" spec)
# Not a terminal, and a command that shows it runs inside a container.
python3 - "$bundle/config.json" <<'PY'
import json, sys
p = sys.argv[1]
c = json.load(open(p))
c["process"]["terminal"] = False
c["process"]["args"] = ["sh", "-c", "echo hello from $(hostname), I am pid $$; id; ls /"]
c["hostname"] = "pier-demo"
json.dump(c, open(p, "w"), indent=2)
PY
echo "+ pier-runtime run --bundle $bundle demo"
"$rt" --root "$work/state" run --bundle "$bundle" "pier-demo-$$"
