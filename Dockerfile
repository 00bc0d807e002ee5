# Catalyst OCR images, one file, five stages:
#
#   base         Debian slim + Python + Tesseract, installed by scripts/install-system-deps.sh
#                (the same script the test set-up runs, so CI exercises the image's install path)
#   builder      compilers and headers; builds every pinned wheel, tesserocr from source, into /opt/venv
#   development  the service with dev tools, restarted on every source change (compose dev override)
#   operator     the kopf operator only: no Tesseract, no OpenCV
#   production   the service: /opt/venv on top of base, non-root, no compilers (the default target)
#
# production is the last stage, so a plain `docker build .` builds the service image. Build with
# BuildKit (the default builder since Docker 23; `DOCKER_BUILDKIT=1` on 20.10). There is no
# `# syntax=` line on purpose: that makes BuildKit fetch a frontend image from a registry, which
# fails offline, and the built-in frontend has everything used here.
#
#   docker build --target production -t ghcr.io/catalyst-ocr/catalyst-ocr:0.1.0 .
#   docker build --target operator   -t ghcr.io/catalyst-ocr/catalyst-ocr-operator:0.1.0 .
#   docker build --build-arg OCR_LANGUAGES="eng deu fra spa" ...
#   scripts/build-images.sh      # all three targets, with the options below worked out for you
#
# Build inputs:
#   PYTHON_IMAGE  (build arg) the base: python:3.11-slim-bookworm, or a local equivalent where no
#                 registry is reachable (scripts/build-base-image.sh builds one with debootstrap).
#   extra-ca      (build secret, optional) extra CA certificates (PEM) that pip must trust, for a
#                 network behind a TLS-inspecting proxy:
#                   docker build --secret id=extra-ca,src=corporate-ca.pem ...
#                 Used only while pip runs; no image keeps it (a secret leaves no trace in layers
#                 or history). To trust it at run time too, add it in an image built FROM these.
#
# The base image is pinned by tag. Pin the digest too when you release:
#   docker buildx imagetools inspect python:3.11-slim-bookworm   # then FROM python:3.11-slim-bookworm@sha256:<index digest>
# (there is no registry access where this file was written, so no digest could be verified).

ARG PYTHON_IMAGE=python:3.11-slim-bookworm

# ---------------------------------------------------------------------------------------------
FROM ${PYTHON_IMAGE} AS base

# Tesseract language packs to install, space separated Tesseract codes. The service's readiness
# check requires the same list (OCR_LANGUAGES accepts spaces, `+` or `,` as separators).
ARG OCR_LANGUAGES="eng deu fra"

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    OCR_LANGUAGES=${OCR_LANGUAGES}

COPY scripts/install-system-deps.sh /usr/local/lib/catalyst-ocr/install-system-deps.sh
SHELL ["/bin/bash", "-o", "pipefail", "-c"]
RUN OCR_CLEAN_APT_LISTS=1 bash /usr/local/lib/catalyst-ocr/install-system-deps.sh --runtime

# ---------------------------------------------------------------------------------------------
FROM base AS builder

RUN OCR_CLEAN_APT_LISTS=1 bash /usr/local/lib/catalyst-ocr/install-system-deps.sh --build

WORKDIR /src
RUN python -m venv /opt/venv
ENV PATH=/opt/venv/bin:$PATH

# Every version comes from the lock (as constraints, so only the service's own dependencies are
# installed); its `--no-binary tesserocr` line builds tesserocr against this image's libtesseract.
COPY requirements/lock.txt requirements/lock.txt
COPY pyproject.toml README.md ./
COPY ocr_service/ ocr_service/
COPY operator/ operator/
COPY client/ client/
# pip trusts the optional extra-ca secret too (see the header), for this command only.
RUN --mount=type=secret,id=extra-ca \
    if [ -s /run/secrets/extra-ca ]; then cat /etc/ssl/certs/ca-certificates.crt /run/secrets/extra-ca >/tmp/ca.pem && export PIP_CERT=/tmp/ca.pem; fi \
    && pip install --no-cache-dir -c requirements/lock.txt ".[tesserocr]" \
    && rm -f /tmp/ca.pem

# ---------------------------------------------------------------------------------------------
FROM builder AS development

