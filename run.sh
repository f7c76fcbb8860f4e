#!/usr/bin/env bash
# One entry point for a fresh machine (README.md):
#   ./run.sh serve      set up .venv (with voice), then run Triton + the gateway with the shipped model
#   ./run.sh test       set up .venv with test extras (+ espeak-ng/ffmpeg/sox), run all tests
# Also: ./run.sh setup | proto | lint | benchmark [args] | lock | audit
# Packages come from requirements/*.lock (every version pinned, sha256-hashed; ./run.sh lock
# regenerates them from pyproject.toml), installed with pip --require-hashes.
set -euo pipefail
cd "$(dirname "$0")"

PYTHON=${PYTHON:-python3}
VENV=${VENV:-.venv}
BIN=$VENV/bin

pip_install() { "$BIN/pip" install --quiet --constraint constraints.txt "$@" 2>&1 | grep -v "is ignored" || true; }
pip_locked() {  # fails loudly (a hash that does not match stops the install)
  local out; if ! out=$("$BIN/pip" install --quiet "$@" 2>&1); then echo "$out" | grep -v "is ignored" >&2; return 1; fi
  echo "$out" | grep -v "is ignored" || true
}

lock_file() {  # $1: extras -> the lock holding them (serving: base + asr; anything more: the test set)
  case "${1:-}" in ""|asr) echo requirements/serve.lock ;; *) echo requirements/test.lock ;; esac
}

setup() {  # $1: extras ("" for serving only)
  local stamp="$VENV/.installed-${1:-serve}" lock; lock=$(lock_file "${1:-}")
  if [ -f "$stamp" ] && [ "$stamp" -nt pyproject.toml ] && [ "$stamp" -nt constraints.txt ] && [ "$stamp" -nt "$lock" ]; then return; fi
  [ -x "$BIN/python" ] || "$PYTHON" -m venv "$VENV"
  # Every package at its locked version and hash; torch is the CPU build (its hash is the CPU
  # wheel's), so pip never pulls a multi-GB CUDA build.
  pip_locked --require-hashes -r "$lock"
  pip_locked --no-deps -e .
  if ! "$BIN/pip" check >/dev/null 2>&1; then  # pyproject gained a dependency the lock lacks
    echo "WARNING: $lock is stale (pyproject.toml needs packages it lacks); installing them WITHOUT hashes." >&2
    echo "WARNING: regenerate the locks with ./run.sh lock and commit them." >&2
    pip_install -e ".${1:+[$1]}"
  fi
  "$BIN/python" -c "import torch, tritonclient, pytriton" # fail here, not in the middle of serving
  touch "$stamp"
}

tools() {  # pip-tools and pip-audit in their own environment, from their own lock
  local tools_venv=.venv-tools
  [ -x "$tools_venv/bin/python" ] || "$PYTHON" -m venv "$tools_venv"
  "$tools_venv/bin/pip" install --quiet --require-hashes -r requirements/tools.lock 2>&1 | grep -v "is ignored" || true
  echo "$tools_venv/bin"
}

lock() {  # regenerates requirements/*.lock from pyproject.toml (Linux x86_64, CPython 3.11)
  local bin; bin=$(tools | tail -1)
  local common=(--generate-hashes --allow-unsafe --strip-extras --no-emit-index-url --no-emit-find-links --quiet)
  "$bin/pip-compile" pyproject.toml --extra dev --extra train --extra asr --extra load -c constraints.txt \
    "${common[@]}" -o requirements/test.lock
  "$bin/pip-compile" pyproject.toml --extra asr -c constraints.txt -c requirements/test.lock \
    "${common[@]}" -o requirements/serve.lock
  "$bin/pip-compile" requirements/tools.in "${common[@]}" -o requirements/tools.lock
}

audit() {  # known vulnerabilities in the locked sets; report only (the advisory data may be unreachable)
  local bin report; bin=$(tools | tail -1); report=$(mktemp)
  "$bin/pip-audit" --progress-spinner off --no-deps --disable-pip --skip-editable --format json --output "$report" \
    -r requirements/serve.lock -r requirements/test.lock 2>/dev/null || true  # exits 1 when it finds any
  "$bin/python" requirements/audit_report.py "$report"
  rm -f "$report"
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
  lock) lock ;;
  audit) audit ;;
  *) echo "usage: ./run.sh serve|test|setup|proto|lint|benchmark|lock|audit [args]" >&2; exit 2 ;;
esac
