#!/usr/bin/env bash
# Build a local stand-in for python:3.11-slim-bookworm with debootstrap, for machines that
# cannot pull from a registry (CI here). Only needed then: with a registry, the Dockerfile's
# default PYTHON_IMAGE is pulled as usual.
#
# The result is what the Dockerfile expects of its base: Debian bookworm (minbase) with
# python3, python3-venv, python3-pip, python3-dev and ca-certificates, /usr/local/bin/python
# -> python3, PATH and LANG set, and slimmed like the official image (no apt lists, no docs,
# man pages or locales beyond C.UTF-8). It is imported with a stable tag and labelled with
# the hash of its recipe (this file), so a rerun on the same machine rebuilds only when the
# recipe changed.
#
#   scripts/build-base-image.sh              # prints the image tag on stdout
#   BASE_IMAGE_TAG=my/python:3.11 scripts/build-base-image.sh
#   DEBIAN_MIRROR=http://mirror.example/debian scripts/build-base-image.sh
#
# Needs root (debootstrap), debootstrap (installed when missing) and a Docker engine.
set -euo pipefail
cd "$(dirname "$0")/.."

BASE_IMAGE_TAG=${BASE_IMAGE_TAG:-catalyst-ocr-local/python:3.11-slim-bookworm}
# The host's own Debian mirrors (deb822 `URIs:` or one-line `deb` sources), else deb.debian.org.
host_mirror() {  # $1: the path the URI ends with (debian, debian-security)
    cat /etc/apt/sources.list /etc/apt/sources.list.d/* 2>/dev/null \
        | awk -v tail="/$1/?\$" '($1 == "URIs:" || $1 == "deb") && $2 ~ tail { print $2; exit }' || true
}
DEBIAN_MIRROR=${DEBIAN_MIRROR:-$(host_mirror debian)}
DEBIAN_MIRROR=${DEBIAN_MIRROR:-http://deb.debian.org/debian}
DEBIAN_SECURITY_MIRROR=${DEBIAN_SECURITY_MIRROR:-$(host_mirror debian-security)}
DEBIAN_SECURITY_MIRROR=${DEBIAN_SECURITY_MIRROR:-http://deb.debian.org/debian-security}
PACKAGES=python3,python3-venv,python3-pip,python3-dev,ca-certificates

recipe_hash=$( { cat "$0"; echo "$DEBIAN_MIRROR $DEBIAN_SECURITY_MIRROR"; } | sha256sum | cut -c1-16)
if [ "$(docker image inspect -f '{{ index .Config.Labels "dev.catalyst-ocr.base-recipe" }}' "$BASE_IMAGE_TAG" 2>/dev/null || true)" = "$recipe_hash" ]; then
    echo "build-base-image: $BASE_IMAGE_TAG is up to date (recipe $recipe_hash)" >&2
    echo "$BASE_IMAGE_TAG"
    exit 0
fi

if ! command -v debootstrap >/dev/null 2>&1; then
    apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq debootstrap >/dev/null
fi

rootfs=$(mktemp -d /tmp/catalyst-ocr-rootfs.XXXXXX)
trap 'rm -rf "$rootfs"' EXIT
echo "build-base-image: debootstrap bookworm from $DEBIAN_MIRROR into $rootfs" >&2
debootstrap --variant=minbase --include="$PACKAGES" bookworm "$rootfs" "$DEBIAN_MIRROR" \
    >"$rootfs.log" 2>&1 || { tail -n 30 "$rootfs.log" >&2; exit 1; }
rm -f "$rootfs.log"

# The official image's conveniences: `python` and `pip` on PATH under /usr/local/bin.
ln -sf /usr/bin/python3 "$rootfs/usr/local/bin/python"
ln -sf /usr/bin/pip3 "$rootfs/usr/local/bin/pip"
# The mirror apt uses inside the image: the same one, with the security updates.
cat >"$rootfs/etc/apt/sources.list" <<SOURCES
deb $DEBIAN_MIRROR bookworm main
deb $DEBIAN_MIRROR bookworm-updates main
deb $DEBIAN_SECURITY_MIRROR bookworm-security main
SOURCES
# Keep the image slim later too: apt installs no docs, man pages or foreign locales
# (what the official Debian images configure).
cat >"$rootfs/etc/dpkg/dpkg.cfg.d/docker-slim" <<'DPKG'
path-exclude /usr/share/doc/*
path-include /usr/share/doc/*/copyright
path-exclude /usr/share/man/*
path-exclude /usr/share/info/*
path-exclude /usr/share/locale/*
path-include /usr/share/locale/locale.alias
path-exclude /usr/share/lintian/*
DPKG
cat >"$rootfs/etc/apt/apt.conf.d/docker-clean" <<'APT'
DPkg::Post-Invoke { "rm -f /var/cache/apt/archives/*.deb /var/cache/apt/archives/partial/*.deb /var/cache/apt/*.bin || true"; };
Dir::Cache::pkgcache "";
Dir::Cache::srcpkgcache "";
APT
# Slim what debootstrap left: apt lists and caches, docs, man pages, locales, logs.
rm -rf "$rootfs"/var/lib/apt/lists/* "$rootfs"/var/cache/apt/* "$rootfs"/var/cache/debconf/*-old \
    "$rootfs"/var/log/* "$rootfs"/tmp/* "$rootfs"/usr/share/man/* "$rootfs"/usr/share/info/* \
    "$rootfs"/usr/share/lintian/*
find "$rootfs/usr/share/doc" -mindepth 1 -not -name copyright -not -type d -delete 2>/dev/null || true
find "$rootfs/usr/share/doc" -mindepth 1 -type d -empty -delete 2>/dev/null || true
find "$rootfs/usr/share/locale" -mindepth 1 -maxdepth 1 -not -name locale.alias -exec rm -rf {} + 2>/dev/null || true
find "$rootfs/usr/lib/python3" "$rootfs/usr/lib/python3.11" -name __pycache__ -type d -exec rm -rf {} + 2>/dev/null || true
: >"$rootfs/etc/machine-id"

echo "build-base-image: importing as $BASE_IMAGE_TAG" >&2
tar --numeric-owner -C "$rootfs" -c . | docker import \
    --change 'ENV PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin' \
    --change 'ENV LANG=C.UTF-8' \
    --change "LABEL dev.catalyst-ocr.base-recipe=$recipe_hash" \
    --change 'CMD ["python3"]' \
    - "$BASE_IMAGE_TAG" >/dev/null
echo "$BASE_IMAGE_TAG"
