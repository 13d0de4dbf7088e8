# The one image for every pipeline step and every TrainJob node: the isoclr package and its
# pinned dependencies from pyproject.toml (there is no second dependency list), on the CUDA
# build of the PyTorch version pyproject pins. A batch image: no HEALTHCHECK, no secrets
# (pods reach GCS through Workload Identity).
#
#   docker build -t ghcr.io/isoclr/isoclr:0.1.0 .
#   docker push ghcr.io/isoclr/isoclr:0.1.0
# The tag is IMAGE in components/__init__.py, and tracks the version in pyproject.toml.
FROM pytorch/pytorch:2.13.0-cuda13.0-cudnn9-runtime

ENV PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1

# git: provenance records the commit, and `dvc get` fetches a data version by revision.
RUN apt-get update \
    && apt-get install -y --no-install-recommends git=1:2.* \
    && rm -rf /var/lib/apt/lists/*

RUN useradd --create-home --uid 1000 isoclr
WORKDIR /opt/isoclr

# Dependencies first, in their own layer, so a code change rebuilds only the small last one.
# torch comes with the base image and satisfies the pin; the rest installs from pyproject.
COPY pyproject.toml README.md LICENSE ./
COPY src/isoclr/__init__.py src/isoclr/__init__.py
RUN pip install --no-cache-dir . && pip uninstall -y isoclr

COPY src ./src
COPY components ./components
COPY pipelines ./pipelines
COPY params.yaml dvc.yaml ./
RUN pip install --no-cache-dir --no-deps .

USER 1000:1000
ENTRYPOINT ["isoclr"]
