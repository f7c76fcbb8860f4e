# syntax=docker/dockerfile:1.7
# Triton on GPU: NVIDIA's tritonserver image (it has the PyTorch/libtorch backend) serving the
# model with model_repository/toxicity/configs/gpu.pbtxt (`--model-config-name=gpu`). Build from
# the repository root:
#   docker build -f deploy/docker/triton-gpu.Dockerfile -t moderation/triton-gpu:0.1.0 .
# The baked-in versions must be exported for CUDA (`moderation-export --precision fp16 --device
# cuda`); configs/gpu.pbtxt says why. No compiler and no Python package of ours is needed here:
# libtorch runs model.pt directly.

FROM nvcr.io/nvidia/tritonserver:25.01-py3 AS runtime
RUN groupadd --gid 10001 moderation \
 && useradd --uid 10001 --gid 10001 --no-create-home --shell /usr/sbin/nologin moderation
COPY --chown=root:root model_repository /opt/moderation/model_repository
USER 10001:10001
# 8000 HTTP (/v2/health/live, /v2/models/<name>/ready), 8001 gRPC, 8002 Prometheus /metrics
EXPOSE 8000 8001 8002
HEALTHCHECK --interval=15s --timeout=5s --start-period=300s --retries=3 \
  CMD ["python3", "-c", "import sys, urllib.request; sys.exit(0 if urllib.request.urlopen('http://127.0.0.1:8000/v2/models/toxicity/ready', timeout=3).status == 200 else 1)"]
# explicit model control: the gateway's admin API loads and unloads versions (with the control key)
ENTRYPOINT ["tritonserver", "--model-repository=/opt/moderation/model_repository", "--model-config-name=gpu", \
            "--model-control-mode=explicit", "--load-model=toxicity", "--strict-readiness=true", \
            "--exit-on-error=true", "--exit-timeout-secs=30"]
