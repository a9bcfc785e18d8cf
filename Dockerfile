# The Bosun operator image: `bosun operator`, as the Helm chart runs it.
#
#   docker build -t ghcr.io/bosun-dev/bosun:0.1.0 .
#
# Two stages: the first builds the one wheel of the repository (pyproject.toml at the root)
# and installs it with its dependencies into a virtual environment; the second copies only
# that environment onto a clean slim Python. The result runs as a numeric non-root user and
# writes nothing outside /tmp, so it works with readOnlyRootFilesystem.

FROM python:3.11-slim-bookworm AS build

ENV PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1

WORKDIR /src
COPY pyproject.toml README.md ./
COPY operator ./operator
# One wheel from pyproject.toml, installed with its dependencies into /opt/bosun; bytecode is
# compiled here, so nothing needs writing next to the code at run time.
RUN python -m pip wheel --no-deps --wheel-dir /wheels . \
    && python -m venv /opt/bosun \
    && /opt/bosun/bin/pip install /wheels/bosun-*.whl \
    && /opt/bosun/bin/python -m compileall -q /opt/bosun/lib


FROM python:3.11-slim-bookworm

LABEL org.opencontainers.image.title="bosun" \
      org.opencontainers.image.description="Bosun operator: runs AI agent Runs as Kubernetes Jobs" \
      org.opencontainers.image.licenses="Apache-2.0"

# HOME in /tmp: the only writable place when the root filesystem is read-only.
ENV PATH=/opt/bosun/bin:$PATH \
    PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    HOME=/tmp

COPY --from=build /opt/bosun /opt/bosun

# Numeric, so the kubelet can check runAsNonRoot without reading /etc/passwd.
USER 65532:65532

# /metrics and /healthz + /readyz (BOSUN_METRICS_PORT, BOSUN_HEALTH_PORT).
EXPOSE 8080 8081

ENTRYPOINT ["bosun"]
CMD ["operator"]