# Dev tools from the same lock, and the source installed editable so a bind mount of the
# checkout over /src is what runs.
# Playwright (the demo page's browser test) uses Debian's chromium; it never downloads one.
ENV PLAYWRIGHT_SKIP_BROWSER_DOWNLOAD=1
RUN --mount=type=secret,id=extra-ca \
    if [ -s /run/secrets/extra-ca ]; then cat /etc/ssl/certs/ca-certificates.crt /run/secrets/extra-ca >/tmp/ca.pem && export PIP_CERT=/tmp/ca.pem; fi \
    && pip install --no-cache-dir -c requirements/lock.txt -e ".[tesserocr,dev]" \
    && rm -f /tmp/ca.pem \
    && groupadd --gid 1000 ocr \
    && useradd --uid 1000 --gid 1000 --create-home --shell /bin/bash ocr \
    && install -d -o 1000 -g 1000 /var/lib/catalyst-ocr

ENV OMP_THREAD_LIMIT=1 \
    OCR_DATA_DIR=/var/lib/catalyst-ocr \
    OCR_LOG_FORMAT=text \
    OCR_HOST=0.0.0.0

USER 1000:1000
EXPOSE 8000
# watchfiles (installed with uvicorn[standard]) restarts the whole service on any change under
# the package, which also re-reads settings: hot reload without relying on the CLI's flags.
ENTRYPOINT ["watchfiles", "--filter", "python", "catalyst-ocr serve", "/src/ocr_service"]

# ---------------------------------------------------------------------------------------------
FROM ${PYTHON_IMAGE} AS operator

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    PATH=/opt/venv/bin:$PATH

WORKDIR /src
COPY requirements/lock.txt requirements/lock.txt
COPY pyproject.toml README.md ./
COPY ocr_service/ ocr_service/
COPY operator/ operator/
COPY client/ client/
# Only the operator's own dependencies (versions from the lock); the project itself with
# --no-deps, since the operator imports only the standard-library contract from ocr_service.
# The uid the manifests run it as gets a passwd entry (as in production); the operator no longer
# needs one (it sets kopf's POD_ID itself), since Kubernetes may run it under any runAsUser.
RUN --mount=type=secret,id=extra-ca \
    if [ -s /run/secrets/extra-ca ]; then cat /etc/ssl/certs/ca-certificates.crt /run/secrets/extra-ca >/tmp/ca.pem && export PIP_CERT=/tmp/ca.pem; fi \
    && python -m venv /opt/venv \
    && pip install --no-cache-dir -c requirements/lock.txt kopf kubernetes prometheus-client pyyaml \
    && pip install --no-cache-dir --no-deps . \
    && rm -rf /src /tmp/ca.pem \
    && groupadd --gid 1000 ocr \
    && useradd --uid 1000 --gid 1000 --no-create-home --home-dir /nonexistent --shell /usr/sbin/nologin ocr

LABEL org.opencontainers.image.title="catalyst-ocr-operator" \
      org.opencontainers.image.description="kopf operator that runs Catalyst OCR from OcrDeployment resources" \
      org.opencontainers.image.source="https://github.com/catalyst-ocr/catalyst-ocr" \
      org.opencontainers.image.licenses="Apache-2.0"
WORKDIR /
USER 1000:1000
ENTRYPOINT ["catalyst-ocr-operator"]

# ---------------------------------------------------------------------------------------------
FROM base AS production

ENV PATH=/opt/venv/bin:$PATH \
    OMP_THREAD_LIMIT=1 \
    OCR_DATA_DIR=/var/lib/catalyst-ocr \
    OCR_HOST=0.0.0.0

RUN groupadd --gid 1000 ocr \
    && useradd --uid 1000 --gid 1000 --no-create-home --home-dir /nonexistent --shell /usr/sbin/nologin ocr \
    && install -d -o 1000 -g 1000 -m 0750 /var/lib/catalyst-ocr

COPY --from=builder /opt/venv /opt/venv

LABEL org.opencontainers.image.title="catalyst-ocr" \
      org.opencontainers.image.description="Kubernetes-native OCR service (Tesseract + OpenCV)" \
      org.opencontainers.image.source="https://github.com/catalyst-ocr/catalyst-ocr" \
      org.opencontainers.image.licenses="Apache-2.0"
USER 1000:1000
WORKDIR /var/lib/catalyst-ocr
VOLUME ["/var/lib/catalyst-ocr"]
EXPOSE 8000

# Readiness, not liveness: Docker's "healthy" gates depends_on and the proxy. No curl in slim,
# so Python asks; it follows OCR_PORT when the port is moved.
HEALTHCHECK --interval=15s --timeout=5s --start-period=30s --retries=3 \
    CMD ["python", "-c", "import os, urllib.request; urllib.request.urlopen('http://127.0.0.1:' + os.environ.get('OCR_PORT', '8000') + '/readyz', timeout=4)"]

# Exec form: the service is PID 1 and gets SIGTERM itself, so graceful shutdown works.
ENTRYPOINT ["catalyst-ocr"]
CMD ["serve"]
