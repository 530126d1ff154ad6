# Two entry points for a fresh machine: `make demo` and `make test`.
VENV ?= .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed
TORCH_VERSION ?= 2.13.0
DEMO_DIR ?= demo_out

.PHONY: demo test venv clean

$(PY):
	python3 -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip

# CPU torch first, pinned: an unpinned torch pulls gigabytes of CUDA wheels.
$(STAMP): pyproject.toml | $(PY)
	$(PY) -m pip install -q torch==$(TORCH_VERSION)
	$(PY) -m pip install -q -e '.[test]'
	touch $(STAMP)

venv: $(STAMP)

# lint-imports first: the layering contracts of pyproject.toml (docs/contracts.md), then the suite.
test: $(STAMP)
	$(VENV)/bin/lint-imports
	$(PY) -m pytest -q

demo: $(STAMP)
	$(VENV)/bin/tumorbench demo --out $(DEMO_DIR)

clean:
	rm -rf $(DEMO_DIR) results mlruns
