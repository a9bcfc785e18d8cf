# The Bosun operator image: `bosun operator`, as the Helm chart runs it. Build it from the
# repository root (`make images` does, with docker, podman or buildah, and makes the base where
# it cannot be pulled):
#
#   docker build -t ghcr.io/bosun-dev/bosun:0.1.0 .
#
# The operator's dependencies (bosun[operator]) come from their hash-locked file,
# requirements/operator.lock (`make lock` writes it from pyproject.toml), and the one wheel of the
# repository is added without resolving anything. Two stages:
# `build` makes the environment; the final stage copies only that onto the base and takes away
# what a running image has no use for (package managers, world-writable places). It runs as a
# numeric non-root user and writes only to /tmp, an emptyDir in the chart's Deployment, so it works with
# readOnlyRootFilesystem.

# A CPython 3.11 on Debian bookworm: the official slim image (pin it by digest at release), or
# the equivalent `make images` builds from Debian's own packages where that cannot be pulled.
# The final stage's base is the same image by default; `make images` gives it the runtime-only
# twin of the one it made (the same Python at the same paths, no package manager, no shell tools
# but the few the final RUN uses).
ARG BASE_IMAGE=python:3.11-slim-bookworm
ARG RUNTIME_IMAGE=python:3.11-slim-bookworm

FROM ${BASE_IMAGE} AS build

ENV PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1

WORKDIR /src
# Dependencies first, exactly the pinned and hash-checked wheels (--require-hashes, --no-deps,
# --only-binary): no sdist's build code runs. The build tools and pip live in a throwaway
# environment of their own; the image's environment has no pip (--without-pip) and gets its
# packages from the build environment's pip (--python). The CA bundle a package index behind a
# TLS-inspecting proxy needs is a build secret (`--secret id=ca-bundle,src=...`), mounted for
# these steps only and never a layer of the image.
COPY requirements ./requirements
RUN --mount=type=secret,id=ca-bundle \
    if [ -s /run/secrets/ca-bundle ]; then export PIP_CERT=/run/secrets/ca-bundle; fi \
    && python -m venv /opt/build \
    && /opt/build/bin/pip install --require-hashes --no-deps --only-binary=:all: -r requirements/build.lock \
    && python -m venv --without-pip /opt/bosun \
    && /opt/build/bin/pip --python /opt/bosun/bin/python install --require-hashes --no-deps --only-binary=:all: -r requirements/operator.lock
COPY pyproject.toml README.md ./
COPY operator ./operator
# The wheel, built without build isolation (so with the locked setuptools, not a fresh download)
# and installed with --no-deps; pip check proves the lock covers what the wheel requires.
# Bytecode is compiled here, so nothing needs writing next to the code at run time.
RUN /opt/build/bin/pip wheel --no-deps --no-build-isolation --wheel-dir /wheels . \
    && /opt/build/bin/pip --python /opt/bosun/bin/python install --no-deps /wheels/bosun-*.whl \
    && /opt/build/bin/pip --python /opt/bosun/bin/python check \
    && /opt/bosun/bin/python -m compileall -q /opt/bosun/lib


FROM ${RUNTIME_IMAGE}

ARG VERSION=0.0.0
ARG REVISION=unknown
LABEL org.opencontainers.image.title="bosun" \
      org.opencontainers.image.description="Bosun operator: runs AI agent Runs as Kubernetes Jobs" \
      org.opencontainers.image.licenses="Apache-2.0" \
      org.opencontainers.image.source="https://github.com/bosun-dev/bosun" \
      org.opencontainers.image.version="${VERSION}" \
      org.opencontainers.image.revision="${REVISION}"

COPY --from=build /opt/bosun /opt/bosun
# What a running operator never needs: the package managers (apt, dpkg, pip and the wheels
# venv would seed it with), setuid and setgid bits, and any place other than /tmp that anyone
# may write. dpkg's
# database stays, so scanners still see which Debian packages are inside. The user gets a name,
# as libraries look it up (getpass.getuser(), which kopf calls, fails without one).
RUN rm -rf /usr/bin/apt* /usr/lib/apt /etc/apt /var/lib/apt /var/cache/apt /var/cache/debconf \
        /usr/bin/dpkg* /usr/local/bin/pip* /usr/local/bin/idle* /usr/local/bin/2to3* \
        /usr/local/lib/python3.11/site-packages/pip* /usr/local/lib/python3.11/ensurepip \
        /usr/local/lib/python3.11/site-packages/setuptools* \
        /usr/local/lib/python3.11/site-packages/pkg_resources \
        /usr/local/lib/python3.11/site-packages/_distutils_hack \
        /usr/local/lib/python3.11/site-packages/distutils-precedence.pth \
        /usr/local/lib/python3.11/site-packages/wheel* \
        /usr/lib/python3.11/ensurepip /usr/share/python-wheels \
    && find / -xdev -perm -o+w ! -type l ! -path /tmp -exec chmod o-w {} + \
    && find / -xdev -perm /6000 -type f -exec chmod ug-s {} + \
    && echo "bosun:x:65532:65532:bosun:/tmp:/usr/sbin/nologin" >> /etc/passwd \
    && echo "bosun:x:65532:" >> /etc/group

ENV PATH=/opt/bosun/bin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin \
    LANG=C.UTF-8 \
    PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    HOME=/tmp

# Numeric, so the kubelet can check runAsNonRoot without reading /etc/passwd.
USER 65532:65532

# /metrics and /healthz + /readyz (BOSUN_METRICS_PORT, BOSUN_HEALTH_PORT).
EXPOSE 8080 8081

ENTRYPOINT ["bosun"]
CMD ["operator"]
