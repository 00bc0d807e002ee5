#!/usr/bin/env bash
# Make a Docker engine answer, for the image build and tests on a machine without one running
# (CI here): if `docker info` already works, do nothing; otherwise install Debian's docker.io
# (dockerd, containerd, runc) when dockerd is missing, start dockerd in the background with its
# log in $DOCKERD_LOG, and wait until `docker info` answers. Idempotent; safe to run twice.
set -euo pipefail

DOCKERD_LOG=${DOCKERD_LOG:-/var/log/catalyst-ocr-dockerd.log}
DOCKERD_WAIT_SECONDS=${DOCKERD_WAIT_SECONDS:-60}

# A newer client (e.g. docker 28 in /usr/local/bin) refuses the API of Debian's dockerd 20.10
# ("client version 1.4x is too new"): pin the client to the daemon's API version.
export DOCKER_API_VERSION=${DOCKER_API_VERSION:-1.41}

if docker info >/dev/null 2>&1; then
    exit 0
fi
if ! command -v dockerd >/dev/null 2>&1; then
    echo "start-dockerd: installing docker.io (dockerd, containerd, runc)" >&2
    sudo_=""
    [ "$(id -u)" -eq 0 ] || sudo_=sudo
    $sudo_ apt-get update -qq
    DEBIAN_FRONTEND=noninteractive $sudo_ apt-get install -y -qq docker.io >/dev/null
fi
if [ "$(id -u)" -ne 0 ]; then
    echo "start-dockerd: no Docker engine answers and starting dockerd needs root" >&2
    exit 1
fi
if ! pgrep -x dockerd >/dev/null; then
    echo "start-dockerd: starting dockerd (log: $DOCKERD_LOG)" >&2
    nohup dockerd >>"$DOCKERD_LOG" 2>&1 </dev/null &
fi
for _ in $(seq "$DOCKERD_WAIT_SECONDS"); do
    if docker info >/dev/null 2>&1; then
        exit 0
    fi
    sleep 1
done
echo "start-dockerd: dockerd did not answer within ${DOCKERD_WAIT_SECONDS}s; last log lines:" >&2
tail -n 20 "$DOCKERD_LOG" >&2 || true
exit 1
