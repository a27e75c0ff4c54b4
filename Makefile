# Set-up and checks for git-theta. `make demo` and `make test` work on a fresh Debian/Ubuntu
# machine, including one whose /usr/bin/python3 refuses `pip install` (PEP 668): everything goes
# into a virtual environment ($(VENV), `.venv/` in the checkout), created with $(PYTHON).
# git-lfs comes from apt-get (with sudo when not root), and so does python3-venv when missing.

PYTHON ?= python3
VENV ?= .venv
VENV_ABS := $(abspath $(VENV))
VPY := $(VENV_ABS)/bin/python
PIP := $(VPY) -m pip
SUDO := $(shell [ "$$(id -u)" = 0 ] || echo sudo)
# The tests run against this torch release. On Linux x86_64 PyPI's wheel pulls NVIDIA CUDA
# packages (about 3 GB); add PyTorch's CPU-only index with PIP_EXTRA_INDEX_URL to avoid them.
TORCH ?= torch==2.13.0
# What a user's machine has: block-buffered stdout and .pyc files (these hid a filter hang once).
USER_ENV := env -u PYTHONUNBUFFERED -u PYTHONDONTWRITEBYTECODE

.PHONY: git-lfs venv install install-all install-dev demo test bench lint man

git-lfs:
	@command -v git-lfs >/dev/null 2>&1 || { \
		echo "installing git-lfs with apt-get"; \
		$(SUDO) apt-get update -qq && $(SUDO) apt-get install -y -qq git-lfs; }
	@git lfs version

# Debian and Ubuntu ship `venv` without ensurepip unless python3-venv is installed.
$(VPY):
	@$(PYTHON) -m venv "$(VENV_ABS)" >/dev/null 2>&1 || { \
		rm -rf "$(VENV_ABS)"; \
		echo "installing python3-venv with apt-get (needed to create $(VENV))"; \
		$(SUDO) apt-get update -qq && $(SUDO) apt-get install -y -qq python3-venv && \
		$(PYTHON) -m venv "$(VENV_ABS)"; }
	@$(PIP) install -q --upgrade pip
	@echo "created $(VENV) with $$($(VPY) --version)"

venv: $(VPY)

# The core: no torch. Reads and writes PyTorch, safetensors, NumPy, Flax and TF checkpoints.
# A regular install, not an editable one: setuptools' editable-install finder costs every
# git-theta process git starts (each filter, hook and driver) 13-24 ms of imports here. build/ is
# cleared first: setuptools would package a module deleted since the last build from it.
install: git-lfs venv
	rm -rf build
	$(PIP) install -q ".[safetensors]"
	@echo "installed into $(VENV); put its commands on PATH with: export PATH=\"$(VENV_ABS)/bin:\$$PATH\""

# The core, torch and the merge CLI (which computes with torch).
install-all: git-lfs venv
	rm -rf build plugins/merge-cli/build
	$(PIP) install -q $(TORCH) ".[pytorch,safetensors]" ./plugins/merge-cli

# Editable, for working on git-theta: what `make test` runs against.
install-dev: git-lfs venv
	$(PIP) install -q $(TORCH) -e ".[pytorch,safetensors,test]" -e plugins/merge-cli -r requirements-dev.txt
	# the loopback HTTP LFS server for tests; its own dependency pins do not resolve, so by name
	$(PIP) install -q --no-deps giftless==0.6.2

demo: install
	$(USER_ENV) $(VPY) -m git_theta.demo

test: install-dev
	$(USER_ENV) $(VPY) -m pytest -q tests

bench: install-all
	$(VPY) benchmarks/bench_core.py --runs 3
	$(VPY) benchmarks/bench_updates.py
	$(VPY) benchmarks/bench_merge.py
	$(VPY) benchmarks/bench_api.py

# Regenerate the man pages from the CLI's own help (tests check they match).
man: install
	$(VPY) -m git_theta.manpages man

lint: install-dev
	PATH="$(VENV_ABS)/bin:$$PATH" $(VENV_ABS)/bin/pre-commit run --all-files
