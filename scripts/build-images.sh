#!/usr/bin/env bash
# Build the three images of the Dockerfile: production (the service), operator, development.
#
#   scripts/build-images.sh                       # tags ghcr.io/catalyst-ocr/catalyst-ocr{,-operator}:<version>
#   IMAGE_REGISTRY=registry.example:5000/ocr scripts/build-images.sh   # tags <registry>/catalyst-ocr{,-operator}:<version>
#   IMAGE_TAG=dev scripts/build-images.sh         # another tag than the project's version
#
# Names: <IMAGE_REGISTRY>/catalyst-ocr:<IMAGE_TAG> (target production, the name the manifests,
# the chart and the operator's default image use), <IMAGE_REGISTRY>/catalyst-ocr-operator:<IMAGE_TAG>
# (target operator) and <IMAGE_REGISTRY>/catalyst-ocr:<IMAGE_TAG>-dev (target development, the
# name docker-compose.dev.yml uses).
#
# Inputs (environment):
#   PYTHON_IMAGE   the base image; default python:3.11-slim-bookworm (the Dockerfile's), or with
#                  LOCAL_BASE_IMAGE=1 the debootstrap one from scripts/build-base-image.sh, for a
#                  machine that cannot pull from a registry.
#   EXTRA_CA_CERTS PEM file(s), space separated, that pip in the build must trust (a TLS-inspecting
#                  proxy); default: /usr/local/share/ca-certificates/*.crt when there are any.
#                  Passed as the build secret `extra-ca`, so no image keeps them.
#   IMAGE_TARGETS  which targets, default "production operator development".
#
# BuildKit is needed (for the secret): `docker buildx build --load` when buildx is installed,
# else the engine's built-in BuildKit through Debian's docker 20.10 client (DOCKER_BUILDKIT=1).
set -euo pipefail
cd "$(dirname "$0")/.."

version=$(sed -n 's/^version = "\(.*\)"/\1/p' pyproject.toml | head -n1)
IMAGE_REGISTRY=${IMAGE_REGISTRY:-ghcr.io/catalyst-ocr}
IMAGE_TAG=${IMAGE_TAG:-$version}
IMAGE_TARGETS=${IMAGE_TARGETS:-production operator development}
export DOCKER_API_VERSION=${DOCKER_API_VERSION:-1.41}

if [ "${LOCAL_BASE_IMAGE:-0}" = "1" ] && [ -z "${PYTHON_IMAGE:-}" ]; then
    PYTHON_IMAGE=$(bash scripts/build-base-image.sh)
fi
PYTHON_IMAGE=${PYTHON_IMAGE:-python:3.11-slim-bookworm}

# One bundle of the extra CA certificates, handed over as a secret.
if [ -z "${EXTRA_CA_CERTS+set}" ]; then
    EXTRA_CA_CERTS=""
    for cert in /usr/local/share/ca-certificates/*.crt; do
        if [ -e "$cert" ]; then EXTRA_CA_CERTS+="$cert "; fi
    done
fi
ca_bundle=$(mktemp /tmp/catalyst-ocr-extra-ca.XXXXXX)
trap 'rm -f "$ca_bundle"' EXIT
for cert in $EXTRA_CA_CERTS; do
    cat "$cert" >>"$ca_bundle"
    echo >>"$ca_bundle"
done

if docker buildx version >/dev/null 2>&1; then
    build=(docker buildx build --load)
elif [ -x /usr/bin/docker ]; then
    build=(env DOCKER_BUILDKIT=1 /usr/bin/docker build)
else
    build=(env DOCKER_BUILDKIT=1 docker build)
fi

name_of() {
    case "$1" in
        production) echo "$IMAGE_REGISTRY/catalyst-ocr:$IMAGE_TAG" ;;
        operator) echo "$IMAGE_REGISTRY/catalyst-ocr-operator:$IMAGE_TAG" ;;
        development) echo "$IMAGE_REGISTRY/catalyst-ocr:$IMAGE_TAG-dev" ;;
        *) echo "build-images: unknown target $1" >&2; return 2 ;;
    esac
}

for target in $IMAGE_TARGETS; do
    name=$(name_of "$target")
    start=$(date +%s)
    echo "build-images: $target -> $name (base $PYTHON_IMAGE)" >&2
    "${build[@]}" --target "$target" --tag "$name" \
        --build-arg PYTHON_IMAGE="$PYTHON_IMAGE" \
        --secret id=extra-ca,src="$ca_bundle" \
        --progress=plain . >&2
    echo "build-images: $target built in $(( $(date +%s) - start ))s" >&2
    echo "$name"
done
