# syntax=docker/dockerfile:1
# One image for every Herald process; the command chooses which one runs:
#   docker run herald herald-api            (the default)
#   docker run herald herald-scheduler | herald-sender | herald-reporter
#   docker run herald herald-migrate        (one-shot: the schema to the newest revision)
#   docker run herald herald-provider-sim   (the provider simulator, for tests and demos)
# Settings are HERALD_* environment variables (README.md, "Configuration"). The image runs as
# UID 10001 and writes nothing outside /tmp, so it works with a read-only root filesystem.
# No HEALTHCHECK here: one image, five kinds of processes; docker-compose.yml and the
# Kubernetes manifests give each its own probe.

FROM ghcr.io/astral-sh/uv:0.13.9 AS uv

# ---------------------------------------------------------------------------------------------
FROM python:3.11-slim-bookworm AS builder

COPY --from=uv /uv /usr/local/bin/uv

# Bytecode compiled now, since the runtime root filesystem may be read-only; files copied, not
# hard-linked from the cache (a cache mount is another filesystem); the image's own Python.
ENV UV_COMPILE_BYTECODE=1 \
    UV_LINK_MODE=copy \
    UV_PYTHON_DOWNLOADS=never \
    UV_PYTHON=/usr/local/bin/python3.11 \
    UV_PROJECT_ENVIRONMENT=/app/.venv

WORKDIR /src

# `--package` names the services (herald-common comes with them), not the workspace root: that
# one also pulls in the test tooling (herald-devstack, herald-testing and pytest with them).
# Third-party dependencies first, in a layer that only uv.lock and the pyproject files change.
# Every workspace member's pyproject.toml is needed for uv to read the workspace.
COPY pyproject.toml uv.lock ./
COPY libs/common/pyproject.toml libs/common/
COPY services/api/pyproject.toml services/api/
COPY services/scheduler/pyproject.toml services/scheduler/
COPY services/sender/pyproject.toml services/sender/
COPY services/reporter/pyproject.toml services/reporter/
COPY services/provider_sim/pyproject.toml services/provider_sim/
COPY tools/devstack/pyproject.toml tools/devstack/
COPY tools/testing/pyproject.toml tools/testing/
COPY tools/cli/pyproject.toml tools/cli/
RUN --mount=type=cache,target=/root/.cache/uv \
    uv sync --frozen --no-dev --no-install-workspace \
        --package herald-api --package herald-scheduler --package herald-sender \
        --package herald-reporter --package herald-provider-sim

# Then Herald itself, installed as wheels (not editable): the runtime stage gets no sources.
COPY libs/common/src libs/common/src
COPY services/api/src services/api/src
COPY services/scheduler/src services/scheduler/src
COPY services/sender/src services/sender/src
COPY services/reporter/src services/reporter/src
COPY services/provider_sim/src services/provider_sim/src
RUN --mount=type=cache,target=/root/.cache/uv \
    uv sync --frozen --no-dev --no-editable \
        --package herald-api --package herald-scheduler --package herald-sender \
        --package herald-reporter --package herald-provider-sim

# ---------------------------------------------------------------------------------------------
FROM python:3.11-slim-bookworm AS runtime

LABEL org.opencontainers.image.title="Herald" \
      org.opencontainers.image.description="Herald mailing service: api, scheduler, sender, reporter, migrate, provider simulator"

# A fixed UID/GID, so that volumes and Kubernetes' runAsUser can name it.
RUN groupadd --system --gid 10001 herald \
    && useradd --system --no-log-init --uid 10001 --gid herald \
        --home-dir /nonexistent --no-create-home --shell /usr/sbin/nologin herald

# Owned by root: the service user can read the code, not change it.
COPY --from=builder /app/.venv /app/.venv

# Listening on every interface is right inside a container (the defaults are 127.0.0.1 for
# `make run`); HOME=/tmp for any library that wants a home directory.
ENV PATH="/app/.venv/bin:${PATH}" \
    PYTHONUNBUFFERED=1 \
    PYTHONDONTWRITEBYTECODE=1 \
    HOME=/tmp \
    HERALD_API_HOST=0.0.0.0 \
    HERALD_METRICS_HOST=0.0.0.0 \
    HERALD_SIM_HOST=0.0.0.0

WORKDIR /app
USER 10001:10001

# The API (HERALD_API_PORT); workers serve /metrics on HERALD_METRICS_PORT (scheduler 9101,
# senders 9102, reporter 9109), the simulator listens on HERALD_SIM_PORT (8001).
EXPOSE 8000

CMD ["herald-api"]
