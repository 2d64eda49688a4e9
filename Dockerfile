# leakscan as a container image (a first cut; the CI-gate work item makes it small and non-root).
#   docker build -t leakscan .
#   docker run --rm -v $PWD:/work leakscan /work/image.tar
#   docker run --rm -v /var/run/docker.sock:/var/run/docker.sock leakscan myimage:tag
ARG BASE=python:3.11-slim
FROM ${BASE}
WORKDIR /src
COPY pyproject.toml README.md ./
COPY scanner ./scanner
RUN pip install --no-cache-dir . && rm -rf /src
ENTRYPOINT ["leakscan"]
