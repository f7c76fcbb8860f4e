# syntax=docker/dockerfile:1.7
# Triton on CPU: the tritonserver shipped in the nvidia-pytriton wheel, run by `moderation-triton`,
# with this project's python-based backend (triton_backends/torchscript_classifier) running each
# version's model.pt. Build from the repository root:
#   docker build -f deploy/docker/triton-cpu.Dockerfile --build-arg TORCH_INDEX_URL=<PyTorch CPU wheel index> -t moderation/triton-cpu:0.1.0 .
# The model repository is baked in at /opt/moderation/model_repository (or mounted over it).

FROM python:3.11.11-slim-bookworm AS builder
ARG TORCH_INDEX_URL=""
RUN apt-get update \
 && apt-get install -y --no-install-recommends build-essential \
 && rm -rf /var/lib/apt/lists/*
WORKDIR /src
COPY pyproject.toml constraints.txt README.md ./
COPY contract contract
COPY gateway gateway
COPY asr asr
COPY export export
COPY training training
# torch first and pinned (constraints.txt), as run.sh does. From a CPU wheel index its version is
# 2.13.0+cpu, which the pin matches and pip prefers below, so the CUDA build is never pulled.
RUN if [ -n "$TORCH_INDEX_URL" ]; then \
      pip wheel --no-cache-dir --no-deps --wheel-dir /wheels --index-url "$TORCH_INDEX_URL" torch==2.13.0; \
    fi \
 && pip wheel --no-cache-dir --wheel-dir /wheels --constraint constraints.txt --find-links /wheels torch==2.13.0 \
 && pip wheel --no-cache-dir --wheel-dir /wheels --constraint constraints.txt --find-links /wheels .

FROM python:3.11.11-slim-bookworm AS runtime
ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PATH=/opt/venv/bin:$PATH \
    HOME=/home/triton
RUN groupadd --gid 10001 triton \
 && useradd --uid 10001 --gid 10001 --create-home --home-dir /home/triton --shell /usr/sbin/nologin triton \
 && python -m venv /opt/venv
COPY constraints.txt /tmp/constraints.txt
RUN --mount=type=bind,from=builder,source=/wheels,target=/wheels \
    pip install --no-cache-dir --no-index --find-links /wheels --constraint /tmp/constraints.txt \
      torch==2.13.0 moderation-gateway \
 && rm /tmp/constraints.txt
# The launcher installs python-based backends from <dir of the gateway package>/../triton_backends
# (gateway/triton_process.py OUR_BACKENDS_DIR), i.e. site-packages/triton_backends in a wheel install.
COPY --chown=root:root triton_backends /opt/venv/lib/python3.11/site-packages/triton_backends
COPY --chown=root:root model_repository /opt/moderation/model_repository
USER 10001:10001
WORKDIR /home/triton
# 8000 HTTP (/v2/health/live, /v2/models/<name>/ready), 8001 gRPC, 8002 Prometheus /metrics
EXPOSE 8000 8001 8002
HEALTHCHECK --interval=15s --timeout=5s --start-period=180s --retries=3 \
  CMD ["python", "-c", "import sys, urllib.request; sys.exit(0 if urllib.request.urlopen('http://127.0.0.1:8000/v2/models/toxicity/ready', timeout=3).status == 200 else 1)"]
ENTRYPOINT ["moderation-triton", "--model-repository=/opt/moderation/model_repository", "--triton-host=0.0.0.0"]
CMD ["--triton-grpc-port=8001", "--triton-http-port=8000", "--triton-metrics-port=8002"]
