# podcap — `make run` and `make test` set everything up first (Debian packages, dockerd, venv).
.PHONY: setup run test lint bench proto clean image mutants

VENV := .venv
PY := $(VENV)/bin/python
# Four workers on the two cores (pytest-xdist; tests/conftest.py says why four);
# `make test PYTEST_ARGS='-n 0'` runs in one process, for debugging.
PYTEST_ARGS ?= -n 4
PROTO_DIR := src/podcap/runtime/cri_proto
AGENT_PROTO_DIR := src/podcap/transport/grpc/agent_proto

setup:
	@scripts/setup.sh

run: setup
	$(VENV)/bin/podcap serve

# The podcap image (tests/image runs it) is built here, before the suite, as the test images are
# by setup: a fresh clone's build (~40 s) is not part of the tests' time. Current: no work.
test: setup image
	$(VENV)/bin/ruff check src tests bench
	$(VENV)/bin/mypy src/podcap
	$(PY) -m pytest -q $(PYTEST_ARGS)

lint:
	$(VENV)/bin/ruff check src tests bench
	$(VENV)/bin/mypy src/podcap

bench: setup
	$(PY) -m bench

# Mutation testing of the pure modules against their fast unit tests (scripts/mutants.py lists
# them); not part of `test`. Survivors: build/mutants/survivors.txt. MODULES=ring: only those.
mutants:
	@[ -x $(VENV)/bin/mutmut ] || $(VENV)/bin/pip install -q -e '.[test]'
	$(PY) scripts/mutants.py $(MODULES)

# podcap:<version> from Debian's packages (no registry); rebuilt only when its recipe changes.
image: setup
	@scripts/build-image.sh

proto: $(PROTO_DIR)/api_pb2.py $(AGENT_PROTO_DIR)/agent_pb2.py

# Generated stubs are not committed; each is remade when its .proto is newer.
%_pb2.py: %.proto
	$(PY) -m grpc_tools.protoc -I $(dir $<) --python_out=$(dir $<) --pyi_out=$(dir $<) \
	  --grpc_python_out=$(dir $<) $<
	sed -i 's/^import $(notdir $*)_pb2/from . import $(notdir $*)_pb2/' $*_pb2_grpc.py

clean:
	rm -rf $(VENV) .pytest_cache build/mutants mutants
