# The Bosun operator image: `bosun operator`, as the Helm chart runs it.
#
#   docker build -t ghcr.io/bosun-dev/bosun:0.1.0 .
#
# Two stages. The first installs the operator's dependencies (bosun[operator]) from their
# hash-locked file, requirements/operator.lock (`make lock` writes it from pyproject.toml), into a
# virtual environment, then builds the one wheel of the repository with the locked build tools
# and adds it without resolving anything. The second copies only that environment onto a clean
# slim Python. The result runs as a numeric non-root user and writes nothing outside /tmp, so it
# works with readOnlyRootFilesystem.

FROM python:3.11-slim-bookworm AS build

ENV PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1

WORKDIR /src
# Dependencies first (a layer that changes only with the locks). --require-hashes with --no-deps:
# pip installs exactly the pinned, hash-checked files and downloads nothing else; --only-binary:
# wheels only, so no package's build code runs here (every pin has a CPython 3.11 manylinux
# wheel). The build tools get a throwaway environment of their own; they never reach the image.
COPY requirements ./requirements
RUN python -m venv /opt/build \
    && /opt/build/bin/pip install --require-hashes --no-deps --only-binary=:all: -r requirements/build.lock \
    && python -m venv /opt/bosun \
    && /opt/bosun/bin/pip install --require-hashes --no-deps --only-binary=:all: -r requirements/operator.lock
COPY pyproject.toml README.md ./
COPY operator ./operator
# The wheel, built without build isolation (so with the locked setuptools, not a fresh download)
# and installed with --no-deps; pip check proves the lock covers what the wheel requires.
# Bytecode is compiled here, so nothing needs writing next to the code at run time.
RUN /opt/build/bin/pip wheel --no-deps --no-build-isolation --wheel-dir /wheels . \
    && /opt/bosun/bin/pip install --no-deps /wheels/bosun-*.whl \
    && /opt/bosun/bin/pip check \
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
