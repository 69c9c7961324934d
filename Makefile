# podcap — `make run` and `make test` set everything up first (Debian packages, dockerd, venv).
.PHONY: setup run test lint bench proto clean

VENV := .venv
PY := $(VENV)/bin/python
PROTO_DIR := src/podcap/runtime/cri_proto

setup:
	@scripts/setup.sh

run: setup
	$(VENV)/bin/podcap serve

test: setup
	$(VENV)/bin/ruff check src tests bench
	$(VENV)/bin/mypy src/podcap
	$(PY) -m pytest -q $(PYTEST_ARGS)

lint:
	$(VENV)/bin/ruff check src tests bench
	$(VENV)/bin/mypy src/podcap

bench: setup
	$(PY) -m bench

proto:
	@if [ -f $(PROTO_DIR)/api.proto ] && [ ! $(PROTO_DIR)/api_pb2.py -nt $(PROTO_DIR)/api.proto ]; then \
	  $(PY) -m grpc_tools.protoc -I $(PROTO_DIR) --python_out=$(PROTO_DIR) --pyi_out=$(PROTO_DIR) \
	    --grpc_python_out=$(PROTO_DIR) $(PROTO_DIR)/api.proto && \
	  sed -i 's/^import api_pb2/from . import api_pb2/' $(PROTO_DIR)/api_pb2_grpc.py; \
	fi

clean:
	rm -rf $(VENV) .pytest_cache
