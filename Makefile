# Two commands do everything on a fresh machine (see README.md):
#   make serve   set up .venv if needed, then run Triton + the gateway with the shipped model
#   make test    set up .venv if needed (with test extras), then run the whole test suite
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
PIP := $(BIN)/pip install --constraint constraints.txt
TORCH := torch==2.13.0

.PHONY: serve test setup setup-dev proto lint benchmark

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip

# torch first, pinned: anything that depends on it must find the CPU build already installed.
$(VENV)/.serve-installed: $(BIN)/python pyproject.toml constraints.txt
	$(PIP) --quiet $(TORCH)
	$(PIP) --quiet -e .
	touch $@

$(VENV)/.dev-installed: $(VENV)/.serve-installed
	$(PIP) --quiet -e ".[dev,train,load]"
	touch $@

setup: $(VENV)/.serve-installed
setup-dev: $(VENV)/.dev-installed

serve: setup
	$(BIN)/moderation-serve

test: setup-dev
	$(BIN)/python -m pytest

lint: setup-dev
	$(BIN)/ruff check .

# Regenerates gateway/pb/ from gateway/protos/ (needs the dev extra for grpcio-tools).
proto: setup-dev
	$(BIN)/python -m grpc_tools.protoc -I gateway/protos --python_out=gateway/pb \
		--pyi_out=gateway/pb --grpc_python_out=gateway/pb gateway/protos/moderation.proto
	sed -i 's/^import moderation_pb2 as/from gateway.pb import moderation_pb2 as/' gateway/pb/moderation_pb2_grpc.py

benchmark: setup-dev
	$(BIN)/python -m loadtest.benchmark
