#!/usr/bin/env python3
"""Writes a deterministic multi-layer image as a `docker save` archive, for bench/image-load.sh.

    bench/make-image.py OUT.tar [--size-mb 1024] [--layers 8] [--seed 1] [--name pierbench-load:latest]

The archive has Docker >= 25's file names (what `docker load` of every version and Pier's
`load` read): `blobs/sha256/<hex>` for the uncompressed layer tars and the config,
`manifest.json` and the legacy `repositories`. Each layer holds about SIZE/LAYERS of file
data, all incompressible random bytes except the small files:

- small files, 256 B - 8 KiB of text (16 per MiB of the layer's budget, 64 per directory),
  about 3% of the bytes;
- medium files, 64 KiB - 1 MiB, about 40%;
- large files, 4 - 32 MiB (the last one cut to fit), the rest;
- from the second layer on: a few whiteouts and rewrites of the previous layer's small
  files, a symlink and a hard link.

Everything (contents, names, sizes, modes, mtimes, uid/gid 0) follows from --seed, so the
same arguments give the same bytes and digests. Prints the image's uncompressed size (sum
of the layer tars) in bytes, and its file count, to stdout.
"""
import argparse
import hashlib
import io
import json
import os
import platform
import random
import tarfile

MTIME = 1_700_000_000
KIB, MIB = 1 << 10, 1 << 20
WORDS = ("alpha bravo charlie delta echo foxtrot golf hotel india juliet kilo lima mike "
         "november oscar papa quebec romeo sierra tango uniform victor whiskey xray "
         "yankee zulu\n").split(" ")


def arch():
    m = platform.machine()
    return {"x86_64": "amd64", "aarch64": "arm64", "armv7l": "arm", "i686": "386"}.get(m, m)


def info(name, size=0, kind=tarfile.REGTYPE, mode=0o644, link=""):
    ti = tarfile.TarInfo(name)
    ti.size, ti.type, ti.mode, ti.mtime, ti.linkname = size, kind, mode, MTIME, link
    ti.uid = ti.gid = 0
    ti.uname = ti.gname = "root"
    return ti


def text(rng, n):
    out, size = [], 0
    while size < n:
        w = rng.choice(WORDS)
        out.append(w)
        size += len(w) + 1
    return " ".join(out).encode()[:n]


def make_layer(idx, budget, rng, prev_small):
    """One layer tar in memory; returns (bytes, files, small file paths)."""
    buf = io.BytesIO()
    files = 0
    small_paths = []
    with tarfile.open(fileobj=buf, mode="w", format=tarfile.PAX_FORMAT) as tar:
        dirs = set()

        def add_dir(d):
            parts = d.split("/")
            for i in range(1, len(parts) + 1):
                p = "/".join(parts[:i])
                if p not in dirs:
                    dirs.add(p)
                    tar.addfile(info(p, kind=tarfile.DIRTYPE, mode=0o755))

        def add_file(path, data, mode=0o644):
            nonlocal files
            add_dir(path.rsplit("/", 1)[0])
            tar.addfile(info(path, len(data), mode=mode), io.BytesIO(data))
            files += 1

        base = f"layer{idx}"
        n_small = max(64, budget // MIB * 16)
        small_bytes = 0
        for i in range(n_small):
            data = text(rng, rng.randint(256, 8 * KIB))
            path = f"{base}/small/d{i // 64:03d}/f{i:05d}.txt"
            add_file(path, data)
            small_paths.append(path)
            small_bytes += len(data)
        remaining = budget - small_bytes
        medium_budget = int(budget * 0.40)
        i = 0
        while medium_budget > 0 and remaining > 0:
            n = min(rng.randint(64 * KIB, MIB), remaining)
            add_file(f"{base}/medium/d{i // 32:02d}/m{i:04d}.bin", rng.randbytes(n))
            medium_budget -= n
            remaining -= n
            i += 1
        i = 0
        while remaining > 0:
            n = min(rng.randint(4 * MIB, 32 * MIB), remaining)
            add_file(f"{base}/large/l{i:03d}.bin", rng.randbytes(n), mode=0o755 if i == 0 else 0o644)
            remaining -= n
            i += 1
        if prev_small:
            picks = rng.sample(prev_small, min(32, len(prev_small)))
            for p in picks[:16]:  # delete
                d, name = p.rsplit("/", 1)
                add_dir(d)
                tar.addfile(info(f"{d}/.wh.{name}"))
                files += 1
            for p in picks[16:]:  # rewrite
                add_file(p, text(rng, rng.randint(256, 8 * KIB)))
            tar.addfile(info(f"{base}/link-to-prev", kind=tarfile.SYMTYPE, mode=0o777,
                             link=f"../{prev_small[0].split('/')[0]}"))
            tar.addfile(info(f"{base}/hardlink.txt", kind=tarfile.LNKTYPE, link=small_paths[0]))
            files += 2
    return buf.getvalue(), files, small_paths


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("out")
    ap.add_argument("--size-mb", type=int, default=1024)
    ap.add_argument("--layers", type=int, default=8)
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--name", default="pierbench-load:latest")
    a = ap.parse_args()
    budget = a.size_mb * MIB // a.layers
    diff_ids, total, total_files, prev = [], 0, 0, []
    tmp = a.out + ".part"
    with tarfile.open(tmp, mode="w", format=tarfile.PAX_FORMAT) as out:
        out.addfile(info("blobs", kind=tarfile.DIRTYPE, mode=0o755))
        out.addfile(info("blobs/sha256", kind=tarfile.DIRTYPE, mode=0o755))
        for idx in range(a.layers):
            rng = random.Random(a.seed * 1000 + idx)
            data, files, prev = make_layer(idx, budget, rng, prev)
            hexd = hashlib.sha256(data).hexdigest()
            diff_ids.append("sha256:" + hexd)
            out.addfile(info(f"blobs/sha256/{hexd}", len(data)), io.BytesIO(data))
            total += len(data)
            total_files += files
        created = "2023-11-14T22:13:20Z"
        config = {
            "architecture": arch(), "os": "linux", "created": created,
            "config": {"Env": ["PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"],
                       "Cmd": ["/bin/sh"]},
            "rootfs": {"type": "layers", "diff_ids": diff_ids},
            "history": [{"created": created, "created_by": f"make-image.py layer {i}"}
                        for i in range(a.layers)],
        }
        cbytes = json.dumps(config, separators=(",", ":")).encode()
        chex = hashlib.sha256(cbytes).hexdigest()
        out.addfile(info(f"blobs/sha256/{chex}", len(cbytes)), io.BytesIO(cbytes))
        manifest = [{"Config": f"blobs/sha256/{chex}", "RepoTags": [a.name],
                     "Layers": [f"blobs/sha256/{d[7:]}" for d in diff_ids]}]
        mbytes = json.dumps(manifest, separators=(",", ":")).encode()
        out.addfile(info("manifest.json", len(mbytes)), io.BytesIO(mbytes))
        repo, tag = a.name.rsplit(":", 1)
        rbytes = json.dumps({repo: {tag: diff_ids[-1][7:]}}).encode()
        out.addfile(info("repositories", len(rbytes)), io.BytesIO(rbytes))
    os.replace(tmp, a.out)
    print(total, total_files)


if __name__ == "__main__":
    main()
