#!/usr/bin/env bash
# One entry point for a fresh machine (README.md):
#   ./run.sh serve      set up .venv (with voice), then run Triton + the gateway with the shipped model
#   ./run.sh test       set up .venv with test extras (+ espeak-ng/ffmpeg/sox), run all tests
# Also: ./run.sh setup | proto | lint | benchmark [args]
set -euo pipefail
cd "$(dirname "$0")"

PYTHON=${PYTHON:-python3}
VENV=${VENV:-.venv}
BIN=$VENV/bin

pip_install() { "$BIN/pip" install --quiet --constraint constraints.txt "$@" 2>&1 | grep -v "is ignored" || true; }

setup() {  # $1: extras ("" for serving only)
  local stamp="$VENV/.installed-${1:-serve}"
  if [ -f "$stamp" ] && [ "$stamp" -nt pyproject.toml ] && [ "$stamp" -nt constraints.txt ]; then return; fi
  [ -x "$BIN/python" ] || "$PYTHON" -m venv "$VENV"
  "$BIN/pip" install --quiet --upgrade pip 2>&1 | grep -v "is ignored" || true
  # torch first and pinned (a CPU build): anything depending on torch must find it installed,
  # or pip pulls a multi-GB CUDA build.
  pip_install torch==2.13.0
  pip_install -e ".${1:+[$1]}"
  "$BIN/python" -c "import torch, tritonclient, pytriton" # fail here, not in the middle of serving
  touch "$stamp"
}

system_packages() {  # sound tools for the voice tests, h2load for the flood; only where apt exists and we are root
  local missing=""
  for p in espeak-ng sox libsox-fmt-mp3 ffmpeg nghttp2-client; do dpkg -s "$p" >/dev/null 2>&1 || missing="$missing $p"; done
  if [ -n "$missing" ] && command -v apt-get >/dev/null && [ "$(id -u)" = 0 ]; then
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -qq && apt-get install -y -qq --no-install-recommends $missing >/dev/null
  elif [ -n "$missing" ]; then
    echo "note: missing$missing; the voice and flood tests that need them will be skipped" >&2
  fi
}

CHECKOV_VERSION=3.3.30
checkov_venv() {  # checkov in a venv of its own: its pins (networkx<2.7, packaging<24) clash with torch's and ours
  local venv=.venv-checkov
  if [ -x "$venv/bin/checkov" ] && [ -f "$venv/.installed-$CHECKOV_VERSION" ]; then return; fi
  [ -x "$venv/bin/python" ] || "$PYTHON" -m venv "$venv"
  "$venv/bin/pip" install --quiet "checkov==$CHECKOV_VERSION" 2>&1 | grep -v "is ignored" || true
  "$venv/bin/checkov" --version >/dev/null  # fail here: tests/deploy would fail in CI without it
  touch "$venv/.installed-$CHECKOV_VERSION"
}

cmd=${1:-}; shift || true
case "$cmd" in
  setup) setup "${1:-}" ;;
  serve) setup "asr"; exec "$BIN/moderation-serve" "$@" ;;
  test) system_packages; setup "dev,train,asr,load"; checkov_venv; exec "$BIN/python" -m pytest "$@" ;;
  lint) setup "dev,train,asr,load"; exec "$BIN/ruff" check . ;;
  proto)
    setup "dev,train,asr,load"
    "$BIN/python" -m grpc_tools.protoc -I contract/protos --python_out=contract/pb --pyi_out=contract/pb \
      --grpc_python_out=contract/pb contract/protos/*.proto
    # generated code imports its sibling as a top-level module; make it a package import
    sed -i 's/^import \(\w*\)_pb2 as/from contract.pb import \1_pb2 as/' contract/pb/*_pb2_grpc.py ;;
  benchmark) setup "dev,train,asr,load"; exec "$BIN/python" -m loadtest.benchmark "$@" ;;
  *) echo "usage: ./run.sh serve|test|setup|proto|lint|benchmark [args]" >&2; exit 2 ;;
esac
