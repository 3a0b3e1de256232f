# MV-OS backend image: built ONCE per tree by the staging workflow (a tree staging already validated is never built
# again), deployed to App Runner by digest (staging, then the very same digest to production).  Runs as a non-root
# user on PORT 8080.  The workflow builds without cache, with SOURCE_DATE_EPOCH and rewritten file times.
#
# Base image pinned by tag AND digest.  The digest is the multi-arch index digest of python:3.11.10-slim-bookworm
# as published on Docker Hub (taken from a public digest-tracking file; there is no registry access where this
# file was written, so verify it once with `docker buildx imagetools inspect python:3.11.10-slim-bookworm` and
# let Renovate/Dependabot bump tag+digest together).
FROM python:3.11.10-slim-bookworm@sha256:5148c0e4bbb64271bca1d3322360ebf4bfb7564507ae32dd639322e4952a6b16 AS base
ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    PIP_NO_CACHE_DIR=1

# -- dependencies: only the hashed lock file, so this layer is cached until requirements/app.txt changes ---------
FROM base AS deps
COPY requirements/app.txt /tmp/requirements-app.txt
RUN python -m venv /opt/venv \
    && /opt/venv/bin/pip install --require-hashes --no-deps -r /tmp/requirements-app.txt

# -- runtime ------------------------------------------------------------------------------------------------------
FROM base AS runtime
# The commit this image was built from (docker build --build-arg GIT_SHA=$(git rev-parse HEAD)).  The image's own
# digest cannot be baked into it: the release engine sets IMAGE_DIGEST (and GIT_SHA again) at deploy time.
ARG GIT_SHA=unknown
LABEL org.opencontainers.image.title="mv-os-backend" \
      org.opencontainers.image.description="MV-OS messaging back office (Flask + gunicorn)" \
      org.opencontainers.image.revision="${GIT_SHA}" \
      org.opencontainers.image.base.name="docker.io/library/python:3.11.10-slim-bookworm" \
      org.opencontainers.image.base.digest="sha256:5148c0e4bbb64271bca1d3322360ebf4bfb7564507ae32dd639322e4952a6b16"
ENV PATH=/opt/venv/bin:$PATH \
    PYTHONPATH=/app/backend \
    PORT=8080 \
    FRONTEND_DIR=/app/frontend \
    GIT_SHA=${GIT_SHA}
RUN groupadd --system --gid 10001 mvos \
    && useradd --system --uid 10001 --gid mvos --no-create-home --home-dir /nonexistent --shell /usr/sbin/nologin mvos
COPY --from=deps /opt/venv /opt/venv
WORKDIR /app
# Code last: a code change rebuilds only these layers.  Files stay root-owned and read-only to the app user.
COPY gunicorn.conf.py ./
COPY backend/mv_os ./backend/mv_os
COPY frontend ./frontend
COPY scripts/docker-entrypoint.sh ./scripts/docker-entrypoint.sh
USER 10001:10001
EXPOSE 8080
# Migrate under the PostgreSQL advisory lock, then `exec gunicorn` (PID 1 gets App Runner's SIGTERM).
ENTRYPOINT ["/app/scripts/docker-entrypoint.sh"]
