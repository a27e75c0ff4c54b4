# Set-up and checks for git-theta. `make demo` and `make test` work on a fresh Debian/Ubuntu
# machine with Python 3.11: they install git-lfs (apt-get) and the Python packages themselves.

PYTHON ?= python3
PIP := $(PYTHON) -m pip
SUDO := $(shell [ "$$(id -u)" = 0 ] || echo sudo)
# The CPU build of torch is pinned so pip never pulls a CUDA build.
TORCH := torch==2.13.0

.PHONY: git-lfs install install-dev demo test bench lint

git-lfs:
	@command -v git-lfs >/dev/null 2>&1 || { \
		echo "installing git-lfs with apt-get"; \
		$(SUDO) apt-get update -qq && $(SUDO) apt-get install -y -qq git-lfs; }
	@git lfs version

install: git-lfs
	$(PIP) install -q $(TORCH) -e ".[pytorch,safetensors]" -e plugins/merge-cli

install-dev: git-lfs
	$(PIP) install -q $(TORCH) -e ".[pytorch,safetensors,test]" -e plugins/merge-cli -r requirements-dev.txt
	# the loopback HTTP LFS server for tests; its own dependency pins do not resolve, so by name
	$(PIP) install -q --no-deps giftless==0.6.2

demo: install
	$(PYTHON) -m git_theta.demo

test: install-dev
	$(PYTHON) -m pytest -q tests

bench: install
	$(PYTHON) benchmarks/bench_core.py --runs 3
	$(PYTHON) benchmarks/bench_updates.py
	$(PYTHON) benchmarks/bench_merge.py
	$(PYTHON) benchmarks/bench_api.py

lint: install-dev
	pre-commit run --all-files
