# Two commands do everything on a fresh machine with Python >= 3.10:
#   make demo   - venv + install + train + attack + eval + figures (offline, mnist-5k) -> results/demo/
#   make test   - venv + install (with test extras) + the whole test suite
PYTHON ?= python3
VENV   ?= .venv
BIN    := $(VENV)/bin
# torch/torchvision are pinned here, not in pyproject.toml: this machine carries these builds on disk.
# Elsewhere, override e.g. `make TORCH="torch torchvision --index-url https://download.pytorch.org/whl/cpu"`.
TORCH  ?= torch==2.14.1 torchvision==0.29.1
STAMP  := $(VENV)/.advgrad-installed
DEMO   := results/demo

.PHONY: install test demo bench clean

install: $(STAMP)

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet $(TORCH)
	$(BIN)/python -m pip install --quiet -e '.[test]'
	touch $(STAMP)

test: $(STAMP)
	$(BIN)/python -m pytest -q

demo: $(STAMP)
	$(BIN)/python scripts/demo.py --out $(DEMO)

bench: $(STAMP)
	$(BIN)/python scripts/bench_attacks.py

clean:
	rm -rf $(VENV) runs .pytest_cache
