# Quick start: `make demo` runs the main job on Fashion-MNIST; `make test` runs the test suite.
# Both set up .venv first (idempotent: fast when nothing changed).
VENV ?= .venv
DEMO_RUN ?= runs/demo

.PHONY: setup demo test clean-demo

setup:
	@VENV=$(VENV) bash scripts/setup.sh

demo: setup
	@if [ -f $(DEMO_RUN)/config.json ]; then resume=--resume; else resume=; fi; \
	$(VENV)/bin/genas run --preset quick -o $(DEMO_RUN) $$resume

test:
	@VENV=$(VENV) bash scripts/setup.sh --test
	$(VENV)/bin/python -m pytest -q

clean-demo:
	rm -rf $(DEMO_RUN)
