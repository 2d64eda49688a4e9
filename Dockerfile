# leakscan as a container image: multi-stage, pinned dependencies (requirements.lock), non-root.
# It installs this checkout as the distribution leakscan-image (the command is leakscan).
#
#   docker build -t leakscan .
#   docker run --rm -v "$PWD/image.tar:/scan/image.tar:ro" leakscan /scan/image.tar
#   docker run --rm -v /var/run/docker.sock:/var/run/docker.sock \
#       --group-add "$(stat -c %g /var/run/docker.sock)" leakscan myimage:tag
#
# BASE is any image with Python >= 3.11 (with venv and ensurepip) and useradd; the official slim image by
# default.  Offline builds (docker build --network none): put the wheels of requirements.lock in
# wheelhouse/ first (scripts/wheelhouse does it) and the build installs from there only.
ARG BASE=python:3.11-slim

FROM ${BASE} AS build
ENV PIP_DISABLE_PIP_VERSION_CHECK=1 PIP_NO_CACHE_DIR=1
COPY wheelhouse/ /wheelhouse/
COPY requirements.lock pyproject.toml README.md /src/
COPY scanner /src/scanner
RUN set -eu; \
    if ls /wheelhouse/*.whl >/dev/null 2>&1; then set -- --no-index --find-links /wheelhouse; fi; \
    python3 -m venv /opt/leakscan; \
    /opt/leakscan/bin/pip install "$@" --require-virtualenv -r /src/requirements.lock; \
    /opt/leakscan/bin/pip install "$@" --require-virtualenv --no-deps /src; \
    /opt/leakscan/bin/pip show -q leakscan-image >/dev/null; \
    /opt/leakscan/bin/pip uninstall -y setuptools wheel packaging; \
    find /opt/leakscan -name __pycache__ -prune -exec rm -rf {} +; \
    /opt/leakscan/bin/python -m compileall -q /opt/leakscan/lib >/dev/null

FROM ${BASE}
RUN useradd --uid 10001 --user-group --create-home --shell /usr/sbin/nologin leakscan
COPY --from=build /opt/leakscan /opt/leakscan
ENV PATH=/opt/leakscan/bin:$PATH PYTHONDONTWRITEBYTECODE=1 PYTHONUNBUFFERED=1
USER 10001:10001
WORKDIR /home/leakscan
ENTRYPOINT ["leakscan"]
CMD ["--help"]
