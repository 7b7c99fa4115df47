# Two commands do everything on a fresh machine with Python >= 3.10:
#   make demo   - venv + install, then train + attack + eval + AutoAttack + figures (offline, mnist-5k,
#                 cnn-small; a few minutes after the install) -> out/demo/
#   make test   - venv + install (with test extras) + ruff and mypy (make lint) + the test suite without
#                 its heaviest tests (marked heavy), then its peer and chunk tests again under AVX2
#                 (about 4 minutes on 2 cores)
# Also: make test-all (everything: the heavy tests too, and the peer and chunk tests under every instruction
# set; what CI runs), make test-fast (without the slow tests, under a minute), make demo-record (rewrites
# the committed record results/demo/ on purpose, at the full sizes: cnn, about 42 minutes), make bench,
# make docs (the documentation site from docs/ and mkdocs.yml into site/, mkdocs build --strict).
PYTHON ?= python3
VENV   ?= .venv
BIN    := $(VENV)/bin
# torch/torchvision are pinned here, not in pyproject.toml: this machine carries these builds on disk.
# Elsewhere, override e.g. `make TORCH="torch torchvision --index-url https://download.pytorch.org/whl/cpu"`.
TORCH  ?= torch==2.14.1 torchvision==0.29.1
STAMP  := $(VENV)/.advgrad-installed
DEMO   ?= out/demo
# When this make started (read once, at start-up): the install reports its own time, apart from the demo's.
STARTED := $(shell date +%s)
# Instruction sets the `isa` tests run under again (torch, oneDNN and MKL honour these variables): bits
# that the tests claim must hold on any CPU, not only on this one. AVX-512 only where the CPU has it and
# torch does not dispatch it already (there the main run is that run: running it again repeats it).
ISA_AVX2    := ATEN_CPU_CAPABILITY=avx2 ONEDNN_MAX_CPU_ISA=AVX2 MKL_ENABLE_INSTRUCTIONS=AVX2
ISA_DEFAULT := ATEN_CPU_CAPABILITY=default ONEDNN_MAX_CPU_ISA=SSE41 MKL_ENABLE_INSTRUCTIONS=SSE4_2
ISA_AVX512  := ATEN_CPU_CAPABILITY=avx512
HAS_AVX512  := $(shell grep -qw avx512f /proc/cpuinfo 2>/dev/null && echo yes)

.PHONY: install lint test test-all test-fast test-isa demo demo-record bench docs clean

install: $(STAMP)

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet $(TORCH)
	# adv-lib (a test peer) needs visdom, whose sdist builds only with setuptools<81 outside build isolation
	$(BIN)/python -m pip install --quiet 'setuptools<81' wheel
	$(BIN)/python -m pip install --quiet --no-build-isolation visdom==0.2.4
	$(BIN)/python -m pip install --quiet -e '.[test,docs]'
	# torchattacks (a test peer) pins requests~=2.25.1, which the docs' mkdocs-material excludes: no resolver
	# can satisfy both, so it comes without its pins (it runs with the newer requests, which it never calls)
	$(BIN)/python -m pip install --quiet --no-deps torchattacks==3.5.1
	touch $(STAMP)
	@echo "install: $$(( $$(date +%s) - $(STARTED) )) s (.venv/ built; not part of the demo's or the tests' time)"

lint: $(STAMP)
	$(BIN)/ruff check advgrad tests scripts
	$(BIN)/mypy advgrad

test: lint
	$(BIN)/python -m pytest -q -m "not heavy" --durations=10
	env $(ISA_AVX2) $(BIN)/python -m pytest -q -m "isa and not heavy"

# A peer test skipped for want of its peer fails here (tests/helpers/peers.py): CI must run them all.
test-all: export ADVGRAD_REQUIRE_PEERS := 1
test-all: lint
	$(BIN)/python -m pytest -q --durations=20
	$(MAKE) --no-print-directory test-isa

test-fast: $(STAMP)
	$(BIN)/python -m pytest -q -m "not slow"

test-isa: $(STAMP)
	env $(ISA_AVX2) $(BIN)/python -m pytest -q -m isa
	env $(ISA_DEFAULT) $(BIN)/python -m pytest -q -m isa
	@if [ "$$($(BIN)/python -c 'import torch; print(torch.backends.cpu.get_cpu_capability())')" = AVX512 ]; then \
		echo "torch dispatches AVX-512 here already: the main run was the $(ISA_AVX512) run"; \
	elif [ -n "$(HAS_AVX512)" ]; then env $(ISA_AVX512) $(BIN)/python -m pytest -q -m isa; \
	else echo "no AVX-512 on this CPU: skipped $(ISA_AVX512)"; fi

# The loop at a few minutes' size (cnn-small, 200 points, AutoAttack on 100 at four radii).
demo: $(STAMP)
	$(BIN)/python scripts/demo.py --out $(DEMO)

# The committed record at the full sizes (cnn, 500 points, AutoAttack on 200 at five radii): about 42 minutes.
demo-record: $(STAMP)
	$(BIN)/python scripts/demo.py --out results/demo --full

bench: $(STAMP)
	$(BIN)/python scripts/bench_attacks.py

# The documentation site: every link and API name must resolve (--strict); nothing is fetched.
docs: $(STAMP)
	$(BIN)/mkdocs build --strict --site-dir site

clean:
	rm -rf $(VENV) out .pytest_cache site
