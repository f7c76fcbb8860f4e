# syntax=docker/dockerfile:1.7
# The moderation gateway (`moderation-gateway`, voice included). Build from the repository root:
#   docker build -f deploy/docker/gateway.Dockerfile --build-arg TORCH_INDEX_URL=<PyTorch CPU wheel index> -t moderation/gateway:0.1.0 .
# The model repository (tokenizer, labels, export.json per version) is baked in at
# /opt/moderation/model_repository; the Helm chart can mount a volume over it instead
# (modelRepository.source=pvc). docs/deployment.md has the details.

FROM python:3.11.11-slim-bookworm AS builder
# Where torch==2.13.0 comes from: a CPU wheel index keeps pip from pulling the multi-GB CUDA build.
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
 && pip wheel --no-cache-dir --wheel-dir /wheels --constraint constraints.txt --find-links /wheels ".[asr]"

FROM python:3.11.11-slim-bookworm AS runtime
ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PATH=/opt/venv/bin:$PATH \
    HOME=/home/moderation \
    MODERATION_MODEL_REPOSITORY=/opt/moderation/model_repository
RUN groupadd --gid 10001 moderation \
 && useradd --uid 10001 --gid 10001 --create-home --home-dir /home/moderation --shell /usr/sbin/nologin moderation \
 && python -m venv /opt/venv
COPY constraints.txt /tmp/constraints.txt
# installs only from the builder's wheels (bind-mounted, so they add no layer)
RUN --mount=type=bind,from=builder,source=/wheels,target=/wheels \
    pip install --no-cache-dir --no-index --find-links /wheels --constraint /tmp/constraints.txt \
      torch==2.13.0 "moderation-gateway[asr]" \
 && rm /tmp/constraints.txt
COPY --chown=root:root model_repository /opt/moderation/model_repository
USER 10001:10001
WORKDIR /home/moderation
# 50051 public gRPC (+ grpc.health.v1), 50052 admin gRPC, 9464 Prometheus /metrics
EXPOSE 50051 50052 9464
# Kubernetes probes the gRPC health service itself (the chart); this is for plain Docker.
HEALTHCHECK --interval=15s --timeout=5s --start-period=120s --retries=3 \
  CMD ["python", "-c", "import sys, grpc; from grpc_health.v1 import health_pb2 as h, health_pb2_grpc as g; ch = grpc.insecure_channel('127.0.0.1:50051'); r = g.HealthStub(ch).Check(h.HealthCheckRequest(), timeout=3); sys.exit(0 if r.status == h.HealthCheckResponse.SERVING else 1)"]
ENTRYPOINT ["moderation-gateway"]
CMD ["--listen-address=0.0.0.0:50051", "--admin-listen-address=0.0.0.0:50052", "--metrics-listen-address=0.0.0.0:9464", "--log-format=json"]
