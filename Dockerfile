# The one image for every pipeline step: the isoclr package and its pinned
# dependencies (from pyproject.toml; there is no second dependency list).
# PyPI's torch wheel for Linux x86_64 bundles CUDA, so the same image trains
# on GPU nodes and runs the CPU steps.
#
#   docker build -t ghcr.io/isoclr/isoclr:0.1.0 .
#   docker push ghcr.io/isoclr/isoclr:0.1.0
# The tag must match IMAGE in components/__init__.py.
FROM python:3.11-slim-bookworm

ENV PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1

# git: provenance records the commit when the source is a checkout.
RUN apt-get update \
    && apt-get install -y --no-install-recommends git=1:2.39.* \
    && rm -rf /var/lib/apt/lists/*

RUN useradd --create-home --uid 1000 isoclr
WORKDIR /opt/isoclr

# Dependencies first, in their own layer, so code changes rebuild only the last one.
COPY pyproject.toml README.md LICENSE ./
COPY src/isoclr/__init__.py src/isoclr/__init__.py
RUN pip install --no-cache-dir . && pip uninstall -y isoclr

COPY src ./src
COPY components ./components
COPY pipelines ./pipelines
COPY params.yaml dvc.yaml ./
RUN pip install --no-cache-dir --no-deps .

USER isoclr
ENTRYPOINT ["isoclr"]
