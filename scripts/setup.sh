#!/usr/bin/env bash
# Installs what Pier needs on a fresh Debian machine (idempotent). Run as root.
set -euo pipefail

# nftables: pierd's firewall table (NAT, published ports, isolation); curl: API tests.
packages=(busybox-static libseccomp-dev pkg-config runc crun procps iproute2 nftables curl)
# Engines for tests/interop.rs (which starts its own daemons), docker-registry
# (distribution 2.8) for pier-registry's conformance suite, and skopeo and umoci for
# the image store's OCI layout tests (crates/pier-image/tests/interop.rs); without their
# recommends
# (needrestart, cgroupfs-mount, buildah, ...).
engines=(docker.io containerd podman bsdutils skopeo umoci docker-registry)

missing_of() {
    for p in "$@"; do
        dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || echo "$p"
    done
}
mapfile -t missing < <(missing_of "${packages[@]}")
mapfile -t missing_engines < <(missing_of "${engines[@]}")
if [ $((${#missing[@]} + ${#missing_engines[@]})) -gt 0 ]; then
    echo "setup: installing ${missing[*]} ${missing_engines[*]}"
    export DEBIAN_FRONTEND=noninteractive
    apt-get -o DPkg::Lock::Timeout=600 update -q
    if [ ${#missing[@]} -gt 0 ]; then
        apt-get -o DPkg::Lock::Timeout=600 install -y -q "${missing[@]}"
    fi
    if [ ${#missing_engines[@]} -gt 0 ]; then
        apt-get -o DPkg::Lock::Timeout=600 install -y -q --no-install-recommends "${missing_engines[@]}"
    fi
fi
command -v cargo >/dev/null || { echo "setup: cargo (Rust toolchain) is required" >&2; exit 1; }
# schemathesis: the API fuzz run (crates/pierd/tests/security/fuzz.rs, same pin there).
if ! python3 -m pip show schemathesis 2>/dev/null | grep -qx 'Version: 4.32.5'; then
    python3 -m pip install -q 'schemathesis==4.32.5'
fi
