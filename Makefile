# Two user-facing targets: `make demo` (the main job on the simulated AKD1000) and
# `make test` (the whole suite). Both create or reuse .venv and install what they need.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed-$(shell cat pyproject.toml | sha1sum | cut -c1-12)
# The namespace mapping in pyproject.toml (driver/ -> akida_rt.driver, ...) is an import
# hook at run time; static tools (mypy, import-linter) see it through this symlink tree.
TREE := build/pkgtree

.PHONY: demo test scripts kernels lint typecheck layers pytest proto tree clean systemd-tools \
	engine-tools podman-tools manifests

# The [metatf] extra's akida wheel installs BrainChip's own `akida` script over ours
# (whichever installs last wins): the last line re-installs our scripts so that
# .venv/bin/akida is akida_rt's (tests/test_akida_command.py).
$(STAMP):
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip
	$(BIN)/python -m pip install -q -e '.[dev,tools,metatf,stream,k8s,plot]'
	$(BIN)/python -m pip install -q --no-deps --no-build-isolation --force-reinstall -e .
	rm -f $(VENV)/.installed-* && touch $@

# A venv made before that line existed (or a later `pip install akida`) may still hold
# BrainChip's script: put ours back whenever .venv/bin/akida is not akida_rt's.
scripts: $(STAMP)
	@grep -q akida_rt.cli $(BIN)/akida 2>/dev/null || \
		$(BIN)/python -m pip install -q --no-deps --no-build-isolation --force-reinstall -e .

demo: scripts
	$(BIN)/python -m akida_rt.demo

test: scripts kernels lint typecheck layers systemd-tools engine-tools podman-tools pytest

# akida_rt.native._kernels (C, akida_rt/csrc/) is built in place by the editable install
# above; installed again when a source is newer than it (pytest then checks each kernel
# against its numpy form and fuzzes them under ASan + UBSan).
KERNELS_SO = $(firstword $(wildcard akida_rt/native/_kernels*.so))
kernels: $(STAMP)
	@if [ -z "$(KERNELS_SO)" ] || [ -n "$$(find akida_rt/csrc setup.py -newer $(KERNELS_SO))" ]; then \
		$(BIN)/python -m pip install -q --no-deps -e . ; fi

# The daemon's unit-file tests need systemd-analyze (not systemd as PID 1); install it
# when missing and root, else those tests skip and say why.
systemd-tools:
	@command -v systemd-analyze >/dev/null || { [ "$$(id -u)" = 0 ] && \
		(apt-get install -y -q --no-install-recommends systemd >/dev/null 2>&1 || \
		 (apt-get update -q >/dev/null && apt-get install -y -q --no-install-recommends systemd >/dev/null)) ; } || \
		echo "systemd-analyze unavailable: the akidad unit-file tests will skip"

# The CDI tests run the real podman (Debian 12's is 4.3, the oldest CDI library we
# support) with runc; install them when missing and root, else those tests skip and say why.
podman-tools:
	@{ command -v podman >/dev/null && command -v runc >/dev/null; } || { [ "$$(id -u)" = 0 ] && \
		(apt-get install -y -q --no-install-recommends podman runc >/dev/null 2>&1 || \
		 (apt-get update -q >/dev/null && apt-get install -y -q --no-install-recommends podman runc >/dev/null)) ; } || \
		echo "podman or runc unavailable: the CDI container tests will skip"

# BrainChip's Akida Engine (built from the akida wheel's source by tests/brainchip_engine)
# needs g++ and the flatbuffers 2.0.8 headers (Debian's libflatbuffers-dev); install them
# when missing and root, else those tests skip and say why. The engine is compiled once
# into build/brainchip_engine/ and reused until its sources change.
engine-tools: $(STAMP)
	@{ command -v g++ >/dev/null && [ -f /usr/include/flatbuffers/flatbuffers.h ]; } || \
	{ [ "$$(id -u)" = 0 ] && \
		(apt-get install -y -q --no-install-recommends g++ libflatbuffers-dev >/dev/null 2>&1 || \
		 (apt-get update -q >/dev/null && apt-get install -y -q --no-install-recommends g++ libflatbuffers-dev >/dev/null)) ; } || \
		echo "g++ or libflatbuffers-dev unavailable: the BrainChip engine tests will skip"
	@$(BIN)/python -c "from tests.brainchip_engine.harness import skip_reason; r = skip_reason(); print(r and 'BrainChip engine tests will skip: ' + r or 'BrainChip engine: built')"

lint: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

tree:
	rm -rf $(TREE) && mkdir -p $(TREE)/akida_rt
	for f in akida_rt/*; do ln -s "$(CURDIR)/$$f" $(TREE)/akida_rt/; done
	for p in driver daemon firmware_sim tools; do ln -s "$(CURDIR)/$$p" $(TREE)/akida_rt/$$p; done

typecheck: $(STAMP) tree
	cd $(TREE) && $(CURDIR)/$(BIN)/mypy --config-file $(CURDIR)/pyproject.toml -p akida_rt

layers: $(STAMP) tree
	cd $(TREE) && PYTHONPATH=. $(CURDIR)/$(BIN)/lint-imports --config $(CURDIR)/.importlinter

pytest: $(STAMP)
	$(BIN)/python -m pytest -n 2 -q

proto: $(STAMP)
	for p in format/proto/program wire/proto/daemon; do d=akida_rt/$$(dirname $$p); \
		PATH=$(CURDIR)/$(BIN):$$PATH $(BIN)/python -m grpc_tools.protoc -I$$d --python_out=$$d \
		--mypy_out=$$d akida_rt/$$p.proto || exit 1; done
	PATH=$(CURDIR)/$(BIN):$$PATH $(BIN)/python -m grpc_tools.protoc -Iakida_rt/k8s --python_out=akida_rt/k8s \
		--mypy_out=akida_rt/k8s --grpc_python_out=akida_rt/k8s --mypy_grpc_out=akida_rt/k8s \
		akida_rt/k8s/deviceplugin.proto
	sed -i 's/^import \(.*_pb2\)/from . import \1/' akida_rt/k8s/*_pb2_grpc.py*

# deploy/k8s's DaemonSets, Services, NFD rule and ServiceMonitor are the Helm chart's
# rendering (deploy/helm/akida); tests/test_helm_chart.py fails when they are stale.
manifests: $(STAMP)
	$(BIN)/python deploy/helm/render.py

clean:
	rm -rf build $(VENV) akida_rt/native/_kernels.*.so
